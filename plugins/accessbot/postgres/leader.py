"""Which bot runs the scheduler: whoever holds the `scheduler` lease row.

The scheduler renews the lease before every tick and ticks only while it holds it; the
others try every tick. A bot that dies stops renewing, and the lease expires after
`seconds`: within one more tick another bot holds it and its first tick revokes what
came due meanwhile (revocations go first in every tick). So expired access waits at
most about lease + 2 x tick when the active bot is killed. A bot that stops cleanly
hands the lease back at once.
"""

from __future__ import annotations

import logging

from ..store import StoreError
from .database import Database, renew_lease

log = logging.getLogger(__name__)


class LeaderLease:
    name = "scheduler"

    def __init__(self, db: Database, seconds: float | None = None):
        self.db = db
        self.seconds = seconds if seconds is not None else db.lease_seconds
        self.held = False
        self.unreachable: str | None = None  # why the last acquire could not ask the database
        db.renewals.append(self.keep)

    def keep(self) -> None:
        """The heartbeat's renewal: keep the lease while this bot holds it, however long
        its tick runs. It never takes a lease this bot does not hold."""
        if not self.held:
            return
        with self.db.connection() as conn:
            if not renew_lease(conn, self.name, self.db.bot_id, self.seconds):
                log.warning("this bot (%s) lost the scheduler lease", self.db.bot_id)
                self.held = False

    def acquire(self) -> bool:
        """Take or renew the lease; True while this bot should tick."""
        try:
            with self.db.connection() as conn:
                held = renew_lease(conn, self.name, self.db.bot_id, self.seconds)
            self.unreachable = None
        except StoreError as exc:
            # said once by the heartbeat when the database goes, not at every tick
            log.debug("could not renew the scheduler lease: %s", exc)
            self.unreachable = str(exc)
            held = False  # a bot that cannot reach the database must not act as leader
        if held != self.held:
            log.warning(
                "this bot (%s) %s the scheduler",
                self.db.bot_id,
                "now runs" if held else "no longer runs",
            )
        self.held = held
        return held

    def release(self) -> None:
        """Hand the lease back, so a standby takes over at its next tick."""
        if not self.held:
            return
        self.held = False
        try:
            with self.db.connection() as conn:
                conn.execute(
                    "DELETE FROM leases WHERE name = %s AND holder = %s",
                    (self.name, self.db.bot_id),
                )
        except StoreError as exc:
            log.warning("could not hand back the scheduler lease: %s", exc)

    def holder(self) -> str | None:
        """The bot now holding the lease, if it has not expired."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT holder FROM leases WHERE name = %s AND expires_at > now()", (self.name,)
            ).fetchone()
        return row[0] if row else None
