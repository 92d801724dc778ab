"""The commands that only read: show, mine, list, resources, review, audit. Each checks
who may look, reads the store, the policies or the audit log, and answers with text
from the messages package. Nothing here changes a request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from . import messages as msg
from .audit import AuditLog
from .commands import resembles
from .domain import AccessError, normalize_handle
from .permissions import Permissions
from .policy_registry import PolicyRegistry
from .results import Actor
from .unit_of_work import UnitOfWork


class Queries:
    def __init__(
        self,
        uow: UnitOfWork,
        audit: AuditLog,
        registry: PolicyRegistry,
        permissions: Permissions,
        clock: Callable[[], datetime],
    ):
        self.uow = uow
        self.store = uow.store
        self.audit = audit
        self.registry = registry
        self.permissions = permissions
        self.clock = clock

    def show(self, actor: Actor, request_id: str) -> str:
        request = self.uow.get(request_id)
        if not self.permissions.may_see(actor, request):
            raise AccessError(
                f"Only the requester, the approvers of {request.resource} and admins can see "
                f"{request.id}. Your own requests: `!access mine`."
            )
        return msg.show(request, self.clock())

    def mine(self, actor: Actor) -> str:
        own = [
            r for r in self.store.live_of(actor.handle) if r.is_requester(actor.id, actor.handle)
        ]
        return msg.mine(own, self.clock())

    def list_live(self, actor: Actor) -> str:
        live = self.store.live()
        if actor.is_admin:
            return msg.live_list(live, self.clock())
        self._check_any_approver(actor, "list")
        live = [r for r in live if self.permissions.is_approver(actor, r)]
        policies = self.registry.policies
        approved = [
            name
            for name in (policies.names() if policies else [])
            if self.permissions.approves_resource(actor, policies.resources[name].approvers)
        ]
        return msg.live_list(live, self.clock(), approved)

    def review(self, actor: Actor) -> str:
        """The break-glass grants still waiting for a human to acknowledge them."""
        waiting = self.store.awaiting_review()
        if not actor.is_admin:
            self._check_any_approver(actor, "review")
            waiting = [r for r in waiting if self.permissions.is_approver(actor, r)]
        if not waiting:
            return "No break-glass grants are waiting for review."
        return msg.review_list(waiting)

    def _check_any_approver(self, actor: Actor, command: str) -> None:
        if not self.permissions.is_any_approver(actor):
            raise AccessError(
                f"`!access {command}` is for approvers and admins; see yours with `!access mine`."
            )

    def resources(self) -> str:
        return msg.resources(self.registry.current())

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
        user, resource, request_id = self._audit_terms(terms or [], user, resource, request_id)
        records = self.audit.query(
            user=normalize_handle(user) if user else None,
            resource=resource,
            request_id=request_id,
            since=self.clock() - since if since else None,
            limit=limit,
        )
        return msg.audit_events(records)

    def _audit_terms(
        self, terms: list[str], user: str | None, resource: str | None, request_id: str | None
    ) -> tuple[str | None, str | None, str | None]:
        """Bare words: a resource if one is called that, else a request id if one exists,
        else a user."""
        unknown = []
        for term in terms:
            if self.registry.get(term) and not resource:
                resource = term
            elif self.store.exists(term.lower()) and not request_id:
                request_id = term.lower()
            elif meant := resembles(term, ("verify", "status")):
                raise AccessError(msg.audit_subcommand_misspelt(term, meant))
            elif not user:
                user = term
            else:
                unknown.append(term)
        if unknown:
            raise AccessError(msg.audit_not_understood(unknown, user, self.registry.names()))
        return user, resource, request_id

    def verify_audit(self, actor: Actor) -> str:
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can verify the audit log.")
        return str(self.audit.verify())
