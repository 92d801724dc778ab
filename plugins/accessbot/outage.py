"""The admins hear once when the scheduler loses its database, and once when it is back."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import messages


class DatabaseWatch:
    """Fed after every lease check with the database error (None: it answered); says so
    to `tell` only when that changes, so an outage of an hour is two messages, not one a
    tick."""

    def __init__(self, tell: Callable[[str], None], now: Callable[[], float] = time.monotonic):
        self.tell = tell
        self.now = now
        self.lost_at: float | None = None

    def seen(self, error: str | None) -> None:
        if error and self.lost_at is None:
            self.lost_at = self.now()
            self.tell(messages.database_lost(error))
        elif not error and self.lost_at is not None:
            away, self.lost_at = self.now() - self.lost_at, None
            self.tell(messages.database_back(away))
