"""The scheduler thread: runs the service's tick every ACCESS_TICK_SECONDS with `schedule`.

One instance per plugin activation; `stop()` joins the thread, so a plugin reload never
leaves two schedulers running. With several bots on one database, each has a scheduler
but only the one holding the leadership lease ticks; the others ask again every tick
and take over when the lease of a dead leader runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import schedule

log = logging.getLogger(__name__)


class Leadership(Protocol):
    def acquire(self) -> bool:
        """Take or renew the right to tick; True while this bot has it."""

    def release(self) -> None: ...


class SoleLeader:
    """One bot on its own files: it always runs the scheduler."""

    held = True

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class Scheduler:
    def __init__(
        self,
        tick: Callable[[], None],
        every_seconds: float,
        leadership: Leadership | None = None,
    ):
        self.tick = tick
        self.every_seconds = every_seconds
        self.leadership = leadership or SoleLeader()
        self._jobs = schedule.Scheduler()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the scheduler is already running")
        self._stop.clear()
        self._jobs.clear()
        self._jobs.every(self.every_seconds).seconds.do(self._safe_tick)
        self._thread = threading.Thread(target=self._run, name="accessbot-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the scheduler thread did not stop within %ss", timeout)
        self._thread = None
        self._jobs.clear()
        self.leadership.release()  # a standby takes over at its next tick, not after the lease

    def run_once(self) -> bool:
        """One tick now, on the caller's thread, if this bot leads; True if it ticked."""
        if not self.leadership.acquire():
            return False
        self.tick()
        return True

    def _run(self) -> None:
        poll = min(0.2, self.every_seconds / 4)
        while not self._stop.is_set():
            self._jobs.run_pending()
            self._stop.wait(poll)

    def _safe_tick(self) -> None:
        try:
            self.run_once()
        except Exception:  # noqa: BLE001 - one bad tick must not kill revocation for good
            log.exception("scheduler tick failed; trying again next tick")
