"""The request store port on PostgreSQL: one row per request, live and finished alike.

The request itself is the JSON its `to_dict` makes; beside it sit the columns the queries
filter on (status, expiry, retry time, review flag, when its revocation is due, what it
extends, its next nudge, whether it was reminded) with partial indexes, so the tick's
look-ups cost what is due, not what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, MutableSet
from contextlib import AbstractContextManager
from datetime import datetime

from psycopg.types.json import Jsonb

from ..domain import Request, Status
from ..store import ConflictError, SinkCursor, StoreError
from .database import Database

log = logging.getLogger(__name__)

_COLUMNS = """
    status = %(status)s, final = %(final)s, requester = %(requester)s,
    resource = %(resource)s, created_at = %(created_at)s, expires_at = %(expires_at)s,
    next_retry_at = %(next_retry_at)s, awaits_review = %(awaits_review)s,
    version = %(version)s, saved_seq = nextval('requests_saved_seq'), data = %(data)s,
    revoke_due_at = %(revoke_due_at)s, extends = %(extends)s,
    next_nudge_at = %(next_nudge_at)s, reminder_sent = %(reminder_sent)s,
    next_escalation_at = %(next_escalation_at)s, waits_since = %(waits_since)s,
    follow_ups_due = %(follow_ups_due)s
"""
ARCHIVE_BATCH = 500


class PostgresStore:
    """Requests in PostgreSQL, for one bot or several sharing the database."""

    def __init__(self, db: Database):
        self.db = db

    # -- the port ----------------------------------------------------------------

    def save(self, request: Request) -> None:
        self.save_many([request])

    def save_many(self, requests: Iterable[Request]) -> None:
        """Every request written in one transaction (the caller's, if one is open), each
        only if its stored version is still the one it was read at; a conflict on any
        one writes none of them. The versions on the objects are bumped once it is done."""
        requests = list(requests)
        if not requests:
            return
        ids = [r.id for r in requests]
        if len(set(ids)) != len(ids):
            raise ConflictError("the same request is twice in one write; nothing was written")
        with self.db.transaction() as conn:
            for request in requests:
                row = _row(request, request.version + 1)
                if request.version == 0:
                    written = conn.execute(
                        """
                        INSERT INTO requests (id, status, final, requester, resource,
                            created_at, expires_at, next_retry_at, awaits_review, version,
                            saved_seq, data, revoke_due_at, extends, next_nudge_at,
                            reminder_sent, next_escalation_at, waits_since, follow_ups_due)
                        VALUES (%(id)s, %(status)s, %(final)s, %(requester)s, %(resource)s,
                            %(created_at)s, %(expires_at)s, %(next_retry_at)s,
                            %(awaits_review)s, %(version)s, nextval('requests_saved_seq'),
                            %(data)s, %(revoke_due_at)s, %(extends)s, %(next_nudge_at)s,
                            %(reminder_sent)s, %(next_escalation_at)s, %(waits_since)s,
                            %(follow_ups_due)s)
                        ON CONFLICT (id) DO NOTHING
                        """,
                        row,
                    ).rowcount
                else:
                    written = conn.execute(
                        f"UPDATE requests SET {_COLUMNS} "
                        "WHERE id = %(id)s AND version = %(expected)s",
                        {**row, "expected": request.version},
                    ).rowcount
                if written != 1:
                    # Raising rolls the transaction back: nothing of this write stays.
                    raise ConflictError(
                        f"request {request.id} was changed by another bot meanwhile; nothing "
                        "was written, try again"
                    )
        for request in requests:
            request.version += 1

    def get(self, request_id: str) -> Request | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT data FROM requests WHERE id = %s", (request_id,)).fetchone()
        return Request.from_dict(row[0]) if row else None

    def exists(self, request_id: str) -> bool:
        with self.db.connection() as conn:
            return bool(
                conn.execute("SELECT 1 FROM requests WHERE id = %s", (request_id,)).fetchone()
            )

    def live(self) -> list[Request]:
        return self._select("WHERE NOT final ORDER BY created_at, id")

    def live_of(self, requester: str) -> list[Request]:
        return self._select(
            "WHERE NOT final AND requester = %(who)s ORDER BY created_at, id", {"who": requester}
        )

    def live_counts(self) -> dict[Status, int]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM requests WHERE NOT final GROUP BY status"
            ).fetchall()
        return {Status(status): count for status, count in rows}

    def live_in(self, statuses: Iterable[Status]) -> list[Request]:
        return self._select(
            "WHERE NOT final AND status = ANY(%(statuses)s) ORDER BY created_at, id",
            {"statuses": [Status(s).value for s in statuses]},
        )

    def extensions_of(self, grant_id: str) -> list[Request]:
        return self._select(
            "WHERE NOT final AND extends = %(grant)s ORDER BY created_at, id", {"grant": grant_id}
        )

    def due_for_revocation(self, now: datetime) -> list[Request]:
        return self._select(
            "WHERE revoke_due_at <= %(now)s ORDER BY revoke_due_at, id", {"now": now}
        )

    def next_revocation_at(self) -> datetime | None:
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT min(revoke_due_at) FROM requests WHERE revoke_due_at IS NOT NULL"
            ).fetchone()[0]

    def expiring_unreminded(self, until: datetime) -> list[Request]:
        return self._select(
            "WHERE status = 'active' AND NOT reminder_sent AND expires_at <= %(until)s "
            "ORDER BY expires_at, id",
            {"until": until},
        )

    def pending_created_before(self, at: datetime) -> list[Request]:
        return self._select(
            "WHERE status = 'pending' AND waits_since <= %(at)s ORDER BY created_at, id",
            {"at": at},
        )

    def escalations_due(self, at: datetime) -> list[Request]:
        return self._select(
            "WHERE status = 'pending' AND next_escalation_at <= %(at)s "
            "ORDER BY next_escalation_at, id",
            {"at": at},
        )

    def follow_ups_due(self) -> list[Request]:
        return self._select("WHERE follow_ups_due ORDER BY created_at, id")

    def history_count(
        self,
        requester: str,
        resource: str,
        statuses: Iterable[Status],
        since: datetime | None,
    ) -> int:
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT count(*) FROM requests
                 WHERE requester = %(who)s AND resource = %(what)s AND extends IS NULL
                   AND status = ANY(%(statuses)s)
                   AND created_at >= coalesce(%(since)s, '-infinity'::timestamptz)
                """,
                {
                    "who": requester,
                    "what": resource,
                    "statuses": [Status(s).value for s in statuses],
                    "since": since,
                },
            ).fetchone()[0]

    def nudges_due(self, at: datetime) -> list[Request]:
        return self._select(
            "WHERE status = 'pending' AND next_nudge_at <= %(at)s ORDER BY next_nudge_at, id",
            {"at": at},
        )

    def awaiting_review(self) -> list[Request]:
        """Break-glass grants nobody has acknowledged yet, finished ones too, oldest first."""
        return self._select("WHERE awaits_review ORDER BY created_at, id")

    def archived(self) -> Iterator[Request]:
        """Every finished request once, in its latest version, in the order last saved.

        Read in batches, so a long archive neither sits in memory nor holds a connection.
        """
        after = -1
        while True:
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT saved_seq, data FROM requests WHERE final AND saved_seq > %s "
                    "ORDER BY saved_seq LIMIT %s",
                    (after, ARCHIVE_BATCH),
                ).fetchall()
            for after, data in rows:  # noqa: B007 - `after` is where the next batch starts
                yield Request.from_dict(data)
            if len(rows) < ARCHIVE_BATCH:
                return

    def transaction(self) -> AbstractContextManager:
        return self.db.transaction()

    def claims(self) -> MutableSet[str]:
        return Claims(self.db)

    def standing(self) -> dict[str, dict]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT resource, state FROM standing").fetchall()
        return dict(rows)

    def save_standing(self, resource: str, state: dict | None) -> None:
        with self.db.connection() as conn:
            if state is None:
                conn.execute("DELETE FROM standing WHERE resource = %s", (resource,))
                return
            conn.execute(
                """
                INSERT INTO standing (resource, state) VALUES (%s, %s)
                ON CONFLICT (resource) DO UPDATE SET state = EXCLUDED.state, saved_at = now()
                """,
                (resource, Jsonb(state)),
            )

    def sink_cursor(self, name: str) -> SinkCursor | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT seq, hash, shipped_at, error, error_at FROM sink_cursors WHERE name = %s",
                (name,),
            ).fetchone()
        if row is None:
            return None
        seq, hash_, shipped_at, error, error_at = row
        return SinkCursor(name, int(seq), hash_, shipped_at, error, error_at)

    def save_sink_cursor(self, cursor: SinkCursor) -> None:
        """One upsert; a lower `seq` than the stored one keeps the stored position."""
        with self.db.connection() as conn:
            conn.execute(
                """
                INSERT INTO sink_cursors (name, seq, hash, shipped_at, error, error_at)
                VALUES (%(name)s, %(seq)s, %(hash)s, %(shipped_at)s, %(error)s, %(error_at)s)
                ON CONFLICT (name) DO UPDATE SET
                    hash = CASE WHEN EXCLUDED.seq >= sink_cursors.seq
                                THEN EXCLUDED.hash ELSE sink_cursors.hash END,
                    shipped_at = CASE WHEN EXCLUDED.seq >= sink_cursors.seq
                                THEN EXCLUDED.shipped_at ELSE sink_cursors.shipped_at END,
                    seq = greatest(EXCLUDED.seq, sink_cursors.seq),
                    error = EXCLUDED.error, error_at = EXCLUDED.error_at
                """,
                {"name": cursor.name, **cursor.to_dict()},
            )

    def close(self) -> None:
        self.db.close()

    # -- beyond the port: counts for `migrate` and the bench ---------------------------

    def counts(self) -> dict[str, int]:
        with self.db.connection() as conn:
            live, final = conn.execute(
                "SELECT count(*) FILTER (WHERE NOT final), count(*) FILTER (WHERE final) "
                "FROM requests"
            ).fetchone()
        return {"live": live, "archived": final}

    def _select(self, where: str, params: dict | None = None) -> list[Request]:
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT data FROM requests {where}", params).fetchall()
        return [Request.from_dict(data) for (data,) in rows]


class Claims(MutableSet):
    """Who is calling a strategy for which request, across every bot on the database.

    `in` is true while any bot whose heartbeat is fresh holds the claim, so a dead bot's
    claims lapse after the lease time and another bot finishes its work. `add` claims for
    this bot (inside the caller's decision transaction, if one is open, so the claim and
    the decision commit together); `discard` hands back only this bot's own claim, and
    never fails: a row it could not delete (the database was away) is no longer this
    process's (`Database.claimed`), so the heartbeat deletes it as soon as it can. A live
    bot's claim therefore lasts as long as its call, plus at most one beat.
    Iterating lists this bot's own claims.
    """

    def __init__(self, db: Database):
        self.db = db

    def _mine(self, request_id: str) -> bool:
        with self.db.claimed_lock:
            return request_id in self.db.claimed

    def __contains__(self, request_id: object) -> bool:
        with self.db.connection() as conn:
            row = conn.execute(
                """
                SELECT c.owner FROM claims c JOIN leases l ON l.name = 'bot:' || c.owner
                 WHERE c.request_id = %s AND l.expires_at > now()
                """,
                (str(request_id),),
            ).fetchone()
        if row is None:
            return False
        if row[0] == self.db.bot_id:
            # A row of ours whose call is not under way here outlived it: ours to take again.
            return self._mine(str(request_id))
        return True

    def add(self, request_id: str) -> None:
        # Noted first, so the heartbeat never takes the fresh row for a leftover.
        with self.db.claimed_lock:
            self.db.claimed.add(request_id)
        try:
            with self.db.connection() as conn:
                conn.execute(
                    """
                    INSERT INTO claims (request_id, owner) VALUES (%s, %s)
                    ON CONFLICT (request_id) DO UPDATE
                       SET owner = EXCLUDED.owner, claimed_at = now()
                    """,
                    (request_id, self.db.bot_id),
                )
        except BaseException:
            with self.db.claimed_lock:
                self.db.claimed.discard(request_id)
            raise

    def discard(self, request_id: str) -> None:
        with self.db.claimed_lock:
            self.db.claimed.discard(request_id)
        try:
            # Waits no longer than a command: a batch handed back while the database is
            # away must not wait the pool's timeout once per claim (the heartbeat is there).
            with self.db.for_command(), self.db.connection() as conn:
                conn.execute(
                    "DELETE FROM claims WHERE request_id = %s AND owner = %s",
                    (request_id, self.db.bot_id),
                )
        except StoreError as exc:
            log.warning(
                "claim on %s not handed back (%s); the heartbeat clears it", request_id, exc
            )

    def __iter__(self) -> Iterator[str]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT request_id FROM claims WHERE owner = %s ORDER BY request_id",
                (self.db.bot_id,),
            ).fetchall()
        return iter([r for (r,) in rows])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _row(request: Request, version: int) -> dict:
    pending = request.status is Status.PENDING
    data = request.to_dict()
    data["version"] = version
    return {
        "id": request.id,
        "status": request.status.value,
        "final": request.is_final,
        "requester": request.requester,
        "resource": request.resource,
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "next_retry_at": request.next_retry_at,
        "awaits_review": request.awaits_review,
        "version": version,
        "data": Jsonb(data),
        "revoke_due_at": request.revoke_due_at,
        "extends": request.extends,
        "next_nudge_at": request.next_nudge_at if pending else None,
        "reminder_sent": bool(request.reminder_sent),
        "next_escalation_at": request.next_escalation_at if pending else None,
        "waits_since": request.waits_since if pending else None,
        "follow_ups_due": bool(request.follow_ups_due),
    }
