"""`AccessService`: the facade the plugin, the CLI and the tests call, and the
scheduler's jobs (`revocation_tick`, `housekeeping`, `remind_reviews`, `check_overdue`;
`tick` runs them all and waits: for the CLI and tests). Strategy calls are the
provisioner's (provisioner.py); the methods here that make them delegate to it.

The use cases live in small units, wired here (see ARCHITECTURE.md): `handlers` (one per
command that changes a request), `intake` (checks, routing, the policy's decision),
`queries`, `dry_run`, `housekeeping` (time-outs, reminders, escalation), `permissions`,
`policy_registry` and `unit_of_work` (the decision lock; audit first, then store).
Handlers return typed results (`results.py`); `messages.outcome` turns them into the
`Outcome` people read: the reply and notices for others. The service never talks to chat.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from . import messages as msg
from .audit import AuditLog
from .domain import (  # noqa: F401 - RETRY_* are imported from here
    RETRY_CAP,
    RETRY_FIRST,
    Request,
    Status,
)
from .dry_run import DryRun, Evaluation
from .follow_ups import FollowUpPool
from .handlers import Handlers
from .housekeeping import Housekeeping
from .identity import NamedPeople, People
from .intake import Intake, Lookups
from .integrations.pagerduty import PagerDutyNotConfigured
from .integrations.slack_groups import NoSlackGroups
from .integrations.trackers import LinkChecker
from .link_check import LinkChecks, LinkPass
from .metrics import Metrics
from .overdue import DEFAULT_GRACE, OverdueWatch
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
from .provisioner import DEFAULT_STRATEGY_WORKERS, Provisioner
from .queries import Queries
from .results import Actor, Notice, Outcome, Result
from .store import RequestStore
from .strategies import (
    Accounts,
    Strategy,
)
from .unit_of_work import NoticeWriter, UnitOfWork

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

REVIEW_REMINDER_EVERY = timedelta(days=1)


def rendered(result: Result) -> Outcome:
    """The reply (and notices) people read for a command's result; notices the command
    announced in its commits (`told`) are those, not made anew."""
    outcome = msg.outcome(result)
    if result.told:
        outcome.notices = result.notices
    return outcome


def _log_notices(notices: list[Notice]) -> None:
    """Where background notices go when nobody delivers them (the CLI, some tests)."""
    for notice in notices:
        log.info("notice for %s %s: %s", notice.audience, notice.to, notice.text)


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
        outbox: NoticeWriter | None = None,
        requests_per_hour: int = 0,
        links=None,
        overdue_grace: timedelta = DEFAULT_GRACE,
        min_duration: timedelta = timedelta(0),  # the bot passes ACCESS_MIN_DURATION (30s)
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
        # With an outbox, every notice is written there in the commit of the change it
        # reports (UnitOfWork.announce) and comes back marked `stored`.
        self.uow = UnitOfWork(store, audit, outbox, clock)
        self.lock = self.uow.lock  # one decision at a time
        self._inflight = self.uow.claims  # requests whose strategy call is under way
        # Every strategy call and its record; the scheduler's calls on one pool of
        # `strategy_workers` threads, their notices to `notify` (see provisioner.py).
        self.provisioner = Provisioner(self, strategy_workers, self.notify)
        # Grants past their end + grace without a confirmed revoke: read from the store on a
        # job of its own, so nothing on the revoke path can keep it quiet (overdue.py).
        self.overdue = OverdueWatch(
            store,
            clock,
            overdue_grace,
            under_way=lambda request_id: request_id in self._inflight,
            gauge=self.metrics.overdue,
        )
        # The bot has its real environment: a strategy naming an unset variable is a load
        # error, not a failure after a human approved.
        environ = os.environ if check_env else None
        self.registry = PolicyRegistry(policy_dir, groups, environ, self.uow)
        self.lookups = Lookups(
            pagerduty or PagerDutyNotConfigured(),
            slack_groups or NoSlackGroups(),
            store,
            hook_timeout,
            # Checked fields' trackers; PagerDuty incidents through the checker above.
            links or LinkChecker(lambda: self.lookups.pagerduty),
        )
        # approver entries -> platform user ids
        self.permissions = Permissions(people or NamedPeople(), self.registry, store, clock)
        self.intake = Intake(
            self.registry,
            self.permissions,
            store,
            clock,
            self.lookups,
            approval_reminder,
            requests_per_hour,  # ACCESS_REQUESTS_PER_HOUR; 0 (tools, tests): no limit
            min_duration=min_duration,
        )
        self.handlers = Handlers(
            self.uow, self.intake, self.permissions, self.registry, self, clock
        )
        self.queries = Queries(self.uow, audit, self.registry, self.permissions, clock)
        self.dry_run = DryRun(self.intake, self.permissions, self.registry, pending_timeout)
        self._link_checks = LinkChecks(
            self.uow, self.registry, self.lookups, self.provisioner, clock, self.metrics
        )
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
    def links(self):
        """Where checked fields are looked up (trackers.LinkChecker; StaticLinks in tests)."""
        return self.lookups.links

    @links.setter
    def links(self, value) -> None:
        self.lookups.links = value

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

    @property
    def strategy_workers(self) -> int:
        """How many strategy calls the scheduler's work makes at once (a quarter of them
        at most for one resource)."""
        return self.provisioner.workers

    @strategy_workers.setter
    def strategy_workers(self, count: int) -> None:
        self.provisioner.workers = count

    def close(self, timeout: float = 30.0) -> None:
        """Stop (the plugin's deactivate): the strategy calls under way finish and are
        recorded (up to `timeout`); follow-up hooks stop, one still running is given up
        on and runs again at the next start."""
        self.provisioner.close(timeout)
        self._follow_ups.stop()
        with self.lock:
            pass  # one recording that it ran right now finishes before the store closes

    # -- requesting -------------------------------------------------------------

    # -- the commands: each one call to its unit, results rendered by messages.py ------

    def request(
        self,
        actor: Actor,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None = None,
    ) -> Outcome:
        return rendered(self.handlers.request(actor, resource_name, duration, reason, fields))

    def extend(
        self, actor: Actor, grant_id: str, duration: timedelta | None, reason: str
    ) -> Outcome:
        """Ask for more time on an active grant: a request of its own, routed like any."""
        return rendered(self.handlers.extend(actor, grant_id, duration, reason))

    def approve(self, actor: Actor, request_id: str, comment: str = "") -> Outcome:
        return rendered(self.handlers.approve(actor, request_id, comment))

    def deny(self, actor: Actor, request_id: str, reason: str = "") -> Outcome:
        return rendered(self.handlers.deny(actor, request_id, reason))

    def cancel(self, actor: Actor, request_id: str | None) -> Outcome:
        return rendered(self.handlers.cancel(actor, request_id))

    def revoke(self, actor: Actor, request_id: str) -> Outcome:
        return rendered(self.handlers.revoke(actor, request_id))

    def ack(self, actor: Actor, request_id: str, note: str = "") -> Outcome:
        """An approver (or admin) acknowledges a break-glass grant after the fact."""
        return rendered(self.handlers.ack(actor, request_id, note))

    def retry(self, actor: Actor, request_id: str) -> Outcome:
        """Retry a failed revoke now instead of waiting for the next backoff step."""
        return rendered(self.handlers.retry(actor, request_id))

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
        """Everything the scheduler does, once, waiting for the calls it starts: for the
        CLI and the tests (the plugin's first pass at start waits for none). The scheduler
        itself runs the jobs apart (`revocation_tick`, `housekeeping`, `remind_reviews`,
        `check_overdue`), and its revocation tick never waits for a call.

        Revocations go first: they are the promise that matters most. Every look is an
        index lookup: a tick with nothing due costs next to nothing.
        """
        told: list[Notice] = []
        self.provisioner.revocation_tick(notify=told.extend)
        self.provisioner.drain()
        return told + self.housekeeping() + self.remind_reviews() + self.check_overdue()

    def check_overdue(self) -> list[Notice]:
        """The scheduler's overdue job: grants past their end + ACCESS_OVERDUE_GRACE
        without a confirmed revoke; each newly overdue one is an alert for the admins.
        Reads the store only: it never waits for a revoke (overdue.py)."""
        return self.overdue.check()

    def revocation_tick(self) -> None:
        """The scheduler's revocation job: hand what is due (revokes, then grants left
        unmade) to the provisioner's pool and return at once; each call records itself
        and hands its notices to `notify`."""
        self.provisioner.revocation_tick()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the strategy calls under way to be recorded (tests, a clean stop)."""
        return self.provisioner.drain(timeout)

    def housekeeping(self) -> list[Notice]:
        """The scheduler's job for pending requests and reminders: escalations,
        time-outs, nudges, the reminder before a grant ends, follow-up hooks a restart
        left. No strategy call; the notices are for the outbox."""
        now = self.clock()
        notices: list[Notice] = []
        for pending in self.store.escalations_due(now):
            notices += self._escalate(pending.id, now)
        for pending in self.store.pending_created_before(now - self.pending_timeout):
            notices += self._time_out(pending.id)
        for pending in self.store.nudges_due(now):
            notices += self._nudge(pending.id)  # skips the ones just timed out
        for grant in self.store.expiring_unreminded(now + self.expiry_reminder):
            if grant.ending is None and self._reminder_due(grant, now):
                notices += self._remind(grant.id)
        for owed in self.store.follow_ups_due():
            self._follow_ups.submit(owed.id)  # one a restart or a failed write left
        return notices

    def check_links(self) -> LinkPass:
        """Look the links of active end_with grants up again; revoke those now closed."""
        return self._link_checks.run()

    def remind_reviews(self) -> list[Notice]:
        """The scheduler's review job: the daily reminder of break-glass grants nobody
        has acknowledged (cheap until the next one is due)."""
        return self._remind_reviews(self.clock())

    def next_revocation_at(self) -> datetime | None:
        """When the next grant is due to be taken away, so the scheduler can wake for it."""
        return self.store.next_revocation_at()

    def _claim(self, request_id: str) -> bool:
        return self.provisioner.claim(request_id)

    def _claim_current(self, request_id: str, still: Callable[[Request], bool]) -> Request | None:
        return self.provisioner.claim_current(request_id, still)

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

    def _grant(self, request: Request, render=None) -> list[Notice]:
        return self.provisioner.grant(request, render)

    def _taken_back(self, granted: Request, why: str) -> list[Notice]:
        return self.provisioner.taken_back(granted, why)

    def _revoke(self, request: Request, actor: str) -> list[Notice]:
        return self.provisioner.revoke(request, actor)

    def _record_revokes(self, results, actor: str) -> list[Notice]:
        return self.provisioner.record_revokes(results, actor)

    def _apply_extension(self, extension: Request, render=None) -> list[Notice]:
        return self.provisioner.apply_extension(extension, render)

    def _cancel_pending_extensions(self, grant: Request) -> list[Notice]:
        """When a grant ends (or its revoke failed: it is ending), its waiting extension
        requests can no longer be granted: each withdrawn and announced in one commit."""
        notices = []
        for other in self.store.extensions_of(grant.id):
            if other.status is Status.PENDING:
                notices += self._withdraw_extension(other.id, grant)
        return notices

    def _withdraw_extension(self, extension_id: str, grant: Request) -> list[Notice]:
        """Withdraw one waiting extension of `grant`, telling its requester and the
        channel (nothing if it is no longer waiting)."""
        with self.lock:
            extension = self.store.get(extension_id)
            if extension is None or extension.status is not Status.PENDING:
                return []
            note = msg.extension_withdrawn_note(grant)
            extension.cancel("bot", self.clock(), note)
            self._commit(extension, "cancelled", "bot", outcome="cancelled", detail=note)
            return self.uow.announce(msg.extension_void(extension, grant))

    # -- follow-up hooks: after_grant, after_revoke --------------------------------

    def _owe_follow_up(self, request: Request, hook: str) -> None:
        self.provisioner.owe_follow_up(request, hook)

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
            current.settle_follow_up(
                hook, self.clock(), f"{outcome}: {detail}" if detail else outcome
            )
            self._commit(current, hook, "bot", outcome=outcome, detail=detail)
            failed = error if outcome == "failed" else None
            return self.uow.announce(msg.follow_up_notices(current, told, hook, failed))

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
        return self.provisioner.call(settings, action, payload)

    def _strategy(self, settings: dict) -> Strategy:
        return self.provisioner.strategy(settings)
