"""The overdue alarm (issue 26, DESIGN.md "Turn-3 contracts"): a grant past its end plus
ACCESS_OVERDUE_GRACE (default 2m) without a confirmed revoke is told to the admins once,
counted in the gauge `accessbot_grants_overdue`, and turns /health to 503 "overdue" until
it is revoked.

It does not depend on the revoke path: it reads the store's grants that still hold access
(an index lookup: `due_for_revocation(now - grace)`, plus the failing revokes) on a
scheduler job of its own, so a revoke call that hangs, a tick that fails or a revoke
that is never handed out cannot keep it quiet. Told once per grant while the bot runs; a
grant that stops being overdue (revoked, or extended) and becomes overdue again is told
again. Only the leader runs it (it is a scheduler job), so several bots tell once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from . import messages as msg
from .domain import Request, Status
from .notices import Notice

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(minutes=2)
HOLDING = (Status.ACTIVE, Status.REVOKE_FAILED)


class OverdueWatch:
    def __init__(
        self,
        store,
        clock: Callable[[], datetime],
        grace: timedelta = DEFAULT_GRACE,
        under_way: Callable[[str], bool] = lambda request_id: False,
        gauge=None,
    ):
        self.store = store
        self.clock = clock
        self.grace = grace
        self.under_way = under_way  # is a revoke call for this request in flight now?
        self.gauge = gauge  # accessbot_grants_overdue
        # When this bot started watching: a grant that ended while no bot ran gets its
        # grace from here, so a restart's own revokes (handed out at once) are not each an
        # alarm; how late they were shows in accessbot_revocation_lateness_seconds.
        self.since = clock()
        self._lock = threading.Lock()
        self._told: set[tuple[str, str]] = set()  # (request id, grant id) told about
        self._overdue: list[str] = []  # request ids overdue at the last check

    def overdue(self, now: datetime) -> list[Request]:
        """The grants still holding access whose end (or this bot's start, if later) is
        more than `grace` before `now`."""
        limit = now - self.grace
        if self.since >= limit:
            return []  # this bot has not had its grace yet
        found = {r.id: r for r in self.store.due_for_revocation(limit)}
        for request in self.store.live_in([Status.REVOKE_FAILED]):
            found.setdefault(request.id, request)
        return sorted(
            (
                r
                for r in found.values()
                if r.status in HOLDING and r.expires_at is not None and r.expires_at < limit
            ),
            key=lambda r: r.expires_at,
        )

    def check(self) -> list[Notice]:
        """Look again: the gauge and /health follow; each newly overdue grant is one
        alert for the admins (what to check, the target, what its last attempt said)."""
        now = self.clock()
        overdue = self.overdue(now)
        with self._lock:
            keys = {(r.id, r.grant_id) for r in overdue}
            new = [r for r in overdue if (r.id, r.grant_id) not in self._told]
            self._told = keys  # one no longer overdue is forgotten: told again if it comes back
            self._overdue = [r.id for r in overdue]
        if self.gauge is not None:
            self.gauge.set(len(overdue))
        for request in new:
            log.error("grant %s (%s) is overdue: not revoked yet", request.id, request.resource)
        return [
            Notice(
                "admins",
                "",
                msg.overdue_alarm(request, now, self.grace, self.under_way(request.id)),
                request,
                "alert",
            )
            for request in new
        ]

    def forget(self) -> None:
        """This bot no longer leads: the leader watches (and tells) now, so this bot's
        gauge and /health stop reporting what it saw while it led."""
        with self._lock:
            if not self._overdue and not self._told:
                return
            self._told, self._overdue = set(), []
        if self.gauge is not None:
            self.gauge.set(0)

    def ids(self) -> list[str]:
        """The grants overdue at the last check (for /health)."""
        with self._lock:
            return list(self._overdue)
