"""Use cases: one method per command, plus the scheduler's jobs (`revocation_tick`,
`housekeeping`, `remind_reviews`; `tick` runs them all and waits). Strategy calls are
the provisioner's (provisioner.py); the methods here that make them delegate to it.

Each method returns an Outcome: the reply for the person who typed the command, and
notices for others (the approval channel, the requester). The drivers (plugin and
scheduler) deliver them; the service never talks to chat. Every state change is one
audit event (written first, so nothing changes unaudited) plus one store write.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import messages as msg
from .approvers import SLACK_GROUP, is_dynamic, resolve, static_members
from .audit import AuditError, AuditLog
from .domain import (
    AccessError,
    Request,
    Status,
    TransitionError,
    format_duration,
    new_id,
    normalize_handle,
)
from .follow_ups import FollowUpPool
from .history import RequestHistory
from .identity import NamedPeople, People, entry_kind
from .integrations.pagerduty import PagerDutyNotConfigured, RecordedLookups
from .integrations.slack_groups import NoSlackGroups
from .metrics import Metrics
from .notices import Notice
from .policy import (
    Decision,
    FollowUpContext,
    HookFailed,
    PolicyContext,
    PolicyError,
    PolicySet,
    Resource,
    Vote,
    approvers_problem,
    decision_problem,
    load_policies,
    refusal_problem,
    run_hook,
)
from .provisioner import (  # noqa: F401 - RETRY_* and the default are imported from here too
    DEFAULT_STRATEGY_WORKERS,
    RETRY_CAP,
    RETRY_FIRST,
    Provisioner,
)
from .store import DecisionLock, RequestStore, StoreError
from .strategies import (
    Accounts,
    Strategy,
)

log = logging.getLogger(__name__)

REVIEW_REMINDER_EVERY = timedelta(days=1)


def _log_notices(notices: list[Notice]) -> None:
    """Where background notices go when nobody delivers them (the CLI, some tests)."""
    for notice in notices:
        log.info("notice for %s %s: %s", notice.audience, notice.to, notice.text)


@dataclass(frozen=True)
class Actor:
    """Who typed a command: chat handle, platform user id, e-mail, and how to reach them."""

    handle: str
    id: str = ""
    email: str | None = None
    address: str = ""
    is_admin: bool = False

    def __post_init__(self):
        object.__setattr__(self, "handle", normalize_handle(self.handle))
        if not self.id:  # a backend without user ids (Text): the handle is the id
            object.__setattr__(self, "id", self.handle)

    def matches(self, entry: str) -> bool:
        """Does an approver entry (`@bob`, `bob`, `U024BE7LH`, `bob@acme.com`) name me?
        Only by its own kind: an id entry only matches my id, never my handle. For display
        and dry runs; authorisation compares the ids a request recorded (see identity.py)."""
        entry = str(entry).strip()
        kind = entry_kind(entry)
        if kind == "email":
            return bool(self.email) and entry.lower() == self.email.lower()
        if kind == "id":
            return bool(self.id) and entry == self.id
        return normalize_handle(entry) == self.handle


@dataclass
class Outcome:
    reply: str
    notices: list[Notice] = field(default_factory=list)
    request: Request | None = None


@dataclass
class PolicyReload:
    """What a reload did: the resources added, removed and changed, or why it failed."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    kept: str = ""  # when it failed: what stays in force
    files: int = 0
    resources: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    groups_changed: list[str] = field(default_factory=list)

    @classmethod
    def between(cls, old: PolicySet | None, new: PolicySet) -> PolicyReload:
        before = old.resources if old else {}
        after = new.resources
        old_groups = old.groups if old else {}
        return cls(
            ok=True,
            files=len(new.files),
            resources=len(after),
            added=sorted(set(after) - set(before)),
            removed=sorted(set(before) - set(after)),
            changed=sorted(
                n for n in set(before) & set(after) if before[n].summary() != after[n].summary()
            ),
            groups_changed=sorted(
                g
                for g in set(old_groups) | set(new.groups)
                if old_groups.get(g) != new.groups.get(g)
            ),
        )

    @property
    def changes(self) -> str:
        text = (
            f"added: {', '.join(self.added) or 'none'}; removed: {', '.join(self.removed) or 'none'}; "
            f"changed: {', '.join(self.changed) or 'none'}"
        )
        if self.groups_changed:
            text += f"; groups changed: {', '.join(self.groups_changed)}"
        return text

    @property
    def summary(self) -> str:
        return f"{self.files} policy file(s), {self.resources} resource(s) ({self.changes})"


@dataclass
class Evaluation:
    """A dry run of one request (`!access whatif`, `python -m accessbot test`)."""

    user: str
    resource_name: str
    duration: timedelta | None
    outcome: str  # "approve" / "deny" (by on_request), "human", or "refused" outright
    explanation: str
    resource: Resource | None = None
    request: Request | None = None  # the request it would be: approvers, channel, notes
    lookups: list[str] = field(default_factory=list)  # on-call / Slack questions asked
    notes: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)  # each hook that would run, and when
    # Refused, but the resource is known: (outcome, explanation) once the refusal is fixed.
    if_fixed: tuple[str, str] | None = None


class AccessService:
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
        self.policy_dir = Path(policy_dir)
        # The bot has its real environment: a strategy naming an unset variable (its
        # secret_env, token_env) is a load error, not a failure after a human approved.
        self.environ = os.environ if check_env else None
        self.clock = clock
        self.pending_timeout = pending_timeout
        self.pagerduty = pagerduty or PagerDutyNotConfigured()
        self.hook_timeout = hook_timeout
        self.expiry_reminder = expiry_reminder
        self.approval_reminder = approval_reminder
        self.accounts = accounts or Accounts()  # who each chat user is on GitHub, AWS, ...
        self.review_reminder_every = review_reminder_every
        self.groups = dict(groups or {})  # ACCESS_GROUPS; policy files add their GROUPS
        self.slack_groups = slack_groups or NoSlackGroups()
        self.people = people or NamedPeople()  # approver entries -> platform user ids
        self.metrics = metrics or Metrics()
        # Where notices of work done in the background (follow-up hooks) go: the plugin
        # delivers them; without one they are logged.
        self.notify = notify or _log_notices
        self.history_counts = store  # what ctx.history counts (a test file's answers in tests)
        self._follow_ups = FollowUpPool(self._run_follow_ups)
        self._review_check_at: datetime | None = None  # next tick that looks for reminders
        # One decision at a time: this process's threads, and (on a shared database) every
        # bot; the claims on strategy calls are the store's, so other bots see them too.
        self.lock = DecisionLock(store)
        # Every strategy call and its record; the scheduler's calls on one pool of
        # `strategy_workers` threads, their notices to `notify` (see provisioner.py).
        self.provisioner = Provisioner(self, strategy_workers, self.notify)
        self._inflight = self.provisioner.inflight  # requests whose strategy call is under way
        self.policies: PolicySet | None = None
        self.policy_error: PolicyError | None = None
        try:
            self.policies = load_policies(self.policy_dir, self.groups, self.environ)
        except PolicyError as exc:
            self.policy_error = exc
            log.error("policies did not load:\n%s", exc)

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

    def request(
        self,
        actor: Actor,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None = None,
    ) -> Outcome:
        resource, duration, reason, fields = self._checked_request(
            resource_name, duration, reason, fields
        )
        self._refuse_duplicate(actor, resource.name)
        request = self._new_request(actor, resource, duration, reason, fields=fields)
        return self._submit(actor, request, resource)

    def _ask_again(self, request: Request) -> str:
        """The command to ask afresh for what `request` asked, with the fields its
        resource requires now."""
        resource = self.policies.get(request.resource) if self.policies else None
        specs = resource.fields.values() if resource else ()
        return msg.ask_again(request.resource, request.duration, specs)

    def field_names(self, resource_name: str) -> tuple[str, ...]:
        """The prompt fields a resource declares (none when it is unknown)."""
        resource = self.policies.get(resource_name) if self.policies else None
        return tuple(resource.fields) if resource else ()

    def checks_at_request(self, resource_name: str) -> bool:
        """Does a request for this resource run policy code or ask another service (on
        call, Slack groups) before it is answered? Those may take seconds."""
        resource = self.policies.get(resource_name) if self.policies else None
        if resource is None:
            return False
        hooks = {"get_approvers", "on_request"} & set(resource.hooks)
        return bool(hooks) or any(is_dynamic(e) for e in resource.approvers)

    def _checked_request(
        self,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None,
    ) -> tuple[Resource, timedelta, str, dict[str, str]]:
        """What `!access request` refuses before anything is routed or stored."""
        resource = self._resource(resource_name)
        if duration is None:
            duration = resource.default_duration
        self._check_duration(resource, duration, f"!access request {resource.name}", reason)
        reason = " ".join(str(reason).split())
        if not reason:
            raise AccessError(
                f"Say why you need it: `!access request {resource.name} "
                f"{format_duration(duration)} <reason>`."
            )
        return resource, duration, reason, self._check_fields(resource, fields or {}, duration)

    def _check_fields(
        self, resource: Resource, values: Mapping[str, str], duration: timedelta
    ) -> dict[str, str]:
        """The resource's prompt fields: every required one given, every value valid."""
        unknown = sorted(set(values) - set(resource.fields))
        problems = [f"{resource.name} has no field `{msg.inert(k, 40)}`" for k in unknown]
        for spec in resource.fields.values():
            value = values.get(spec.name)
            if value is None:
                if spec.required:
                    problems.append(
                        f"{resource.name} needs `{spec.name}=...`"
                        + (f" ({msg.inert(spec.help)})" if spec.help else "")
                    )
            else:
                problem = spec.problem(str(value))
                if problem:
                    problems.append(msg.inert(problem))
        if problems:
            example = " ".join(
                f"{spec.name}=<{msg.inert(spec.help, 40) or 'value'}>"
                for spec in resource.fields.values()
                if spec.required or spec.name in values
            )
            raise AccessError(
                "; ".join(problems)
                + f". Try `!access request {resource.name} {format_duration(duration)} "
                f"{example} <reason>`."
            )
        return {name: str(values[name]) for name in resource.fields if name in values}

    def extend(
        self, actor: Actor, grant_id: str, duration: timedelta | None, reason: str
    ) -> Outcome:
        """Ask for more time on an active grant: a request of its own, routed like any."""
        grant = self._get(grant_id)
        if not grant.is_requester(actor.id, actor.handle):
            raise AccessError(f"Only {msg.who(grant.requester)} can extend {grant.id}.")
        if grant.extends:
            raise AccessError(
                f"{grant.id} is an extension request; extend the grant itself: "
                f"`!access extend {grant.extends}`."
            )
        if grant.status is not Status.ACTIVE:
            raise AccessError(
                f"{grant.id} is not an active grant ({msg.STATUS_WORDS[grant.status]}), so it "
                f"cannot be extended. Ask afresh: `!access request {grant.resource} "
                f"{format_duration(grant.duration)} <reason>`."
            )
        resource = self._resource(grant.resource)
        if resource.max_extensions == 0:
            raise AccessError(f"Extensions are turned off for {resource.name} (max_extensions: 0).")
        if grant.extensions >= resource.max_extensions:
            raise AccessError(
                f"{grant.id} was already extended {grant.extensions} time(s); "
                f"{resource.name} allows {resource.max_extensions} (max_extensions). "
                f"Ask afresh when it ends: `!access request {resource.name} <duration> <reason>`."
            )
        for other in self.store.extensions_of(grant.id):
            if other.status is Status.PENDING:
                raise AccessError(
                    f"An extension of {grant.id} is already waiting: {other.id}. "
                    f"Withdraw it with `!access cancel {other.id}`."
                )
        if duration is None:
            duration = grant.duration
        self._check_duration(resource, duration, f"!access extend {grant.id}", reason)
        reason = " ".join(str(reason).split()) or f"more time on {grant.id}"
        request = self._new_request(actor, resource, duration, reason, extends=grant)
        return self._submit(actor, request, resource)

    def _check_duration(
        self, resource: Resource, duration: timedelta, command: str, reason: str
    ) -> None:
        if resource.durations and duration not in resource.durations:
            instead = resource.nearest_duration(duration)
            raise AccessError(
                f"{resource.name} can be asked for {msg.durations_text(resource.durations)} "
                f"only (its durations); you asked for {msg.asked(duration)}. Try "
                f"`{command} {format_duration(instead)} {msg.inert(reason, 80) or '<reason>'}`"
            )
        if duration <= timedelta(0):
            raise AccessError(
                f"A duration must be longer than 0s; {resource.name} allows up to "
                f"{format_duration(resource.max_duration)}, e.g. "
                f"`{command} {format_duration(resource.default_duration)} <reason>`"
            )
        if duration > resource.max_duration:
            raise AccessError(
                f"{resource.name} allows at most {format_duration(resource.max_duration)}; "
                f"you asked for {msg.asked(duration)}. Try "
                f"`{command} {format_duration(resource.max_duration)} {msg.inert(reason, 80) or '<reason>'}`"
            )

    def _refuse_duplicate(self, actor: Actor, resource: str) -> None:
        """One pending request and one grant per person and resource: extend instead."""
        now = self.clock()
        for other in self.store.live_of(actor.handle):
            if other.resource != resource or other.extends:
                continue
            if not other.is_requester(actor.id, actor.handle):
                continue
            if other.status is Status.PENDING:
                raise AccessError(
                    f"You already asked for {resource}: request {other.id} is waiting for "
                    f"approval. Withdraw it with `!access cancel {other.id}`."
                )
            if other.status in (Status.APPROVED, Status.ACTIVE, Status.REVOKE_FAILED):
                left = format_duration(other.remaining(now))
                raise AccessError(
                    f"You already have {resource}: grant {other.id}, {left} left. Need more "
                    f"time? `!access extend {other.id} {format_duration(other.duration)} <reason>`."
                )

    def _new_request(
        self,
        actor: Actor,
        resource: Resource,
        duration: timedelta,
        reason: str,
        extends: Request | None = None,
        fields: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> Request:
        now = self.clock()
        request = Request(
            id=request_id or self._unique_id(),
            requester=actor.handle,
            requester_id=actor.id,
            requester_address=actor.address,
            requester_email=actor.email,
            resource=resource.name,
            duration=duration,
            reason=reason,
            created_at=now,
            channel=resource.channel,
            approvers=list(resource.approvers),
            approver_entries=list(resource.approvers),
            fields=dict(extends.fields if extends else fields or {}),
            approvals_required=resource.approvals_required,
            allow_self_approval=resource.allow_self_approval,
            strategy=dict(extends.strategy if extends else resource.strategy_settings),
            policy_file=resource.file,
            extends=extends.id if extends else None,
            next_nudge_at=now + self.approval_reminder,
            escalation=[level.to_dict() for level in resource.escalation],
            next_escalation_at=(
                now + resource.escalation[0].after if resource.escalation else None
            ),
        )
        if extends:
            request.notes.append(
                f"extends grant {extends.id}, which has "
                f"{format_duration(extends.remaining(now))} left (ends {msg.when(extends.expires_at)})"
            )
        request.record(now, "requested", actor.handle, reason)
        return request

    def _submit(self, actor: Actor, request: Request, resource: Resource) -> Outcome:
        """Route a new request, let the policy decide if it will, store and announce it."""
        now = request.created_at
        # One set of PagerDuty lookups per request: its failures go on this request's card.
        on_call = self.pagerduty.lookups()
        ctx = self._context(PolicyContext, on_call, request, resource, now)
        self._route(request, resource, ctx)
        self._note_unreachable_quorum(actor, request)
        decision = self._policy_decision(request, resource, ctx)
        request.notes += [f"PagerDuty check failed: {reason}" for reason in on_call.failures]
        noun = "Extension request" if request.extends else "Request"

        with self.lock:
            if not request.extends:
                self._refuse_duplicate(actor, resource.name)  # again, under the lock
            self._commit(
                request,
                "requested",
                actor.handle,
                outcome="pending",
                detail="; ".join(request.notes),
                duration=format_duration(request.duration),
                reason=request.reason,
                extends=request.extends,
                fields=request.fields or None,
                approvers=", ".join(request.approvers),
            )
            if decision is not None:
                request.decided_by = "policy"
                request.decision_note = decision.reason
                verdict = "approved" if decision.approve else "denied"
                request.auto_decision = f"{verdict}: {decision.reason}"
                # Break-glass: whatever a policy approves, a human reviews afterwards.
                request.review_required = decision.approve
                request.move(
                    Status.APPROVED if decision.approve else Status.DENIED,
                    now,
                    "policy",
                    decision.reason,
                )
                self._commit(request, verdict, "policy", outcome=verdict, detail=decision.reason)
                if decision.approve:
                    self._inflight.add(request.id)  # ours to grant; the scheduler keeps off
        if decision is not None and not decision.approve:
            stays = f" {self._grant_stays(request.extends)}" if request.extends else ""
            return Outcome(
                f"{noun} {request.id} for {resource.name} was denied by policy: "
                f"{msg.inert(decision.reason)}{stays}",
                [],
                request,
            )
        if decision is not None:
            return self._auto_granted(request)

        card = Notice("channel", request.channel, msg.card_body(request), request, kind="card")
        what = (
            f"{format_duration(request.duration)} more on {request.extends}"
            if request.extends
            else f"{resource.name} for {format_duration(request.duration)}"
        )
        reply = (
            f"{noun} {request.id} created: {what}. "
            f"Waiting for {self._needed_text(request)} in {request.channel}. "
            f"Withdraw it with `!access cancel {request.id}`; "
            f"see it with `!access show {request.id}`."
        )
        return Outcome(reply, [card], request)

    def _auto_granted(self, request: Request) -> Outcome:
        if request.extends:
            notices = self._apply_extension(request)
            grant = self.store.get(request.extends)
            done = self.store.get(request.id)
            if done and done.status is Status.EXTENDED:
                alert = (
                    f"BREAK-GLASS EXTENSION: {msg.who(request.requester)} got "
                    f"{format_duration(request.duration)} more on {request.resource} (grant "
                    f"{grant.id}, now until {msg.when(grant.expires_at)}), reason: "
                    f"{msg.inert(request.reason)}. Approved by policy: "
                    f"{msg.inert(request.decision_note)}."
                )
                return Outcome(
                    f"Extension {request.id} approved by policy: {grant.id} now ends "
                    f"{msg.when(grant.expires_at)}.",
                    [Notice("channel", request.channel, alert, request, "alert")],
                    done,
                )
            return Outcome(
                f"Extension {request.id} was approved by policy but not applied: "
                f"{msg.inert(done.last_error if done else '')}",
                [n for n in notices if n.audience == "channel"],
                done,
            )
        notices = self._grant(request)
        request = self.store.get(request.id) or request
        if request.status is Status.ACTIVE:
            alert = (
                f"BREAK-GLASS: {msg.who(request.requester)} got {request.resource} for "
                f"{format_duration(request.duration)} (until {msg.when(request.expires_at)}), "
                f"reason: {msg.inert(request.reason)}. Approved by policy: "
                f"{msg.inert(request.decision_note)}. Request {request.id}; end it with "
                f"`!access revoke {request.id}`. An approver must review it: "
                f"`!access ack {request.id} [note]`."
            )
            reply = (
                f"Request {request.id} approved by policy ({msg.inert(request.decision_note)}): "
                f"you have {request.resource} until {msg.when(request.expires_at)}. "
                f"End it early with `!access revoke {request.id}`."
            )
            return Outcome(
                reply, [Notice("channel", request.channel, alert, request, "alert")], request
            )
        if request.status is Status.APPROVED:
            return Outcome(
                f"Request {request.id} was approved by policy, but the bot could not record "
                "the grant, so it took it back; you get it as soon as the bot's disk can be "
                "written. The approvers were told.",
                notices,
                request,
            )
        return Outcome(
            f"Request {request.id} was approved by policy, but the grant failed: "
            f"{msg.inert(request.last_error)}. The approvers in {request.channel} were told.",
            [n for n in notices if n.audience == "channel"],
            request,
        )

    def _route(self, request: Request, resource: Resource, ctx: PolicyContext) -> None:
        """Who may decide: get_approvers' answer, else the listed approvers, with every
        group-like entry expanded now and kept on the request."""
        if "get_approvers" in resource.hooks:
            try:
                found = run_hook(
                    resource,
                    "get_approvers",
                    request.view(),
                    ctx,
                    self.hook_timeout,
                    returns=approvers_problem,
                )
                entries = [str(e).strip() for e in found if str(e).strip()]
                if entries and self._expand(request, entries, ctx):
                    return
                note = f"{resource.file}: get_approvers named nobody"
            except HookFailed as exc:
                note = str(exc)
            log.warning("routing fell back to the listed approvers: %s", note)
            request.notes.append(f"get_approvers failed ({note}); routed to the listed approvers")
        if request.approver_entries and self._expand(request, request.approver_entries, ctx):
            return
        failures = [f"PagerDuty check failed: {f}" for f in getattr(ctx.pagerduty, "failures", [])]
        why = "; ".join(request.notes + failures) or "no approvers are listed"
        raise AccessError(
            f"Nobody can approve {resource.name} right now ({msg.inert(why)}). "
            "Ask an admin to check the policy file."
        )

    def _expand(self, request: Request, entries: list[str], ctx: PolicyContext) -> bool:
        """Resolve approver entries onto the request; False when they name nobody."""
        groups = self.policies.groups if self.policies else {}
        resolved = resolve(entries, groups, ctx.pagerduty, self.slack_groups)
        request.notes += resolved.notes
        approvers, ids = self._identify(resolved.approvers, request.notes)
        if not approvers:
            return False
        request.approvers = approvers
        request.approver_ids = ids
        request.approver_entries = list(entries)
        request.approver_groups = resolved.groups
        return True

    def _note_unreachable_quorum(self, actor: Actor, request: Request) -> None:
        """Say on the card when the routed approvers cannot reach the quorum (the
        requester never counts toward one of two or more)."""
        others = (
            request.approvers
            if request.self_approval_allowed
            else self._approvers_other_than(actor, request)
        )
        if len(others) < request.approvals_required:
            request.notes.append(
                f"needs {request.approvals_required} approvals but only {len(others)} "
                f"approver(s) other than the requester can decide "
                f"({msg.approvers_text(others)}); ask an admin to fix the approvers"
            )

    def _policy_decision(self, request: Request, resource: Resource, ctx: PolicyContext):
        if "on_request" not in resource.hooks:
            return None
        try:
            decision = run_hook(
                resource,
                "on_request",
                request.view(),
                ctx,
                self.hook_timeout,
                returns=decision_problem,
            )
        except HookFailed as exc:
            log.warning("on_request failed, falling back to human approval: %s", exc)
            request.notes.append(f"policy check failed, needs a human: {exc}")
            return None
        return decision

    # -- deciding ---------------------------------------------------------------

    def approve(self, actor: Actor, request_id: str, comment: str = "") -> Outcome:
        comment = " ".join(comment.split())
        self._vet_vote(actor, request_id, "approve", comment)
        with self.lock:
            request = self._get(request_id)
            self._check_approver(actor, request, "approve")
            now = self.clock()
            done = request.add_approval(actor.handle, now, comment, actor.id)
            if not done:
                self._commit(request, "approval", actor.handle, outcome="pending", detail=comment)
                left = request.approvals_required - len(request.approvals)
                reply = (
                    f"Your approval of {request.id} is recorded "
                    f"({len(request.approvals)} of {request.approvals_required}); "
                    f"it needs {left} more."
                )
                return Outcome(
                    reply,
                    [Notice("channel", request.channel, msg.card_body(request), request, "card")],
                    request,
                )
            self._commit(request, "approved", actor.handle, outcome="approved", detail=comment)
            self._inflight.add(request.id)  # ours to grant; the scheduler keeps off
        if request.extends:
            notices = self._apply_extension(request)
            request = self.store.get(request.id) or request
            grant = self.store.get(request.extends)
            if request.status is Status.EXTENDED:
                reply = (
                    f"Approved {request.id}: {msg.who(request.requester)}'s grant {grant.id} on "
                    f"{request.resource} now ends {msg.when(grant.expires_at)}."
                )
            else:
                reply = f"Approved {request.id}, but it was not applied: {msg.inert(request.last_error)}"
            return Outcome(reply, notices, request)
        try:
            notices = self._grant(request)
        except StoreError as exc:
            # The approval is committed; only recording the grant failed. Say so: the
            # scheduler finishes it (same start, same Idempotency-Key) once the store answers.
            log.error("approved %s, but its grant could not be recorded: %s", request.id, exc)
            return Outcome(
                f"Your approval of {request.id} is recorded: it is approved. The bot's "
                f"database stopped answering while the grant was made ({msg.inert(str(exc))}); "
                "the bot finishes the grant as soon as it answers again. Nothing more to do "
                "for you.",
                [],
                request,
            )
        request = self.store.get(request.id) or request
        if request.status is Status.ACTIVE:
            reply = (
                f"Approved {request.id}: {msg.who(request.requester)} has {request.resource} "
                f"for {format_duration(request.duration)}, until {msg.when(request.expires_at)}."
            )
        elif request.status is Status.APPROVED:
            reply = (
                f"Your approval of {request.id} is recorded: it is approved. But the bot could "
                "not record the grant, so it took the access back at once; it grants it as "
                "soon as its audit log and store can be written. Nothing more to do for you; "
                "an admin must check the bot's disk."
            )
        else:
            reply = (
                f"Approved {request.id}, but the grant failed: {msg.inert(request.last_error)}. "
                f"{msg.who(request.requester)} was told; they can request again once it is fixed."
            )
        return Outcome(reply, notices, request)

    def deny(self, actor: Actor, request_id: str, reason: str = "") -> Outcome:
        reason = " ".join(reason.split())
        self._vet_vote(actor, request_id, "deny", reason)
        with self.lock:
            request = self._get(request_id)
            self._check_approver(actor, request, "deny")
            now = self.clock()
            request.move(Status.DENIED, now, actor.handle, reason)
            request.decided_by = actor.handle
            request.decision_note = reason
            self._commit(request, "denied", actor.handle, outcome="denied", detail=reason)
        because = f": {msg.inert(reason)}" if reason else ""
        if request.extends:
            return self._extension_denied(actor, request, because)
        notices = [
            self._to_requester(
                request,
                f"Your request {request.id} for {request.resource} was denied by "
                f"{msg.who(actor.handle)}{because}.",
            ),
            Notice(
                "channel",
                request.channel,
                f"Request {request.id} ({request.resource} for {msg.who(request.requester)}) "
                f"denied by {msg.who(actor.handle)}{because}.",
                request,
            ),
        ]
        return Outcome(
            f"Denied {request.id}; {msg.who(request.requester)} was told.", notices, request
        )

    def _vet_vote(self, actor: Actor, request_id: str, verb: str, comment: str) -> None:
        """Before an approval or denial counts: who may decide (the same checks as under
        the lock), then the policy's on_approve / on_deny, outside the lock so a slow hook
        holds up no other decision. A refusal (or a hook that raises or overruns: fail
        closed) is audited and raised to the person; the request stays as it was."""
        request = self._get(request_id)
        self._check_approver(actor, request, verb)
        resource = self.policies.get(request.resource) if self.policies else None
        refusal = self._vote_refusal(resource, request, actor, verb, comment)
        if refusal is None:
            return
        self._audit(
            "approval_refused" if verb == "approve" else "denial_refused",
            actor.handle,
            request_id=request.id,
            user=request.requester,
            resource=request.resource,
            outcome=request.status.value,
            detail=refusal,
        )
        raise AccessError(msg.vote_refused(verb, request.id, refusal))

    def _vote_refusal(
        self, resource: Resource | None, request: Request, actor: Actor, verb: str, comment: str
    ) -> str | None:
        """Why the policy's on_approve / on_deny refuses this person's decision; None when
        it counts (no hook, or the hook returned None)."""
        hook = "on_approve" if verb == "approve" else "on_deny"
        if resource is None or hook not in resource.hooks:
            return None
        vote = Vote(actor.handle, actor.email, comment, actor.id)
        ctx = self._context(
            PolicyContext, self.pagerduty.lookups(), request, resource, self.clock()
        )
        try:
            answer = run_hook(
                resource,
                hook,
                request.view(),
                ctx,
                self.hook_timeout,
                between=(vote,),
                returns=refusal_problem,
            )
        except HookFailed as exc:
            log.warning("%s failed, so it refuses: %s", hook, exc)
            return f"the policy check failed, so it refuses (fail closed): {exc}"
        return None if answer is None else answer.reason or f"refused by {hook}"

    def _context(self, kind, on_call, request: Request, resource: Resource, now: datetime):
        """A hook's `ctx` for this request: PagerDuty lookups, history counts, the time."""
        history = RequestHistory(self.history_counts, request.requester, request.resource, now)
        return kind(on_call, now, logging.getLogger(f"policy.{resource.file}"), history)

    def _extension_denied(self, actor: Actor, extension: Request, because: str) -> Outcome:
        """A denied extension leaves its grant as it was: say so, with the grant's end."""
        grant_id = extension.extends
        stays = self._grant_stays(grant_id)
        more = f"{format_duration(extension.duration)} more on grant {grant_id}"
        notices = [
            self._to_requester(
                extension,
                f"Your extension request {extension.id} ({more}, {extension.resource}) was "
                f"denied by {msg.who(actor.handle)}{because}. {stays}",
            ),
            Notice(
                "channel",
                extension.channel,
                f"Extension request {extension.id} ({more}, {extension.resource} for "
                f"{msg.who(extension.requester)}) denied by {msg.who(actor.handle)}{because}. "
                f"{stays}",
                extension,
            ),
        ]
        return Outcome(
            f"Denied extension {extension.id}; {msg.who(extension.requester)} was told. {stays}",
            notices,
            extension,
        )

    def _grant_stays(self, grant_id: str | None) -> str:
        """What a refused extension leaves of its grant."""
        grant = self.store.get(grant_id) if grant_id else None
        if grant is None or not grant.holds_access:
            return f"Grant {grant_id} has ended."
        return f"Grant {grant_id} stays active until {msg.when(grant.expires_at)}."

    def cancel(self, actor: Actor, request_id: str) -> Outcome:
        with self.lock:
            request = self._get(request_id)
            if not request.is_requester(actor.id, actor.handle):
                raise AccessError(self._not_yours_to_cancel(actor, request))
            if request.holds_access:
                raise AccessError(
                    f"{request.id} is already active; end it with `!access revoke {request.id}`."
                )
            request.move(Status.CANCELLED, self.clock(), actor.handle)
            self._commit(request, "cancelled", actor.handle, outcome="cancelled")
        notice = Notice(
            "channel",
            request.channel,
            f"Request {request.id} ({request.resource} for {msg.who(request.requester)}) "
            "was cancelled by the requester; nothing to approve.",
            request,
        )
        return Outcome(f"Cancelled {request.id}.", [notice], request)

    def _not_yours_to_cancel(self, actor: Actor, request: Request) -> str:
        """Someone else's request: what this person can do about it, in its state."""
        approver = self._is_approver(actor, request)
        if request.holds_access and (approver or actor.is_admin):
            return (
                f"{request.id} is an active grant, not a pending request; end it with "
                f"`!access revoke {request.id}`."
            )
        only = f"Only the requester, {msg.who(request.requester)}, can cancel {request.id}"
        if request.holds_access:
            return (
                f"{only}; it is an active grant, which only {msg.who(request.requester)}, "
                f"the approvers of {request.resource} or an admin can end."
            )
        if request.status is Status.PENDING and approver:
            return f"{only}; as an approver you can deny it: `!deny {request.id} <reason>`."
        return f"{only}."

    def revoke(self, actor: Actor, request_id: str) -> Outcome:
        with self.lock:
            request = self._get(request_id)
            if not (actor.is_admin or self._involved(actor, request)):
                raise AccessError(
                    f"Only {msg.who(request.requester)}, the approvers of {request.resource} "
                    f"or an admin can revoke {request.id}."
                )
            if request.status is Status.PENDING:
                raise AccessError(
                    f"{request.id} is not granted yet; withdraw it with `!access cancel {request.id}`."
                )
            if not request.holds_access:
                raise TransitionError(
                    f"{request.id} holds no access ({msg.STATUS_WORDS[request.status]}); "
                    f"see `!access show {request.id}`"
                )
            if not self._claim(request.id):
                raise AccessError(f"{request.id} is being revoked or extended right now.")
            request.ending = "revoked"
            request.record(self.clock(), "revoke_requested", actor.handle)
            try:
                self._commit(request, "revoke_requested", actor.handle, outcome="revoking")
            except BaseException:
                self._inflight.discard(request.id)
                raise
        notices = self._revoke(request, actor.handle)
        request = self.store.get(request.id) or request
        if request.status is Status.REVOKED:
            reply = f"Revoked {request.id}: {msg.who(request.requester)} no longer has {request.resource}."
        else:
            reply = (
                f"The revoke of {request.id} failed: {msg.inert(request.last_error)}. "
                f"It is retried automatically (next at {msg.when(request.next_retry_at)})."
            )
        return Outcome(reply, notices, request)

    # -- break-glass review ---------------------------------------------------------

    def ack(self, actor: Actor, request_id: str, note: str = "") -> Outcome:
        """An approver (or admin) acknowledges a break-glass grant after the fact."""
        note = " ".join(note.split())
        with self.lock:
            request = self._get(request_id)
            if not (actor.is_admin or self._is_approver(actor, request)):
                raise AccessError(
                    f"Only the approvers of {request.resource} "
                    f"({msg.approvers_text(request.approvers)}) or an admin can acknowledge "
                    f"{request.id}."
                )
            if request.is_requester(actor.id, actor.handle) and request.review_required:
                others = msg.approvers_text(self._approvers_other_than(actor, request))
                raise AccessError(
                    f"You cannot review your own break-glass grant {request.id}; "
                    f"{others if others != 'nobody' else 'another approver'} must."
                )
            request.acknowledge(actor.handle, self.clock(), note)
            self._commit(request, "reviewed", actor.handle, outcome="reviewed", detail=note)
        because = f": {msg.inert(note)}" if note else ""
        notice = Notice(
            "channel",
            request.channel,
            f"Break-glass grant {request.id} ({request.resource} for "
            f"{msg.who(request.requester)}) was reviewed by {msg.who(actor.handle)}{because}.",
            request,
        )
        return Outcome(
            f"Acknowledged break-glass grant {request.id} ({request.resource} for "
            f"{msg.who(request.requester)}). Thank you.",
            [notice],
            request,
        )

    def review(self, actor: Actor) -> str:
        """The break-glass grants still waiting for a human to acknowledge them."""
        waiting = self.store.awaiting_review()
        if not actor.is_admin:
            if not self._is_any_approver(actor):
                raise AccessError(
                    "`!access review` is for approvers and admins; see yours with `!access mine`."
                )
            waiting = [r for r in waiting if self._is_approver(actor, r)]
        if not waiting:
            return "No break-glass grants are waiting for review."
        return msg.review_list(waiting)

    def _remind_reviews(self, now: datetime) -> list[Notice]:
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
            reminded = []
            with self.lock:
                for request in (r for r in waiting if r.channel == channel):
                    current = self.store.get(request.id)
                    if current is None or not current.awaits_review:
                        continue
                    current.review_reminded_at = now
                    self._commit(
                        current,
                        "review_reminded",
                        "scheduler",
                        outcome="awaiting_review",
                        detail=f"in {channel}",
                    )
                    reminded.append(current)
            if reminded:
                notices.append(
                    Notice("channel", channel, msg.review_reminder(reminded), None, "alert")
                )
        self._review_check_at = next_check
        return notices

    def retry(self, actor: Actor, request_id: str) -> Outcome:
        """Retry a failed revoke now instead of waiting for the next backoff step.

        A failed grant is not retried: it is final (nothing was granted) and the
        requester asks again, so that nobody gets access long after the approval.
        """
        if not actor.is_admin:
            raise AccessError(
                "Only bot admins (BOT_ADMINS) can retry a revoke; failed revokes are also "
                "retried automatically."
            )
        with self.lock:
            request = self._get(request_id)
            if request.status is Status.GRANT_FAILED:
                raise AccessError(
                    f"The grant of {request.id} failed and that is final: nothing was granted. "
                    f"{msg.who(request.requester)} can ask again with {self._ask_again(request)}."
                )
            if request.status is not Status.REVOKE_FAILED:
                raise AccessError(
                    f"{request.id} has no failed revoke to retry "
                    f"({msg.STATUS_WORDS[request.status]}); `!access retry` is for a revoke "
                    f"that failed. See `!access show {request.id}`."
                )
            if not self._claim(request.id):
                raise AccessError(f"{request.id} is being revoked right now.")
            request.record(self.clock(), "retry_requested", actor.handle)
            try:
                self._commit(request, "revoke_retry", actor.handle, outcome="retrying")
            except BaseException:
                self._inflight.discard(request.id)
                raise
        notices = self._revoke(request, actor.handle)
        request = self.store.get(request.id) or request
        if request.holds_access:
            reply = (
                f"The retry of {request.id} failed again (attempt {request.revoke_attempts}): "
                f"{msg.inert(request.last_error)}. Next automatic retry at "
                f"{msg.when(request.next_retry_at)}."
            )
        else:
            reply = (
                f"Retried {request.id}: the revoke worked; {msg.who(request.requester)} no "
                f"longer has {request.resource}."
            )
        return Outcome(reply, notices, request)

    def remember_card(self, request_id: str, ref: dict) -> None:
        """Note where a chat backend posted the request's card, so later events update it.

        Presentation, not a state change: one store write, no audit event. A request that
        already finished keeps its archived record as it was.
        """
        with self.lock:
            request = self.store.get(request_id)
            if request is None or request.is_final or request.card_ref == ref:
                return
            request.card_ref = dict(ref)
            self.store.save(request)

    # -- reading ----------------------------------------------------------------

    def show(self, actor: Actor, request_id: str) -> str:
        request = self._get(request_id)
        if not (actor.is_admin or self._involved(actor, request)):
            raise AccessError(
                f"Only the requester, the approvers of {request.resource} and admins can see "
                f"{request.id}. Your own requests: `!access mine`."
            )
        return msg.show(request, self.clock())

    def mine(self, actor: Actor) -> str:
        now = self.clock()
        own = [
            r for r in self.store.live_of(actor.handle) if r.is_requester(actor.id, actor.handle)
        ]
        if not own:
            return "You have no pending requests or active grants. Ask with `!access request <resource> [duration] <reason>`; see `!access resources`."
        return "Your requests and grants:\n" + "\n".join(
            f"- {msg.request_line(r, now)}" for r in own
        )

    def list_live(self, actor: Actor) -> str:
        now = self.clock()
        live = self.store.live()
        if not actor.is_admin:
            if not self._is_any_approver(actor):
                raise AccessError(
                    "`!access list` is for approvers and admins; see yours with `!access mine`."
                )
            live = [r for r in live if self._is_approver(actor, r)]
        if not live:
            return "No pending requests or active grants."
        return "Pending requests and active grants:\n" + "\n".join(
            f"- {msg.request_line(r, now)}" for r in live
        )

    def resources(self) -> str:
        policies = self._policies()
        lines = ["Requestable resources (`!access request <resource> [duration] <reason>`):"]
        for name in policies.names():
            res = policies.resources[name]
            approvers = msg.approvers_text(res.approvers) if res.approvers else "chosen by policy"
            if "get_approvers" in res.hooks and res.approvers:
                approvers += " (or chosen by policy)"
            lines.append(
                f"- {name}: {res.description or 'no description'}. Max "
                f"{format_duration(res.max_duration)}, default "
                f"{format_duration(res.default_duration)}; approvers: {approvers}"
                + (f" ({res.approvals_required} needed)" if res.approvals_required > 1 else "")
                + f"; channel {res.channel}; grants via {res.strategy.describe()}"
                + ("; can auto-approve" if "on_request" in res.hooks else "")
                + (f"; durations: {msg.durations_text(res.durations)}" if res.durations else "")
                + (
                    f"; escalates after {format_duration(res.escalation[0].after)}"
                    if res.escalation
                    else ""
                )
                + msg.field_hints(res.fields.values())
            )
        return "\n".join(lines)

    def reload(self, actor: Actor) -> str:
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can reload policies.")
        result = self.reload_policies(actor.handle)
        if not result.ok:
            return (
                f"Reload failed, nothing changed ({result.kept}). Fix these and run "
                "`!access reload` again:\n" + "\n".join(f"- {e}" for e in result.errors)
            )
        return (
            f"Reloaded {result.summary}. Requests already made keep the rules they were made under."
        )

    def reload_policies(self, by: str) -> PolicyReload:
        """Load the policy files again, all or nothing, and say what changed.

        `!access reload` and the file watcher both come here. Requests and grants already
        made keep their approvers and strategy (copied onto each request), so nothing
        active is touched: a removed resource's grants still expire and are revoked.
        """
        try:
            new = load_policies(self.policy_dir, self.groups, self.environ)
        except PolicyError as exc:
            self._audit("policy_reload_failed", by, outcome="failed", detail="; ".join(exc.errors))
            # The files on disk are not what runs: the standing-access sweep waits.
            self.policy_error = exc
            kept = (
                f"the {len(self.policies.resources)} resource(s) already loaded stay in force"
                if self.policies
                else "no policies are loaded"
            )
            return PolicyReload(ok=False, errors=list(exc.errors), kept=kept)
        with self.lock:
            old = self.policies
            self.policies = new
            self.policy_error = None
        result = PolicyReload.between(old, new)
        self._audit("policy_reloaded", by, outcome="ok", detail=result.changes)
        return result

    # -- dry runs -------------------------------------------------------------------

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
        resource = self._resource(resource_name)
        groups = self.policies.groups if self.policies else {}
        if not (
            actor.is_admin
            or any(self._names(actor, a) for a in static_members(resource.approvers, groups))
        ):
            raise AccessError(
                f"`!access whatif` is for admins and the approvers of {resource.name} "
                f"({msg.approvers_text(resource.approvers)})."
            )
        return msg.whatif(self.evaluate(target, resource_name, duration, reason, fields))

    def evaluate(
        self,
        target: Actor,
        resource_name: str,
        duration: timedelta | None = None,
        reason: str = "",
        fields: Mapping[str, str] | None = None,
    ) -> Evaluation:
        """Run the checks, routing and hooks a request would go through, without storing,
        auditing or calling a strategy. On-call and Slack lookups are real (or whatever
        the injected checkers answer) and each is listed with where its answer came from."""
        typed = " ".join(str(reason).split())
        try:
            resource, asked, duration, fields, refusal = self._dry_run_request(
                resource_name, duration, typed, fields
            )
        except AccessError as exc:
            return Evaluation(target.handle, resource_name, duration, "refused", str(exc))
        reason = typed or "what-if check"  # what hooks see when no reason was given
        evaluation = Evaluation(target.handle, resource.name, asked, "human", "", resource)
        try:
            self._refuse_duplicate(target, resource.name)
        except AccessError as exc:
            evaluation.notes.append(f"as things stand it would be refused: {exc}")
        request = self._new_request(
            target, resource, duration, reason, fields=fields, request_id="whatif"
        )
        on_call = RecordedLookups(self.pagerduty)
        ctx = self._context(PolicyContext, on_call, request, resource, request.created_at)
        evaluation.request = request
        try:
            self._route(request, resource, ctx)
        except AccessError as exc:
            evaluation.outcome, evaluation.explanation = "refused", str(exc)
        if evaluation.outcome != "refused":
            self._note_unreachable_quorum(target, request)
            notes_before = len(request.notes)
            decision = self._policy_decision(request, resource, ctx)
            if isinstance(decision, Decision):
                evaluation.outcome = "approve" if decision.approve else "deny"
                evaluation.explanation = decision.reason
            elif "on_request" not in resource.hooks:
                evaluation.explanation = "no on_request hook: the approvers decide"
            elif len(request.notes) > notes_before:
                evaluation.explanation = "on_request failed, so the approvers decide (see the note)"
            else:
                evaluation.explanation = "on_request returned None: the approvers decide"
        request.notes += [f"PagerDuty check failed: {f}" for f in on_call.failures]
        if refusal:
            evaluation.if_fixed = (evaluation.outcome, evaluation.explanation)
            evaluation.outcome, evaluation.explanation = "refused", refusal
        # The hooks of the request as it would go (once fixed, for one refused here).
        going = evaluation.if_fixed[0] if evaluation.if_fixed else evaluation.outcome
        evaluation.hooks = msg.hooks_that_run(resource, going, self.pending_timeout)
        evaluation.lookups = list(on_call.lines)
        source = getattr(self.slack_groups, "source", "")
        evaluation.lookups += [
            f"members of {entry}? {', '.join(members) or 'nobody'}"
            + (f" ({source})" if source else "")
            for entry, members in request.approver_groups.items()
            if entry.startswith(SLACK_GROUP)
        ]
        return evaluation

    def evaluate_vote(
        self, evaluation: Evaluation, voter: Actor, verb: str, comment: str = ""
    ) -> str | None:
        """A dry run of one approver's `!approve` (verb "approve") or `!deny` of the
        evaluated request: why it would not count (not an approver, or refused by
        on_approve / on_deny), or None when it would."""
        request, resource = evaluation.request, evaluation.resource
        if request is None or evaluation.outcome != "human":
            return f"the request would not wait for the approvers ({evaluation.outcome})"
        try:
            self._check_approver(voter, request, verb)
        except AccessError as exc:
            return str(exc)
        return self._vote_refusal(resource, request, voter, verb, " ".join(comment.split()))

    def _dry_run_request(
        self,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None,
    ) -> tuple[Resource, timedelta, timedelta, dict[str, str], str]:
        """(resource, duration asked, duration to go on with, fields, refusal) for a dry
        run. Refused for a resource that exists, it goes on as if fixed (a duration the
        resource allows, the valid fields), to show who would decide and what the hooks
        would say; for one that does not, the refusal is raised."""
        try:
            resource, duration, _, fields = self._checked_request(
                resource_name, duration, reason or "<reason>", fields
            )
            return resource, duration, duration, fields, ""
        except AccessError as exc:
            resource = self.policies.get(resource_name) if self.policies else None
            if resource is None:
                raise
            asked = resource.default_duration if duration is None else duration
            fixed = asked if asked > timedelta(0) else resource.default_duration
            valid = {
                name: str(value)
                for name, value in (fields or {}).items()
                if name in resource.fields and not resource.fields[name].problem(str(value))
            }
            return resource, asked, resource.nearest_duration(fixed), valid, str(exc)

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
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can read the audit log.")
        unknown = []
        for term in terms or []:
            # A bare word is a resource if one is called that, else a request id if one
            # exists, else a user.
            if self.policies and self.policies.get(term) and not resource:
                resource = term
            elif self.store.exists(term.lower()) and not request_id:
                request_id = term.lower()
            elif not user:
                user = term
            else:
                unknown.append(term)
        if unknown:
            names = self.policies.names() if self.policies else []
            raise AccessError(msg.audit_not_understood(unknown, user, names))
        start = self.clock() - since if since else None
        records = self.audit.query(
            user=normalize_handle(user) if user else None,
            resource=resource,
            request_id=request_id,
            since=start,
            limit=limit,
        )
        if not records:
            return "No audit events match."
        return f"Audit events (newest last, {len(records)} shown):\n" + "\n".join(
            f"- {msg.audit_line(r)}" for r in records
        )

    def verify_audit(self, actor: Actor) -> str:
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can verify the audit log.")
        return str(self.audit.verify())

    # -- the scheduler's work -----------------------------------------------------

    def tick(self) -> list[Notice]:
        """Everything the scheduler does, once, waiting for the calls it starts: for the
        CLI, the tests and the plugin's first pass at start. The scheduler itself runs the
        three jobs apart (`revocation_tick`, `housekeeping`, `remind_reviews`), and its
        revocation tick never waits for a call.

        Revocations go first: they are the promise that matters most. Every look is an
        index lookup: a tick with nothing due costs next to nothing.
        """
        told: list[Notice] = []
        self.provisioner.revocation_tick(notify=told.extend)
        self.provisioner.drain()
        return told + self.housekeeping() + self.remind_reviews()

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
        left. No strategy call; the notices are for the courier."""
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

    def _reminder_due(self, request: Request, now: datetime) -> bool:
        if request.reminder_sent or not request.expires_at or not request.granted_at:
            return False
        if request.expires_at - request.granted_at <= 2 * self.expiry_reminder:
            return False
        return request.expires_at - self.expiry_reminder <= now < request.expires_at

    def _remind(self, request_id: str) -> list[Notice]:
        """Tell the requester once, a little before the end, how to extend or give back."""
        with self.lock:
            request = self.store.get(request_id)
            if not request or request.status is not Status.ACTIVE or request.reminder_sent:
                return []
            request.reminder_sent = True
            request.record(self.clock(), "expiry_reminder", "scheduler")
            self._commit(request, "expiry_reminder", "scheduler", outcome="active")
        left = format_duration(request.remaining(self.clock()))
        return [
            self._to_requester(
                request,
                f"Your access to {request.resource} (grant {request.id}) ends in {left}, at "
                f"{msg.when(request.expires_at)}. Need more time? "
                f"`!access extend {request.id} {format_duration(request.duration)} <reason>`. "
                f"Done already? `!access revoke {request.id}`.",
            )
        ]

    def _nudge(self, request_id: str) -> list[Notice]:
        """Announce an undecided request again, at doubling intervals."""
        with self.lock:
            request = self.store.get(request_id)
            if not request or request.status is not Status.PENDING:
                return []
            now = self.clock()
            request.nudges += 1
            request.next_nudge_at = now + self.approval_reminder * 2**request.nudges
            request.record(now, "nudge", "scheduler")
            self._commit(request, "approvers_nudged", "scheduler", outcome="pending")
        waited = format_duration(self.clock() - request.created_at)
        text = (
            f"Reminder: request {request.id} has waited {waited} for a decision.\n"
            + msg.card_body(request)
        )
        return [Notice("channel", request.channel, text, request, "card")]

    def _escalate(self, request_id: str, now: datetime) -> list[Notice]:
        """Ask the next escalation level of a request still undecided: its approvers are
        resolved to user ids (outside the lock: PagerDuty and Slack may be asked), added to
        those who may decide, and its channel gets the card, saying why."""
        request = self.store.get(request_id)
        if request is None or request.status is not Status.PENDING:
            return []
        number = request.escalation_level + 1
        level = request.escalation[request.escalation_level]
        on_call = self.pagerduty.lookups()
        groups = self.policies.groups if self.policies else {}
        resolved = resolve(level["approvers"], groups, on_call, self.slack_groups)
        notes = resolved.notes + [f"PagerDuty check failed: {f}" for f in on_call.failures]
        approvers, ids = self._identify(resolved.approvers, notes)
        with self.lock:
            current = self.store.get(request_id)
            if (
                current is None
                or current.status is not Status.PENDING
                or current.escalation_level != request.escalation_level
            ):
                return []
            before = current.channel
            after = format_duration(timedelta(seconds=level["after"]))
            why = msg.escalation_note(number, len(current.escalation), after, before, approvers)
            current.notes += [n for n in notes if n not in current.notes]
            current.escalate(now, approvers, ids, resolved.groups, why)
            if current.next_nudge_at is not None and current.next_nudge_at <= now:
                # The level's card is this reminder; another one now would be a second card.
                current.next_nudge_at = now + self.approval_reminder
            self._commit(
                current,
                "escalated",
                "scheduler",
                outcome="pending",
                detail=why,
                approvers=", ".join(current.approvers),
                channel=current.channel,
            )
        text = msg.escalated(current, why)
        if current.channel == before:
            return [Notice("channel", current.channel, text, current)]
        return [
            Notice("channel", current.channel, text, current, "card"),
            Notice("channel", before, msg.escalated_away(current, before, after), None),
        ]

    def _time_out(self, request_id: str) -> list[Notice]:
        with self.lock:
            request = self.store.get(request_id)
            if not request or request.status is not Status.PENDING:
                return []
            request.move(Status.TIMED_OUT, self.clock(), "scheduler")
            self._commit(request, "timed_out", "scheduler", outcome="timed_out")
        waited = format_duration(request.waits_since - request.created_at + self.pending_timeout)
        return [
            self._to_requester(
                request,
                f"Your request {request.id} for {request.resource} timed out after {waited} "
                f"without a decision. Ask again with {self._ask_again(request)}.",
            ),
            Notice(
                "channel",
                request.channel,
                f"Request {request.id} ({request.resource} for {msg.who(request.requester)}) "
                f"timed out after {waited}; it can no longer be approved.",
                request,
            ),
        ]

    # -- granting and revoking ----------------------------------------------------

    def _grant(self, request: Request) -> list[Notice]:
        return self.provisioner.grant(request)

    def _taken_back(self, granted: Request, why: str) -> list[Notice]:
        return self.provisioner.taken_back(granted, why)

    def _revoke(self, request: Request, actor: str) -> list[Notice]:
        return self.provisioner.revoke(request, actor)

    def _record_revokes(self, results, actor: str) -> list[Notice]:
        return self.provisioner.record_revokes(results, actor)

    def _apply_extension(self, extension: Request) -> list[Notice]:
        return self.provisioner.apply_extension(extension)

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

    # -- helpers ------------------------------------------------------------------

    def _commit(
        self, request: Request, event: str, actor: str, outcome: str, detail: str = "", **extra
    ):
        """One audit event, then one store write: never a change that is not audited."""
        self._commit_many(
            [(request, event, actor, {"outcome": outcome, "detail": detail, **extra})]
        )

    def _commit_many(self, items: list[tuple[Request, str, str, dict]]) -> None:
        """Commit several (request, event, actor, fields): every audit event first, flushed
        to disk once, then every store write, flushed once."""
        if not items:
            return
        events = [
            (
                event,
                {
                    "actor": actor,
                    "request_id": request.id,
                    "user": request.requester,
                    "resource": request.resource,
                    **fields,
                },
            )
            for request, event, actor, fields in items
        ]
        try:
            self.audit.append_many(events)
        except AuditError as exc:
            raise AccessError(f"Nothing was changed: {exc}. Tell an admin.") from exc
        try:
            self.store.save_many([request for request, *_ in items])
        except StoreError as exc:
            for request, event, actor, _ in items:
                self._audit(
                    "store_write_failed",
                    actor,
                    request_id=request.id,
                    outcome="failed",
                    detail=f"{event} was not saved: {exc}",
                )
            raise AccessError(f"Nothing was changed: {exc}. Tell an admin.") from exc

    def _audit(self, event: str, actor: str, **fields) -> None:
        try:
            self.audit.append(event, actor=actor, **fields)
        except AuditError as exc:
            raise AccessError(f"Nothing was changed: {exc}. Tell an admin.") from exc

    def _call(self, settings: dict, action: str, payload: dict):
        return self.provisioner.call(settings, action, payload)

    def _strategy(self, settings: dict) -> Strategy:
        return self.provisioner.strategy(settings)

    def _to_requester(self, request: Request, text: str) -> Notice:
        return Notice("user", request.requester_address or request.requester, text, request)

    def _needed_text(self, request: Request) -> str:
        count = (
            f"{request.approvals_required} approvals"
            if request.approvals_required > 1
            else "an approval"
        )
        return f"{count} from {msg.approvers_text(request.deciders)}"

    def _policies(self) -> PolicySet:
        if self.policies is None:
            errors = "\n".join(
                f"- {e}" for e in (self.policy_error.errors if self.policy_error else [])
            )
            raise AccessError(
                "No policies are loaded, so nothing can be requested. An admin must fix the "
                "policy files and run `!access reload`:\n" + errors
            )
        return self.policies

    def _resource(self, name: str) -> Resource:
        policies = self._policies()
        resource = policies.get(name)
        if resource is None:
            names = ", ".join(policies.names()) or "none"
            close = msg.closest(name, policies.names())
            hint = f": did you mean {close}?" if close else "."
            raise AccessError(
                f"Unknown resource `{msg.inert(name, 60)}`{hint} You can request: {names}. "
                "Details: `!access resources`."
            )
        return resource

    def _get(self, request_id: str) -> Request:
        request_id = str(request_id).strip().lower()
        request = self.store.get(request_id)
        if request is None:
            raise AccessError(
                f"No request with id `{msg.inert(request_id, 40)}`. "
                "See yours with `!access mine` (approvers: `!access list`)."
            )
        return request

    def _check_approver(self, actor: Actor, request: Request, verb: str) -> None:
        if request.status is not Status.PENDING:
            request.move(Status.APPROVED, self.clock(), actor.handle)  # raises the right words
        is_requester = request.is_requester(actor.id, actor.handle)
        others = msg.approvers_text(self._approvers_other_than(actor, request))
        if is_requester and not request.allow_self_approval:
            raise AccessError(
                f"You cannot {verb} your own request {request.id}; "
                f"{others if others != 'nobody' else 'another approver'} must."
            )
        if is_requester and verb == "approve" and not request.self_approval_allowed:
            # Separation of duties: a quorum means that many people besides the requester.
            raise AccessError(
                f"You cannot approve your own request {request.id}: it needs "
                f"{request.approvals_required} approvals from people other than you "
                f"({others})."
            )
        if not self._is_approver(actor, request):
            raise AccessError(
                f"Only the approvers of {request.resource} "
                f"({msg.approvers_text(request.deciders)}) can {verb} {request.id}."
            )

    # -- who is who: user ids only (identity.py) ------------------------------------

    def _approver_ids(self, request: Request) -> list[str]:
        """The user ids a request's approvers named when it was made (requests made before
        ids were recorded: what their entries name now)."""
        if request.approver_ids:
            return request.approver_ids
        return [self.people.user_id(a) or "" for a in request.approvers]

    def _is_approver(self, actor: Actor, request: Request) -> bool:
        return bool(actor.id) and actor.id in self._approver_ids(request)

    def _involved(self, actor: Actor, request: Request) -> bool:
        return request.is_requester(actor.id, actor.handle) or self._is_approver(actor, request)

    def _approvers_other_than(self, actor: Actor, request: Request) -> list[str]:
        ids = self._approver_ids(request)
        return [a for a, i in zip(request.approvers, ids) if not (actor.id and i == actor.id)]

    def _names(self, actor: Actor, entry: str) -> bool:
        """Does a policy's person entry name this actor right now?"""
        return bool(actor.id) and self.people.user_id(entry) == actor.id

    def _identify(self, entries: list[str], notes: list[str]) -> tuple[list[str], list[str]]:
        """Approver entries -> (the entries that name someone, their user ids), each person
        once; an entry that names nobody leaves a note for the card."""
        shown: list[str] = []
        ids: list[str] = []
        for entry in entries:
            user_id = self.people.user_id(entry)
            if not user_id:
                notes.append(f"{entry}: no such user; it names nobody")
            elif user_id not in ids:
                shown.append(entry)
                ids.append(user_id)
        return shown, ids

    def _is_any_approver(self, actor: Actor) -> bool:
        policies = self.policies  # the cheap look first: live requests can be many
        if policies and any(
            self._names(actor, a)
            for res in policies.resources.values()
            for a in static_members(res.approvers, policies.groups)
        ):
            return True
        return any(self._is_approver(actor, r) for r in self.store.live())

    def _unique_id(self) -> str:
        for _ in range(100):
            candidate = new_id()
            if not self.store.exists(candidate):
                return candidate
        raise AccessError("Could not pick a free request id; try again.")
