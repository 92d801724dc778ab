"""The pool that runs after_grant / after_revoke hooks, apart from everything else.

A follow-up hook runs after its grant or revoke is recorded, on threads of its own, so it
never holds the decision lock and never delays a revoke or a tick: a slow hook (a ticket
system taking its time) only keeps its own worker busy. Each request's hooks run in the
order they became due, one request at a time per worker. The service decides what runs
and records that it ran (see `AccessService._run_follow_ups`); this class only queues.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2


class FollowUpPool:
    """Run `run(request_id)` on up to `workers` daemon threads, each id once at a time.

    Daemon threads, and `stop()` does not wait: a hook still running when the bot stops
    is given up on (the service does not record it, so the next start runs it again)."""

    def __init__(self, run: Callable[[str], None], workers: int = DEFAULT_WORKERS):
        self._run = run
        self._workers = max(1, workers)
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._queued: set[str] = set()  # waiting or running
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def submit(self, request_id: str) -> None:
        """Queue the follow-ups of one request, unless they are queued or running already."""
        with self._lock:
            if self.stopped or request_id in self._queued:
                return
            self._queued.add(request_id)
            if len(self._threads) < min(self._workers, len(self._queued)):
                worker = threading.Thread(
                    target=self._work,
                    name=f"accessbot-follow-up-{len(self._threads) + 1}",
                    daemon=True,
                )
                self._threads.append(worker)
                worker.start()
        self._queue.put(request_id)

    def busy(self) -> int:
        """How many requests' follow-ups are waiting or running."""
        with self._lock:
            return len(self._queued)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            request_id = self._queue.get()
            if request_id is None or self.stopped:
                return
            try:
                self._run(request_id)
            except Exception:  # noqa: BLE001 - one failed follow-up must not stop the rest
                log.exception("follow-up hooks of %s failed; the next tick tries again", request_id)
            finally:
                with self._lock:
                    self._queued.discard(request_id)
