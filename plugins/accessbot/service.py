"""`AccessService`: the facade the plugin, the CLI and the tests call, and the strategy
calls (grant, revoke, extend, follow-ups) with `tick` for the scheduler.

The use cases live in small units, wired here (see ARCHITECTURE.md): `handlers` (one per
command that changes a request), `intake` (checks, routing, the policy's decision),
`queries`, `dry_run`, `housekeeping` (time-outs, reminders, escalation), `permissions`,
`policy_registry` and `unit_of_work` (the decision lock; audit first, then store).
Handlers return typed results (`results.py`); `messages.outcome` turns them into the
`Outcome` people read: the reply and notices for others. The service never talks to chat.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from . import messages as msg
from .audit import AuditLog
from .domain import (
    AccessError,
    Request,
    Status,
    format_duration,
)
from .dry_run import DryRun, Evaluation
from .follow_ups import FollowUpPool
from .handlers import Handlers
from .housekeeping import Housekeeping
from .identity import NamedPeople, People
from .intake import Intake, Lookups
from .integrations.pagerduty import PagerDutyNotConfigured
from .integrations.slack_groups import NoSlackGroups
from .metrics import Metrics
from .permissions import Permissions
from .policy import (
    FollowUpContext,
    HookFailed,
    PolicyError,
    PolicySet,
    Resource,
    run_hook,
)
from .policy_registry import PolicyRegistry, PolicyReload
from .queries import Queries
from .rebuild import grant_fields
from .results import Actor, Notice, Outcome
from .store import RequestStore, StoreError
from .strategies import (
    Accounts,
    SettingsError,
    Strategy,
    StrategyError,
    build_strategy,
    payload_for,
)
from .unit_of_work import UnitOfWork

__all__ = [  # what callers import from here (the plugin, the CLI, the tests)
    "AccessService",
    "Actor",
    "Evaluation",
    "Notice",
    "Outcome",
    "PolicyReload",
    "RETRY_CAP",
    "RETRY_FIRST",
]

log = logging.getLogger(__name__)

RETRY_FIRST = timedelta(seconds=10)
RETRY_CAP = timedelta(minutes=5)
REVIEW_REMINDER_EVERY = timedelta(days=1)
DEFAULT_STRATEGY_WORKERS = 32


def _revoke_due(request: Request, now: datetime) -> bool:
    due = request.revoke_due_at
    return due is not None and due <= now


class StrategyCalls:
    """Run a tick's strategy calls on at most `workers` threads, and gather their notices.

    One call that raises (say, its store write failed) is logged and the others go on:
    its request stays as it was in the store, unclaimed, and the next tick tries again.
    A single call runs on the caller's thread.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._futures = []
        self._done: list[Notice] = []

    def __enter__(self) -> StrategyCalls:
        return self

    def start(self, calls: list[Callable[[], list[Notice]]]) -> None:
        if len(calls) <= 1 or self.workers == 1:
            for call in calls:
                self._done += _logged(call)
            return
        self._pool = ThreadPoolExecutor(
            max_workers=min(self.workers, len(calls)), thread_name_prefix="accessbot-strategy"
        )
        self._futures = [self._pool.submit(_logged, call) for call in calls]

    def results(self) -> list[Notice]:
        notices, self._done = self._done, []
        for future in self._futures:
            notices += future.result()
        self._futures = []
        return notices

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # never leave a call running past the tick
            self._pool = None


def _log_notices(notices: list[Notice]) -> None:
    """Where background notices go when nobody delivers them (the CLI, some tests)."""
    for notice in notices:
        log.info("notice for %s %s: %s", notice.audience, notice.to, notice.text)


def _logged(call: Callable[[], list[Notice]]) -> list[Notice]:
    try:
        return call()
    except Exception:  # noqa: BLE001 - one failed call must not stop the others
        request = getattr(call, "args", ("?",))[0]
        log.exception(
            "strategy call for %s failed; the next tick tries again",
            getattr(request, "id", request),
        )
        return []


class AccessService:
    """The use cases behind one set of methods: each public method delegates to the unit
    that does it. `bootstrap.bootstrap()` builds one from the settings."""

    def __init__(
        self,
        store: RequestStore,
        audit: AuditLog,
        policy_dir: str | Path,
        clock: Callable[[], datetime],
        pending_timeout: timedelta = timedelta(hours=1),
        pagerduty=None,
        hook_timeout: float = 10.0,
        expiry_reminder: timedelta = timedelta(minutes=10),
        approval_reminder: timedelta = timedelta(minutes=15),
        accounts: Accounts | None = None,
        review_reminder_every: timedelta = REVIEW_REMINDER_EVERY,
        groups: Mapping[str, list[str]] | None = None,
        slack_groups=None,
        strategy_workers: int = DEFAULT_STRATEGY_WORKERS,
        people: People | None = None,
        check_env: bool = True,
        metrics: Metrics | None = None,
        notify: Callable[[list[Notice]], None] | None = None,
    ):
        self.store = store
        self.audit = audit
        self.clock = clock
        self.pending_timeout = pending_timeout
        self.hook_timeout = hook_timeout
        self.expiry_reminder = expiry_reminder
        self.approval_reminder = approval_reminder
        self.accounts = accounts or Accounts()  # who each chat user is on GitHub, AWS, ...
        self.metrics = metrics or Metrics()
        # Where notices of work done in the background (follow-up hooks) go: the plugin
        # delivers them; without one they are logged.
        self.notify = notify or _log_notices
        self._follow_ups = FollowUpPool(self._run_follow_ups)
        self.strategy_workers = max(1, strategy_workers)  # concurrent calls in one tick
        self.uow = UnitOfWork(store, audit)
        self.lock = self.uow.lock  # one decision at a time
        self._inflight = self.uow.claims  # requests whose strategy call is under way
        # Grants taken back because they could not be recorded: id -> (attempts, next try).
        self._grant_waits: dict[str, tuple[int, datetime]] = {}
        # Grant calls made but not yet recorded: grant id -> when the target was called.
        self._grant_started: dict[str, datetime] = {}
        self._strategies: dict[str, Strategy] = {}  # shareable strategies by settings
        self._strategies_lock = threading.Lock()
        # The bot has its real environment: a strategy naming an unset variable is a load
        # error, not a failure after a human approved.
        environ = os.environ if check_env else None
        self.registry = PolicyRegistry(policy_dir, groups, environ, self.uow)
        self.lookups = Lookups(
            pagerduty or PagerDutyNotConfigured(),
            slack_groups or NoSlackGroups(),
            store,
            hook_timeout,
        )
        # approver entries -> platform user ids
        self.permissions = Permissions(people or NamedPeople(), self.registry, store, clock)
        self.intake = Intake(
            self.registry, self.permissions, store, clock, self.lookups, approval_reminder
        )
        self.handlers = Handlers(
            self.uow, self.intake, self.permissions, self.registry, self, clock
        )
        self.queries = Queries(self.uow, audit, self.registry, self.permissions, clock)
        self.dry_run = DryRun(self.intake, self.permissions, self.registry, pending_timeout)
        self._housekeeping = Housekeeping(
            self.uow,
            self.registry,
            self.permissions,
            self.lookups,
            clock,
            pending_timeout,
            approval_reminder,
            expiry_reminder,
            review_reminder_every,
        )

    # -- what others read and set (the plugin, the CLI's test runner, the sweep) ------

    @property
    def policies(self) -> PolicySet | None:
        return self.registry.policies

    @property
    def policy_error(self) -> PolicyError | None:
        return self.registry.error

    @property
    def policy_dir(self) -> Path:
        return self.registry.policy_dir

    @property
    def pagerduty(self):
        return self.lookups.pagerduty

    @pagerduty.setter
    def pagerduty(self, value) -> None:
        self.lookups.pagerduty = value

    @property
    def slack_groups(self):
        return self.lookups.slack_groups

    @slack_groups.setter
    def slack_groups(self, value) -> None:
        self.lookups.slack_groups = value

    @property
    def history_counts(self):
        """What ctx.history counts (the store; a test file's answers in tests)."""
        return self.lookups.history_counts

    @history_counts.setter
    def history_counts(self, value) -> None:
        self.lookups.history_counts = value

    def close(self) -> None:
        """Stop running follow-up hooks (the plugin's deactivate); one still running is
        given up on and runs again at the next start."""
        self._follow_ups.stop()
        with self.lock:
            pass  # one recording that it ran right now finishes before the store closes

    # -- the commands: each one call to its unit, results rendered by messages.py ------

    def request(
        self,
        actor: Actor,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None = None,
    ) -> Outcome:
        return msg.outcome(self.handlers.request(actor, resource_name, duration, reason, fields))

    def extend(
        self, actor: Actor, grant_id: str, duration: timedelta | None, reason: str
    ) -> Outcome:
        """Ask for more time on an active grant: a request of its own, routed like any."""
        return msg.outcome(self.handlers.extend(actor, grant_id, duration, reason))

    def approve(self, actor: Actor, request_id: str, comment: str = "") -> Outcome:
        return msg.outcome(self.handlers.approve(actor, request_id, comment))

    def deny(self, actor: Actor, request_id: str, reason: str = "") -> Outcome:
        return msg.outcome(self.handlers.deny(actor, request_id, reason))

    def cancel(self, actor: Actor, request_id: str) -> Outcome:
        return msg.outcome(self.handlers.cancel(actor, request_id))

    def revoke(self, actor: Actor, request_id: str) -> Outcome:
        return msg.outcome(self.handlers.revoke(actor, request_id))

    def ack(self, actor: Actor, request_id: str, note: str = "") -> Outcome:
        """An approver (or admin) acknowledges a break-glass grant after the fact."""
        return msg.outcome(self.handlers.ack(actor, request_id, note))

    def retry(self, actor: Actor, request_id: str) -> Outcome:
        """Retry a failed revoke now instead of waiting for the next backoff step."""
        return msg.outcome(self.handlers.retry(actor, request_id))

    def remember_card(self, request_id: str, ref: dict) -> None:
        """Note where a chat backend posted the request's card, so later events update it."""
        self.handlers.remember_card(request_id, ref)

    def reload(self, actor: Actor) -> str:
        return msg.reloaded(self.handlers.reload(actor))

    def reload_policies(self, by: str) -> PolicyReload:
        """Load the policy files again, all or nothing, and say what changed."""
        return self.registry.reload(by)

    def field_names(self, resource_name: str) -> tuple[str, ...]:
        """The prompt fields a resource declares (none when it is unknown)."""
        return self.registry.field_names(resource_name)

    def checks_at_request(self, resource_name: str) -> bool:
        """Does a request for this resource run policy code or ask another service first?"""
        return self.registry.checks_at_request(resource_name)

    # -- reading and dry runs --------------------------------------------------------

    def show(self, actor: Actor, request_id: str) -> str:
        return self.queries.show(actor, request_id)

    def mine(self, actor: Actor) -> str:
        return self.queries.mine(actor)

    def list_live(self, actor: Actor) -> str:
        return self.queries.list_live(actor)

    def review(self, actor: Actor) -> str:
        """The break-glass grants still waiting for a human to acknowledge them."""
        return self.queries.review(actor)

    def resources(self) -> str:
        return self.queries.resources()

    def audit_events(
        self,
        actor: Actor,
        *,
        user: str | None = None,
        resource: str | None = None,
        request_id: str | None = None,
        since: timedelta | None = None,
        limit: int = 20,
        terms: list[str] | None = None,
    ) -> str:
        """`!access audit`: the matching events; `terms` are bare words to place."""
        return self.queries.audit_events(
            actor,
            user=user,
            resource=resource,
            request_id=request_id,
            since=since,
            limit=limit,
            terms=terms,
        )

    def verify_audit(self, actor: Actor) -> str:
        return self.queries.verify_audit(actor)

    def whatif(
        self,
        actor: Actor,
        target: Actor,
        resource_name: str,
        duration: timedelta | None = None,
        reason: str = "",
        fields: Mapping[str, str] | None = None,
    ) -> str:
        """`!access whatif`: how a request would be routed and decided, creating nothing."""
        return self.dry_run.whatif(actor, target, resource_name, duration, reason, fields)

    def evaluate(
        self,
        target: Actor,
        resource_name: str,
        duration: timedelta | None = None,
        reason: str = "",
        fields: Mapping[str, str] | None = None,
    ) -> Evaluation:
        """A dry run of one request: checks, routing and hooks; nothing stored or granted."""
        return self.dry_run.evaluate(target, resource_name, duration, reason, fields)

    def evaluate_vote(
        self, evaluation: Evaluation, voter: Actor, verb: str, comment: str = ""
    ) -> str | None:
        """Why one approver's approve / deny of an evaluation would not count (None: it would)."""
        return self.dry_run.evaluate_vote(evaluation, voter, verb, comment)

    # -- the scheduler's work -----------------------------------------------------

    def tick(self) -> list[Notice]:
        """Revoke what expired, retry failed revokes, finish interrupted grants, time out.

        Revocations go first: they are the promise that matters most. Strategy calls run
        on a pool of `strategy_workers` threads, so a thousand grants ending in the same
        second are not revoked one after another; each request is claimed before its
        call, so none is called twice. Every look is an index lookup: a tick with
        nothing due costs next to nothing, however many grants are active.
        """
        now = self.clock()
        calls: list[Callable[[], list[Notice]]] = []
        claimed = []
        for due in self.store.due_for_revocation(now):
            request = self._claim_current(due.id, lambda r: _revoke_due(r, now))
            if request is not None:
                claimed.append(request)
        notices = self._revoke_on_pool(claimed, "scheduler")
        for approved in self.store.live_in([Status.APPROVED]):
            # Approved, but the bot stopped before the grant (or extension) was made, or
            # the grant was taken back and waits for the disk (see `_taken_back`).
            wait = self._grant_waits.get(approved.id)
            if wait and wait[1] > now:
                continue
            request = self._claim_current(approved.id, lambda r: r.status is Status.APPROVED)
            if request is not None:
                calls.append(
                    partial(self._apply_extension if request.extends else self._grant, request)
                )
        with StrategyCalls(self.strategy_workers) as running:
            running.start(calls)
            for pending in self.store.escalations_due(now):
                notices += self._escalate(pending.id, now)
            for pending in self.store.pending_created_before(now - self.pending_timeout):
                notices += self._time_out(pending.id)
            for pending in self.store.nudges_due(now):
                notices += self._nudge(pending.id)  # skips the ones just timed out
            for grant in self.store.expiring_unreminded(now + self.expiry_reminder):
                if grant.ending is None and self._reminder_due(grant, now):
                    notices += self._remind(grant.id)
            notices += self._remind_reviews(now)
            for owed in self.store.follow_ups_due():
                self._follow_ups.submit(owed.id)  # one a restart or a failed write left
            return notices + running.results()

    def next_revocation_at(self) -> datetime | None:
        """When the next grant is due to be taken away, so the scheduler can wake for it."""
        return self.store.next_revocation_at()

    def _claim(self, request_id: str) -> bool:
        """Take the right to call a strategy for this request; False if someone has it."""
        with self.lock:
            if request_id in self._inflight:
                return False
            self._inflight.add(request_id)
            return True

    def _claim_current(self, request_id: str, still: Callable[[Request], bool]) -> Request | None:
        """Claim a request and re-read it; None (and no claim) if it is taken or moved on."""
        with self.lock:
            if not self._claim(request_id):
                return None
            current = self.store.get(request_id)
            if current is None or not still(current):
                self._inflight.discard(request_id)
                return None
            return current

    # Housekeeping (time-outs, reminders, escalation): the scheduler's tick calls these.

    def _reminder_due(self, request: Request, now: datetime) -> bool:
        return self._housekeeping.reminder_due(request, now)

    def _remind(self, request_id: str) -> list[Notice]:
        return self._housekeeping.remind(request_id)

    def _nudge(self, request_id: str) -> list[Notice]:
        return self._housekeeping.nudge(request_id)

    def _escalate(self, request_id: str, now: datetime) -> list[Notice]:
        return self._housekeeping.escalate(request_id, now)

    def _time_out(self, request_id: str) -> list[Notice]:
        return self._housekeeping.time_out(request_id)

    def _remind_reviews(self, now: datetime) -> list[Notice]:
        return self._housekeeping.remind_reviews(now)

    # -- granting and revoking ----------------------------------------------------

    def _grant(self, request: Request) -> list[Notice]:
        """Call the strategy for an approved request; the caller has claimed its id."""
        if request.grant_round and not self._audit_grant_retry(request):
            return []  # the audit log is still not writable: nothing is granted
        unrecorded = None
        try:
            error = None
            # A grant call whose outcome could not be recorded (the database went away) is
            # made again with the same start, so the same expiry and Idempotency-Key: the
            # target's answer and the audit tell the same access window.
            started = self._grant_started.setdefault(request.grant_id, self.clock())
            preview = request.copy()
            preview.expires_at = started + request.duration
            try:
                done = self._call(request.strategy, "grant", payload_for("grant", preview))
                note = done.note
            except (StrategyError, SettingsError) as exc:
                error, note, done = str(exc), "", None
            with self.lock:
                request = self.store.get(request.id)
                now = self.clock()
                if error is None:
                    request.activate(started)  # the expiry the target was just told
                    self._grant_started.pop(request.grant_id, None)
                    request.account = done.account  # revoke and extend act on this account
                    request.grant_result = done.answer
                    self._owe_follow_up(request, "after_grant")
                    try:
                        self._commit(
                            request,
                            "granted",
                            "bot",
                            outcome="active",
                            detail=f"until {msg.when(request.expires_at)}; {note}",
                            **grant_fields(request),
                        )
                    except AccessError as exc:
                        unrecorded = str(exc)
                else:
                    self._grant_started.pop(request.grant_id, None)
                    request.last_error = error
                    request.move(Status.GRANT_FAILED, now, "bot", error)
                    self._commit(
                        request, "grant_failed", "bot", outcome="grant_failed", detail=error
                    )
            self.metrics.grants.labels(
                request.strategy.get("type", "?"),
                "granted"
                if error is None and unrecorded is None
                else ("taken_back" if error is None else "grant_failed"),
            ).inc()
            if unrecorded is not None:
                return self._taken_back(request, unrecorded)  # still claimed: no other call
        finally:
            self._inflight.discard(request.id)
        if error is None and request.follow_ups_due:
            self._follow_ups.submit(request.id)
        if error is None:
            by = (
                ", ".join(msg.who(h) for h in request.decided_by.split(", ") if h)
                if request.decided_by and request.decided_by != "policy"
                else "policy"
            )
            return [
                self._to_requester(
                    request,
                    f"Your request {request.id} was approved by {by}: you have "
                    f"{request.resource} for {format_duration(request.duration)}, until "
                    f"{msg.when(request.expires_at)}. End it early with "
                    f"`!access revoke {request.id}`.",
                ),
                Notice(
                    "channel",
                    request.channel,
                    f"Request {request.id} approved by {by}: {msg.who(request.requester)} has "
                    f"{request.resource} until {msg.when(request.expires_at)}.",
                    request,
                ),
            ]
        return [
            self._to_requester(
                request,
                f"Your request {request.id} for {request.resource} was approved, but the grant "
                f"failed: {msg.inert(error)}. Nothing was granted. Ask again with "
                f"{self._ask_again(request)} once the approvers have looked at it.",
            ),
            Notice(
                "channel",
                request.channel,
                f"GRANT FAILED for request {request.id} ({request.resource} for "
                f"{msg.who(request.requester)}): {msg.inert(error)}. Nothing was granted.",
                request,
                "alert",
            ),
        ]

    def _taken_back(self, granted: Request, why: str) -> list[Notice]:
        """The target granted but the bot could not record it: take the grant back at once
        (no access may exist that the bot does not know to revoke). The request stays
        approved and waits, with backoff, until the audit log and store take writes; the
        next grant has a new grant id. Announced once, not at every attempt."""
        self._take_back(granted)
        self._grant_started.pop(granted.grant_id, None)
        request = self.store.get(granted.id) or granted
        request.grant_round = granted.grant_round + 1
        wait = self._grant_waits.get(request.id)
        attempt = wait[0] + 1 if wait else 1
        delay = min(RETRY_FIRST * 2 ** (attempt - 1), RETRY_CAP)
        self._grant_waits[request.id] = (attempt, self.clock() + delay)
        try:  # so a restart grants under the new id too; the audit records it when it can
            self.store.save(request)
        except StoreError as exc:
            log.error("request %s: could not save its next grant id: %s", request.id, exc)
        try:
            self._audit(
                "grant_taken_back",
                "bot",
                request_id=request.id,
                user=request.requester,
                resource=request.resource,
                outcome="approved",
                detail=f"granted as {granted.grant_id} but not recorded ({why}); taken back",
            )
        except AccessError:
            pass  # the log is what failed; the retry's own event records the round
        if wait:
            return []
        text = (
            f"Request {request.id} ({request.resource} for {msg.who(request.requester)}) is "
            f"approved, but the bot could not record the grant ({msg.inert(why)}), so it "
            "took it back at once. It grants it again as soon as the audit log and the store "
            "can be written; an admin must check the bot's disk."
        )
        return [
            Notice("channel", request.channel, text, request, "alert"),
            self._to_requester(request, text),
        ]

    def _audit_grant_retry(self, request: Request) -> bool:
        """Before granting again after a take-back: record the new attempt, which also
        proves the audit log takes writes again. False (and a longer wait) if not yet."""
        wait = self._grant_waits.get(request.id)
        try:
            with self.lock:
                current = self.store.get(request.id)
                self._commit(
                    current,
                    "grant_retry",
                    "bot",
                    outcome="approved",
                    detail=f"granting again as {current.grant_id}",
                )
        except AccessError as exc:
            attempt = (wait[0] if wait else 0) + 1
            delay = min(RETRY_FIRST * 2 ** (attempt - 1), RETRY_CAP)
            self._grant_waits[request.id] = (attempt, self.clock() + delay)
            log.warning("request %s waits to be granted: %s", request.id, exc)
            self._inflight.discard(request.id)
            return False
        self._grant_waits.pop(request.id, None)
        request.grant_round = current.grant_round
        return True

    def _take_back(self, request: Request) -> None:
        """Revoke a grant the bot could not record, once."""
        try:
            self._call(request.strategy, "revoke", payload_for("revoke", request))
        except (StrategyError, SettingsError) as exc:
            log.critical(
                "request %s: granted at the target but not recorded, and the revoke failed "
                "too (%s); revoke grant %s by hand",
                request.id,
                exc,
                request.grant_id,
            )

    def _revoke(self, request: Request, actor: str) -> list[Notice]:
        """Call the strategy to take access away; the caller has claimed the request's id."""
        try:
            outcome = self._revoke_call(request)
        except BaseException:
            self._inflight.discard(request.id)
            raise
        return self._record_revokes([(request, outcome)], actor)

    def _revoke_call(self, request: Request) -> tuple[str | None, str | None]:
        """The strategy's revoke call: what went wrong (None if it worked), and the account
        the target named (for a grant made before accounts were recorded)."""
        try:
            done = self._call(request.strategy, "revoke", payload_for("revoke", request))
        except (StrategyError, SettingsError) as exc:
            return str(exc), None
        return None, done.account

    def _revoke_on_pool(self, requests: list[Request], actor: str) -> list[Notice]:
        """Revoke claimed requests: the calls on up to `strategy_workers` threads, their
        outcomes recorded in batches as they come back (see `_record_revokes`)."""
        if len(requests) <= 1 or self.strategy_workers == 1:
            notices = []
            for request in requests:
                notices += _logged(partial(self._revoke, request, actor))
            return notices
        finished: queue.SimpleQueue = queue.SimpleQueue()

        def call(request: Request) -> None:
            try:
                finished.put((request, self._revoke_call(request), None))
            except Exception as exc:  # noqa: BLE001 - reported below, and retried
                finished.put((request, None, exc))

        notices: list[Notice] = []
        with ThreadPoolExecutor(
            max_workers=min(self.strategy_workers, len(requests)),
            thread_name_prefix="accessbot-strategy",
        ) as pool:
            for request in requests:
                pool.submit(call, request)
            left = len(requests)
            while left:
                batch = [finished.get()]
                while True:
                    try:
                        batch.append(finished.get_nowait())
                    except queue.Empty:
                        break
                left -= len(batch)
                for request, _, exc in batch:
                    if exc is not None:
                        self._inflight.discard(request.id)
                        log.error(
                            "the revoke call for %s failed; the next tick tries again",
                            request.id,
                            exc_info=exc,
                        )
                results = [(request, outcome) for request, outcome, exc in batch if exc is None]
                if results:
                    try:
                        notices += self._record_revokes(results, actor)
                    except Exception:  # noqa: BLE001 - the other batches go on
                        log.exception(
                            "could not record %d revocation(s); the next tick tries again",
                            len(results),
                        )
        return notices

    def _record_revokes(
        self, results: list[tuple[Request, tuple[str | None, str | None]]], actor: str
    ) -> list[Notice]:
        """Record the outcome of claimed revoke calls (error None: it worked) and release
        the claims. Outcomes that arrive together are committed together: all their audit
        events with one fsync, then all their store writes with one, so revocations that
        end at the same moment do not queue behind each other's disk flushes."""
        try:
            with self.lock:
                done = []
                now = self.clock()
                for claimed, (error, account) in results:
                    request = self.store.get(claimed.id)
                    request.ending = request.ending or "expired"
                    request.account = request.account or account
                    if error is None:
                        final = Status.REVOKED if request.ending == "revoked" else Status.EXPIRED
                        request.ended_at = now
                        request.last_error = ""
                        request.next_retry_at = None
                        request.move(final, now, actor)
                        self._owe_follow_up(request, "after_revoke")
                        ended = {"outcome": final.value, **grant_fields(request)}
                        done.append((request, error, final.value, ended))
                    else:
                        request.revoke_attempts += 1
                        delay = min(RETRY_FIRST * 2 ** (request.revoke_attempts - 1), RETRY_CAP)
                        request.next_retry_at = now + delay
                        request.last_error = error
                        request.move(Status.REVOKE_FAILED, now, actor, error)
                        fields = {
                            "outcome": "revoke_failed",
                            "detail": f"attempt {request.revoke_attempts}: {error}",
                            **grant_fields(request),
                        }
                        done.append((request, error, "revoke_failed", fields))
                self._commit_many([(r, event, actor, fields) for r, _, event, fields in done])
        finally:
            for claimed, _ in results:
                self._inflight.discard(claimed.id)
        notices = []
        for request, error, outcome, _ in done:
            if error is None and request.follow_ups_due:
                self._follow_ups.submit(request.id)
            self.metrics.revokes.labels(request.strategy.get("type", "?"), outcome).inc()
            if request.status is Status.EXPIRED and request.expires_at is not None:
                late = (request.ended_at - request.expires_at).total_seconds()
                self.metrics.lateness.observe(max(late, 0.0))
            notices += self._revoke_notices(request, actor, error)
        return notices

    def _revoke_notices(self, request: Request, actor: str, error: str | None) -> list[Notice]:
        if error is None:
            void = self._cancel_pending_extensions(request)
            if request.status is Status.EXPIRED:
                user_text = (
                    f"Your access to {request.resource} (request {request.id}) has expired and "
                    f"was removed. Need more? `!access request {request.resource} <duration> <reason>`."
                )
                channel_text = (
                    f"Request {request.id}: {msg.who(request.requester)}'s access to "
                    f"{request.resource} expired and was revoked."
                )
            else:
                user_text = (
                    f"Your access to {request.resource} (request {request.id}) was revoked"
                    + (f" by {msg.who(actor)}." if actor != request.requester else ".")
                )
                channel_text = (
                    f"Request {request.id}: {msg.who(request.requester)}'s access to "
                    f"{request.resource} was revoked by {msg.who(actor)}."
                )
            return [
                self._to_requester(request, user_text),
                Notice("channel", request.channel, channel_text, request),
                *void,
            ]
        return [
            Notice(
                "channel",
                request.channel,
                f"REVOKE FAILED for request {request.id} ({request.resource} for "
                f"{msg.who(request.requester)}), attempt {request.revoke_attempts}: "
                f"{msg.inert(error)}. Retrying at {msg.when(request.next_retry_at)}; "
                "the access is still in place until a revoke succeeds.",
                request,
                "alert",
            )
        ]

    def _apply_extension(self, extension: Request) -> list[Notice]:
        """Move the grant's end by the extension's duration, counted from its current end."""
        with self.lock:
            grant = self.store.get(extension.extends)
            ended = grant is None or grant.status is not Status.ACTIVE
            if ended or grant.id in self._inflight:
                why = (
                    f"grant {extension.extends} had already ended; ask afresh with "
                    f"`!access request {extension.resource} {format_duration(extension.duration)} <reason>`"
                    if ended
                    else f"grant {extension.extends} is being revoked right now"
                )
                extension = self.store.get(extension.id)
                extension.last_error = why
                extension.move(Status.GRANT_FAILED, self.clock(), "bot", why)
                self._inflight.discard(extension.id)
                self._commit(
                    extension, "extension_refused", "bot", outcome="grant_failed", detail=why
                )
                return [
                    self._to_requester(
                        extension, f"Your extension {extension.id} was not applied: {why}."
                    )
                ]
            self._inflight.add(grant.id)
        try:
            new_end = grant.expires_at + extension.duration
            preview = grant.copy()
            preview.expires_at = new_end
            error = None
            try:
                done = self._call(grant.strategy, "extend", payload_for("extend", preview))
            except (StrategyError, SettingsError) as exc:
                error = str(exc)
            with self.lock:
                grant = self.store.get(grant.id)
                extension = self.store.get(extension.id)
                now = self.clock()
                if error is None:
                    grant.account = grant.account or done.account
                    grant.expires_at = new_end
                    grant.extensions += 1
                    grant.reminder_sent = False  # a new end earns a new reminder
                    grant.record(
                        now,
                        "extended",
                        extension.decided_by or "policy",
                        f"+{format_duration(extension.duration)}, now until "
                        f"{msg.moment(new_end)} (extension {extension.id})",
                    )
                    self._commit(
                        grant,
                        "extended",
                        extension.decided_by or "policy",
                        outcome="active",
                        detail=f"by {extension.id} until {msg.when(new_end)}",
                        **grant_fields(grant),
                        extension=extension.id,
                    )
                    extension.move(
                        Status.EXTENDED, now, "bot", f"{grant.id} until {msg.moment(new_end)}"
                    )
                    self._commit(extension, "extension_applied", "bot", outcome="extended")
                else:
                    extension.last_error = error
                    extension.move(Status.GRANT_FAILED, now, "bot", error)
                    self._commit(
                        extension, "extension_failed", "bot", outcome="grant_failed", detail=error
                    )
        finally:
            self._inflight.discard(grant.id)
            self._inflight.discard(extension.id)
        if error is None:
            return [
                self._to_requester(
                    grant,
                    f"Your grant {grant.id} on {grant.resource} was extended by "
                    f"{format_duration(extension.duration)} (extension {extension.id}): it now "
                    f"ends {msg.when(grant.expires_at)}.",
                ),
                Notice(
                    "channel",
                    grant.channel,
                    f"Extension {extension.id} approved: {msg.who(grant.requester)}'s grant "
                    f"{grant.id} on {grant.resource} now ends {msg.when(grant.expires_at)}.",
                    extension,
                ),
            ]
        return [
            self._to_requester(
                grant,
                f"Your extension {extension.id} was approved, but the target refused it: "
                f"{msg.inert(error)}. Your grant still ends {msg.when(grant.expires_at)}.",
            ),
            Notice(
                "channel",
                grant.channel,
                f"EXTENSION FAILED for {extension.id} (grant {grant.id}): {msg.inert(error)}.",
                extension,
                "alert",
            ),
        ]

    def _cancel_pending_extensions(self, grant: Request) -> list[Notice]:
        """When a grant ends, its waiting extension requests can no longer be granted."""
        notices = []
        for other in self.store.extensions_of(grant.id):
            if other.status is not Status.PENDING:
                continue
            with self.lock:
                other = self.store.get(other.id)
                if other.status is not Status.PENDING:
                    continue
                other.move(Status.CANCELLED, self.clock(), "bot", f"grant {grant.id} ended")
                self._commit(other, "cancelled", "bot", outcome="cancelled", detail="grant ended")
            notices.append(
                Notice(
                    "channel",
                    other.channel,
                    f"Extension request {other.id} is void: grant {grant.id} has ended.",
                    other,
                )
            )
        return notices

    # -- follow-up hooks: after_grant, after_revoke --------------------------------

    def _owe_follow_up(self, request: Request, hook: str) -> None:
        """Note on the request, in the same write as its grant or revoke, that its
        resource's `hook` is to run: so it runs once, even if the bot stops first."""
        resource = self.policies.get(request.resource) if self.policies else None
        if resource is not None and hook in resource.hooks and hook not in request.follow_ups_due:
            request.follow_ups_due.append(hook)

    def _run_follow_ups(self, request_id: str) -> None:
        """Run a request's owed follow-up hooks in order, on the follow-up pool; each is
        recorded as run (audit event, store write) and its messages delivered."""
        claim = f"follow-up:{request_id}"  # another bot on the database may be on it
        if not self._claim(claim):
            return
        try:
            while not self._follow_ups.stopped:
                request = self.store.get(request_id)
                if request is None or not request.follow_ups_due:
                    return
                notices = self._follow_up(request, request.follow_ups_due[0])
                if notices is None:
                    return  # stopped meanwhile: the next start runs it
                self.notify(notices)
        finally:
            self._inflight.discard(claim)

    def _follow_up(self, request: Request, hook: str) -> list[Notice] | None:
        """Run one follow-up hook and record that it ran. A hook that fails is logged,
        audited and told to the admins; it never undoes the grant or the revoke."""
        resource = self.policies.get(request.resource) if self.policies else None
        told: list[tuple[str, str]] = []
        error = None
        if resource is None or hook not in resource.hooks:
            outcome = "skipped"
            error = f"no {hook} hook in the policy now"
        else:
            ctx = self._context(
                FollowUpContext, self.pagerduty.lookups(), request, resource, self.clock()
            )
            try:
                run_hook(resource, hook, request.view(), ctx, self.hook_timeout)
                outcome = "ran"
            except HookFailed as exc:
                outcome, error = "failed", str(exc)
                log.warning("%s of %s failed: %s", hook, request.id, exc)
            told = ctx.close()
        detail = "; ".join(filter(None, [error, f"told {len(told)} message(s)" if told else ""]))
        with self.lock:
            if self._follow_ups.stopped:
                return None
            current = self.store.get(request.id)
            if current is None or hook not in current.follow_ups_due:
                return []  # recorded already (another bot's run)
            current.follow_ups_due.remove(hook)
            current.record(self.clock(), hook, "bot", f"{outcome}: {detail}" if detail else outcome)
            self._commit(current, hook, "bot", outcome=outcome, detail=detail)
        notices = [
            self._to_requester(current, msg.inert(text, 1000))
            if audience == "user"
            else Notice("channel", current.channel, msg.inert(text, 1000), current)
            for audience, text in told
        ]
        if outcome == "failed":
            text = msg.follow_up_failed(current, hook, error)
            notices.append(Notice("admins", "", text, current))
        return notices

    # -- the units the strategy calls use ------------------------------------------

    def _commit(
        self, request: Request, event: str, actor: str, outcome: str, detail: str = "", **extra
    ):
        """One audit event, then one store write: never a change that is not audited."""
        self.uow.commit(request, event, actor, outcome, detail, **extra)

    def _commit_many(self, items: list[tuple[Request, str, str, dict]]) -> None:
        self.uow.commit_many(items)

    def _audit(self, event: str, actor: str, **fields) -> None:
        self.uow.audit(event, actor, **fields)

    def _to_requester(self, request: Request, text: str) -> Notice:
        return msg.to_requester(request, text)

    def _ask_again(self, request: Request) -> str:
        return self.registry.ask_again(request)

    def _context(self, kind, on_call, request: Request, resource: Resource, now: datetime):
        return self.intake.context(kind, on_call, request, resource, now)

    def _policies(self) -> PolicySet:
        return self.registry.current()

    def _resource(self, name: str) -> Resource:
        return self.registry.resource(name)

    def _names(self, actor: Actor, entry: str) -> bool:
        return self.permissions.names(actor, entry)

    def _call(self, settings: dict, action: str, payload: dict):
        """One strategy call, timed and counted for /metrics."""
        started, ok = time.monotonic(), False
        try:
            done = self._strategy(settings).call(action, payload)
            ok = True
            return done
        finally:
            kind = str(settings.get("type", "?")) if isinstance(settings, dict) else "?"
            self.metrics.target_call(kind, action, time.monotonic() - started, ok)

    def _strategy(self, settings: dict) -> Strategy:
        """The strategy for a request's settings; a shareable one is built once and reused,
        so its HTTP connections stay open across calls."""
        try:
            key = json.dumps(settings, sort_keys=True, default=str)
        except (TypeError, ValueError):
            return build_strategy(settings, self.accounts)
        with self._strategies_lock:
            found = self._strategies.get(key)
        if found is not None:
            return found
        strategy = build_strategy(settings, self.accounts)
        if strategy.shareable:
            with self._strategies_lock:
                if len(self._strategies) >= 256:  # policies changed a lot: start afresh
                    self._strategies.clear()
                strategy = self._strategies.setdefault(key, strategy)
        return strategy
