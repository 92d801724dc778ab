"""Notices from the scheduler go out on a thread of their own, so a slow or rate-limited
chat platform never holds up a revocation (the scheduler thread only hands them over).

In memory: notices still queued when the process dies are lost, though what they report
is in the store and the audit log. (A durable outbox in the store is the next step.)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

_STOP = object()


class Courier:
    def __init__(self, deliver: Callable[[Sequence], None], name: str = "accessbot-courier"):
        self.deliver = deliver
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def send(self, notices: Sequence) -> None:
        """Hand notices over; returns at once."""
        if notices:
            self._queue.put(list(notices))

    @property
    def depth(self) -> int:
        """Batches waiting to be delivered."""
        return self._queue.qsize()

    def stop(self, timeout: float = 30.0) -> None:
        """Deliver what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the courier did not finish delivering within %ss", timeout)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _STOP:
                return
            try:
                self.deliver(batch)
            except Exception:  # noqa: BLE001 - one bad batch must not stop the rest
                log.exception("could not deliver %d notice(s)", len(batch))
