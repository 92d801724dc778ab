"""Who may do what to a request. Authorisation compares user ids only: the ids a request's
approvers named when it was made (see identity.py), never a handle that could be renamed,
and of those only the ones the policy in force still names when they decide (a reload that
removes an approver removes their say over requests already made)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from . import messages as msg
from .approvers import is_dynamic, static_members
from .domain import AccessError, Request, Status
from .identity import People
from .policy_registry import PolicyRegistry
from .results import Actor
from .store import RequestStore


class Permissions:
    def __init__(
        self,
        people: People,
        registry: PolicyRegistry,
        store: RequestStore,
        clock: Callable[[], datetime],
    ):
        self.people = people
        self.registry = registry
        self.store = store
        self.clock = clock

    def check_approver(self, actor: Actor, request: Request, verb: str) -> None:
        """May `actor` approve or deny (`verb`) this request now? Raises the reason not."""
        if verb == "deny" and request.holds_access:
            raise AccessError(
                f"Request {request.id} is already approved and active, so it cannot be "
                f"denied; to end it now: `!access revoke {request.id}`"
            )
        withdrawn = msg.withdrawn_extension(request)
        if withdrawn:
            raise AccessError(msg.withdrawn_reply(request, withdrawn))
        if request.status is not Status.PENDING:
            request.move(Status.APPROVED, self.clock(), actor.handle)  # raises the right words
        is_requester = request.is_requester(actor.id, actor.handle)
        others = msg.approvers_text(self.approvers_other_than(actor, request))
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
        if not self.is_approver(actor, request):
            raise AccessError(
                f"Only the approvers of {request.resource} "
                f"({msg.approvers_text(request.deciders)}) can {verb} {request.id}."
            )
        named_now = self.named_now(request)
        if named_now is not None and actor.id not in named_now:
            resource = self.registry.get(request.resource)
            raise AccessError(msg.no_longer_approver(request, verb, resource))

    def named_now(self, request: Request) -> set[str] | None:
        """The user ids the policies in force now let decide `request`: the resource's
        approvers and escalation approvers as they read now (`group:` as GROUPS reads
        now; a `slack-group:` or `pagerduty:` entry still listed keeps whom it named when
        the request was made). Empty when the resource is gone; None when the policies
        cannot say without asking anyone (none loaded, or get_approvers routes it)."""
        if self.registry.policies is None:
            return None
        resource = self.registry.get(request.resource)
        if resource is None:
            return set()
        if "get_approvers" in resource.hooks:
            return None
        entries = [
            *resource.approvers,
            *(a for level in resource.escalation for a in level.approvers),
        ]
        # An entry the request already resolved keeps that person (no lookup, and Slack
        # being down refuses nobody); a new one is looked up.
        stored = dict(zip(request.approvers, self.approver_ids(request)))
        static = static_members(entries, self.registry.all_groups)
        ids = {stored.get(e) or self.people.user_id(e) for e in static}
        for entry in filter(is_dynamic, entries):
            ids |= {stored.get(member) for member in request.approver_groups.get(entry, ())}
        return {i for i in ids if i}

    def approver_ids(self, request: Request) -> list[str]:
        """The user ids a request's approvers named when it was made (requests made before
        ids were recorded: what their entries name now)."""
        if request.approver_ids:
            return request.approver_ids
        return [self.people.user_id(a) or "" for a in request.approvers]

    def is_approver(self, actor: Actor, request: Request) -> bool:
        return bool(actor.id) and actor.id in self.approver_ids(request)

    def involved(self, actor: Actor, request: Request) -> bool:
        """The requester or one of its approvers."""
        return request.is_requester(actor.id, actor.handle) or self.is_approver(actor, request)

    def approvers_other_than(self, actor: Actor, request: Request) -> list[str]:
        ids = self.approver_ids(request)
        return [a for a, i in zip(request.approvers, ids) if not (actor.id and i == actor.id)]

    def names(self, actor: Actor, entry: str) -> bool:
        """Does a policy's person entry name this actor right now?"""
        return bool(actor.id) and self.people.user_id(entry) == actor.id

    def identify(self, entries: list[str], notes: list[str]) -> tuple[list[str], list[str]]:
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

    def approves_resource(self, actor: Actor, approvers: list[str]) -> bool:
        """Is `actor` named by a resource's approver entries (groups expanded)?"""
        members = static_members(approvers, self.registry.all_groups)
        return any(self.names(actor, a) for a in members)

    def is_any_approver(self, actor: Actor) -> bool:
        """Does `actor` approve anything: a resource, or a live request?"""
        policies = self.registry.policies  # the cheap look first: live requests can be many
        if policies and any(
            self.approves_resource(actor, res.approvers) for res in policies.resources.values()
        ):
            return True
        return any(self.is_approver(actor, r) for r in self.store.live())

    def may_see(self, actor: Actor, request: Request) -> bool:
        return actor.is_admin or self.involved(actor, request)

    def may_review(self, actor: Actor, request: Request) -> bool:
        return actor.is_admin or self.is_approver(actor, request)
