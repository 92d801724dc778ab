"""The chat outbox: every notice (a card, a card update, a thread post, a DM, an alert) is
written here first and sent later by the delivery workers (`delivery_workers.py`), so
neither the scheduler nor a command waits for the chat platform, and a notice survives
a restart or a crash.

An entry is what delivery needs, and nothing the platform gives back: where it goes
(`audience` + `to`), its `kind` and `text`, and the request it is about as it was when
the notice was made (its `to_dict`; where the card is, `card_ref`, is read again from the
store when it is sent, since the card may have been posted meanwhile). Entries to one
destination about one request go out in the order they were put (a card before its
updates and thread replies); `claim` only hands out the first pending entry of each
(destination, request), so a retrying entry holds back the ones behind it and no other.
Alerts and notices to the admins (`urgent`: a failed revoke, an overdue grant, a damaged
store, suspected tampering) are handed out ahead of everything else, so a channel's
long queue (one user's hundreds of requests and cancellations) never buries them.

Three adapters behind one port (`Outbox`):
- `MemoryOutbox`: a list in memory (tests, tools).
- `FileOutbox`: `access.outbox.jsonl` beside the TinyDB store: a journal of put /
  delivered / failed / retry records, each append fsynced, folded (temp file, fsync,
  `os.replace`) into just the pending entries once it has grown; a torn last line from
  a crash is cut at start. One process uses it (the bot that has the store open).
- `postgres.outbox.PostgresOutbox`: the `outbox` table; a claim is `FOR UPDATE SKIP
  LOCKED` plus `claimed_by`/`claimed_until`, so of several bots exactly one sends each
  entry, and a dead bot's claims lapse with its heartbeat lease.

Delivery is at least once: an entry is marked delivered right after the platform took
it, so a crash between the two sends it again at the next start (a card is then
updated, not posted twice, once its place was remembered).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .domain import Request, as_written, from_iso, iso
from .durable import AppendFile, StoreError, atomic_write

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
FOLD_AFTER = 1000  # journal lines before a fold, or twice the pending entries if more


@dataclass(frozen=True)
class Entry:
    """One notice in the outbox. `merged`: ids of other entries this one stands for (a
    merge of several notices into one message); they share its fate."""

    id: int
    created_at: datetime
    audience: str  # "channel", "user", "admins"
    to: str
    text: str
    kind: str = "text"
    request_id: str | None = None
    request: dict | None = None  # Request.to_dict() when the notice was made
    attempts: int = 0
    next_at: datetime | None = None
    last_error: str = ""
    state: str = PENDING
    claimed_by: str | None = None
    merged: tuple[int, ...] = field(default=())

    @property
    def destination(self) -> str:
        """Where it goes: `channel:#access-approvals`, `user:<@U123>`, `admins:`."""
        return f"{self.audience}:{self.to}"

    @property
    def key(self) -> tuple[str, str]:
        """Entries with one key are sent in order."""
        return (self.destination, self.request_id or "")

    @property
    def covers(self) -> tuple[int, ...]:
        """The ids whose fate this entry's delivery decides."""
        return (self.id, *self.merged)

    def to_dict(self) -> dict:
        """The entry as JSON-ready data (its request as it is: `to_dict` made it so; no
        deep copy, which cost half a millisecond a notice)."""
        return {
            "id": self.id,
            "created_at": iso(self.created_at),
            "audience": self.audience,
            "to": self.to,
            "text": self.text,
            "kind": self.kind,
            "request_id": self.request_id,
            "request": self.request,
            "attempts": self.attempts,
            "next_at": iso(self.next_at),
            "last_error": self.last_error,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        return cls(
            id=int(data["id"]),
            created_at=from_iso(data["created_at"]),
            audience=str(data["audience"]),
            to=str(data["to"]),
            text=str(data["text"]),
            kind=str(data.get("kind") or "text"),
            request_id=data.get("request_id"),
            request=data.get("request"),
            attempts=int(data.get("attempts") or 0),
            next_at=from_iso(data.get("next_at")) or from_iso(data["created_at"]),
            last_error=str(data.get("last_error") or ""),
            state=str(data.get("state") or PENDING),
        )

    def snapshot(self) -> Request | None:
        return Request.from_dict(self.request) if self.request else None


def urgent(notice) -> bool:
    """Whether a notice or an entry goes ahead of every other: an alert (`kind`), or
    anything for the admins (`audience`). By what it is, never by its text."""
    return notice.audience == "admins" or notice.kind == "alert"


def priority(entry: Entry) -> tuple[bool, int]:
    """The order entries are handed out in: urgent ones first, then as they were put."""
    return (not urgent(entry), entry.id)


def new_entry(notice, entry_id: int, now: datetime) -> Entry:
    """An outbox entry for a service `Notice`."""
    request = notice.request
    return Entry(
        id=entry_id,
        created_at=now,
        audience=notice.audience,
        to=notice.to,
        text=notice.text,
        kind=notice.kind,
        request_id=request.id if request is not None else None,
        request=as_written(request) if request is not None else None,
        next_at=now,
    )


def notice_of(entry: Entry, store=None):
    """The `Notice` to send for an entry: the request as the notice saw it, with where its
    card is now (posted since, perhaps by another bot) from `store`."""
    from .notices import Notice

    request = entry.snapshot()
    if request is not None and store is not None:
        current = store.get(request.id)
        if current is not None:
            request.card_ref = current.card_ref or request.card_ref
            request.earlier_cards = current.earlier_cards or request.earlier_cards
    return Notice(entry.audience, entry.to, entry.text, request, entry.kind)


@dataclass(frozen=True)
class Depth:
    pending: int
    oldest: datetime | None  # when the oldest pending entry was put


class Outbox(Protocol):
    """Where notices wait for delivery. Every method is atomic; `put` is durable when it
    returns."""

    def put(self, notices: Sequence, now: datetime) -> list[Entry]:
        """Write the notices (service `Notice`s), in order; their entries."""

    def claim(
        self,
        owner: str,
        now: datetime,
        limit: int = 50,
        busy: Iterable[str] = (),
        held: Iterable[int] = (),
    ) -> list[Entry]:
        """Take the entries due for one destination (not one in `busy`), the first of
        each request only, never one in `held`; empty when there is nothing to do. Claimed
        entries are not handed to anyone else until `delivered`, `failed`, `retry` or
        `release`d (or the claim lapses: the owner died)."""

    def delivered(self, ids: Iterable[int], now: datetime) -> None: ...

    def failed(self, ids: Iterable[int], error: str, now: datetime) -> None:
        """For good: never sent again."""

    def retry(self, ids: Iterable[int], error: str, next_at: datetime) -> None:
        """Try again at `next_at`; counts an attempt."""

    def release(self, ids: Iterable[int]) -> None:
        """Give a claim back unsent (stopping)."""

    def due(self, now: datetime, held: Iterable[int] = (), busy: Iterable[str] = ()) -> bool:
        """Whether some entry could be claimed now (`busy`: destinations being sent to)."""

    def depth(self) -> Depth: ...

    def close(self) -> None: ...


class MemoryOutbox:
    """The outbox in memory: pending entries in the order they were put. `put`'s `hold`
    is called with the new entries under the lock, before any claim can see them."""

    holds_on_put = True

    def __init__(self):
        self.lock = threading.RLock()
        self._pending: dict[int, Entry] = {}  # id order is put order
        self._claimed: dict[int, str] = {}
        self._next_id = 1

    # -- the port ---------------------------------------------------------------------

    def put(self, notices: Sequence, now: datetime, hold=None) -> list[Entry]:
        with self.lock:
            entries = []
            for notice in notices:
                entries.append(new_entry(notice, self._next_id, now))
                self._next_id += 1
            self._write_puts(entries)
            if hold is not None:
                hold(entries)
            for entry in entries:
                self._pending[entry.id] = entry
            return entries

    def claim(self, owner, now, limit=50, busy=(), held=()) -> list[Entry]:
        with self.lock:
            busy, held = set(busy), set(held)
            heads = sorted(self._heads(now, held), key=priority)
            destination = next((e.destination for e in heads if e.destination not in busy), None)
            if destination is None:
                return []
            batch = [e for e in heads if e.destination == destination][:limit]
            for entry in batch:
                self._claimed[entry.id] = owner
            return [replace(e, claimed_by=owner) for e in batch]

    def delivered(self, ids, now) -> None:
        self._finish(ids, {"state": DELIVERED})

    def failed(self, ids, error, now) -> None:
        self._finish(ids, {"state": FAILED, "error": error})

    def retry(self, ids, error, next_at) -> None:
        with self.lock:
            changed = []
            for entry_id in ids:
                entry = self._pending.get(entry_id)
                if entry is not None:
                    entry = replace(
                        entry, attempts=entry.attempts + 1, next_at=next_at, last_error=error
                    )
                    changed.append(entry)
            self._write_retries(changed)
            for entry in changed:
                self._pending[entry.id] = entry
                self._claimed.pop(entry.id, None)

    def release(self, ids) -> None:
        with self.lock:
            for entry_id in ids:
                self._claimed.pop(entry_id, None)

    def due(self, now, held=(), busy=()) -> bool:
        with self.lock:
            return bool(self._heads(now, set(held)))

    def depth(self) -> Depth:
        with self.lock:
            oldest = next(iter(self._pending.values()), None)
            return Depth(len(self._pending), oldest.created_at if oldest else None)

    def pending(self) -> list[Entry]:
        """Every pending entry, in order (tests, tools)."""
        with self.lock:
            return list(self._pending.values())

    def close(self) -> None:
        pass

    # -- inside -----------------------------------------------------------------------

    def _heads(self, now: datetime, held: set[int]) -> list[Entry]:
        """The first pending entry of each key, when it is due and nobody has it."""
        seen: set[tuple[str, str]] = set()
        heads = []
        for entry in self._pending.values():
            if entry.key in seen:
                continue
            seen.add(entry.key)
            if entry.id in self._claimed or entry.id in held:
                continue
            if entry.next_at is None or entry.next_at <= now:
                heads.append(entry)
        return heads

    def _finish(self, ids, record: dict) -> None:
        with self.lock:
            done = [i for i in ids if i in self._pending]
            self._write_finished(done, record)
            for entry_id in done:
                self._pending.pop(entry_id, None)
                self._claimed.pop(entry_id, None)

    # What FileOutbox makes durable; nothing here.
    def _write_puts(self, entries: list[Entry]) -> None:
        pass

    def _write_retries(self, entries: list[Entry]) -> None:
        pass

    def _write_finished(self, ids: list[int], record: dict) -> None:
        pass


class FileOutbox(MemoryOutbox):
    """The memory outbox made durable by a journal file (`access.outbox.jsonl`).

    A change is made in memory under `lock` and its journal lines queued there; the
    write and its fsync happen after `lock` is let go (a claim never waits for a disk),
    under `_io`, and take every line queued by then: marks made at the same time by
    several workers share one fsync (group commit). Each call returns once its own lines
    are durable, so `put` is still durable when it returns, and so is `delivered`."""

    def __init__(self, path: str | Path, fold_after: int = FOLD_AFTER):
        super().__init__()
        self.path = Path(path)
        self.fold_after = fold_after
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._journal = AppendFile(self.path)
        self._lines = 0
        self._io = threading.Lock()  # the journal file: one writer at a time
        self._queue: list[str] = []  # lines changed in memory, not written yet
        self._queued = 0  # tickets handed out (one per queued batch of lines)
        self._written = 0  # every ticket up to this one is durable
        self._lost: list[tuple[int, int, StoreError]] = []  # tickets whose write failed
        self._mine = threading.local()  # .ticket: this thread's last queued batch
        self._load()

    # -- the port: memory first, then the journal outside the lock ---------------------

    def put(self, notices: Sequence, now: datetime, hold=None) -> list[Entry]:
        self._mine.ticket = 0
        entries = super().put(notices, now, hold)
        try:
            self._sync()
        except StoreError:
            with self.lock:  # never written: not an entry (the caller sends them aside)
                for entry in entries:
                    self._pending.pop(entry.id, None)
                    self._claimed.pop(entry.id, None)
            raise
        return entries

    def delivered(self, ids, now) -> None:
        self._mine.ticket = 0
        super().delivered(ids, now)
        self._sync()

    def failed(self, ids, error, now) -> None:
        self._mine.ticket = 0
        super().failed(ids, error, now)
        self._sync()

    def retry(self, ids, error, next_at) -> None:
        self._mine.ticket = 0
        super().retry(ids, error, next_at)
        self._sync()

    def close(self) -> None:
        with self._io:
            self._write_queued()

    # -- loading -----------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        good_end = 0
        for number, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-append: never acknowledged
            good_end += len(line)
            self._lines += 1
            try:
                self._replay(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                # A notice is not worth refusing to start (and so to revoke) over.
                log.error("%s line %d is damaged (%s); skipped", self.path, number, exc)
        self._journal.cut_torn_tail(good_end, len(data))
        if self._lines > max(self.fold_after, 2 * len(self._pending)):
            with self._io:
                self._fold()

    def _replay(self, record: dict) -> None:
        if "next_id" in record:  # a fold's first line: ids are never used twice
            self._next_id = max(self._next_id, int(record["next_id"]))
        elif "put" in record:
            entry = Entry.from_dict(record["put"])
            self._pending[entry.id] = entry
            self._next_id = max(self._next_id, entry.id + 1)
        elif "retry" in record:
            entry = self._pending.get(int(record["id"]))
            if entry is not None:
                again = record["retry"]
                self._pending[entry.id] = replace(
                    entry,
                    attempts=int(again["attempts"]),
                    next_at=from_iso(again["next_at"]),
                    last_error=str(again.get("last_error", "")),
                )
        else:
            self._pending.pop(int(record["id"]), None)

    # -- writing -----------------------------------------------------------------------

    def _append(self, records: list[dict]) -> None:
        """Queue the lines of a change just made in memory (the caller holds `lock`)."""
        if not records:
            return
        self._queue.append("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self._lines += len(records)
        self._queued += 1
        self._mine.ticket = self._queued

    def _sync(self) -> None:
        """Return once this thread's queued lines are durable (written by this call, or
        by another writer's that took them along); raise StoreError if that write failed."""
        ticket = getattr(self._mine, "ticket", 0)
        if not ticket:
            return
        with self._io:
            if self._written < ticket:
                self._write_queued()
            for low, high, error in self._lost:
                if low <= ticket <= high:
                    raise error

    def _write_queued(self) -> None:
        """Write and fsync every queued line (the caller holds `_io`), then fold the
        journal if it has grown."""
        with self.lock:
            lines, self._queue = self._queue, []
            low, high = self._written + 1, self._queued
        if lines:
            try:
                self._journal.append("".join(lines).encode(), self.path)
            except StoreError as exc:
                self._lost = [*self._lost[-15:], (low, high, exc)]
            self._written = high
        with self.lock:
            folding = self._lines > max(self.fold_after, 2 * len(self._pending))
        if folding:
            self._fold()

    def _write_puts(self, entries: list[Entry]) -> None:
        self._append([{"put": e.to_dict()} for e in entries])

    def _write_retries(self, entries: list[Entry]) -> None:
        self._append(
            [
                {
                    "id": e.id,
                    "retry": {
                        "attempts": e.attempts,
                        "next_at": iso(e.next_at),
                        "last_error": e.last_error,
                    },
                }
                for e in entries
            ]
        )

    def _write_finished(self, ids: list[int], record: dict) -> None:
        self._append([{"id": i, **record} for i in ids])

    def _fold(self) -> None:
        """Rewrite the journal as just the pending entries (temp file, fsync, replace);
        the caller holds `_io`. Lines still queued are in what it writes, so they go."""
        with self.lock:
            keep = list(self._pending.values())
            next_id = self._next_id
            taken, covered = len(self._queue), self._queued  # in what is written here
        text = json.dumps({"next_id": next_id}) + "\n"
        text += "".join(
            json.dumps({"put": e.to_dict()}, separators=(",", ":")) + "\n" for e in keep
        )
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            log.warning("could not fold %s (%s); it goes on growing", self.path, exc)
            return
        self._journal = AppendFile(self.path)
        self._journal.end = len(text.encode())
        with self.lock:
            del self._queue[:taken]
            self._lines = len(keep) + 1 + sum(chunk.count("\n") for chunk in self._queue)
        self._written = max(self._written, covered)


def outbox_path(db_path: str | Path) -> Path:
    """The TinyDB store's outbox file, beside it: `access.outbox.jsonl`."""
    return Path(db_path).with_suffix(".outbox.jsonl")


def open_outbox(settings, backend) -> Outbox:
    """The outbox of the configured backend: the `outbox` table on PostgreSQL, else the
    file beside the store. Only the bot opens it (a CLI tool must not fold it)."""
    db = getattr(backend.store, "db", None)
    if settings.db_url and db is not None:
        from .postgres.outbox import PostgresOutbox

        return PostgresOutbox(db)
    try:
        return FileOutbox(outbox_path(settings.db_path))
    except OSError as exc:
        raise StoreError(f"cannot open the outbox {outbox_path(settings.db_path)}: {exc}") from exc
