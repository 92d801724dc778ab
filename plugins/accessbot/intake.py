"""Intake: what a new request (or extension request) goes through before it is stored.

The checks that refuse it (resource, duration, reason, fields, a duplicate), the request
itself, its routing (who may decide: get_approvers or the listed approvers, groups and
on-call expanded to user ids) and the policy's on_request decision. Nothing here writes
to the store or the audit log; the handlers commit what intake prepared.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import messages as msg
from .approvers import resolve
from .domain import AccessError, Request, Status, cut_text, format_duration, new_id
from .history import RequestHistory
from .integrations import trackers
from .permissions import Permissions
from .policy import (
    Decision,
    HookFailed,
    PolicyContext,
    Resource,
    Vote,
    approvers_problem,
    decision_problem,
    refusal_problem,
    run_hook,
)
from .policy_registry import PolicyRegistry
from .results import Actor
from .store import RequestStore

log = logging.getLogger(__name__)


@dataclass
class Lookups:
    """Where intake asks who is on call and who is in a Slack group, and how long a
    policy hook may take."""

    pagerduty: object
    slack_groups: object
    history_counts: object  # what ctx.history counts (the store; a test file's answers)
    hook_timeout: float = 10.0
    links: object = None  # where checked fields are looked up (trackers.LinkChecker)


class RequestRate:
    """At most `limit` requests a person in any hour (ACCESS_REQUESTS_PER_HOUR; 0: no
    limit), so one person's request/cancel cycles cannot flood the approvers' channels.
    Counted in this bot's memory: a restart, or another bot on PostgreSQL, counts anew."""

    WINDOW = timedelta(hours=1)

    def __init__(self, limit: int = 30):
        self.limit = limit
        self._lock = threading.Lock()
        self._made: dict[str, deque[datetime]] = {}

    def check(self, actor: Actor, now: datetime) -> None:
        """Refuse (AccessError) a person who made `limit` requests in the last hour,
        saying when they may ask again."""
        if not self.limit:
            return
        with self._lock:
            made = self._recent(actor.id, now)
            if len(made) >= self.limit:
                again = made[len(made) - self.limit] + self.WINDOW
                raise AccessError(msg.too_many_requests(self.limit, again, now))

    def note(self, actor: Actor, now: datetime) -> None:
        """A request of `actor`'s was stored."""
        if not self.limit:
            return
        with self._lock:
            self._recent(actor.id, now).append(now)

    def _recent(self, who: str, now: datetime) -> deque[datetime]:
        made = self._made.setdefault(who, deque())
        while made and made[0] <= now - self.WINDOW:
            made.popleft()
        if len(self._made) > 10_000:  # forget people with nothing in the window
            for key in [k for k, v in self._made.items() if not v and k != who]:
                del self._made[key]
        return made


class Intake:
    def __init__(
        self,
        registry: PolicyRegistry,
        permissions: Permissions,
        store: RequestStore,
        clock: Callable[[], datetime],
        lookups: Lookups,
        approval_reminder: timedelta,
        requests_per_hour: int = 0,
    ):
        self.rate = RequestRate(requests_per_hour)
        self.registry = registry
        self.permissions = permissions
        self.store = store
        self.clock = clock
        self.lookups = lookups
        self.approval_reminder = approval_reminder

    # -- checks ---------------------------------------------------------------------

    def checked_request(
        self,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None,
    ) -> tuple[Resource, timedelta, str, dict[str, str]]:
        """What `!access request` refuses before anything is routed or stored."""
        resource = self.registry.resource(resource_name)
        if duration is None:
            duration = resource.default_duration
        self.check_duration(resource, duration, f"!access request {resource.name}", reason)
        reason = " ".join(str(reason).split())
        if not reason:
            raise AccessError(
                f"Say why you need it: `!access request {resource.name} "
                f"{format_duration(duration)} <reason>`.",
                field="reason",
            )
        return resource, duration, reason, self.check_fields(resource, fields or {}, duration)

    def check_fields(
        self, resource: Resource, values: Mapping[str, str], duration: timedelta
    ) -> dict[str, str]:
        """The resource's prompt fields: every required one given, every value valid."""
        unknown = sorted(set(values) - set(resource.fields))
        problems = [f"{resource.name} has no field `{msg.inert(k, 40)}`" for k in unknown]
        problems += [
            p for spec in resource.fields.values() if (p := _field_problem(resource, spec, values))
        ]
        if resource.require_one_of and not any(n in values for n in resource.require_one_of):
            problems.append(
                f"{resource.name} needs one of "
                + " or ".join(f"`{name}=...`" for name in resource.require_one_of)
            )
        if problems:
            one_of = [n for n in resource.require_one_of if n in values][:1] or list(
                resource.require_one_of[:1]
            )
            example = " ".join(
                f"{spec.name}=<{msg.inert(spec.help, 40) or 'value'}>"
                for spec in resource.fields.values()
                if spec.required or spec.name in values or spec.name in one_of
            )
            raise AccessError(
                "; ".join(problems)
                + f". Try `!access request {resource.name} {format_duration(duration)} "
                f"{example} <reason>`.",
                field="fields",
            )
        return {name: str(values[name]) for name in resource.fields if name in values}

    def checked_links(
        self, resource: Resource, fields: Mapping[str, str], duration: timedelta
    ) -> dict[str, dict]:
        """Each checked field's value looked up in its tracker: unknown, closed, in another
        project or service, or (unless `when_unreachable` is ask_approvers) unreachable is
        refused, saying which and what to type. Outside any lock: it waits for trackers."""
        links: dict[str, dict] = {}
        problems: list[str] = []
        for spec in resource.fields.values():
            value = fields.get(spec.name)
            if spec.check is None or value is None:
                continue
            try:
                links[spec.name] = {**self.look_up(spec, value), "end_with": spec.end_with}
            except AccessError as exc:
                problems.append(str(exc))
        if problems:
            raise self.links_refused(resource, fields, duration, problems)
        return links

    @staticmethod
    def links_refused(
        resource: Resource, fields: Mapping[str, str], duration: timedelta, problems: list[str]
    ) -> AccessError:
        """The refusal for checked fields that cannot justify access: why, what to type."""
        specs = [s for s in resource.fields.values() if s.check and s.name in fields]
        example = " ".join(f"{s.name}=<{msg.inert(s.help, 40) or 'value'}>" for s in specs)
        return AccessError(
            "; ".join(problems) + f"; give an open {' and '.join(_noun(s) for s in specs)}, "
            f"e.g. `!access request {resource.name} {format_duration(duration)} {example} "
            "<reason>`.",
            field="fields",
        )

    def look_up(self, spec, value: str) -> dict:
        """One field's link as its tracker tells it now (`Link.to_dict()`); AccessError
        saying why it cannot justify access."""
        early = trackers.early_problem(spec.check, value)
        if early:
            raise AccessError(msg.inert(early))
        try:
            link = self.lookups.links.look_up(spec.name, spec.check, value)
        except trackers.Unknown as exc:
            raise AccessError(msg.inert(str(exc))) from None
        except trackers.Unreachable as exc:
            if spec.check.get("when_unreachable") != "ask_approvers":
                raise AccessError(
                    f"{spec.name}={msg.inert(value, 80)} could not be checked "
                    f"({msg.inert(str(exc))}), so nothing was asked; try again in a few "
                    "minutes"
                ) from None
            return trackers.Link(
                spec.name,
                spec.check["type"],
                value,
                "",
                "not checked",
                "",
                None,
                True,
                checked=False,
                note=msg.inert(str(exc)),
            ).to_dict()
        problem = trackers.problem(link, spec.check)
        if problem:
            raise AccessError(msg.inert(problem))
        return link.to_dict()

    def recheck_links(self, grant: Request, resource: Resource) -> None:
        """An extension keeps its grant's links: refused once one of them is closed."""
        for name, link in grant.links.items():
            spec = resource.fields.get(name)
            if spec is None or spec.check is None:
                continue
            if link.get("closed"):
                problem = f"{link.get('key')} moved to {link['closed']}"
            else:
                try:
                    self.look_up(spec, grant.fields.get(name, link.get("key", "")))
                    continue
                except AccessError as exc:
                    problem = str(exc)
            raise AccessError(
                f"{grant.id} cannot be extended: {msg.inert(problem)}. Access is for open "
                f"work; ask afresh with an open {_noun(spec)}: `!access request "
                f"{grant.resource} <duration> {name}=<{msg.inert(spec.help, 40) or 'value'}> "
                "<reason>`."
            )

    def check_duration(
        self, resource: Resource, duration: timedelta, command: str, reason: str
    ) -> None:
        if resource.durations and duration not in resource.durations:
            instead = resource.nearest_duration(duration)
            raise AccessError(
                f"{resource.name} can be asked for {msg.durations_text(resource.durations)} "
                f"only (its durations); you asked for {msg.asked(duration)}. Try "
                f"`{command} {format_duration(instead)} {msg.inert(reason, 80) or '<reason>'}`",
                field="duration",
            )
        if duration <= timedelta(0):
            raise AccessError(
                f"A duration must be longer than 0s; {resource.name} allows up to "
                f"{format_duration(resource.max_duration)}, e.g. "
                f"`{command} {format_duration(resource.default_duration)} <reason>`",
                field="duration",
            )
        if duration > resource.max_duration:
            raise AccessError(
                f"{resource.name} allows at most {format_duration(resource.max_duration)}; "
                f"you asked for {msg.asked(duration)}. Try "
                f"`{command} {format_duration(resource.max_duration)} {msg.inert(reason, 80) or '<reason>'}`",
                field="duration",
            )

    def refuse_duplicate(self, actor: Actor, resource: str) -> None:
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

    def checked_extension(self, actor: Actor, grant: Request) -> Resource:
        """What `!access extend` refuses: someone else's grant, an extension request, a
        grant not active, extensions used up or one already waiting."""
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
        resource = self.registry.resource(grant.resource)
        self._check_extensions_left(grant, resource)
        self.recheck_links(grant, resource)
        return resource

    def _check_extensions_left(self, grant: Request, resource: Resource) -> None:
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

    # -- the request ----------------------------------------------------------------

    def new_request(
        self,
        actor: Actor,
        resource: Resource,
        duration: timedelta,
        reason: str,
        extends: Request | None = None,
        fields: Mapping[str, str] | None = None,
        request_id: str | None = None,
        links: Mapping[str, dict] | None = None,
    ) -> Request:
        now = self.clock()
        request = Request.ask(
            request_id or self.unique_id(),
            actor,
            resource,
            duration,
            reason,
            now,
            next_nudge_at=now + self.approval_reminder,
            extends=extends,
            fields=fields,
            links=links,
        )
        request.notes += [
            f"{name} not checked: {link.get('note') or 'the tracker could not be reached'}"
            for name, link in request.links.items()
            if not link.get("checked", True) and not extends
        ]
        if extends:
            request.notes.append(
                f"extends grant {extends.id}, which has "
                f"{format_duration(extends.remaining(now))} left (ends {msg.when(extends.expires_at)})"
            )
        return request

    def unique_id(self) -> str:
        for _ in range(100):
            candidate = new_id()
            if not self.store.exists(candidate):
                return candidate
        raise AccessError("Could not pick a free request id; try again.")

    def prepare(self, actor: Actor, request: Request, resource: Resource) -> Decision | None:
        """Route a new request and let the policy decide if it will (None: the approvers
        decide). One set of PagerDuty lookups per request: its failures go on its card."""
        on_call = self.lookups.pagerduty.lookups()
        ctx = self.context(PolicyContext, on_call, request, resource, request.created_at)
        self.route(request, resource, ctx)
        self.note_unreachable_quorum(actor, request)
        decision = self.policy_decision(request, resource, ctx)
        request.notes += [f"PagerDuty check failed: {reason}" for reason in on_call.failures]
        return decision

    def context(self, kind, on_call, request: Request, resource: Resource, now: datetime):
        """A hook's `ctx` for this request: PagerDuty lookups, history counts, the time."""
        history = RequestHistory(
            self.lookups.history_counts, request.requester, request.resource, now
        )
        return kind(on_call, now, logging.getLogger(f"policy.{resource.file}"), history)

    # -- routing --------------------------------------------------------------------

    def route(self, request: Request, resource: Resource, ctx: PolicyContext) -> None:
        """Who may decide: get_approvers' answer, else the listed approvers, with every
        group-like entry expanded now and kept on the request."""
        if "get_approvers" in resource.hooks and self._route_by_hook(request, resource, ctx):
            return
        if request.approver_entries and self.expand(request, request.approver_entries, ctx):
            return
        failures = [f"PagerDuty check failed: {f}" for f in getattr(ctx.pagerduty, "failures", [])]
        why = "; ".join(request.notes + failures) or "no approvers are listed"
        raise AccessError(
            f"Nobody can approve {resource.name} right now ({msg.inert(why)}). "
            "Ask an admin to check the policy file."
        )

    def _route_by_hook(self, request: Request, resource: Resource, ctx: PolicyContext) -> bool:
        try:
            found = run_hook(
                resource,
                "get_approvers",
                request.view(),
                ctx,
                self.lookups.hook_timeout,
                returns=approvers_problem,
            )
            entries = [str(e).strip() for e in found if str(e).strip()]
            if entries and self.expand(request, entries, ctx):
                return True
            note = f"{resource.file}: get_approvers named nobody"
        except HookFailed as exc:
            note = str(exc)
        log.warning("routing fell back to the listed approvers: %s", note)
        request.notes.append(f"get_approvers failed ({note}); routed to the listed approvers")
        return False

    def expand(self, request: Request, entries: list[str], ctx: PolicyContext) -> bool:
        """Resolve approver entries onto the request; False when they name nobody."""
        resolved = resolve(
            entries, self.registry.all_groups, ctx.pagerduty, self.lookups.slack_groups
        )
        request.notes += resolved.notes
        approvers, ids = self.permissions.identify(resolved.approvers, request.notes)
        if not approvers:
            return False
        request.route_to(approvers, ids, list(entries), resolved.groups)
        return True

    def note_unreachable_quorum(self, actor: Actor, request: Request) -> None:
        """Say on the card when the routed approvers cannot reach the quorum (the
        requester never counts toward one of two or more)."""
        others = (
            request.approvers
            if request.self_approval_allowed
            else self.permissions.approvers_other_than(actor, request)
        )
        if len(others) < request.approvals_required:
            request.notes.append(
                f"needs {request.approvals_required} approvals but only {len(others)} "
                f"approver(s) other than the requester can decide "
                f"({msg.approvers_text(others)}); ask an admin to fix the approvers"
            )

    # -- policy hooks that decide ---------------------------------------------------

    def policy_decision(self, request: Request, resource: Resource, ctx: PolicyContext):
        if "on_request" not in resource.hooks:
            return None
        try:
            decision = run_hook(
                resource,
                "on_request",
                request.view(),
                ctx,
                self.lookups.hook_timeout,
                returns=decision_problem,
            )
        except HookFailed as exc:
            log.warning("on_request failed, falling back to human approval: %s", exc)
            request.notes.append(f"policy check failed, needs a human: {exc}")
            return None
        return decision

    def vote_check(
        self, resource: Resource | None, request: Request, actor: Actor, verb: str, comment: str
    ) -> VoteCheck:
        """What the policy's on_approve / on_deny says of this person's decision. A hook
        that fails (raises, overruns, returns something else) fails closed both ways: a
        failing on_approve refuses the approval, a failing on_deny lets the denial stand
        (with the error), so a broken check can never turn a "no" into a later "yes"."""
        hook = "on_approve" if verb == "approve" else "on_deny"
        if resource is None or hook not in resource.hooks:
            return VoteCheck()
        vote = Vote(actor.handle, actor.email, comment, actor.id)
        ctx = self.context(
            PolicyContext, self.lookups.pagerduty.lookups(), request, resource, self.clock()
        )
        try:
            answer = run_hook(
                resource,
                hook,
                request.view(),
                ctx,
                self.lookups.hook_timeout,
                between=(vote,),
                returns=refusal_problem,
            )
        except HookFailed as exc:
            if verb != "approve":
                error = cut_text(str(exc))  # it goes into the audit log: bounded
                log.warning("%s failed, so the denial stands: %s", hook, error)
                return VoteCheck(hook_error=error)
            log.warning("%s failed, so it refuses: %s", hook, exc)
            return VoteCheck(f"the policy check failed, so it refuses (fail closed): {exc}")
        return VoteCheck(None if answer is None else answer.reason or f"refused by {hook}")


@dataclass(frozen=True)
class VoteCheck:
    """What on_approve / on_deny made of one decision: `refusal`, why it does not count
    (None: it counts); `hook_error`, why a failing on_deny could not be asked (the denial
    counts all the same)."""

    refusal: str | None = None
    hook_error: str = ""


def _field_problem(resource: Resource, spec, values: Mapping[str, str]) -> str:
    """What is wrong with one prompt field's value ("" when nothing)."""
    value = values.get(spec.name)
    if value is None:
        if not spec.required:
            return ""
        return f"{resource.name} needs `{spec.name}=...`" + (
            f" ({msg.inert(spec.help)})" if spec.help else ""
        )
    problem = spec.problem(str(value))
    return msg.inert(problem) if problem else ""


def _noun(spec) -> str:
    """What a checked field names: ticket, incident or issue."""
    return {"jira": "ticket", "pagerduty": "incident", "github_issue": "issue"}[spec.check["type"]]
