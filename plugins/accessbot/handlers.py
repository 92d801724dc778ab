"""One handler per command that changes a request: get it, check who may, let the domain
make the transition, commit (audit first, then store), and return a typed result that
`messages.outcome` turns into texts. Strategy calls (grant, revoke, extend) go to the
provisioner; intake prepares new requests; permissions says who may do what.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from . import messages as msg
from .domain import AccessError, Request, Status, TransitionError, format_duration
from .intake import Intake
from .permissions import Permissions
from .policy import Resource
from .policy_registry import PolicyRegistry, PolicyReload
from .provisioner import Render
from .results import (
    Acknowledged,
    Actor,
    ApprovalCounted,
    Approved,
    AutoExtended,
    AutoGranted,
    Cancelled,
    Denied,
    DeniedByPolicy,
    Notice,
    Result,
    Retried,
    Revoked,
    Submitted,
    Withdrawn,
)
from .store import StoreError
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class Provisioning(Protocol):
    """The strategy calls the handlers start (the provisioner's; the caller has claimed
    the request's id)."""

    def _grant(self, request: Request, render: Render | None = None) -> list[Notice]: ...
    def _apply_extension(
        self, extension: Request, render: Render | None = None
    ) -> list[Notice]: ...
    def _revoke(self, request: Request, actor: str) -> list[Notice]: ...
    def _claim(self, request_id: str) -> bool: ...
    def _withdraw_extension(self, extension_id: str, grant: Request) -> list[Notice]: ...


class Handlers:
    def __init__(
        self,
        uow: UnitOfWork,
        intake: Intake,
        permissions: Permissions,
        registry: PolicyRegistry,
        provisioner: Provisioning,
        clock: Callable[[], datetime],
    ):
        self.uow = uow
        self.store = uow.store
        self.intake = intake
        self.permissions = permissions
        self.registry = registry
        self.provisioner = provisioner
        self.clock = clock

    # -- asking ---------------------------------------------------------------------

    def request(
        self,
        actor: Actor,
        resource_name: str,
        duration: timedelta | None,
        reason: str,
        fields: Mapping[str, str] | None = None,
    ) -> Result:
        resource, duration, reason, fields = self.intake.checked_request(
            resource_name, duration, reason, fields
        )
        self.intake.refuse_duplicate(actor, resource.name)
        self.intake.rate.check(actor, self.clock())  # ACCESS_REQUESTS_PER_HOUR
        links = self.intake.checked_links(resource, fields, duration)
        request = self.intake.new_request(
            actor, resource, duration, reason, fields=fields, links=links
        )
        return self._submit(actor, request, resource)

    def extend(
        self, actor: Actor, grant_id: str, duration: timedelta | None, reason: str
    ) -> Result:
        """Ask for more time on an active grant: a request of its own, routed like any."""
        grant = self.uow.get(grant_id)
        resource = self.intake.checked_extension(actor, grant)
        duration = grant.duration if duration is None else duration
        self.intake.check_duration(resource, duration, f"!access extend {grant.id}", reason)
        reason = " ".join(str(reason).split()) or f"more time on {grant.id}"
        request = self.intake.new_request(actor, resource, duration, reason, extends=grant)
        return self._submit(actor, request, resource)

    def _submit(self, actor: Actor, request: Request, resource: Resource) -> Result:
        """Route a new request, let the policy decide if it will, store and announce it."""
        decision = self.intake.prepare(actor, request, resource)
        with self.uow.lock:
            if not request.extends:
                self.intake.refuse_duplicate(actor, resource.name)  # again, under the lock
            self._commit_requested(actor, request)
            if not request.extends:
                self.intake.rate.note(actor, request.created_at)
            if decision is None:
                return self._told(Submitted(request))
            request.decide_by_policy(decision.approve, decision.reason, request.created_at)
            verdict = "approved" if decision.approve else "denied"
            self.uow.commit(request, verdict, "policy", outcome=verdict, detail=decision.reason)
            if not decision.approve:
                return self._told(DeniedByPolicy(request, grant=self._grant_of(request)))
            self.uow.claims.add(request.id)  # ours to grant; the scheduler keeps off
        return self._auto_extended(request) if request.extends else self._auto_granted(request)

    def _told(self, result: Result) -> Result:
        """Announce what people are told of `result` in the commit just made (the caller
        holds the lock), so the notices and the change are written together."""
        result.notices = self.uow.announce(msg.outcome(result).notices)
        result.told = True
        return result

    def _commit_requested(self, actor: Actor, request: Request) -> None:
        self.uow.commit(
            request,
            "requested",
            actor.handle,
            outcome="pending",
            detail="; ".join(request.notes),
            duration=format_duration(request.duration),
            reason=request.reason,
            extends=request.extends,
            fields=request.fields or None,
            links=msg.audit_links(request) or None,
            approvers=", ".join(request.approvers),
        )

    def _auto_extended(self, request: Request) -> Result:
        def render(done: Request, notices: list[Notice]) -> list[Notice]:
            grant = self.store.get(request.extends)
            return msg.outcome(AutoExtended(request, notices, grant=grant, done=done)).notices

        notices = self.provisioner._apply_extension(request, render)
        grant = self.store.get(request.extends)
        done = self.store.get(request.id)
        return AutoExtended(request, notices, told=True, grant=grant, done=done)

    def _auto_granted(self, request: Request) -> Result:
        def render(granted: Request, notices: list[Notice]) -> list[Notice]:
            return msg.outcome(AutoGranted(granted, notices)).notices

        notices = self.provisioner._grant(request, render)
        return AutoGranted(self.store.get(request.id) or request, notices, told=True)

    def _grant_of(self, request: Request) -> Request | None:
        """An extension request's grant as it now stands (None for a plain request)."""
        return self.store.get(request.extends) if request.extends else None

    # -- deciding -------------------------------------------------------------------

    def approve(self, actor: Actor, request_id: str, comment: str = "") -> Result:
        comment = " ".join(comment.split())
        self.vet_vote(actor, request_id, "approve", comment)
        with self.uow.lock:
            request = self.uow.get(request_id)
            self.permissions.check_approver(actor, request, "approve")
            withdrawn = self._withdrawn(request)
            if withdrawn:
                return withdrawn
            if not request.add_approval(actor.handle, self.clock(), comment, actor.id):
                self.uow.commit(
                    request, "approval", actor.handle, outcome="pending", detail=comment
                )
                return self._told(ApprovalCounted(request))
            self.uow.commit(request, "approved", actor.handle, outcome="approved", detail=comment)
            self.uow.claims.add(request.id)  # ours to grant; the scheduler keeps off
        if request.extends:
            notices = self.provisioner._apply_extension(request)
            request = self.store.get(request.id) or request
            return Approved(request, notices, told=True, grant=self.store.get(request.extends))
        return self._grant_approved(request)

    def _withdrawn(self, request: Request) -> Withdrawn | None:
        """An extension whose grant ended, or is being revoked, can never be applied:
        withdrawn (now, if it still waited), not approved (the caller holds the lock)."""
        if not request.extends:
            return None
        grant = self.store.get(request.extends)
        if msg.withdrawn_extension(request):
            return Withdrawn(request, grant=grant, told=True)
        ending = grant is None or grant.status is not Status.ACTIVE or grant.ending
        if request.status is not Status.PENDING or not ending or grant is None:
            return None
        notices = self.provisioner._withdraw_extension(request.id, grant)
        return Withdrawn(self.store.get(request.id) or request, notices, told=True, grant=grant)

    def _grant_approved(self, request: Request) -> Result:
        try:
            notices = self.provisioner._grant(request)
        except StoreError as exc:
            # The approval is committed; only recording the grant failed. Say so: the
            # scheduler finishes it (same start, same Idempotency-Key) once the store answers.
            log.error("approved %s, but its grant could not be recorded: %s", request.id, exc)
            return Approved(request, [], told=True, unrecorded=str(exc))
        return Approved(self.store.get(request.id) or request, notices, told=True)

    def deny(self, actor: Actor, request_id: str, reason: str = "") -> Result:
        reason = " ".join(reason.split())
        hook_error = self.vet_vote(actor, request_id, "deny", reason)
        with self.uow.lock:
            request = self.uow.get(request_id)
            self.permissions.check_approver(actor, request, "deny")
            request.deny(actor.handle, reason, self.clock())
            failed = {"hook_error": hook_error} if hook_error else {}
            self.uow.commit(
                request, "denied", actor.handle, outcome="denied", detail=reason, **failed
            )
            grant = self._grant_of(request)
            return self._told(
                Denied(request, by=actor.handle, reason=reason, grant=grant, hook_error=hook_error)
            )

    def vet_vote(self, actor: Actor, request_id: str, verb: str, comment: str) -> str:
        """Before an approval or denial counts: who may decide (the same checks as under
        the lock), then the policy's on_approve / on_deny, outside the lock so a slow hook
        holds up no other decision. A refusal (or an on_approve that fails: fail closed)
        is audited and raised to the person; the request stays as it was. A failing
        on_deny refuses nothing: its error comes back, to be audited with the denial."""
        request = self.uow.get(request_id)
        self.permissions.check_approver(actor, request, verb)
        resource = self.registry.get(request.resource)
        check = self.intake.vote_check(resource, request, actor, verb, comment)
        refusal = check.refusal
        if refusal is None:
            return check.hook_error
        self.uow.audit(
            "approval_refused" if verb == "approve" else "denial_refused",
            actor.handle,
            request_id=request.id,
            user=request.requester,
            resource=request.resource,
            outcome=request.status.value,
            detail=refusal,
        )
        raise AccessError(msg.vote_refused(verb, request.id, refusal))

    # -- withdrawing and ending -----------------------------------------------------

    def cancel(self, actor: Actor, request_id: str | None) -> Result:
        """Withdraw a pending request; without an id, the caller's only one."""
        with self.uow.lock:
            request = self.uow.get(request_id or self._only_pending(actor))
            if not request.is_requester(actor.id, actor.handle):
                approver = self.permissions.is_approver(actor, request)
                raise AccessError(msg.not_yours_to_cancel(request, approver, actor.is_admin))
            if request.holds_access:
                raise AccessError(
                    f"{request.id} is already active; end it with `!access revoke {request.id}`."
                )
            request.cancel(actor.handle, self.clock())
            self.uow.commit(request, "cancelled", actor.handle, outcome="cancelled")
            return self._told(Cancelled(request))

    def _only_pending(self, actor: Actor) -> str:
        pending = [
            r
            for r in self.store.live_of(actor.handle)
            if r.status is Status.PENDING and r.is_requester(actor.id, actor.handle)
        ]
        if len(pending) == 1:
            return pending[0].id
        raise AccessError(msg.which_to_cancel(pending))

    def revoke(self, actor: Actor, request_id: str) -> Result:
        with self.uow.lock:
            request = self.uow.get(request_id)
            self._check_revocable(actor, request)
            if not self.provisioner._claim(request.id):
                raise AccessError(f"{request.id} is being revoked or extended right now.")
            request.ask_revoke(actor.handle, self.clock())
            self._commit_claimed(request, "revoke_requested", actor.handle, "revoking")
        notices = self.provisioner._revoke(request, actor.handle)
        return Revoked(self.store.get(request.id) or request, notices, told=True)

    def _check_revocable(self, actor: Actor, request: Request) -> None:
        if not (actor.is_admin or self.permissions.involved(actor, request)):
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

    def retry(self, actor: Actor, request_id: str) -> Result:
        """Retry a failed revoke now instead of waiting for the next backoff step.

        A failed grant is not retried: it is final (nothing was granted) and the
        requester asks again, so that nobody gets access long after the approval.
        """
        if not actor.is_admin:
            raise AccessError(
                "Only bot admins (BOT_ADMINS) can retry a revoke; failed revokes are also "
                "retried automatically."
            )
        with self.uow.lock:
            request = self.uow.get(request_id)
            self._check_retryable(request)
            if not self.provisioner._claim(request.id):
                raise AccessError(f"{request.id} is being revoked right now.")
            request.ask_retry(actor.handle, self.clock())
            self._commit_claimed(request, "revoke_retry", actor.handle, "retrying")
        notices = self.provisioner._revoke(request, actor.handle)
        return Retried(self.store.get(request.id) or request, notices, told=True)

    def _check_retryable(self, request: Request) -> None:
        if request.status is Status.GRANT_FAILED:
            raise AccessError(
                f"The grant of {request.id} failed and that is final: nothing was granted. "
                f"{msg.who(request.requester)} can ask again with "
                f"{self.registry.ask_again(request)}."
            )
        if request.status is not Status.REVOKE_FAILED:
            raise AccessError(
                f"{request.id} has no failed revoke to retry "
                f"({msg.STATUS_WORDS[request.status]}); `!access retry` is for a revoke "
                f"that failed. See `!access show {request.id}`."
            )

    def _commit_claimed(self, request: Request, event: str, actor: str, outcome: str) -> None:
        """Commit a request just claimed for a strategy call; a failed commit frees it."""
        try:
            self.uow.commit(request, event, actor, outcome=outcome)
        except BaseException:
            self.uow.claims.discard(request.id)
            raise

    # -- break-glass review ---------------------------------------------------------

    def ack(self, actor: Actor, request_id: str, note: str = "") -> Result:
        """An approver (or admin) acknowledges a break-glass grant after the fact."""
        note = " ".join(note.split())
        with self.uow.lock:
            request = self.uow.get(request_id)
            self._check_reviewer(actor, request)
            request.acknowledge(actor.handle, self.clock(), note)
            self.uow.commit(request, "reviewed", actor.handle, outcome="reviewed", detail=note)
            return self._told(Acknowledged(request, by=actor.handle, note=note))

    def _check_reviewer(self, actor: Actor, request: Request) -> None:
        if not self.permissions.may_review(actor, request):
            raise AccessError(
                f"Only the approvers of {request.resource} "
                f"({msg.approvers_text(request.approvers)}) or an admin can acknowledge "
                f"{request.id}."
            )
        if request.is_requester(actor.id, actor.handle) and request.review_required:
            others = msg.approvers_text(self.permissions.approvers_other_than(actor, request))
            raise AccessError(
                f"You cannot review your own break-glass grant {request.id}; "
                f"{others if others != 'nobody' else 'another approver'} must."
            )

    # -- policies and presentation --------------------------------------------------

    def reload(self, actor: Actor) -> PolicyReload:
        """`!access reload`: an admin loads the policy files again, all or nothing."""
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can reload policies.")
        return self.registry.reload(actor.handle)

    def remember_card(self, request_id: str, ref: dict) -> None:
        """Note where a chat backend posted the request's card, so later events update it.

        Presentation, not a state change: one store write, no audit event. A request that
        already finished keeps its archived record as it was.
        """
        with self.uow.lock:
            request = self.store.get(request_id)
            if request is not None and request.place_card(ref):
                self.store.save(request)
