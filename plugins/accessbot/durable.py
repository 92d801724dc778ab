"""Durable files for the TinyDB store (see ARCHITECTURE.md, "On disk"): a whole file
replaced atomically, a file of JSON lines appended with fsync, flock(2) locks, and the
errors every request store raises."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .errors import AccessBotError

try:
    import fcntl
except ImportError:  # not POSIX: no other process can be kept out, the locks do nothing
    fcntl = None


class StoreError(AccessBotError):
    """The store cannot be read or written; the message names the path and the fix."""


class ConflictError(StoreError):
    """A write of a request that someone else changed since it was read: nothing was written."""


# The bot's files hold who had what access and why: readable by the bot's user alone,
# whatever the umask of whoever uses this library (the bot and the CLI also set 077).
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_FLAGS = {
    "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    "ab+": os.O_RDWR | os.O_APPEND | os.O_CREAT,
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
}


def open_private(path: str | os.PathLike, mode: str = "ab"):
    """open(path, mode) for "ab", "ab+" or "wb", a file it creates being mode 0600."""
    return open(os.open(path, _FLAGS[mode], PRIVATE_FILE), mode)


def make_private_dir(path: Path) -> None:
    """mkdir -p, the folders it creates being mode 0700."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


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


def damaged(path: Path, line: int, why: str) -> StoreError:
    return StoreError(
        f"{path} is not valid JSON (line {line}: {why}). "
        "The bot will not start on a damaged store: restore the file from a "
        "backup, or move it away to start with an empty one."
    )


class AppendFile:
    """A file of JSON lines, each append fsynced. An append that failed part-way is cut
    before the next one, so a later line never glues onto a torn one."""

    def __init__(self, path: Path):
        self.path = path
        self.end: int | None = None  # where the last good append ended, once known

    def append(self, data: bytes, what: Path) -> int:
        """Append whole lines; returns the offset they start at. Raises StoreError."""
        try:
            with open_private(self.path, "ab") as handle:
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

    def empty(self) -> None:
        """Cut the file to nothing, fsynced (after what it held is safe elsewhere)."""
        if self.path.exists():
            with open(self.path, "r+b") as handle:
                handle.truncate(0)
                os.fsync(handle.fileno())
        self.end = 0


class FileLock:
    """flock(2) on a small file, shared or exclusive, seen by every process; the kernel
    drops it when its holder closes the file or dies, so a crash never leaves it held."""

    def __init__(self, path: Path, *, writable: bool = False):
        self.path = path
        self._writable = writable
        self._fd: int | None = None

    def acquire(self, *, exclusive: bool, wait: bool = True) -> bool:
        """Take the lock; False if `wait` is off and another holder is in the way."""
        if self._fd is None:
            make_private_dir(self.path.parent)
            # Read-only is enough for flock, so a lock file that another user (root
            # running a backup) created still opens.
            mode = os.O_RDWR if self._writable else os.O_RDONLY
            self._fd = os.open(self.path, mode | os.O_CREAT, 0o644)
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

    def write_text(self, text: str) -> None:
        """Replace what the (writable, held) lock file says, e.g. the holder's pid."""
        assert self._fd is not None and self._writable
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock too
            self._fd = None


class FolderInUse(StoreError):
    """Another process holds the data folder's lock: not damage. The message names the
    holder (pid, host, since when, what it is) and what to do."""


def describe_holder(text: str) -> str:
    """What a lock file says about its holder, for a person: `pid 123 on host web1, since
    2026-12-08 03:40:01 UTC (the access bot)`; an older file holds only the pid."""
    text = text.strip()
    if text.isdigit():
        return f"pid {text}"
    try:
        holder = json.loads(text)
        pid = int(holder["pid"])
    except (ValueError, TypeError, KeyError):
        return "pid unknown"
    parts = [f"pid {pid}"]
    if holder.get("host"):
        parts.append(f"on host {holder['host']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    what = f" ({holder['what']})" if holder.get("what") else ""
    return ", ".join(parts) + what


class ProcessLock:
    """The data folder's lock (`access.lock` beside the store): held exclusively for the
    life of the process that runs on that folder (the bot from before it reads anything,
    or a CLI command that writes), with the holder's pid, host, start and role written in
    it, so a second bot or a writing CLI command is refused with a message naming the
    holder. flock(2): the kernel lets go when the holder dies, so it is never stale.
    Within the process that holds it, the store may be opened again (a test reading what
    its bot wrote): those openings share the lock, which is let go when the last one
    closes."""

    # What this process is, written in the lock file: the CLI sets its command.
    role = "the access bot"

    _held: dict[Path, list] = {}  # lock path -> [FileLock, openings], in this process
    _guard = threading.Lock()

    def __init__(self, path: Path, store: Path | str):
        self.path = path
        self._key = path.resolve()
        self._store = store
        self._holding = False

    def acquire(self) -> None:
        """Take the lock or raise FolderInUse naming the process that holds it."""
        with self._guard:
            if self._holding:
                return
            held = self._held.get(self._key)
            if held is None:
                lock = FileLock(self.path, writable=True)
                try:
                    taken = lock.acquire(exclusive=True, wait=False)
                except OSError as exc:
                    lock.close()
                    raise StoreError(f"could not open {self.path}: {exc.strerror or exc}") from exc
                if not taken:
                    lock.close()
                    who = self.holder()
                    pid = who.split(",")[0].removeprefix("pid ")
                    raise FolderInUse(
                        f"{self._store} is in use by another process ({who}; named in "
                        f"{self.path}). One process at a time runs on a data folder: two "
                        "bots would each revoke, remind and audit the same grants. Stop that "
                        f"process first (on that host: `kill {pid if pid.isdigit() else '<pid>'}`"
                        ", or `systemctl stop accessbot`), or give this one a data folder of "
                        "its own (ACCESS_DB_PATH / ACCESS_AUDIT_PATH, or BOT_DATA_DIR)"
                    )
                lock.write_text(
                    json.dumps(
                        {
                            "pid": os.getpid(),
                            "host": socket.gethostname(),
                            "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                            "what": self.role,
                        }
                    )
                    + "\n"
                )
                held = self._held[self._key] = [lock, 0]
            held[1] += 1
            self._holding = True

    def holder(self) -> str:
        """Who the lock file names (pid, host, since, what), or "pid unknown"."""
        try:
            return describe_holder(self.path.read_text(encoding="utf-8"))
        except OSError:
            return "pid unknown"

    def release(self) -> None:
        with self._guard:
            if not self._holding:
                return
            self._holding = False
            held = self._held[self._key]
            held[1] -= 1
            if held[1] == 0:
                del self._held[self._key]
                held[0].close()
