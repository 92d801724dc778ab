"""The admins hear once when the scheduler loses its database, and once when it is back:
once for all the bots sharing it, not once per bot.

The bot that was running the scheduler when the database went away tells, and the same
bot tells when it is back. It is the one bot that can know it should: the others were
standing by, and the database, the one place they could agree through, is what is away
(the outbox is in it too, so the message is sent aside, not through it). A database that
hangs is noticed the same way: every query has a statement timeout (postgres/database.py).
A standby that alone loses the database tells nobody: the leader still revokes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import messages

log = logging.getLogger(__name__)


class DatabaseWatch:
    """Fed after every lease check with the database error (None: it answered) and whether
    this bot now leads; says so to `tell` only when that changes, and only if this bot led
    when the database went away, so an outage of an hour is two messages for the group of
    bots, not one a tick or one a bot."""

    def __init__(self, tell: Callable[[str], None], now: Callable[[], float] = time.monotonic):
        self.tell = tell
        self.now = now
        self.lost_at: float | None = None  # when this bot told the admins it was lost
        self.led = False  # this bot led at its last check that reached the database

    def seen(self, error: str | None, leads: bool = True) -> None:
        if error:
            if self.lost_at is None and self.led:
                self.lost_at = self.now()
                log.error("the scheduler cannot reach its database: %s", error)
                self.tell(messages.database_lost())
            return
        self.led = leads
        if self.lost_at is not None:
            away, self.lost_at = self.now() - self.lost_at, None
            self.tell(messages.database_back(away))
