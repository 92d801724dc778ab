"""The request store: a small port, and its TinyDB adapter.

Live requests (pending, approved, active, revoke_failed) are held in memory with
indexes, and made durable by appending each saved version, fsynced, to a journal
beside the TinyDB file; now and then the journal is folded into the TinyDB file (a
snapshot written to a temp file, fsynced and `os.replace`d) and emptied. So a write
costs one record, not every live record, and the TinyDB file never holds a half-written
state. Finished requests move to an append-only JSONL archive with an id -> offset
index. No TinyDB query leaves this module: a PostgreSQL store sits behind the same
methods (`RequestStore`).

Two small lock files sit beside them (`StoreFiles`), for other processes: every process
that has the store open holds `access.open.lock` shared (so `restore` can tell that a bot
is running), and every write and fold holds `access.write.lock` shared while a backup
holds it exclusively for the moment it takes its copy, so a backup taken while the bot
runs is one point in time.

Beside them, `access.standing.json` holds what the standing-access sweep knows per
resource (findings, and targets that cannot be listed): a small document rewritten
whole (temp file, fsync, `os.replace`) when a sweep changes it.

Besides reading and writing, the port has what several bots on one database need, which
one process gets almost for free: `transaction()` (one decision at a time across every
bot), `claims()` (who is calling a strategy for which request right now) and the
`version` check on `save`/`save_many`. TinyDBStore serves one process, so its
transaction is empty (the service's own lock already serialises) and its claims are a
plain set.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import tempfile
import threading
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, MutableSet
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from .domain import Request, Status

try:
    import fcntl
except ImportError:  # not POSIX: no other process can be kept out, the locks do nothing
    fcntl = None

log = logging.getLogger(__name__)

COMPACT_AFTER = 1000  # journal lines before a snapshot, or the live count if larger
SNAPSHOT_HEAD = b'{"requests":{\n'  # the layout _compact writes: one request a line
SNAPSHOT_TAIL = b"}}"


class StoreError(Exception):
    """The store cannot be read or written; the message names the path and the fix."""


class ConflictError(StoreError):
    """A write of a request that someone else changed since it was read: nothing was written."""


@dataclass(frozen=True)
class SinkCursor:
    """How far one audit sink has acknowledged the log: its last event's `seq` and line
    hash, when; and its last delivery error (cleared by the next success)."""

    name: str
    seq: int = 0
    hash: str = ""
    shipped_at: str | None = None  # ISO time of the last acknowledged batch
    error: str = ""
    error_at: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "name"}

    @classmethod
    def from_dict(cls, name: str, data: dict) -> SinkCursor:
        known = {
            k: data[k] for k in ("seq", "hash", "shipped_at", "error", "error_at") if k in data
        }
        return cls(name, **known)


class RequestStore(Protocol):
    """What the service needs from storage. Every method is atomic under the store's lock;
    requests handed out are copies, so a caller's changes count only once `save`d.

    The methods below `awaiting_review` cost what they return (an index lookup), not the
    number of live or finished requests; the scheduler calls them every tick.
    """

    def save(self, request: Request) -> None:
        """Store this version durably before returning; a finished one goes to the archive.

        Written only if the stored copy still has `request.version` (0: new), then the
        version on the object is bumped; otherwise ConflictError and nothing is written."""

    def save_many(self, requests: Iterable[Request]) -> None:
        """`save` for several requests with one durable write (imports, bulk changes):
        every version is checked first, and a conflict on any writes none of them."""

    def get(self, request_id: str) -> Request | None:
        """The latest version of one request, live or finished; None if unknown."""

    def exists(self, request_id: str) -> bool: ...

    def live(self) -> list[Request]:
        """Every live request (pending, approved, active, revoke_failed), oldest first."""

    def awaiting_review(self) -> list[Request]:
        """Break-glass grants nobody has acknowledged yet, finished ones too, oldest first."""

    def live_of(self, requester: str) -> list[Request]:
        """The live requests of one requester (a normalised handle), oldest first."""

    def live_in(self, statuses: Iterable[Status]) -> list[Request]:
        """The live requests in these statuses, oldest first."""

    def extensions_of(self, grant_id: str) -> list[Request]:
        """The live extension requests of one grant (`extends == grant_id`), oldest first."""

    def live_counts(self) -> dict[Status, int]:
        """How many live requests are in each status (for /metrics): an index count."""

    def due_for_revocation(self, now: datetime) -> list[Request]:
        """Requests holding access whose `revoke_due_at` is at or before `now`, earliest
        first: grants past their end, failed revokes whose retry time has come, and asked-for
        revokes the bot has not finished."""

    def next_revocation_at(self) -> datetime | None:
        """The earliest `revoke_due_at` of any live request; None if none holds access."""

    def expiring_unreminded(self, until: datetime) -> list[Request]:
        """Active grants with `reminder_sent` false that end at or before `until`, earliest
        first."""

    def pending_created_before(self, at: datetime) -> list[Request]:
        """Pending requests whose `waits_since` is at or before `at`, oldest first
        (time-outs): when they were made or, with escalation levels, when their last
        level is asked."""

    def nudges_due(self, at: datetime) -> list[Request]:
        """Pending requests whose `next_nudge_at` is at or before `at`, earliest first."""

    def escalations_due(self, at: datetime) -> list[Request]:
        """Pending requests whose `next_escalation_at` is at or before `at`, earliest first."""

    def follow_ups_due(self) -> list[Request]:
        """Requests, live or finished, with after_grant / after_revoke hooks still to run
        (`follow_ups_due` not empty), oldest first."""

    def history_count(
        self,
        requester: str,
        resource: str,
        statuses: Iterable[Status],
        since: datetime | None,
    ) -> int:
        """How many requests (not extensions) `requester` made for `resource`, live or
        finished, now in one of `statuses`, made at or after `since` (None: ever). An
        index count: it costs that person's requests of that resource, not the archive."""

    def transaction(self) -> AbstractContextManager:
        """One atomic decision: every bot on this store waits while a block runs in one;
        an exception inside rolls back what it wrote (the store's and the audit's)."""

    def claims(self) -> MutableSet[str]:
        """The ids whose strategy call is under way, by this service or any live bot:
        `add` claims for this service, `discard` gives its claim back, `in` asks."""

    def standing(self) -> dict[str, dict]:
        """What the standing-access sweep knows, one JSON document per resource (the
        sweep, standing.py, writes and reads them; the store only keeps them)."""

    def save_standing(self, resource: str, state: dict | None) -> None:
        """Replace one resource's standing-access document durably; None forgets it."""

    def sink_cursor(self, name: str) -> SinkCursor | None:
        """Where the audit sink `name` stands, or None if it never shipped or failed."""

    def save_sink_cursor(self, cursor: SinkCursor) -> None:
        """Store a sink's position durably; a `seq` below the stored one is kept back (two
        bots racing after a lease change never move a sink backwards)."""

    def close(self) -> None: ...


class DecisionLock:
    """The service's lock: one thread of this process at a time (a re-entrant lock) and,
    inside it, one store transaction, so that one bot of all sharing the database decides
    at a time. Re-entrant: only the outermost `with` opens and commits the transaction."""

    def __init__(self, store: RequestStore):
        self._lock = threading.RLock()
        self._store = store
        self._open: list[AbstractContextManager | None] = []  # guarded by _lock

    def __enter__(self) -> DecisionLock:
        self._lock.acquire()
        if self._open:
            self._open.append(None)
            return self
        transaction = self._store.transaction()
        try:
            transaction.__enter__()
        except BaseException:
            self._lock.release()
            raise
        self._open.append(transaction)
        return self

    def __exit__(self, *exc) -> bool:
        transaction = self._open.pop()
        try:
            return bool(transaction is not None and transaction.__exit__(*exc))
        finally:
            self._lock.release()


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so that a crash leaves either the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def _damaged(path: Path, line: int, why: str) -> StoreError:
    return StoreError(
        f"{path} is not valid JSON (line {line}: {why}). "
        "The bot will not start on a damaged store: restore the file from a "
        "backup, or move it away to start with an empty one."
    )


class AtomicJSONStorage(Storage):
    """TinyDB storage that reads the snapshot once and writes via temp file + fsync +
    os.replace; a damaged file is a StoreError naming it."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self):
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _damaged(self.path, exc.lineno, exc.msg) from exc

    def write(self, data) -> None:
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            raise StoreError(
                f"could not write {self.path}: {exc.strerror or exc}; nothing was changed"
            ) from exc

    def close(self) -> None:
        pass


class _IdTable(Table):
    document_id_class = str


class _DB(TinyDB):
    table_class = _IdTable


class _AppendFile:
    """A file of JSON lines, each append fsynced. An append that failed part-way is cut
    before the next one, so a later line never glues onto a torn one."""

    def __init__(self, path: Path):
        self.path = path
        self.end: int | None = None  # where the last good append ended, once known

    def append(self, data: bytes, what: Path) -> int:
        """Append whole lines; returns the offset they start at. Raises StoreError."""
        try:
            with open(self.path, "ab") as handle:
                start = handle.tell()
                if self.end is not None and start > self.end:
                    handle.truncate(self.end)  # a failed append left part of a line
                    start = self.end
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StoreError(
                f"could not write {what}: {exc.strerror or exc}; nothing was changed"
            ) from exc
        self.end = start + len(data)
        return start

    def cut_torn_tail(self, good_end: int, size: int) -> None:
        if good_end < size:
            # A crash mid-append left a torn tail that was never acknowledged: cut it.
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())
        self.end = good_end


class _TimeIndex:
    """Request ids ordered by a time. Changes and range reads are binary searches (plus
    a list insert, a memmove), so a tick costs what is due, not what is stored."""

    def __init__(self):
        self._order: list[tuple[float, str]] = []
        self._key: dict[str, float] = {}

    def put(self, request_id: str, at: datetime | None) -> None:
        """Place `request_id` at `at`, or take it out when `at` is None."""
        old = self._key.pop(request_id, None)
        if old is not None:
            del self._order[bisect_left(self._order, (old, request_id))]
        if at is not None:
            key = at.timestamp()
            self._key[request_id] = key
            insort(self._order, (key, request_id))

    def until(self, at: datetime) -> list[str]:
        """Ids placed at or before `at`, earliest first."""
        end = bisect_right(self._order, (at.timestamp(), "\U0010ffff"))
        return [request_id for _, request_id in self._order[:end]]

    def first(self) -> str | None:
        """The id placed earliest, or None."""
        return self._order[0][1] if self._order else None


def _history_entry(line: bytes) -> tuple[str, str, float, Status] | None:
    """(requester, resource, made at, status) of an archive line, cheaply; None for an
    extension request. `to_dict` writes the fields in their declared order, and inside a
    JSON string every quote is escaped, so `","created_at":"` cannot occur in the reason
    and none of the keys looked for occurs, unescaped, in a value before its own (the
    strategy's settings have fixed keys). Anything unusual is parsed in full."""
    requester = line.find(b'","requester":"')
    resource = line.find(b'","resource":"', requester)
    duration = line.find(b'","duration":', resource)
    made = line.find(b'","created_at":"', duration)
    status = line.find(b'"status":"', line.find(b'"requester_id":', made))
    status_end = line.find(b'"', status + 10)
    extends = line.find(b'"extends":', status_end)
    found = min(requester, resource, duration, made, status, extends) >= 0
    if found and line.startswith(b'{"id":"'):
        who, what = line[requester + 15 : resource], line[resource + 14 : duration]
        if b"\\" not in who and b"\\" not in what:
            if line[extends + 10 : extends + 14] != b"null":
                return None
            return (
                who.decode(),
                what.decode(),
                datetime.fromisoformat(
                    line[made + 16 : line.find(b'"', made + 16)].decode()
                ).timestamp(),
                Status(line[status + 10 : status_end].decode()),
            )
    record = json.loads(line)
    if record.get("extends"):
        return None
    return (
        record["requester"],
        record["resource"],
        datetime.fromisoformat(record["created_at"]).timestamp(),
        Status(record["status"]),
    )


class _History:
    """Finished requests (not extensions) by (requester, resource): when each was made
    and how it ended, packed (9 bytes each: a hundred thousand fit in a megabyte).
    Each request is added once, from its first archive line: a finished request saved
    again (acknowledged, its after_revoke recorded) ended the same way."""

    _CODES = {status: code for code, status in enumerate(Status)}
    _STATUSES = tuple(Status)

    def __init__(self):
        self._by: dict[tuple[str, str], tuple[array, bytearray]] = {}

    def add(self, requester: str, resource: str, at: float, status: Status) -> None:
        times, codes = self._by.setdefault((requester, resource), (array("d"), bytearray()))
        times.append(at)
        codes.append(self._CODES[status])

    def count(
        self, requester: str, resource: str, statuses: set[Status], floor: float | None
    ) -> int:
        found = self._by.get((requester, resource))
        if found is None:
            return 0
        wanted = {self._CODES[s] for s in statuses}
        return sum(
            1 for at, code in zip(*found) if code in wanted and (floor is None or at >= floor)
        )

    def to_json(self) -> list:
        return [
            [requester, resource, list(times), [self._STATUSES[c].value for c in codes]]
            for (requester, resource), (times, codes) in self._by.items()
        ]

    def load_json(self, saved: list) -> None:
        """What `to_json` wrote; ValueError (nothing loaded) if it is not that."""
        loaded = {}
        for requester, resource, times, statuses in saved:
            if len(times) != len(statuses):
                raise ValueError("a history entry is torn")
            loaded[(str(requester), str(resource))] = (
                array("d", map(float, times)),
                bytearray(self._CODES[Status(s)] for s in statuses),
            )
        self._by.update(loaded)


def _archive_id(line: bytes) -> str:
    """The id of an archive line, cheaply: `to_dict` puts `id` first, so a line starts
    `{"id":"abc234",`. Anything else is parsed in full."""
    if line.startswith(b'{"id":"'):
        end = line.find(b'"', 7)
        if end > 7 and b"\\" not in line[7:end]:
            return line[7:end].decode()
    record = json.loads(line)
    return record["id"]


@dataclass(frozen=True)
class StoreFiles:
    """Where a TinyDB store keeps what: all beside the snapshot unless the archive is
    placed elsewhere. The backup and restore commands find the files here too."""

    snapshot: Path  # the TinyDB file, e.g. data/access.json
    journal: Path
    archive: Path
    archive_index: Path  # only a cache of the archive
    open_lock: Path  # held shared by every process that has the store open
    write_lock: Path  # held shared by each write, exclusively by a backup's copy
    standing: Path  # what the standing-access sweep found, per resource
    # How far each audit sink got. Not part of a backup: after a restore the log is
    # shorter than what the sinks acknowledged, and the bot must say so at start.
    sink_cursors: Path

    @classmethod
    def of(cls, path: str | os.PathLike, archive_path: str | os.PathLike | None = None):
        path = Path(path)
        archive = Path(archive_path or path.with_suffix(".archive.jsonl"))
        return cls(
            snapshot=path,
            journal=path.with_suffix(".journal.jsonl"),
            archive=archive,
            archive_index=archive.with_suffix(".index.json"),
            open_lock=path.with_suffix(".open.lock"),
            write_lock=path.with_suffix(".write.lock"),
            standing=path.with_suffix(".standing.json"),
            sink_cursors=path.with_suffix(".sinks.json"),
        )

    @property
    def data(self) -> tuple[Path, ...]:
        """The files that hold requests (the lock files hold nothing)."""
        return (self.snapshot, self.journal, self.archive, self.archive_index)


class FileLock:
    """flock(2) on a small file, shared or exclusive, seen by every process; the kernel
    drops it when its holder closes the file or dies, so a crash never leaves it held."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, exclusive: bool, wait: bool = True) -> bool:
        """Take the lock; False if `wait` is off and another holder is in the way."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Read-only is enough for flock, so a lock file that another user (root
            # running a backup) created still opens.
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        if fcntl is None:
            return True
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fd, mode)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextmanager
    def held(self, *, exclusive: bool) -> Iterator[None]:
        self.acquire(exclusive=exclusive)
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock too
            self._fd = None


def read_sink_cursors(path: Path) -> dict[str, dict]:
    """The sink cursors file of a TinyDB store (name -> fields); readable while the bot
    runs (it is replaced whole), so the report reads it without opening the store."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{path} is not readable JSON ({exc}); it only holds how far each audit sink "
            "got: move it away and the sinks ship the log again"
        ) from exc
    return data if isinstance(data, dict) else {}


class TinyDBStore:
    """Live requests in memory, journal + TinyDB snapshot on disk; finished ones in a
    JSONL archive. One lock serialises every writer."""

    def __init__(
        self,
        path: str | os.PathLike,
        archive_path: str | os.PathLike | None = None,
        compact_after: int = COMPACT_AFTER,
    ):
        files = StoreFiles.of(path, archive_path)
        self.path = files.snapshot
        self.archive_path = files.archive
        self.journal_path = files.journal
        self.archive_index_path = files.archive_index
        self.sink_cursors_path = files.sink_cursors
        self._cursors_lock = threading.Lock()
        self.compact_after = compact_after
        self._open_lock = FileLock(files.open_lock)
        if not self._open_lock.acquire(exclusive=False, wait=False):
            self._open_lock.close()
            raise StoreError(
                f"{self.path} is being restored from a backup (`python -m accessbot "
                "restore` holds it); start the bot again once the restore has finished"
            )
        self._write_lock = FileLock(files.write_lock)
        self.standing_path = files.standing
        self._standing: dict[str, dict] | None = None  # read at first use
        # At a fold, the archive index file is written again once this many bytes of
        # archive are not in it (reading them at start costs a few milliseconds).
        self.index_archive_after = 1 << 20
        self.lock = threading.RLock()
        self._db = _DB(str(self.path), storage=AtomicJSONStorage)  # makes the directory
        self.archive_path.parent.mkdir(parents=True, exist_ok=True)
        self._table = self._db.table("requests")
        self._archive = _AppendFile(self.archive_path)
        self._journal = _AppendFile(self.journal_path)
        self._journal_lines = 0
        self._live: dict[str, Request] = {}
        self._text: dict[str, str] = {}  # id -> JSON of the live version, for snapshots
        self._archive_index: dict[str, int] = {}
        self._archive_indexed_to = 0  # how much of the archive the index file covers
        self._awaiting_review: set[str] = set()  # break-glass grants, live or archived
        self._follow_ups: set[str] = set()  # after-hooks still to run, live or archived
        self._history = _History()  # finished requests, for history_count
        # Indexes over the live requests.
        self._by_status: dict[Status, set[str]] = {}
        self._by_requester: dict[str, set[str]] = {}
        self._by_extends: dict[str, set[str]] = {}
        self._revoke_at = _TimeIndex()  # holds access: when to take it away
        self._remind_at = _TimeIndex()  # active, not reminded: when it ends
        self._pending_since = _TimeIndex()  # pending: when it was created
        self._nudge_at = _TimeIndex()  # pending: when the approvers are reminded
        self._escalate_at = _TimeIndex()  # pending: when the next escalation level is asked
        try:
            self._load()
        except BaseException:
            self.close()  # a store that did not load holds no lock (`store rebuild` needs it)
            raise

    # -- loading -------------------------------------------------------------------

    def _load(self) -> None:
        # Loading makes a few hundred thousand objects and no garbage cycles; the cyclic
        # collector would walk them all again and again (a third of the start-up time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            with self._write_lock.held(exclusive=False):  # it may cut torn tails, or fold
                self._load_files()
        finally:
            if collecting:
                gc.enable()

    def _load_files(self) -> None:
        self._index_archive()
        # The latest version of every live request: the snapshot, then the journal's
        # lines in order. Only the versions that win are turned into Requests.
        journal = self._read_journal()
        # Archived requests are finished: a live copy of one is older (a crash came
        # between the archive append and the next snapshot). The archive wins, and the
        # journal's version wins over the snapshot's.
        archived = self._archive_index

        def superseded(request_id: str) -> bool:
            return request_id in archived or request_id in journal

        for _, record, text in self._read_snapshot(superseded):
            self._take(Request.from_dict(record), text)
        while journal:  # popped as built, so the parsed JSON does not outlive its use
            request_id, text = journal.popitem()
            if request_id not in self._archive_index:
                self._take(Request.from_dict(json.loads(text)), text)
        self._table.clear_cache()
        if self._journal_lines > max(self.compact_after, len(self._live)):
            self._compact()

    def _take(self, request: Request, text: str | None = None) -> None:
        if request.id in self._live:
            self._unindex(self._live[request.id])
        self._live[request.id] = request
        self._track_review(request)  # also on loading: break-glass grants still live
        self._track_follow_ups(request)
        if text is not None:
            self._text[request.id] = text
        else:
            self._text.pop(request.id, None)
        self._index(request)

    def _drop(self, request_id: str) -> None:
        request = self._live.pop(request_id, None)
        self._text.pop(request_id, None)
        if request is not None:
            self._unindex(request)

    def _read_snapshot(
        self, superseded: Callable[[str], bool]
    ) -> Iterator[tuple[str, dict, str | None]]:
        """(id, record, its JSON text) of each request in the TinyDB file, one at a time,
        but for those `superseded` (archived, or newer in the journal): not even parsed.

        `_compact` writes one request a line, so a large file is parsed line by line and
        never held whole in memory; a file in any other layout (written by TinyDB
        itself) is parsed whole.
        """
        if not self.path.exists():
            return
        number = 1
        with open(self.path, "rb") as handle:
            if handle.readline() != SNAPSHOT_HEAD:
                records = (self._db.storage.read() or {}).get("requests") or {}
                for request_id, record in records.items():
                    if not superseded(request_id):
                        yield request_id, record, None
                return
            for number, line in enumerate(handle, start=2):  # noqa: B007 - used below
                line = line.rstrip(b"\n").removesuffix(b",")
                if line == SNAPSHOT_TAIL:
                    return
                if not line:
                    continue
                close = line.find(b'"', 1)
                if (
                    line[:1] == b'"'
                    and close > 1
                    and b"\\" not in line[1:close]
                    and line[close : close + 2] == b'":'
                    and superseded(line[1:close].decode())
                ):
                    continue  # a newer version is known: not parsed at all
                try:
                    ((request_id, record),) = json.loads(b"{" + line + b"}").items()
                    text = line[line.index(b'":') + 2 :].decode()
                except ValueError as exc:
                    raise _damaged(self.path, number, str(exc)) from exc
                yield request_id, record, text
        raise _damaged(self.path, number, "the file ends early")

    def _read_journal(self) -> dict[str, str]:
        """id -> the JSON text of the last journal line for each request."""
        found: dict[str, str] = {}
        if not self.journal_path.exists():
            self._journal.end = 0
            return found
        offset = good_end = 0
        with open(self.journal_path, "rb") as handle:
            for line in handle:
                offset += len(line)
                if not line.endswith(b"\n"):
                    continue
                try:
                    text = line[:-1].decode()
                    # Checked whole, kept as text: a request saved many times since the
                    # last fold is parsed for good only once, from its last line.
                    found[json.loads(text)["id"]] = text
                except (ValueError, KeyError, TypeError) as exc:
                    raise StoreError(
                        f"{self.journal_path} has a damaged line at byte {offset - len(line)} "
                        f"({exc}). The bot will not start on a damaged store: restore the "
                        "data directory from a backup."
                    ) from exc
                self._journal_lines += 1
                good_end = offset
        self._journal.cut_torn_tail(good_end, offset)
        return found

    def _index_archive(self) -> None:
        """id -> offset of its latest line: from the index file saved at the last fold,
        then the archive's lines written since, read in large blocks. Without a usable
        index file the whole archive is read (the archive is the truth, the file a
        cache)."""
        if not self.archive_path.exists():
            self._archive.end = 0
            return
        size = self.archive_path.stat().st_size
        offset = self._load_archive_index(size)
        index, awaiting = self._archive_index, self._awaiting_review
        good_end = offset
        rest = b""
        with open(self.archive_path, "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(1 << 20):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()  # the start of a line the next block finishes
                for line in lines:
                    start, offset = offset, offset + len(line) + 1
                    end = line.find(b'"', 7)
                    if end > 7 and line.startswith(b'{"id":"') and b"\\" not in line[7:end]:
                        request_id = line[7:end].decode()  # the fast path of _archive_id
                    else:
                        try:
                            request_id = _archive_id(line)
                        except (ValueError, KeyError, TypeError):
                            continue
                    first = request_id not in index  # else it is saved again: counted
                    index[request_id] = start
                    good_end = offset
                    if b'"review_required":true' in line or b'"follow_ups_due":["' in line:
                        request = Request.from_dict(json.loads(line))  # rare: parse only these
                        self._track_review(request)
                        self._track_follow_ups(request)
                        if first:
                            self._remember(request)
                    else:
                        awaiting.discard(request_id)
                        self._follow_ups.discard(request_id)
                        if first:
                            self._remember_line(request_id, line)
        self._archive.cut_torn_tail(good_end, offset + len(rest))

    def _load_archive_index(self, size: int) -> int:
        """Fill the archive index from its file; returns the archive offset it covers
        (0 when the file is missing, damaged or does not match the archive)."""
        try:
            saved = json.loads(self.archive_index_path.read_bytes())
            covers, ids = int(saved["covers"]), saved["ids"]
            awaiting, (last_id, last_offset) = saved["awaiting"], saved["last"]
            follow_ups, history = saved["follow_ups"], saved["history"]
            if not (
                isinstance(ids, dict)
                and isinstance(awaiting, list)
                and isinstance(follow_ups, list)
                and isinstance(history, list)
                and 0 < covers <= size
            ):
                raise ValueError("not an index of this archive")
            with open(self.archive_path, "rb") as handle:
                # The newest line it knows is where it says, and ends where it says.
                handle.seek(last_offset)
                line = handle.readline()
                if last_offset + len(line) != covers or _archive_id(line) != last_id:
                    raise ValueError("the archive does not match it")
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "reading the whole archive: %s is unusable (%s)", self.archive_index_path, exc
            )
            return 0
        try:
            self._history.load_json(history)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "reading the whole archive: %s is unusable (%s)", self.archive_index_path, exc
            )
            return 0
        self._archive_index.update(ids)
        self._awaiting_review.update(awaiting)
        self._follow_ups.update(follow_ups)
        self._archive_indexed_to = covers
        return covers

    def _save_archive_index(self) -> None:
        """Write the archive index for the next start (at a fold; it is only a cache)."""
        end = self._archive.end
        if not end or end - self._archive_indexed_to < self.index_archive_after:
            return
        last_id = max(self._archive_index, key=self._archive_index.__getitem__)
        saved = {
            "covers": end,
            "last": [last_id, self._archive_index[last_id]],
            "ids": self._archive_index,
            "awaiting": [i for i in self._awaiting_review if i in self._archive_index],
            "follow_ups": [i for i in self._follow_ups if i in self._archive_index],
            "history": self._history.to_json(),
        }
        try:
            atomic_write(self.archive_index_path, json.dumps(saved, separators=(",", ":")))
        except OSError as exc:
            log.warning("could not write %s: %s", self.archive_index_path, exc)
            return
        self._archive_indexed_to = end

    # -- the port: writing -----------------------------------------------------------

    def transaction(self) -> AbstractContextManager:
        return nullcontext()  # one process: the service's lock is all it takes

    def claims(self) -> MutableSet[str]:
        return set()

    def close(self) -> None:
        with self.lock:
            self._write_lock.close()
            self._open_lock.close()

    def standing(self) -> dict[str, dict]:
        with self.lock:
            return json.loads(json.dumps(self._standing_state()))  # a copy

    def save_standing(self, resource: str, state: dict | None) -> None:
        with self.lock, self._write_lock.held(exclusive=False):
            known = dict(self._standing_state())
            if state is None:
                known.pop(resource, None)
            else:
                known[resource] = state
            text = json.dumps(known, separators=(",", ":"), sort_keys=True, default=str)
            try:
                atomic_write(self.standing_path, text)
            except OSError as exc:
                raise StoreError(
                    f"could not write {self.standing_path}: {exc.strerror or exc}; "
                    "nothing was changed"
                ) from exc
            self._standing = known

    def _standing_state(self) -> dict[str, dict]:
        if self._standing is None:
            try:
                text = self.standing_path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = "{}"
            try:
                state = json.loads(text or "{}")
                if not isinstance(state, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                raise StoreError(
                    f"{self.standing_path} is not valid JSON ({exc}); it only holds what "
                    "the standing-access sweep found: move it away and the next sweep "
                    "finds it again"
                ) from exc
            self._standing = state
        return self._standing

    def sink_cursor(self, name: str) -> SinkCursor | None:
        with self._cursors_lock:
            data = self._read_sink_cursors().get(name)
        return SinkCursor.from_dict(name, data) if isinstance(data, dict) else None

    def save_sink_cursor(self, cursor: SinkCursor) -> None:
        with self._cursors_lock:  # not the store's lock: a sink's write never holds up a decision
            cursors = self._read_sink_cursors()
            stored = cursors.get(cursor.name) or {}
            if stored.get("seq", 0) > cursor.seq:
                cursor = replace(
                    cursor,
                    seq=stored["seq"],
                    hash=stored.get("hash", ""),
                    shipped_at=stored.get("shipped_at"),
                )
            cursors[cursor.name] = cursor.to_dict()
            try:
                atomic_write(self.sink_cursors_path, json.dumps(cursors, sort_keys=True))
            except OSError as exc:
                raise StoreError(
                    f"could not write {self.sink_cursors_path}: {exc.strerror or exc}"
                ) from exc

    def _read_sink_cursors(self) -> dict:
        return read_sink_cursors(self.sink_cursors_path)

    def save(self, request: Request) -> None:
        self.save_many([request])

    def save_many(self, requests: Iterable[Request]) -> None:
        originals = list(requests)
        requests = [r.copy() for r in originals]
        if not requests:
            return
        with self.lock, self._write_lock.held(exclusive=False):
            self._check_versions(originals)
            for request in requests:
                request.version += 1  # what goes to disk is the new version
            try:
                self._write(requests)
            except BaseException:
                for request in requests:
                    request.version -= 1
                raise
            for original in originals:
                original.version += 1

    def _write(self, requests: list[Request]) -> None:
        """Archive the finished, journal the live; the caller holds the lock."""
        finished = [r for r in requests if r.is_final]
        live = [r for r in requests if not r.is_final]
        if finished:
            lines = [json.dumps(r.to_dict(), separators=(",", ":")) for r in finished]
            data = "".join(line + "\n" for line in lines).encode()
            offset = self._archive.append(data, self.archive_path)
            for request, line in zip(finished, lines):
                if request.id not in self._archive_index:
                    self._remember(request)  # once: a request saved again ended the same way
                self._archive_index[request.id] = offset
                offset += len(line.encode()) + 1
                self._track_review(request)
                self._track_follow_ups(request)
                self._drop(request.id)
        if live:
            texts = [json.dumps(r.to_dict(), separators=(",", ":")) for r in live]
            data = "".join(text + "\n" for text in texts).encode()
            self._journal.append(data, self.path)
            self._journal_lines += len(live)
            for request, text in zip(live, texts):
                self._take(request, text)
            if self._journal_lines > max(self.compact_after, len(self._live)):
                try:
                    self._compact()
                except (OSError, StoreError) as exc:
                    # The journal holds every write; the next save tries again.
                    log.warning("could not fold the journal into %s: %s", self.path, exc)

    def compact(self) -> None:
        """Fold the journal into the TinyDB file now (it happens by itself as it grows)."""
        with self.lock, self._write_lock.held(exclusive=False):
            self._compact()

    def _compact(self) -> None:
        parts = []
        for request_id, request in self._live.items():
            text = self._text.get(request_id)
            if text is None:
                text = self._text[request_id] = json.dumps(request.to_dict(), separators=(",", ":"))
            parts.append(f"{json.dumps(request_id)}:{text}")
        # One request a line, so that loading can parse it a line at a time.
        snapshot = SNAPSHOT_HEAD.decode() + ",\n".join(parts) + "\n" + SNAPSHOT_TAIL.decode()
        try:
            atomic_write(self.path, snapshot)
            if self.journal_path.exists():
                with open(self.journal_path, "r+b") as handle:
                    handle.truncate(0)
                    os.fsync(handle.fileno())
        except OSError as exc:
            raise StoreError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        # A crash between the two steps replays the journal onto a snapshot that already
        # holds its changes: the same state again, so nothing is lost or doubled.
        self._journal.end = 0
        self._journal_lines = 0
        self._table.clear_cache()
        self._save_archive_index()

    # -- the port: reading -----------------------------------------------------------

    def get(self, request_id: str) -> Request | None:
        with self.lock:
            if request_id in self._live:
                return self._live[request_id].copy()
            offset = self._archive_index.get(request_id)
        if offset is None:
            return None
        with open(self.archive_path, "rb") as handle:
            handle.seek(offset)
            line = handle.readline()
        try:
            request = Request.from_dict(json.loads(line))
            if request.id != request_id:
                raise ValueError(f"it holds {request.id}, not {request_id}")
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{self.archive_path} has a damaged line at byte {offset} ({exc}); "
                "restore it from a backup"
            ) from exc
        return request

    def exists(self, request_id: str) -> bool:
        with self.lock:
            return request_id in self._live or request_id in self._archive_index

    def live(self) -> list[Request]:
        with self.lock:
            return self._copies(self._live)

    def live_of(self, requester: str) -> list[Request]:
        with self.lock:
            return self._copies(self._by_requester.get(requester, ()))

    def live_in(self, statuses: Iterable[Status]) -> list[Request]:
        with self.lock:
            ids = [i for s in statuses for i in self._by_status.get(Status(s), ())]
            return self._copies(ids)

    def extensions_of(self, grant_id: str) -> list[Request]:
        with self.lock:
            return self._copies(self._by_extends.get(grant_id, ()))

    def live_counts(self) -> dict[Status, int]:
        with self.lock:
            return {status: len(ids) for status, ids in self._by_status.items() if ids}

    def due_for_revocation(self, now: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._revoke_at.until(now)]

    def next_revocation_at(self) -> datetime | None:
        with self.lock:
            first = self._revoke_at.first()
            return None if first is None else self._live[first].revoke_due_at

    def expiring_unreminded(self, until: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._remind_at.until(until)]

    def pending_created_before(self, at: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._pending_since.until(at)]

    def nudges_due(self, at: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._nudge_at.until(at)]

    def escalations_due(self, at: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._escalate_at.until(at)]

    def follow_ups_due(self) -> list[Request]:
        with self.lock:
            ids = list(self._follow_ups)
        found = [r for r in (self.get(i) for i in ids) if r is not None and r.follow_ups_due]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def history_count(
        self,
        requester: str,
        resource: str,
        statuses: Iterable[Status],
        since: datetime | None,
    ) -> int:
        wanted = {Status(s) for s in statuses}
        floor = since.timestamp() if since is not None else None
        with self.lock:
            count = self._history.count(requester, resource, wanted, floor)
            for request_id in self._by_requester.get(requester, ()):
                request = self._live[request_id]
                if (
                    request.resource == resource
                    and not request.extends
                    and request.status in wanted
                    and (floor is None or request.created_at.timestamp() >= floor)
                ):
                    count += 1
        return count

    def awaiting_review(self) -> list[Request]:
        """Break-glass grants nobody has acknowledged yet, finished ones too, oldest first.

        Kept as an index of ids, so this costs what is waiting, not the archive's size.
        """
        with self.lock:
            ids = list(self._awaiting_review)
        found = [r for r in (self.get(i) for i in ids) if r is not None and r.awaits_review]
        return sorted(found, key=lambda r: r.created_at)

    def archived(self) -> Iterator[Request]:
        """Every finished request once, in its latest version, in the order last saved.

        A finished request is saved again when a break-glass grant is acknowledged or
        reminded about; the archive appends that version, and older lines are skipped.
        """
        if not self.archive_path.exists():
            return
        with open(self.archive_path, "rb") as handle:
            offset = 0
            for line in handle:
                start, offset = offset, offset + len(line)
                if not line.endswith(b"\n"):
                    continue
                record = json.loads(line)
                with self.lock:
                    latest = self._archive_index.get(record["id"]) == start
                if latest:
                    yield Request.from_dict(record)

    # -- internals ---------------------------------------------------------------

    def _check_versions(self, requests: list[Request]) -> None:
        seen: set[str] = set()
        for request in requests:
            if request.id in seen:
                raise ConflictError(
                    f"request {request.id} is twice in one write; nothing was written"
                )
            seen.add(request.id)
            self._check_version(request)

    def _check_version(self, request: Request) -> None:
        stored = self._live.get(request.id)
        if stored is None and request.id in self._archive_index:
            stored = self.get(request.id)
        version = stored.version if stored is not None else 0
        if version != request.version:
            raise ConflictError(
                f"request {request.id} was changed by someone else meanwhile (version "
                f"{version}, not {request.version}); nothing was written, try again"
            )

    def _copies(self, ids: Iterable[str]) -> list[Request]:
        found = [self._live[i] for i in ids]
        found.sort(key=lambda r: (r.created_at, r.id))
        return [r.copy() for r in found]

    def _index(self, request: Request) -> None:
        rid = request.id
        self._by_status.setdefault(request.status, set()).add(rid)
        self._by_requester.setdefault(request.requester, set()).add(rid)
        if request.extends:
            self._by_extends.setdefault(request.extends, set()).add(rid)
        self._revoke_at.put(rid, request.revoke_due_at)
        unreminded = request.status is Status.ACTIVE and not request.reminder_sent
        self._remind_at.put(rid, request.expires_at if unreminded else None)
        pending = request.status is Status.PENDING
        self._pending_since.put(rid, request.waits_since if pending else None)
        self._nudge_at.put(rid, request.next_nudge_at if pending else None)
        self._escalate_at.put(rid, request.next_escalation_at if pending else None)

    def _unindex(self, request: Request) -> None:
        rid = request.id
        for index, key in (
            (self._by_status, request.status),
            (self._by_requester, request.requester),
            (self._by_extends, request.extends),
        ):
            ids = index.get(key)
            if ids is not None:
                ids.discard(rid)
                if not ids:
                    del index[key]
        for index in (
            self._revoke_at,
            self._remind_at,
            self._pending_since,
            self._nudge_at,
            self._escalate_at,
        ):
            index.put(rid, None)

    def _track_follow_ups(self, request: Request) -> None:
        if request.follow_ups_due:
            self._follow_ups.add(request.id)
        else:
            self._follow_ups.discard(request.id)

    def _remember(self, request: Request) -> None:
        """A finished request into the history index (extensions are not counted)."""
        if not request.extends:
            at = request.created_at.timestamp()
            self._history.add(request.requester, request.resource, at, request.status)

    def _remember_line(self, request_id: str, line: bytes) -> None:
        """`_remember` for an archive line, without parsing all of it."""
        try:
            entry = _history_entry(line)
        except (ValueError, KeyError, TypeError):
            log.warning("archive line of %s: not counted in the history index", request_id)
            return
        if entry is not None:
            self._history.add(*entry)

    def _track_review(self, request: Request) -> None:
        if request.awaits_review:
            self._awaiting_review.add(request.id)
        else:
            self._awaiting_review.discard(request.id)
