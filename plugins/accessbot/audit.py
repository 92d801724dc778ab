"""Append-only, hash-chained audit log: one JSON object a line, fsynced before we go on.

Each line carries `prev`, the SHA-256 of the line before it, and `seq`, its number in
the whole log. The very first line records a random `seed` and chains from the SHA-256
of that seed. When the file grows past `max_bytes` it is renamed `audit.jsonl.1`
(then `.2`, ...: numbers only grow, old files are never renamed again) and a new file
starts whose first line has `continues`, the hash of the old file's last line. Editing,
deleting, reordering or inserting any line, or removing a rotated file, breaks the chain
at that point, and `verify_chain` names the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from stat import S_ISREG

from .domain import from_iso, iso
from .durable import FileLock, make_private_dir, open_private
from .errors import AccessBotError
from .store import fsync_dir

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

log = logging.getLogger(__name__)


class AuditError(AccessBotError):
    pass


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rotated_files(path: str | os.PathLike) -> list[Path]:
    """The rotated siblings of the live log (`audit.jsonl.1`, `.2`, ...), oldest first."""
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    found = []
    if path.parent.is_dir():
        for sibling in path.parent.iterdir():
            match = pattern.match(sibling.name)
            if match and sibling.is_file():
                found.append((int(match.group(1)), sibling))
    return [p for _, p in sorted(found)]


def chain_files(path: str | os.PathLike) -> list[Path]:
    """Every file of one log, oldest first: the rotated ones, then the live one."""
    path = Path(path)
    return rotated_files(path) + ([path] if path.exists() else [])


def _last_line(path: Path) -> tuple[bytes, int]:
    """The last complete line of `path` (without its newline) and where complete data ends.

    The end is smaller than the file size when a crash left a torn, unterminated tail.
    """
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        chunk = min(size, 65536)
        while True:
            handle.seek(size - chunk)
            data = handle.read(chunk)
            if data.count(b"\n") >= 2 or chunk == size:
                break
            chunk = min(size, chunk * 4)
    cut = data.rfind(b"\n")
    if cut < 0:
        return b"", 0  # not a single complete line
    end = size - chunk + cut + 1
    start = data.rfind(b"\n", 0, cut) + 1
    return data[start:cut], end


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    bad_line: int | None = None
    reason: str = ""
    file: str = ""
    files: int = 1

    def __str__(self) -> str:
        if self.ok:
            spread = f" in {self.files} files" if self.files > 1 else ""
            return f"audit log intact: {self.lines} events{spread}, hash chain verified"
        where = f"{self.file} line {self.bad_line}" if self.file else f"line {self.bad_line}"
        return f"audit log BROKEN at {where}: {self.reason}"


def _matches(
    record: dict,
    user: str | None,
    resource: str | None,
    request_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> bool:
    """The event passes every filter given (the user as actor or as requester)."""
    if user and user not in (record.get("actor"), record.get("user")):
        return False
    if resource and record.get("resource") != resource:
        return False
    if request_id and record.get("request_id") != request_id:
        return False
    if since or until:
        at = _event_time(record)
        if at is None or (since and at < since) or (until and at > until):
            return False
    return True


@dataclass(frozen=True)
class StoredLine:
    """One audit line exactly as stored (no newline): what sinks ship, byte for byte."""

    seq: int
    data: bytes

    @property
    def hash(self) -> str:
        return _digest(self.data)

    def record(self) -> dict:
        return json.loads(self.data)


CHECKPOINT = "checkpoint"


def checkpoint_fields(seq: int, head: str, acked: dict[str, int] | None = None) -> dict:
    """The fields of a `checkpoint` event: the chain head it pins, and how far each audit
    sink had acknowledged the log (`acked`, sink name -> seq), so that position outlives
    the cursors' own file."""
    fields = {
        "actor": "bot",
        "head_seq": seq,
        "head_hash": head,
        "detail": f"chain head: event {seq}",
    }
    if acked:
        fields["acked"] = dict(acked)
    return fields


class EventQueries:
    """Filtering over `events()`, for the audit log in files and the one in PostgreSQL;
    and who to wake after an append (the audit sinks)."""

    _listeners: tuple[Callable[[], None], ...] = ()

    def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` (it must be quick: it only wakes a thread) after each append."""
        self._listeners = (*self._listeners, callback)

    def _appended(self) -> None:
        for callback in self._listeners:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a listener never fails an append
                logging.getLogger(__name__).exception("an audit listener failed")

    def events(self) -> Iterator[dict]:
        raise NotImplementedError

    def query(
        self,
        *,
        user: str | None = None,
        resource: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
    ) -> list[dict]:
        """The newest `limit` events matching every filter given, oldest first (0: all).

        With a limit the events are read newest first, and reading stops at the limit."""
        found = []
        for record in self.events_newest_first() if limit else self.events():
            if limit and len(found) == limit:
                break
            if _matches(record, user, resource, request_id, since, until):
                found.append(record)
        return found[::-1] if limit else found

    def events_newest_first(self) -> Iterator[dict]:
        return reversed(list(self.events()))


class AuditLog(EventQueries):
    def __init__(
        self,
        path: str | os.PathLike,
        clock: Callable[[], datetime],
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ):
        self.path = Path(path)
        self.clock = clock
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._loaded = False
        self._last_hash: str | None = None  # of the last line written, in any file
        self._seq = 0
        self._size = 0  # of the live file
        self._inode: int | None = None  # of the live file, as this process last saw it
        self._repair: str | None = None  # a torn tail we cut, to be recorded
        self._last_event = ""  # the event of the last line, to skip idle checkpoints
        self._positions: dict[int, tuple[int, int]] = {}  # seq -> (inode, offset) after it
        self._positions_lock = threading.Lock()  # each sink reads on its own thread

    def _tail(self) -> None:
        """Find the hash and sequence number of the last complete line, once."""
        if self._loaded:
            return
        self._size = 0
        if self.path.exists() and self.path.stat().st_size > 0:
            size = self.path.stat().st_size
            last, end = _last_line(self.path)
            if end < size:
                # A crash mid-append left an unterminated line. Appends are fsynced
                # before the command goes on, so it was never acknowledged: cut it (or
                # the next line would glue onto it) and record that we did.
                with open(self.path, "rb") as handle:
                    handle.seek(end)
                    torn = handle.read()
                with open(self.path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
                self._repair = (
                    f"cut a torn, unacknowledged last line of {len(torn)} bytes "
                    f"(sha256 {_digest(torn)}) left by a crash mid-write"
                )
            self._size = end
            self._inode = self.path.stat().st_ino
            if last:
                self._adopt(last)
        if self._last_hash is None:
            for older in reversed(rotated_files(self.path)):
                last, _ = _last_line(older)
                if last:
                    self._adopt(last)
                    break
        self._loaded = True

    def _adopt(self, last: bytes) -> None:
        self._last_hash = _digest(last)
        try:
            record = json.loads(last)
            self._seq = int(record.get("seq", 0))
            self._last_event = str(record.get("event", ""))
        except (ValueError, AttributeError) as exc:
            raise AuditError(
                f"the last line of {self.path} is not an audit event; "
                "run `python -m accessbot audit verify` and restore the log"
            ) from exc

    def append(self, event: str, **fields) -> dict:
        """Write one event and fsync it before returning; raises AuditError on failure."""
        with self._lock, self._writing():
            self._ready()
            record = self._write(event, fields)
        self._appended()
        return record

    def append_many(self, events: Iterable[tuple[str, dict]]) -> list[dict]:
        """Write several events, chained as if appended one by one, with one fsync after
        the last; raises AuditError on failure."""
        events = list(events)
        with self._lock, self._writing():
            self._ready()
            last = len(events) - 1
            written = [
                self._write(event, dict(fields), sync=number == last)
                for number, (event, fields) in enumerate(events)
            ]
        self._appended()
        return written

    def append_checkpoint(self, acked: dict[str, int] | None = None) -> dict | None:
        """Append a `checkpoint` pinning the chain head (and the sinks' `acked` positions),
        unless the head is a checkpoint already (nothing happened since) or the log is
        empty; raises AuditError."""
        with self._lock, self._writing():
            self._ready()
            if self._last_hash is None or self._last_event == CHECKPOINT:
                return None
            fields = checkpoint_fields(self._seq, self._last_hash, acked)
            record = self._write(CHECKPOINT, fields)
        self._appended()
        return record

    def head(self) -> tuple[int, str] | None:
        """The sequence number and hash of the last complete line in the files now, or
        None for an empty log (read from disk: what a sink can still be sent)."""
        for attempt in range(2):
            try:
                for path in reversed(chain_files(self.path)):
                    last, _ = _last_line(path)
                    if last:
                        return _seq_of(last) or 0, _digest(last)
                return None
            except FileNotFoundError:
                if attempt:  # renamed by a rotation between listing and reading: again
                    raise AuditError(f"could not read the audit log {self.path}") from None
            except OSError as exc:
                raise AuditError(f"could not read the audit log {self.path}: {exc}") from exc
        return None

    def lines_after(self, seq: int, limit: int) -> list[StoredLine]:
        """Up to `limit` stored lines with sequence numbers from `seq + 1` on, in order and
        without a gap (the list stops before one), across rotated files. Where the last
        call ended is remembered, so a sink reading on costs what it reads."""
        found = self._read_after(seq, limit)
        kept = continuous_from(found, seq)
        if len(kept) < len(found):  # a rotation between listing and reading: look again
            with self._positions_lock:
                self._positions.clear()
            kept = continuous_from(self._read_after(seq, limit), seq)
        return kept

    def _read_after(self, seq: int, limit: int) -> list[StoredLine]:
        files = chain_files(self.path)
        index, offset = self._position(files, seq)
        found: list[StoredLine] = []
        for path in files[index:]:
            try:
                inode, offset = self._read_file(path, offset, seq, limit, found)
            except OSError:
                break  # renamed by a rotation just now: the caller looks again
            if found:
                self._remember(found[-1].seq, inode, offset)
            if len(found) == limit:
                break
            offset = 0
        return found

    @staticmethod
    def _read_file(
        path: Path, offset: int, seq: int, limit: int, found: list[StoredLine]
    ) -> tuple[int, int]:
        """Add the complete lines after `seq` from `offset` on to `found`, up to `limit`
        in all; (the file's inode, where reading stopped)."""
        with open(path, "rb") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            handle.seek(offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # being written, or torn: not a line yet
                offset += len(raw)
                number = _seq_of(raw)
                if number is not None and number > seq:
                    found.append(StoredLine(number, raw[:-1]))
                    if len(found) == limit:
                        break
        return inode, offset

    def _remember(self, seq: int, inode: int, offset: int) -> None:
        with self._positions_lock:
            if len(self._positions) >= 32:
                self._positions.pop(next(iter(self._positions)))
            self._positions[seq] = (inode, offset)

    def _position(self, files: list[Path], seq: int) -> tuple[int, int]:
        """(index into `files`, byte offset) to read on from, to find `seq + 1`."""
        with self._positions_lock:
            known = self._positions.get(seq)
        if known is not None:
            inode, offset = known
            for index, path in enumerate(files):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if stat.st_ino == inode and offset <= stat.st_size:
                    return index, offset
        # From the newest file whose first line is at or before `seq + 1`.
        for index in range(len(files) - 1, -1, -1):
            try:
                with open(files[index], "rb") as handle:
                    first = _seq_of(handle.readline())
            except OSError:
                continue
            if first is not None and first <= seq + 1:
                return index, 0
        return 0, 0

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Around a write: the log's lock file (`audit.append.lock`) held exclusively, across
        processes, and the live file checked to end where this process's last write left
        it. If another process wrote since (a second bot, a CLI command on the same log),
        this one reads the tail again and chains on from it: no sequence number is ever
        written twice, whoever writes."""
        lock = FileLock(self.path.with_suffix(".append.lock"))
        try:
            try:
                lock.acquire(exclusive=True)
            except OSError as exc:
                raise AuditError(
                    f"could not lock the audit log {self.path}: {exc.strerror or exc}"
                ) from exc
            if self._loaded and self._moved_on():
                log.warning(
                    "the audit log %s was written by another process since this one's last "
                    "event %s: chaining on from its end (one process per data folder)",
                    self.path,
                    self._seq,
                )
                self._loaded = False
                self._last_hash = None
                self._seq = 0
            yield
        finally:
            lock.close()

    def _moved_on(self) -> bool:
        """The live file is not the one, or not as long as, this process last wrote."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return self._size != 0
        except OSError:
            return False  # the write says what is wrong
        if not S_ISREG(stat.st_mode):
            return False  # not a file: the write fails and says so
        return stat.st_size != self._size or (self._size != 0 and stat.st_ino != self._inode)

    def _ready(self) -> None:
        """Under the lock, before a write: know the tail, and record a repair made at load."""
        try:
            self._tail()
        except OSError as exc:
            raise AuditError(
                f"could not read the audit log {self.path}: {exc.strerror or exc}"
            ) from exc
        if self._repair:
            self._write("audit_repaired", {"actor": "bot", "detail": self._repair})
            self._repair = None

    def _write(self, event: str, fields: dict, sync: bool = True) -> dict:
        record = {"seq": self._seq + 1, "ts": iso(self.clock()), "event": event}
        record.update({k: v for k, v in fields.items() if v not in (None, "")})
        if self._last_hash is None:
            seed = secrets.token_hex(16)
            record["seed"] = seed
            record["prev"] = _digest(seed.encode())
        else:
            record["prev"] = self._last_hash
            if self._size == 0:
                record["continues"] = self._last_hash  # first line after a rotation
        data = json.dumps(record, separators=(",", ":"), sort_keys=True, default=str).encode()
        try:
            make_private_dir(self.path.parent)
            if self.max_bytes and self._size and self._size + len(data) + 1 > self.max_bytes:
                self._rotate()
                record["continues"] = self._last_hash
                data = json.dumps(
                    record, separators=(",", ":"), sort_keys=True, default=str
                ).encode()
            with open_private(self.path, "ab") as handle:
                handle.write(data + b"\n")
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
                self._inode = os.fstat(handle.fileno()).st_ino
        except OSError as exc:
            # Whatever part of the line reached the disk has no newline; the next append
            # (or the next start) finds it as a torn tail and cuts it.
            self._loaded = False
            raise AuditError(
                f"could not write the audit log {self.path}: {exc.strerror or exc}"
            ) from exc
        self._last_hash = _digest(data)
        self._seq = record["seq"]
        self._last_event = event
        self._size += len(data) + 1
        return record

    def _rotate(self) -> None:
        """Rename the live file to the next free number; the next line starts a new file."""
        taken = [int(p.name.rsplit(".", 1)[1]) for p in rotated_files(self.path)]
        target = self.path.with_name(f"{self.path.name}.{max(taken, default=0) + 1}")
        os.rename(self.path, target)
        fsync_dir(self.path.parent)
        self._size = 0

    def events(self) -> Iterator[dict]:
        """Every event of the log, oldest first, across rotated files."""
        for path in chain_files(self.path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.endswith("\n"):
                        try:
                            yield json.loads(line)
                        except ValueError:
                            continue  # `verify` reports it; a reader skips it

    def stored_lines(self) -> Iterator[StoredLine]:
        """Every complete line that is an audit event, oldest first, exactly as stored."""
        for path in chain_files(self.path):
            with open(path, "rb") as handle:
                for raw in handle:
                    seq = _seq_of(raw) if raw.endswith(b"\n") else None
                    if seq is not None:
                        yield StoredLine(seq, raw[:-1])

    def events_newest_first(self) -> Iterator[dict]:
        """Every event of the log, newest first, read backwards from the end."""
        for path in reversed(chain_files(self.path)):
            for raw in _lines_backwards(path):
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue

    def query(
        self,
        *,
        user: str | None = None,
        resource: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
    ) -> list[dict]:
        """The newest `limit` events matching every filter given, oldest first (0: all).

        With a limit the log is read backwards and the reading stops at the limit, so
        `!access audit` costs the same at a hundred events or a million. A line is
        parsed only when the filter's text appears in it.
        """
        # Lines are written with compact, sorted, ASCII-escaped JSON, so a matching line
        # contains these bytes verbatim.
        needles = []
        if user:
            needles.append((_field_bytes("actor", user), _field_bytes("user", user)))
        if resource:
            needles.append((_field_bytes("resource", resource),))
        if request_id:
            needles.append((_field_bytes("request_id", request_id),))

        def matches(raw: bytes) -> dict | None:
            if not all(any(n in raw for n in options) for options in needles):
                return None
            try:
                record = json.loads(raw)
            except ValueError:
                return None
            if isinstance(record, dict) and _matches(
                record, user, resource, request_id, since, until
            ):
                return record
            return None

        found = []
        if limit:
            for path in reversed(chain_files(self.path)):
                for raw in _lines_backwards(path):
                    record = matches(raw)
                    if record is not None:
                        found.append(record)
                        if len(found) == limit:
                            return found[::-1]
            return found[::-1]
        for path in chain_files(self.path):
            with open(path, "rb") as handle:
                for raw in handle:
                    if raw.endswith(b"\n"):
                        record = matches(raw)
                        if record is not None:
                            found.append(record)
        return found

    def verify(self) -> VerifyResult:
        """Verify every file of this log, and that none of what this process wrote is gone."""
        with self._lock:
            result = verify_chain(chain_files(self.path))
            if not result.ok or not self._loaded or not self._seq:
                return result
            if result.last_seq < self._seq:
                return VerifyResult(
                    False,
                    result.lines,
                    result.lines + 1,
                    f"the log ends at event {result.last_seq}, but this bot has written up "
                    f"to event {self._seq}: the last {self._seq - result.last_seq} line(s) "
                    "were removed",
                    str(self.path),
                    result.files,
                )
            return result


def _seq_of(raw: bytes) -> int | None:
    """The `seq` of a stored line, or None if it is not an audit event."""
    try:
        seq = json.loads(raw).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def continuous_from(lines: list[StoredLine], seq: int) -> list[StoredLine]:
    """The lines that follow `seq` one after another, up to the first gap. After 0 (a sink
    that never shipped), from whatever line is the oldest there is: a log whose oldest
    files were archived away still ships from where it starts."""
    if seq == 0 and lines:
        seq = lines[0].seq - 1
    kept = []
    for line in lines:
        if line.seq != seq + len(kept) + 1:
            break
        kept.append(line)
    return kept


def _field_bytes(key: str, value: str) -> bytes:
    return (json.dumps(key) + ":" + json.dumps(value)).encode()


def _lines_backwards(path: Path, block: int = 65536) -> Iterator[bytes]:
    """The complete lines of a file (without newlines), last first; a torn tail is skipped."""
    if not path.exists():
        return
    _, position = _last_line(path)  # where the complete lines end
    rest = b""
    with open(path, "rb") as handle:
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            lines = (handle.read(step) + rest).split(b"\n")
            rest = lines[0]  # may go on in the block before
            for line in reversed(lines[1:]):
                if line:
                    yield line
    if rest:
        yield rest


def _event_time(record: dict) -> datetime | None:
    try:
        return from_iso(record.get("ts"))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ChainResult(VerifyResult):
    last_seq: int = 0
    last_hash: str = ""


def verify_file(path: str | os.PathLike) -> VerifyResult:
    """Verify one file on its own (a rotated file is anchored by its `continues`)."""
    path = Path(path)
    if not path.exists():
        return VerifyResult(False, 0, 1, f"{path} does not exist", str(path))
    return verify_chain([path], lone=True)


def verify_chain(paths: list[Path], lone: bool = False) -> ChainResult:
    """Walk the chain through `paths` (oldest first); report the first line that is torn,
    unparsable, out of sequence or out of chain.

    Unless `lone`, the first file must start with a `seed`: a first file that
    `continues` means older files are missing.
    """
    if not paths:
        return ChainResult(False, 0, 1, "there is no audit log", "", 0)
    return verify_sources([(str(path), _raw_lines(path)) for path in paths], lone)


def _raw_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from handle


def verify_sources(sources: list[tuple[str, Iterable[bytes]]], lone: bool = False) -> ChainResult:
    """The chain check over named sources of raw lines, each ending in a newline: the
    files of a log, or the rows of the audit table (one source)."""
    walk = _ChainWalk([Path(source_name) for source_name, _ in sources], lone)
    for index, (name, lines) in enumerate(sources):
        walk.name, first_in_file = name, True
        for number, raw in enumerate(lines, start=1):
            problem = walk.step(index, raw, first_in_file)
            if problem == _CHANGED_BEFORE:
                # The line before was edited (it hashes to something else now): name it,
                # not the next line, which only carries the proof.
                return walk.broken(
                    number - 1,
                    "hash chain broken: this line was changed after it was written "
                    f"(line {number} carries the hash of what this line said before)",
                    lines_good=walk.count - 1,
                )
            if problem:
                return walk.broken(number, problem)
            first_in_file = False
        if first_in_file and index < len(walk.paths) - 1:
            return ChainResult(
                False, walk.count, 1, "a rotated audit file is empty", name, len(walk.paths)
            )
    if walk.count == 0:
        return ChainResult(False, 0, 1, "the log is empty", str(walk.paths[-1]), len(walk.paths))
    return ChainResult(
        True, walk.count, files=len(walk.paths), last_seq=walk.prev_seq, last_hash=walk.prev_hash
    )


# A line whose `prev` is not the hash of the line before it in the same file, in the
# right sequence: that line before was changed.
_CHANGED_BEFORE = "changed before"


class _ChainWalk:
    """Where a chain check is: the last line's hash and seq, how many lines are good."""

    def __init__(self, paths: list[Path], lone: bool):
        self.paths, self.lone = paths, lone
        self.prev_hash: str | None = None
        self.prev_seq = 0
        self.count = 0
        self.name = ""

    def broken(self, number: int, reason: str, lines_good: int | None = None) -> ChainResult:
        good = self.count if lines_good is None else lines_good
        return ChainResult(False, good, number, reason, self.name, len(self.paths), self.prev_seq)

    def step(self, index: int, raw: bytes, first_in_file: bool) -> str | None:
        """Check one raw line; None when it follows the chain (and becomes its end)."""
        if not raw.endswith(b"\n"):
            return "torn line (no newline at the end)"
        data = raw[:-1]
        try:
            record = json.loads(data)
            if not isinstance(record, dict):
                raise ValueError
        except ValueError:
            return "not a JSON audit event"
        expected, problem = self._expected(index, record, first_in_file)
        problem = problem or self._sequence_problem(record.get("seq"))
        if problem:
            return problem
        if record.get("prev") != expected:
            if not first_in_file:
                return _CHANGED_BEFORE
            return (
                "hash chain broken: this line does not follow the line before it "
                "(a line was changed, removed or inserted)"
            )
        seq = record.get("seq")
        self.prev_hash = _digest(data)
        self.prev_seq = seq if isinstance(seq, int) else self.prev_seq + 1
        self.count += 1
        return None

    def _expected(self, index: int, record: dict, first_in_file: bool) -> tuple[str, str | None]:
        """The `prev` this line must carry, or why it cannot start or continue the chain."""
        if self.prev_hash is not None:
            if first_in_file and record.get("continues") != self.prev_hash:
                return "", (
                    f"this file does not continue {self.paths[index - 1].name}: a file "
                    "between them is missing, or the end of that file was removed"
                )
            return self.prev_hash, None
        if "seed" in record:
            return _digest(str(record["seed"]).encode()), None
        if record.get("continues") and (self.lone or index > 0):
            return record["continues"], None
        if record.get("continues"):
            return "", (
                "this file continues an earlier audit file that is missing "
                f"(the chain starts at event {record.get('seq')})"
            )
        return "", "first line has neither seed nor continues"

    def _sequence_problem(self, seq) -> str | None:
        if self.prev_hash is None or not isinstance(seq, int) or seq == self.prev_seq + 1:
            return None
        if seq > self.prev_seq + 1:
            gap = f"{seq - self.prev_seq - 1} event(s) missing before it"
        else:
            gap = "an event was inserted or repeated"
        return f"hash chain broken: event {seq} follows event {self.prev_seq} ({gap})"
