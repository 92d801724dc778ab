"""The hash-chained audit log in a table: one chain for every bot on the database.

Lines are the same JSON as in the audit file, hashed the same way, and `verify` runs the
same chain check over them, so a deployment moved over from files (`migrate --to`)
continues its chain. An append reads the chain's tail and inserts the next line inside
a transaction that holds the decision lock, so appends from all bots are serialised,
and an append made during a decision commits (or rolls back) with that decision.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from ..audit import (
    CHECKPOINT,
    AuditError,
    EventQueries,
    StoredLine,
    VerifyResult,
    checkpoint_fields,
    continuous_from,
    verify_sources,
)
from ..domain import iso
from ..store import StoreError
from .database import Database

BATCH = 1000


def encode(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)


def digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


class PostgresAuditLog(EventQueries):
    def __init__(self, db: Database, clock: Callable[[], datetime]):
        self.db = db
        self.clock = clock
        self.where = f"the audit table at {db.where}"
        self.path = None  # no file: `where` says where it lives
        self._seq = 0  # the last event this process wrote
        self._lock = threading.Lock()

    def append(self, event: str, **fields) -> dict:
        """Write one event as the chain's next line; raises AuditError on failure."""
        return self.append_many([(event, fields)])[0]

    def append_many(self, events: Iterable[tuple[str, dict]]) -> list[dict]:
        """Write several events as the chain's next lines, in one transaction (the
        decision's, if one is open): all of them or none; raises AuditError on failure."""
        events = list(events)
        if not events:
            return []
        written = self._append(lambda tail: events)
        self._appended()
        return written

    def append_checkpoint(self, acked: dict[str, int] | None = None) -> dict | None:
        """Append a `checkpoint` pinning the chain head (and the sinks' `acked` positions),
        unless the head is a checkpoint already (nothing happened since) or the table is
        empty; raises AuditError."""

        def checkpoint(tail: tuple[int, str | None, str]) -> list[tuple[str, dict]]:
            seq, head, event = tail
            if head is None or event == CHECKPOINT:
                return []
            return [(CHECKPOINT, checkpoint_fields(seq, head, acked))]

        written = self._append(checkpoint)
        if not written:
            return None
        self._appended()
        return written[0]

    def _append(self, make: Callable[[tuple[int, str | None, str]], list]) -> list[dict]:
        """Under the decision lock: read the chain's tail (seq, hash, event), ask `make`
        for the events to add after it, and insert them chained."""
        written = []
        try:
            with self.db.transaction() as conn:
                tail = conn.execute(
                    "SELECT seq, hash, event FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev, _ = tail or (0, None, "")
                rows = []
                for event, fields in make(tail or (0, None, "")):
                    seq += 1
                    record = {"seq": seq, "ts": iso(self.clock()), "event": event}
                    record.update({k: v for k, v in fields.items() if v not in (None, "")})
                    if prev is None:
                        seed = secrets.token_hex(16)
                        record["seed"] = seed
                        record["prev"] = hashlib.sha256(seed.encode()).hexdigest()
                    else:
                        record["prev"] = prev
                    line = encode(record)
                    prev = digest(line)
                    rows.append(_values(record, line))
                    written.append(record)
                if rows:
                    with conn.cursor() as cursor:
                        cursor.executemany(INSERT, rows)
        except StoreError as exc:
            raise AuditError(f"could not write {self.where}: {exc}") from exc
        if written:
            with self._lock:
                self._seq = max(self._seq, written[-1]["seq"])
        return written

    def head(self) -> tuple[int, str] | None:
        """The sequence number and hash of the chain's last line, or None if empty."""
        try:
            with self.db.connection() as conn:
                row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                row = row.fetchone()
        except StoreError as exc:
            raise AuditError(f"could not read {self.where}: {exc}") from exc
        return (int(row[0]), row[1]) if row else None

    def lines_after(self, seq: int, limit: int) -> list[StoredLine]:
        """Up to `limit` stored lines from `seq + 1` on, in order, stopping before a gap."""
        try:
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT seq, line FROM audit WHERE seq > %s ORDER BY seq LIMIT %s",
                    (seq, limit),
                ).fetchall()
        except StoreError as exc:
            raise AuditError(f"could not read {self.where}: {exc}") from exc
        return continuous_from([StoredLine(int(n), line.encode()) for n, line in rows], seq)

    def events_newest_first(self) -> Iterator[dict]:
        """Every event, newest first, read backwards in batches (`query` with a limit
        stops as soon as it has enough)."""
        before = None
        while True:
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT seq, line FROM audit WHERE %s::bigint IS NULL OR seq < %s "
                    "ORDER BY seq DESC LIMIT %s",
                    (before, before, BATCH),
                ).fetchall()
            for before, line in rows:  # noqa: B007 - `before` is where the next batch starts
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
            if len(rows) < BATCH:
                return

    def lines(self) -> Iterator[str]:
        """The stored lines in chain order, read in batches."""
        for line in self.stored_lines():
            yield line.data.decode()

    def stored_lines(self) -> Iterator[StoredLine]:
        """Every row's line in chain order, exactly as stored, read in batches."""
        after = 0
        while True:
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT seq, line FROM audit WHERE seq > %s ORDER BY seq LIMIT %s",
                    (after, BATCH),
                ).fetchall()
            for after, line in rows:  # noqa: B007 - `after` is where the next batch starts
                yield StoredLine(int(after), line.encode())
            if len(rows) < BATCH:
                return

    def events(self) -> Iterator[dict]:
        for line in self.lines():
            try:
                yield json.loads(line)
            except ValueError:
                continue  # `verify` reports it; a reader skips it

    def count(self) -> int:
        with self.db.connection() as conn:
            return conn.execute("SELECT count(*) FROM audit").fetchone()[0]

    def verify(self) -> VerifyResult:
        """Check the whole chain, and that nothing this process wrote has gone."""
        try:
            result = verify_sources(
                [(self.where, (line.encode() + b"\n" for line in self.lines()))]
            )
        except StoreError as exc:
            return VerifyResult(False, 0, None, f"could not read {self.where}: {exc}", self.where)
        if result.ok and result.last_seq < self._seq:
            return VerifyResult(
                False,
                result.lines,
                result.lines + 1,
                f"the log ends at event {result.last_seq}, but this bot has written up to "
                f"event {self._seq}: the last {self._seq - result.last_seq} event(s) were removed",
                self.where,
            )
        if not result.ok and result.lines == 0 and result.reason == "the log is empty":
            return VerifyResult(False, 0, 1, "the audit table is empty", self.where)
        return result


INSERT = (
    "INSERT INTO audit (seq, ts, event, request_id, hash, line) VALUES (%s, %s, %s, %s, %s, %s)"
)


def _values(record: dict, line: str) -> tuple:
    return (
        record["seq"],
        record.get("ts"),
        str(record.get("event", "")),
        record.get("request_id"),
        digest(line),
        line,
    )


def insert(conn, record: dict, line: str) -> None:
    """Store one line of the chain (also used to copy a file chain over, unchanged)."""
    conn.execute(INSERT, _values(record, line))
