"""The scheduler's work on undecided requests and running grants that calls no target:
time-outs, reminders to the approvers (nudges), escalation levels, the reminder before a
grant ends and the daily reminder of break-glass grants nobody has reviewed. Each step is
one domain transition committed under the decision lock, with the notices messages/
writes for it announced in the same commit (`UnitOfWork.announce`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from . import messages as msg
from .approvers import resolve
from .domain import Request, Status, format_duration
from .intake import Lookups
from .permissions import Permissions
from .policy_registry import PolicyRegistry
from .results import Notice
from .unit_of_work import UnitOfWork


class Housekeeping:
    def __init__(
        self,
        uow: UnitOfWork,
        registry: PolicyRegistry,
        permissions: Permissions,
        lookups: Lookups,
        clock: Callable[[], datetime],
        pending_timeout: timedelta,
        approval_reminder: timedelta,
        expiry_reminder: timedelta,
        review_reminder_every: timedelta,
    ):
        self.uow = uow
        self.store = uow.store
        self.registry = registry
        self.permissions = permissions
        self.lookups = lookups
        self.clock = clock
        self.pending_timeout = pending_timeout
        self.approval_reminder = approval_reminder
        self.expiry_reminder = expiry_reminder
        self.review_reminder_every = review_reminder_every
        self._review_check_at: datetime | None = None  # next tick that looks for reminders

    def _pending(self, request_id: str) -> Request | None:
        request = self.store.get(request_id)
        return request if request and request.status is Status.PENDING else None

    def time_out(self, request_id: str) -> list[Notice]:
        with self.uow.lock:
            request = self._pending(request_id)
            if request is None:
                return []
            request.time_out(self.clock())
            self.uow.commit(request, "timed_out", "scheduler", outcome="timed_out")
            # The real wait, not the limit: a bot that was away times a request out late.
            waited = self.clock() - request.created_at
            ask_again = self.registry.ask_again(request)
            return self.uow.announce(msg.timed_out(request, format_duration(waited), ask_again))

    def nudge(self, request_id: str) -> list[Notice]:
        """Announce an undecided request again, at doubling intervals."""
        with self.uow.lock:
            request = self._pending(request_id)
            if request is None:
                return []
            request.nudge(self.clock(), self.approval_reminder)
            self.uow.commit(request, "approvers_nudged", "scheduler", outcome="pending")
            waited = format_duration(self.clock() - request.created_at)
            return self.uow.announce([msg.nudge(request, waited)])

    def reminder_due(self, request: Request, now: datetime) -> bool:
        if request.reminder_sent or not request.expires_at or not request.granted_at:
            return False
        if request.expires_at - request.granted_at <= 2 * self.expiry_reminder:
            return False
        return request.expires_at - self.expiry_reminder <= now < request.expires_at

    def remind(self, request_id: str) -> list[Notice]:
        """Tell the requester once, a little before the end, how to extend or give back."""
        with self.uow.lock:
            request = self.store.get(request_id)
            if not request or request.status is not Status.ACTIVE or request.reminder_sent:
                return []
            request.remind_expiry(self.clock())
            self.uow.commit(request, "expiry_reminder", "scheduler", outcome="active")
            left = format_duration(request.remaining(self.clock()))
            return self.uow.announce([msg.expiry_reminder(request, left)])

    def escalate(self, request_id: str, now: datetime) -> list[Notice]:
        """Ask the next escalation level of a request still undecided: its approvers are
        resolved to user ids (outside the lock: PagerDuty and Slack may be asked), added to
        those who may decide, and its channel gets the card, saying why."""
        request = self._pending(request_id)
        if request is None:
            return []
        level = request.escalation[request.escalation_level]
        on_call = self.lookups.pagerduty.lookups()
        resolved = resolve(
            level["approvers"], self.registry.all_groups, on_call, self.lookups.slack_groups
        )
        notes = resolved.notes + [f"PagerDuty check failed: {f}" for f in on_call.failures]
        approvers, ids = self.permissions.identify(resolved.approvers, notes)
        after = format_duration(timedelta(seconds=level["after"]))
        with self.uow.lock:
            current = self._pending(request_id)
            if current is None or current.escalation_level != request.escalation_level:
                return []
            before = current.channel
            why = msg.escalation_note(
                request.escalation_level + 1, len(current.escalation), after, before, approvers
            )
            current.notes += [n for n in notes if n not in current.notes]
            current.escalate(now, approvers, ids, resolved.groups, why)
            # The level's card is this reminder; another one now would be a second card.
            current.postpone_nudge(now, self.approval_reminder)
            self.uow.commit(
                current,
                "escalated",
                "scheduler",
                outcome="pending",
                detail=why,
                approvers=", ".join(current.approvers),
                channel=current.channel,
            )
            return self.uow.announce(msg.escalation_notices(current, why, before, after))

    def remind_reviews(self, now: datetime) -> list[Notice]:
        """Once a day per channel, list the break-glass grants nobody has acknowledged.

        Each reminded request records when, so a restart does not remind again early.
        The next look is scheduled for the earliest time one becomes due.
        """
        if self._review_check_at is not None and now < self._review_check_at:
            return []
        every = self.review_reminder_every
        waiting = self.store.awaiting_review()
        next_check = now + every
        due_channels: set[str] = set()
        for request in waiting:
            due = (request.review_reminded_at or request.granted_at) + every
            if due <= now:
                due_channels.add(request.channel)
            else:
                next_check = min(next_check, due)
        notices = []
        for channel in sorted(due_channels):
            notices += self._remind_reviews_in(channel, waiting, now)
        self._review_check_at = next_check
        return notices

    def _remind_reviews_in(
        self, channel: str, waiting: list[Request], now: datetime
    ) -> list[Notice]:
        """Record the reminder on each of the channel's waiting grants and announce the
        one reminder listing them, in one commit."""
        reminded = []
        with self.uow.lock:
            for request in (r for r in waiting if r.channel == channel):
                current = self.store.get(request.id)
                if current is None or not current.awaits_review:
                    continue
                current.remind_review(now)
                self.uow.commit(
                    current,
                    "review_reminded",
                    "scheduler",
                    outcome="awaiting_review",
                    detail=f"in {channel}",
                )
                reminded.append(current)
            if not reminded:
                return []
            text = msg.review_reminder(reminded)
            return self.uow.announce([Notice("channel", channel, text, None, "alert")])
