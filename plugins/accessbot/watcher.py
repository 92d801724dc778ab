"""Reload the policies when their files change (`ACCESS_POLICY_WATCH = True`).

A small polling thread, no inotify: every `interval` seconds it takes the name, size,
mtime and SHA-256 of each policy file, and once the directory has stayed unchanged for
`debounce` seconds after a change it calls `on_change` once. So an editor's save (or a
`git pull` touching several files) is one reload, not several half-way ones. The
reload itself is all-or-nothing (the service's job); this only says when.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Snapshot = dict[str, tuple[int, int, str]]


def snapshot(directory: Path) -> Snapshot:
    """What the loader would read: every `*.py` not starting with `_`."""
    found: Snapshot = {}
    try:
        paths = sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
    except OSError:
        return found
    for path in paths:
        try:
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue  # deleted between the listing and the read: the next poll sees it
        found[path.name] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


def _contents(files: Snapshot) -> dict[str, str]:
    return {name: digest for name, (_, _, digest) in files.items()}


class PolicyWatcher:
    def __init__(
        self,
        directory: str | Path,
        on_change: Callable[[], None],
        interval: float = 1.0,
        debounce: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.directory = Path(directory)
        self.on_change = on_change
        self.interval = interval
        self.debounce = 2 * interval if debounce is None else debounce
        self.clock = clock
        self._seen = snapshot(self.directory)  # the last poll's view
        self._loaded = self._seen  # what the last reload (or the start) saw
        self._changed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll(self) -> bool:
        """One look; True when it called `on_change`."""
        current = snapshot(self.directory)
        now = self.clock()
        if current != self._seen:
            self._seen = current
            self._changed_at = now  # still changing: wait for it to settle
            return False
        if self._changed_at is None or now - self._changed_at < self.debounce:
            return False
        self._changed_at = None
        if _contents(current) == _contents(self._loaded):  # changed and changed back
            return False
        self._loaded = current
        try:
            self.on_change()
        except Exception:  # noqa: BLE001 - a failed reload must not stop the watching
            log.exception("reloading the changed policy files failed")
        return True

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the policy watcher is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="accessbot-policy-watch", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the policy watcher thread did not stop within %ss", timeout)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()
