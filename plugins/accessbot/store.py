"""The request store: a small port (`RequestStore`), and its TinyDB adapter.

`TinyDBStore` keeps the live requests (pending, approved, active, revoke_failed) in a
TinyDB database, `data/access.json`: its default table (`_default`) holds one document
per live request (`Request.to_dict()`, under TinyDB's integer document ids), so
`TinyDB("data/access.json").all()` lists them. It is opened with a Storage, a
Middleware and a Table class of ours (tinydb_journal.py): each write appends the
documents it changed to a write-ahead journal (`access.journal.jsonl`, fsynced), folded
into the file (temp file, fsync, `os.replace`) as it grows, at start (after a crash) and
at a clean close; so the file is always a complete TinyDB database of some recent
moment, and a write costs what it changes, not the number of live requests. The live requests are also
held in memory with indexes (live_index.py), so a read costs what it returns. Finished
requests move to an append-only JSONL archive (`access.archive.jsonl`) with an
id -> offset index. No TinyDB query leaves this module: a PostgreSQL store and an
in-memory one (memory_store.py) sit behind the same methods. A data directory written
before the documents had integer ids (a table `requests` keyed by request id, a journal
of request lines) is upgraded when the store opens it.

Lock files sit beside them (`StoreFiles`), for other processes: `access.lock` is held
exclusively, with the holder's pid written in it, for as long as a process has the store
open, so a second bot or a CLI command on the same files is refused with that pid;
`access.open.lock` is held shared by the same process (so `restore` can tell that a bot
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

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, MutableSet
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tinydb import TinyDB

from . import gc_pause, integrity
from .domain import Request, Status, remember_written
from .durable import AppendFile, FileLock, ProcessLock, atomic_write, make_private_dir
from .durable import ConflictError as ConflictError  # the port's errors, importable here
from .durable import FolderInUse as FolderInUse
from .durable import StoreError as StoreError
from .durable import fsync_dir as fsync_dir
from .live_index import IndexedStore, _history_entry
from .tinydb_journal import FOLD_AFTER, AtomicJSONStorage, JournalDB, JournalMiddleware

log = logging.getLogger(__name__)

COMPACT_AFTER = FOLD_AFTER  # journal lines before a fold, or the live count if larger
TABLE = TinyDB.default_table_name  # "_default": the live requests
# A TinyDB file of the layout before integer document ids: {"requests": {"<id>": ...}}.
OLD_LAYOUT = re.compile(rb'\s*\{\s*"requests"\s*:')


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
        self._after: list[Callable[[], None]] = []  # run once the outermost `with` ends

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
        after: list[Callable[[], None]] = []
        try:
            return bool(transaction is not None and transaction.__exit__(*exc))
        finally:
            if transaction is not None:
                after, self._after = self._after, []
            self._lock.release()
            for callback in after:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - what was committed stays committed
                    log.exception("a callback after a decision failed")

    def after_exit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the outermost `with` of this thread ends (its transaction
        committed or rolled back), outside the lock; the caller holds the lock."""
        self._after.append(callback)


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
    lock: Path  # held exclusively by the one process that has the store open, pid inside
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
            lock=path.with_suffix(".lock"),
            open_lock=path.with_suffix(".open.lock"),
            write_lock=path.with_suffix(".write.lock"),
            standing=path.with_suffix(".standing.json"),
            sink_cursors=path.with_suffix(".sinks.json"),
        )

    @property
    def data(self) -> tuple[Path, ...]:
        """The files that hold requests (the lock files hold nothing)."""
        return (self.snapshot, self.journal, self.archive, self.archive_index)


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


class TinyDBStore(IndexedStore):
    """Live requests in a TinyDB database (and in memory, indexed); finished ones in a
    JSONL archive. One lock serialises every writer; one process at a time."""

    def __init__(
        self,
        path: str | os.PathLike,
        archive_path: str | os.PathLike | None = None,
        compact_after: int = COMPACT_AFTER,
    ):
        super().__init__()
        files = StoreFiles.of(path, archive_path)
        self.path = files.snapshot
        self.archive_path = files.archive
        self.journal_path = files.journal
        self.archive_index_path = files.archive_index
        self.sink_cursors_path = files.sink_cursors
        self.standing_path = files.standing
        self._cursors_lock = threading.Lock()
        self._standing: dict[str, dict] | None = None  # read at first use
        # The archive index file is written again once this many bytes of archive are
        # not in it (reading them at start costs a few milliseconds).
        self.index_archive_after = 1 << 20
        self._archive = AppendFile(self.archive_path)
        self._archive_index: dict[str, int] = {}
        self._archive_indexed_to = 0  # how much of the archive the index file covers
        self._archive_hash = hashlib.sha256()  # of the archive's bytes so far (for the index)
        self._doc_ids: dict[str, int] = {}  # request id -> its TinyDB document id
        self._journal = JournalMiddleware(AtomicJSONStorage, fold_after=compact_after)
        self._db: JournalDB | None = None
        self._process_lock = ProcessLock(files.lock, self.path)
        self._process_lock.acquire()
        self._open_lock = FileLock(files.open_lock)
        self._write_lock = FileLock(files.write_lock)
        try:
            if not self._open_lock.acquire(exclusive=False, wait=False):
                raise StoreError(
                    f"{self.path} is being restored from a backup (`python -m accessbot "
                    "restore` holds it); start the bot again once the restore has finished"
                )
            make_private_dir(self.path.parent)
            make_private_dir(self.archive_path.parent)
            try:
                self._load()
            except (StoreError, OSError):
                raise
            except Exception as exc:  # a record that parses but is no request: damage too
                raise StoreError(
                    f"{self.path} (or its journal or archive) holds a record that is not a "
                    f"request ({type(exc).__name__}: {exc}). The bot will not start on a "
                    "damaged store: restore the data directory from a backup, or run "
                    "`python -m accessbot store rebuild`."
                ) from exc
        except BaseException:
            self._release()
            raise

    # -- loading -------------------------------------------------------------------

    def _load(self) -> None:
        # Loading makes a few hundred thousand objects and no garbage cycles; the cyclic
        # collector would walk them all again and again (a third of the start-up time).
        # The write lock shared: loading may cut torn tails, or fold a journal.
        with gc_pause.paused(), self._write_lock.held(exclusive=False):
            self._index_archive()
            self._upgrade()
            self._db = JournalDB(str(self.path), storage=self._journal)  # folds a journal
            self._requests = self._db.table(TABLE)
            self._load_live()

    def _load_live(self) -> None:
        """The live requests from the TinyDB table. A document of a request the archive
        holds is older (a crash came between the archive append and the journal's):
        the archive wins, and the document is removed."""
        stale = []
        for doc in self._requests.all():
            request = Request.from_dict(doc)
            other = self._doc_ids.get(request.id)
            if self._is_archived(request.id):
                stale.append(doc.doc_id)
                continue
            if other is not None:  # twice (edited by hand?): the newer version wins
                if self._live[request.id].version >= request.version:
                    stale.append(doc.doc_id)
                    continue
                stale.append(other)
            self._doc_ids[request.id] = doc.doc_id
            self._take(request)
        if stale:
            with self._journal.changing(TABLE, stale):
                self._requests.remove(doc_ids=stale)

    def _upgrade(self) -> None:
        """A data directory of the layout before TinyDB document ids (the live requests
        in a table `requests` keyed by request id, the journal's lines whole requests):
        read it, write today's (one document per live request in `_default`, the oldest
        first) and empty the journal. A crash half-way leaves files this reads again."""
        old_snapshot = False
        if self.path.exists():
            with open(self.path, "rb") as handle:
                old_snapshot = bool(OLD_LAYOUT.match(handle.read(64)))
        old_journal = False
        if self.journal_path.exists():
            with open(self.journal_path, "rb") as handle:
                head = handle.read(9)
                old_journal = bool(head) and head != b'{"table":'
        if not (old_snapshot or old_journal):
            return
        data = AtomicJSONStorage(self.path).read() or {}  # raises naming a damaged file
        records: dict[str, dict] = {}
        for table in (data.get("requests") or {}, data.get(TABLE) or {}):
            for record in table.values():
                records[record["id"]] = record
        for record in self._old_journal() if old_journal else ():
            records[record["id"]] = record
        ordered = sorted(records.values(), key=lambda r: (r["created_at"], r["id"]))
        docs = {str(number): record for number, record in enumerate(ordered, start=1)}
        AtomicJSONStorage(self.path).write({TABLE: docs})
        AppendFile(self.journal_path).empty()
        log.info("upgraded %s to TinyDB document ids (%d live requests)", self.path, len(docs))

    def _old_journal(self) -> Iterator[dict]:
        """The whole lines of a journal of the old layout (each a request), in order."""
        offset = 0
        with open(self.journal_path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    return  # torn by a crash, never acknowledged
                try:
                    record = json.loads(line)
                    record["id"]  # noqa: B018 - it must have one
                except (ValueError, KeyError, TypeError) as exc:
                    raise StoreError(
                        f"{self.journal_path} has a damaged line at byte {offset} ({exc}). "
                        "The bot will not start on a damaged store: restore the data "
                        "directory from a backup."
                    ) from exc
                offset += len(line)
                yield record

    def _index_archive(self) -> None:
        """id -> offset of its latest line: from the index file saved at the last fold,
        then the archive's lines written since, read in large blocks. Without a usable
        index file the whole archive is read (the archive is the truth, the file a
        cache)."""
        if not self.archive_path.exists():
            self._archive.end = 0
            return
        integrity.finish_sealed_tail(self.archive_path)
        size = self.archive_path.stat().st_size
        offset = self._load_archive_index(size)
        index, awaiting = self._archive_index, self._awaiting_review
        good_end = offset
        rest = b""
        digest, sealed, unsealed = self._archive_hash, False, 0
        with open(self.archive_path, "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(1 << 20):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()  # the start of a line the next block finishes
                for line in lines:
                    start, offset = offset, offset + len(line) + 1
                    verdict = integrity.line_verdict(line)
                    if verdict == integrity.BROKEN or (sealed and verdict != integrity.SEALED):
                        raise self._damaged_archive(start, verdict)
                    sealed = verdict == integrity.SEALED
                    unsealed += not sealed
                    digest.update(line + b"\n")
                    end = line.find(b'"', 7)
                    if end > 7 and line.startswith(b'{"id":"') and b"\\" not in line[7:end]:
                        request_id = line[7:end].decode()  # the fast path of _archive_id
                    else:
                        try:
                            request_id = _archive_id(line)
                        except (ValueError, KeyError, TypeError) as exc:
                            raise self._damaged_archive(start, str(exc)) from exc
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
        if unsealed:
            log.warning(
                "%s: %d line(s) without a digest (an older version wrote them): read as they are",
                self.archive_path,
                unsealed,
            )
        self._archive.cut_torn_tail(good_end, offset + len(rest))

    def _damaged_archive(self, offset: int, why: str) -> StoreError:
        if why == integrity.BROKEN:
            why = "its content does not match its digest"
        elif why == integrity.UNSEALED:
            why = "no digest, after lines with one"
        return StoreError(
            f"{self.archive_path} has a damaged line at byte {offset} ({why}). The bot will "
            "not start on a damaged store: restore the data directory from a backup, or "
            "run `python -m accessbot store rebuild`."
        )

    def _load_archive_index(self, size: int) -> int:
        """Fill the archive index from its file; returns the archive offset it covers
        (0 when the file is missing, damaged or does not match the archive)."""
        try:
            raw = self.archive_index_path.read_bytes()
            if integrity.line_verdict(raw.rstrip(b"\n")) != integrity.SEALED:
                raise ValueError("its digest does not match its content")
            saved = json.loads(raw)
            covers, ids = int(saved["covers"]), saved["ids"]
            awaiting, (last_id, last_offset) = saved["awaiting"], saved["last"]
            follow_ups, history = saved["follow_ups"], saved["history"]
            if not (
                isinstance(ids, dict)
                and isinstance(awaiting, list)
                and isinstance(follow_ups, list)
                and isinstance(history, (list, dict))
                and 0 < covers <= size
            ):
                raise ValueError("not an index of this archive")
            with open(self.archive_path, "rb") as handle:
                # The newest line it knows is where it says, and ends where it says.
                handle.seek(last_offset)
                line = handle.readline()
                if last_offset + len(line) != covers or _archive_id(line) != last_id:
                    raise ValueError("the archive does not match it")
                # And the archive up to there is what it was (else: read and check it all).
                handle.seek(0)
                digest, left = hashlib.sha256(), covers
                while left and (block := handle.read(min(left, 1 << 20))):
                    digest.update(block)
                    left -= len(block)
                if digest.hexdigest() != saved["sha256"]:
                    raise ValueError("the archive changed before where it covers")
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
        self._archive_hash = digest
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
            "sha256": self._archive_hash.hexdigest(),  # of the archive up to `covers`
        }
        try:
            text = integrity.seal_line(json.dumps(saved, separators=(",", ":")))
            atomic_write(self.archive_index_path, text)
        except OSError as exc:
            log.warning("could not write %s: %s", self.archive_index_path, exc)
            return
        self._archive_indexed_to = end

    def _remember_line(self, request_id: str, line: bytes) -> None:
        """`_remember` for an archive line, without parsing all of it."""
        try:
            entry = _history_entry(line)
        except (ValueError, KeyError, TypeError):
            log.warning("archive line of %s: not counted in the history index", request_id)
            return
        if entry is not None:
            self._history.add(*entry)

    def _archived(self, request_id: str) -> Request | None:
        with self.lock:
            offset = self._archive_index.get(request_id)
        if offset is None:
            return None
        with open(self.archive_path, "rb") as handle:
            handle.seek(offset)
            line = handle.readline()
        try:
            if integrity.line_verdict(line.rstrip(b"\n")) == integrity.BROKEN:
                raise ValueError("its content does not match its digest")
            request = Request.from_dict(json.loads(line))
            if request.id != request_id:
                raise ValueError(f"it holds {request.id}, not {request_id}")
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{self.archive_path} has a damaged line at byte {offset} ({exc}); "
                "restore it from a backup"
            ) from exc
        return request

    def _is_archived(self, request_id: str) -> bool:
        return request_id in self._archive_index

    # -- the port: writing -----------------------------------------------------------

    def transaction(self) -> AbstractContextManager:
        return nullcontext()  # one process: the service's lock is all it takes

    def claims(self) -> MutableSet[str]:
        return set()

    def _writing(self) -> AbstractContextManager:
        return self._write_lock.held(exclusive=False)

    def _write(self, requests: list[Request]) -> None:
        """Archive the finished, then put the live in the TinyDB table and take the
        finished out of it, in one journal write; the caller holds the lock."""
        finished = [r for r in requests if r.is_final]
        live = [r for r in requests if not r.is_final]
        if finished:
            self._append_to_archive(finished)
        folds = self._journal.folds
        self._put_in_table(finished, live)
        for request in finished:
            self._doc_ids.pop(request.id, None)
        for request in live:
            self._take(request)
        if self._journal.folds != folds:
            self._save_archive_index()  # at a fold, as it is written seldom

    def _append_to_archive(self, finished: list[Request]) -> None:
        dicts = [r.to_dict() for r in finished]
        remember_written(list(zip(finished, dicts)))  # its notices carry these dicts
        lines = [integrity.seal_line(json.dumps(d, separators=(",", ":"))) for d in dicts]
        data = "".join(line + "\n" for line in lines).encode()
        offset = self._archive.append(data, self.archive_path)
        self._archive_hash.update(data)
        for request, line in zip(finished, lines):
            first = request.id not in self._archive_index
            self._archive_index[request.id] = offset
            offset += len(line.encode()) + 1
            self._finish(request, first)

    def _put_in_table(self, finished: list[Request], live: list[Request]) -> None:
        """The TinyDB side of a write: the finished removed, the live updated or
        inserted, all in one journal append."""
        gone = [self._doc_ids[r.id] for r in finished if r.id in self._doc_ids]
        dicts = [(r, r.to_dict()) for r in live]
        if live:
            remember_written(dicts, keep=bool(finished))  # its notices carry these
        changed = {self._doc_ids[r.id]: d for r, d in dicts if r.id in self._doc_ids}
        new = [d for r, d in dicts if r.id not in self._doc_ids]
        if not (gone or changed or new):
            return
        with self._journal.changing(TABLE, [*gone, *changed]) as told:
            if gone:
                self._requests.remove(doc_ids=gone)
            if changed:
                by_id = {doc["id"]: doc for doc in changed.values()}
                self._requests.update(lambda doc: doc.update(by_id[doc["id"]]), doc_ids=changed)
            inserted = self._requests.insert_multiple(new) if new else []
            told.update(inserted)
        # Written: only now do the new documents' ids count (a failure kept none).
        self._doc_ids.update((doc["id"], doc_id) for doc, doc_id in zip(new, inserted))

    def compact(self) -> None:
        """Fold the journal into the TinyDB file now (it happens by itself as it grows)."""
        with self.lock, self._write_lock.held(exclusive=False):
            self._journal.fold()
            self._save_archive_index()

    def close(self) -> None:
        """Fold the journal into the TinyDB file (so it holds every live request) and let
        go of the lock files."""
        with self.lock:
            if self._db is not None:
                try:
                    with self._write_lock.held(exclusive=False):
                        self._db.close()
                except StoreError as exc:  # the journal holds every write: nothing is lost
                    log.warning("could not fold %s at close: %s", self.journal_path, exc)
                self._db = None
            self._release()

    def _release(self) -> None:
        self._write_lock.close()
        self._open_lock.close()
        self._process_lock.release()

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
