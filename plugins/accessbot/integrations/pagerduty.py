"""On-call lookups for policy hooks (`ctx.pagerduty`)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class PagerDutyNotConfigured:
    """`ctx.pagerduty` when no ACCESS_PAGERDUTY_TOKEN is set: nobody is on call.

    Failing closed means a break-glass policy falls back to human approval.
    """

    configured = False
    last_error = "PagerDuty is not configured (set ACCESS_PAGERDUTY_TOKEN)"

    def is_on_call(self, email, schedule=None, escalation_policy=None) -> bool:
        log.info("on-call check for %s skipped: %s", email, self.last_error)
        return False

    def on_call_users(self, schedule=None, escalation_policy=None) -> list[str]:
        return []
