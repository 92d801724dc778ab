"""Dry runs: how a request would be checked, routed and decided, creating nothing
(`!access whatif`, `python -m accessbot test`). Intake's own checks and routing run; on
call and Slack lookups are real (or whatever the injected checkers answer) and each is
listed with where its answer came from. Nothing is stored, audited or granted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from . import messages as msg
from .approvers import SLACK_GROUP
from .domain import AccessError, Request
from .intake import Intake
from .integrations.pagerduty import RecordedLookups
from .permissions import Permissions
from .policy import Decision, PolicyContext, Resource
from .policy_registry import PolicyRegistry
from .results import Actor


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


class DryRun:
    def __init__(
        self,
        intake: Intake,
        permissions: Permissions,
        registry: PolicyRegistry,
        pending_timeout: timedelta,
    ):
        self.intake = intake
        self.permissions = permissions
        self.registry = registry
        self.pending_timeout = pending_timeout

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
        resource = self.registry.resource(resource_name)
        if not (actor.is_admin or self.permissions.approves_resource(actor, resource.approvers)):
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
        """Run the checks, routing and hooks a request would go through."""
        typed = " ".join(str(reason).split())
        try:
            resource, asked, duration, fields, refusal = self.dry_run_request(
                resource_name, duration, typed, fields
            )
        except AccessError as exc:
            return Evaluation(target.handle, resource_name, duration, "refused", str(exc))
        evaluation = Evaluation(target.handle, resource.name, asked, "human", "", resource)
        try:
            self.intake.refuse_duplicate(target, resource.name)
        except AccessError as exc:
            evaluation.notes.append(f"as things stand it would be refused: {exc}")
        links, link_lines, link_refusal = self._links(resource, fields, duration)
        refusal = refusal or link_refusal
        request = self.intake.new_request(
            target,
            resource,
            duration,
            typed or "what-if check",  # what hooks see when no reason was given
            fields=fields,
            request_id="whatif",
            links=links,
        )
        evaluation.request = request
        on_call = RecordedLookups(self.intake.lookups.pagerduty)
        self._route_and_decide(evaluation, target, request, resource, on_call)
        request.notes += [f"PagerDuty check failed: {f}" for f in on_call.failures]
        if refusal:
            evaluation.if_fixed = (evaluation.outcome, evaluation.explanation)
            evaluation.outcome, evaluation.explanation = "refused", refusal
        # The hooks of the request as it would go (once fixed, for one refused here).
        going = evaluation.if_fixed[0] if evaluation.if_fixed else evaluation.outcome
        evaluation.hooks = msg.hooks_that_run(resource, going, self.pending_timeout)
        evaluation.lookups = list(on_call.lines) + link_lines + self._group_lookups(request)
        return evaluation

    def _links(
        self, resource: Resource, fields: Mapping[str, str], duration: timedelta
    ) -> tuple[dict[str, dict], list[str], str]:
        """What each checked field's tracker says (from a test file's `tickets`, or live):
        the links a request would carry, a line per look-up, and the refusal if any."""
        source = getattr(self.intake.lookups.links, "source", "live tracker lookup")
        links, lines, problems = {}, [], []
        for spec in resource.fields.values():
            value = fields.get(spec.name)
            if spec.check is None or value is None:
                continue
            try:
                link = self.intake.look_up(spec, value)
            except AccessError as exc:
                problems.append(str(exc))
                lines.append(f"{spec.name}={value}: {exc} ({source})")
                continue
            links[spec.name] = {**link, "end_with": spec.end_with}
            ends = ", ends the grant when it closes" if spec.end_with else ""
            lines.append(f"{spec.name}={value}: {msg.link_text(link)}{ends} ({source})")
        if not problems:
            return links, lines, ""
        return links, lines, str(self.intake.links_refused(resource, fields, duration, problems))

    def _route_and_decide(
        self,
        evaluation: Evaluation,
        target: Actor,
        request: Request,
        resource: Resource,
        on_call,
    ) -> None:
        ctx = self.intake.context(PolicyContext, on_call, request, resource, request.created_at)
        try:
            self.intake.route(request, resource, ctx)
        except AccessError as exc:
            evaluation.outcome, evaluation.explanation = "refused", str(exc)
            return
        self.intake.note_unreachable_quorum(target, request)
        notes_before = len(request.notes)
        decision = self.intake.policy_decision(request, resource, ctx)
        if isinstance(decision, Decision):
            evaluation.outcome = "approve" if decision.approve else "deny"
            evaluation.explanation = decision.reason
        elif "on_request" not in resource.hooks:
            evaluation.explanation = "no on_request hook: the approvers decide"
        elif len(request.notes) > notes_before:
            evaluation.explanation = "on_request failed, so the approvers decide (see the note)"
        else:
            evaluation.explanation = "on_request returned None: the approvers decide"

    def _group_lookups(self, request: Request) -> list[str]:
        """The Slack groups routing asked about, and whom each named."""
        source = getattr(self.intake.lookups.slack_groups, "source", "")
        return [
            f"members of {entry}? {', '.join(members) or 'nobody'}"
            + (f" ({source})" if source else "")
            for entry, members in request.approver_groups.items()
            if entry.startswith(SLACK_GROUP)
        ]

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
            self.permissions.check_approver(voter, request, verb)
        except AccessError as exc:
            return str(exc)
        comment = " ".join(comment.split())
        return self.intake.vote_check(resource, request, voter, verb, comment).refusal

    def dry_run_request(
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
            resource, duration, _, fields = self.intake.checked_request(
                resource_name, duration, reason or "<reason>", fields
            )
            return resource, duration, duration, fields, ""
        except AccessError as exc:
            resource = self.registry.get(resource_name)
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
