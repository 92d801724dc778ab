"""The chat outbox on PostgreSQL: the `outbox` table (migration 8), shared by every bot.

A bot claims the first pending entry of each (destination, request) for one destination
at a time: `FOR UPDATE SKIP LOCKED`, then `claimed_by` (its bot id) and `claimed_until`.
A claim holds until then while the claimer's heartbeat lease is fresh, so a bot killed
mid-batch hands its entries to another within about a lease, and a long, slow batch is
never taken from a live bot. Of two bots, one sends each entry. Finished rows stay a day
(what was sent, and the last error of what failed), then are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from psycopg.types.json import Jsonb

from ..outbox import DELIVERED, FAILED, Depth, Entry, new_entry, priority
from .database import Database

CLAIM_SECONDS = 600  # the longest a live bot may keep a batch unsent
KEEP_FINISHED_HOURS = 24

# An entry nobody holds: never claimed, released, its claim run out, or its claimer dead;
# or claimed by this bot for a destination none of its workers is sending to (a claim it
# could not give back while the database was away).
_FREE = """
    (o.claimed_by IS NULL OR o.claimed_until < now() OR NOT EXISTS (
        SELECT 1 FROM leases l WHERE l.name = 'bot:' || o.claimed_by AND l.expires_at > now())
     OR (o.claimed_by = %(owner)s AND NOT (o.destination = ANY(%(busy)s::text[]))))
"""
# The first pending entry of each (destination, request), when it is due and free.
_HEADS = f"""
    SELECT id, destination FROM (
        SELECT DISTINCT ON (destination, coalesce(request_id, ''))
               o.id, o.destination, o.next_at, {_FREE} AS free,
               (o.audience = 'admins' OR o.kind = 'alert') AS urgent
          FROM outbox o
         WHERE o.state = 'pending'
         ORDER BY destination, coalesce(request_id, ''), o.id
    ) heads
    WHERE free AND next_at <= %(now)s AND NOT (id = ANY(%(held)s::bigint[]))
"""
_COLUMNS = (
    "id, created_at, audience, recipient, kind, text, request_id, request, attempts, "
    "next_at, last_error, state, claimed_by"
)


class PostgresOutbox:
    # A put inside the thread's open transaction (a decision's) is seen by no claim
    # before that transaction commits.
    visible_at_commit = True

    def __init__(self, db: Database):
        self.db = db

    def put(self, notices: Sequence, now: datetime) -> list[Entry]:
        entries = []
        with self.db.connection() as conn, conn.transaction():
            for notice in notices:
                entry = new_entry(notice, 0, now)
                (entry_id,) = conn.execute(
                    """
                    INSERT INTO outbox (created_at, audience, recipient, destination, kind,
                                        text, request_id, request, next_at)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
                    """,
                    (
                        entry.created_at,
                        entry.audience,
                        entry.to,
                        entry.destination,
                        entry.kind,
                        entry.text,
                        entry.request_id,
                        Jsonb(entry.request) if entry.request is not None else None,
                        entry.next_at,
                    ),
                ).fetchone()
                entries.append(replace(entry, id=entry_id))
        return entries

    def claim(self, owner, now, limit=50, busy=(), held=()) -> list[Entry]:
        busy = set(busy)
        args = {"now": now, "held": list(held), "owner": owner, "busy": sorted(busy)}
        # Bounded like a command: during an outage a worker gives up fast and retries.
        with self.db.for_command(), self.db.connection() as conn:
            # outbox.priority: alerts and the admins' notices first
            heads = conn.execute(_HEADS + " ORDER BY urgent DESC, id", args).fetchall()
        tried: set[str] = set()
        for _, destination in heads:
            if destination in busy or destination in tried:
                continue
            tried.add(destination)
            ids = [i for i, d in heads if d == destination][:limit]
            claimed = self._take(owner, ids, busy)
            if claimed:
                return claimed
        return []

    def _take(self, owner: str, ids: list[int], busy: set[str]) -> list[Entry]:
        """Claim these entries, skipping any another bot is claiming or has claimed."""
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute(
                f"""
                SELECT o.id FROM outbox o
                 WHERE o.id = ANY(%(ids)s::bigint[]) AND o.state = 'pending' AND {_FREE}
                 ORDER BY o.id FOR UPDATE SKIP LOCKED
                """,
                {"ids": ids, "owner": owner, "busy": sorted(busy)},
            ).fetchall()
            if not rows:
                return []
            rows = conn.execute(
                f"""
                UPDATE outbox SET claimed_by = %(owner)s,
                       claimed_until = now() + make_interval(secs => %(seconds)s)
                 WHERE id = ANY(%(ids)s::bigint[])
                RETURNING {_COLUMNS}
                """,
                {"owner": owner, "seconds": CLAIM_SECONDS, "ids": [r[0] for r in rows]},
            ).fetchall()
        return sorted((_entry(row) for row in rows), key=priority)

    def delivered(self, ids: Iterable[int], now: datetime) -> None:
        self._finish(ids, DELIVERED, "")

    def failed(self, ids: Iterable[int], error: str, now: datetime) -> None:
        self._finish(ids, FAILED, error)

    def _finish(self, ids: Iterable[int], state: str, error: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                """
                UPDATE outbox SET state = %s, last_error = %s, finished_at = now(),
                       claimed_by = NULL, claimed_until = NULL
                 WHERE id = ANY(%s::bigint[]) AND state = 'pending'
                """,
                (state, error, list(ids)),
            )
            conn.execute(
                "DELETE FROM outbox WHERE state <> 'pending' "
                "AND finished_at < now() - make_interval(hours => %s)",
                (KEEP_FINISHED_HOURS,),
            )

    def retry(self, ids: Iterable[int], error: str, next_at: datetime) -> None:
        with self.db.connection() as conn:
            conn.execute(
                """
                UPDATE outbox SET attempts = attempts + 1, next_at = %s, last_error = %s,
                       claimed_by = NULL, claimed_until = NULL
                 WHERE id = ANY(%s::bigint[]) AND state = 'pending'
                """,
                (next_at, error, list(ids)),
            )

    def release(self, ids: Iterable[int]) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ANY(%s::bigint[]) AND state = 'pending'",
                (list(ids),),
            )

    def due(self, now: datetime, held: Iterable[int] = (), busy: Iterable[str] = ()) -> bool:
        # Asked while waiting for the workers to be idle (a stop, a test): a database
        # that does not answer has nothing we could send, and says so quickly.
        with self.db.for_command(), self.db.connection() as conn:
            return bool(
                conn.execute(
                    _HEADS + " LIMIT 1",
                    {"now": now, "held": list(held), "owner": self.db.bot_id, "busy": sorted(busy)},
                ).fetchone()
            )

    def depth(self) -> Depth:
        with self.db.connection() as conn:
            count, oldest = conn.execute(
                "SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return Depth(count, oldest)

    def pending(self) -> list[Entry]:
        """Every pending entry, in order (tests, tools)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY id"
            ).fetchall()
        return [_entry(row) for row in rows]

    def close(self) -> None:
        pass  # the Database is the backend's to close


def _entry(row) -> Entry:
    (
        entry_id,
        created_at,
        audience,
        recipient,
        kind,
        text,
        request_id,
        request,
        attempts,
        next_at,
        last_error,
        state,
        claimed_by,
    ) = row
    return Entry(
        id=entry_id,
        created_at=created_at,
        audience=audience,
        to=recipient,
        text=text,
        kind=kind,
        request_id=request_id,
        request=request,
        attempts=attempts,
        next_at=next_at,
        last_error=last_error,
        state=state,
        claimed_by=claimed_by,
    )
