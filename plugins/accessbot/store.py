"""The request store: a small port, and its TinyDB adapter.

Live requests (pending, approved, active, revoke_failed) sit in a TinyDB file that is
rewritten atomically on every change, so its cost tracks live records only. Finished
requests move to an append-only JSONL archive beside it. No TinyDB query leaves this
module: the PostgreSQL store (accessbot.postgres) sits behind the same methods.

Besides reading and writing, the port has what several bots on one database need, which
one process gets almost for free: `transaction()` (one decision at a time across every
bot), `claims()` (who is calling a strategy for which request right now) and the
`version` check on `save`. TinyDBStore serves one process, so its transaction is empty
(the service's own lock already serialises) and its claims are a plain set.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, MutableSet
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from .domain import Request, Status


class StoreError(Exception):
    """The store cannot be read or written; the message names the path and the fix."""


class ConflictError(StoreError):
    """A write of a request that someone else changed since it was read: nothing was written."""


class RequestStore(Protocol):
    def save(self, request: Request) -> None:
        """Write `request` if the stored copy still has `request.version` (0: new), then
        bump the version on the object; otherwise raise ConflictError."""

    def get(self, request_id: str) -> Request | None: ...
    def live(self) -> list[Request]: ...
    def due_for_expiry(self, now: datetime) -> list[Request]: ...
    def exists(self, request_id: str) -> bool: ...
    def awaiting_review(self) -> list[Request]: ...
    def archived(self) -> Iterator[Request]: ...

    def transaction(self) -> AbstractContextManager:
        """One atomic decision: every bot on this store waits while a block runs in one;
        an exception inside rolls back what it wrote (the store's and the audit's)."""

    def claims(self) -> MutableSet[str]:
        """The ids whose strategy call is under way, by this service or any live bot:
        `add` claims for this service, `discard` gives its claim back, `in` asks."""

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


class AtomicJSONStorage(Storage):
    """TinyDB storage that writes via temp file + fsync + os.replace, and caches the text.

    We are the file's only writer, so the cached text is the truth; TinyDB mutates what
    `read` returns, so every read hands out a fresh parse, never the cache itself.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._text: str | None = None
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            if text.strip():
                try:
                    json.loads(text)
                except json.JSONDecodeError as exc:
                    raise StoreError(
                        f"{self.path} is not valid JSON (line {exc.lineno}: {exc.msg}). "
                        "The bot will not start on a damaged store: restore the file from a "
                        "backup, or move it away to start with an empty one."
                    ) from exc
                self._text = text

    def read(self):
        return json.loads(self._text) if self._text else None

    def write(self, data) -> None:
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            raise StoreError(
                f"could not write {self.path}: {exc.strerror or exc}; nothing was changed"
            ) from exc
        self._text = text

    def close(self) -> None:
        pass


class _IdTable(Table):
    document_id_class = str


class _DB(TinyDB):
    table_class = _IdTable


class TinyDBStore:
    """Requests in TinyDB (live) plus a JSONL archive (finished); one lock for all writers."""

    def __init__(self, path: str | os.PathLike, archive_path: str | os.PathLike | None = None):
        self.path = Path(path)
        self.archive_path = Path(archive_path or self.path.with_suffix(".archive.jsonl"))
        self.lock = threading.RLock()
        self._db = _DB(str(self.path), storage=AtomicJSONStorage)
        self._table = self._db.table("requests")
        self._live: dict[str, Request] = {}
        self._archive_index: dict[str, int] = {}
        self._awaiting_review: set[str] = set()  # break-glass grants, live or archived
        self._load()

    def _load(self) -> None:
        self._index_archive()
        stale = []
        for doc in self._table.all():
            request = Request.from_dict(dict(doc))
            if request.id in self._archive_index:
                stale.append(request.id)  # crashed between archive append and live delete
            else:
                self._live[request.id] = request
                self._track_review(request)
        if stale:
            self._table.remove(doc_ids=stale)

    def _index_archive(self) -> None:
        if not self.archive_path.exists():
            return
        offset = good_end = 0
        with open(self.archive_path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    try:
                        record = json.loads(line)
                        self._archive_index[record["id"]] = offset
                        if record.get("review_required"):  # rare: parse only these in full
                            self._track_review(Request.from_dict(record))
                        else:
                            self._awaiting_review.discard(record["id"])
                        good_end = offset + len(line)
                    except (ValueError, KeyError):
                        pass
                offset += len(line)
        if good_end < offset:
            # A crash mid-append left a torn tail that was never acknowledged: cut it,
            # so the next record does not glue onto it.
            with open(self.archive_path, "r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())

    # -- the port ----------------------------------------------------------------

    def transaction(self) -> AbstractContextManager:
        return nullcontext()  # one process: the service's lock is all it takes

    def claims(self) -> MutableSet[str]:
        return set()

    def close(self) -> None:
        pass

    def save(self, request: Request) -> None:
        with self.lock:
            self._check_version(request)
            request.version += 1  # what goes to disk is the new version
            try:
                if request.is_final:
                    self._archive(request)
                    return
                self._table.upsert(Document(request.to_dict(), doc_id=request.id))
            except BaseException:
                request.version -= 1
                raise
            self._live[request.id] = request.copy()
            self._track_review(request)

    def get(self, request_id: str) -> Request | None:
        with self.lock:
            if request_id in self._live:
                return self._live[request_id].copy()
            offset = self._archive_index.get(request_id)
        if offset is None:
            return None
        with open(self.archive_path, "rb") as handle:
            handle.seek(offset)
            return Request.from_dict(json.loads(handle.readline()))

    def exists(self, request_id: str) -> bool:
        with self.lock:
            return request_id in self._live or request_id in self._archive_index

    def live(self) -> list[Request]:
        with self.lock:
            return sorted((r.copy() for r in self._live.values()), key=lambda r: r.created_at)

    def due_for_expiry(self, now: datetime) -> list[Request]:
        """Active grants past their end, and failed revokes whose retry time has come."""
        with self.lock:
            due = [
                r
                for r in self._live.values()
                if (r.status is Status.ACTIVE and r.expires_at and r.expires_at <= now)
                or (
                    r.status is Status.REVOKE_FAILED
                    and (r.next_retry_at is None or r.next_retry_at <= now)
                )
            ]
            return [r.copy() for r in sorted(due, key=lambda r: r.expires_at)]

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

    def _track_review(self, request: Request) -> None:
        if request.awaits_review:
            self._awaiting_review.add(request.id)
        else:
            self._awaiting_review.discard(request.id)

    def _archive(self, request: Request) -> None:
        line = (json.dumps(request.to_dict(), separators=(",", ":")) + "\n").encode()
        self.archive_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.archive_path, "ab") as handle:
                offset = handle.tell()
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StoreError(
                f"could not write {self.archive_path}: {exc.strerror or exc}; nothing was changed"
            ) from exc
        self._archive_index[request.id] = offset
        self._track_review(request)
        if request.id in self._live:
            self._table.remove(doc_ids=[request.id])
            del self._live[request.id]
