"""What hooks are given and give back: `ctx` (PolicyContext, and FollowUpContext for
after_grant / after_revoke), a Decision, a Refusal, and the Vote on_approve / on_deny see."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str


@dataclass(frozen=True)
class Refusal:
    """What `on_approve` / `on_deny` return to discard one approver's click or command."""

    reason: str


@dataclass(frozen=True)
class Vote:
    """What `on_approve` sees as `approval` and `on_deny` as `denial`: who, and what
    they wrote (the comment of `!approve <id> <comment>`, the reason of a denial)."""

    approver: str  # the handle
    approver_email: str | None
    comment: str = ""
    approver_id: str = ""  # the platform user id (on Slack); the handle elsewhere


class PolicyContext:
    """What hooks receive as `ctx`: decide with `ctx.approve(reason)` / `ctx.deny(reason)`
    (on_request), refuse one approver's decision with `ctx.refuse(reason)` (on_approve,
    on_deny); ask `ctx.pagerduty` and `ctx.history`."""

    def __init__(self, pagerduty, now: datetime, logger: logging.Logger, history=None):
        self.pagerduty = pagerduty
        self.now = now
        self.log = logger
        self.history = history

    @staticmethod
    def approve(reason: str = "approved by policy") -> Decision:
        return Decision(True, str(reason))

    @staticmethod
    def deny(reason: str = "denied by policy") -> Decision:
        return Decision(False, str(reason))

    @staticmethod
    def refuse(reason: str = "refused by policy") -> Refusal:
        return Refusal(str(reason))


class FollowUpContext(PolicyContext):
    """`ctx` of after_grant / after_revoke: also `tell_requester(text)` and
    `tell_channel(text)`, delivered once the hook has returned. Once the hook is given up
    on (`close()`), whatever it still tells is dropped."""

    def __init__(self, pagerduty, now: datetime, logger: logging.Logger, history=None):
        super().__init__(pagerduty, now, logger, history)
        self._told: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._open = True

    def tell_requester(self, text: str) -> None:
        self._tell("user", text)

    def tell_channel(self, text: str) -> None:
        self._tell("channel", text)

    def _tell(self, audience: str, text: str) -> None:
        with self._lock:
            if self._open and str(text).strip():
                self._told.append((audience, str(text)))

    def close(self) -> list[tuple[str, str]]:
        """Stop taking messages; (audience, text) for each one told so far."""
        with self._lock:
            self._open = False
            return list(self._told)
