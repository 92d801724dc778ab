"""The unit of work: one decision at a time, and every change audited before it is stored.

Use cases take `lock` around read-decide-write, then `commit` the request: its audit
event first (fsynced), then its store write. A change the audit log cannot take is not
made; a store write that fails is audited as failed. `claims` marks requests whose
strategy call is under way (shared with other bots on PostgreSQL).
"""

from __future__ import annotations

from .audit import AuditError, AuditLog
from .domain import AccessError, Request
from .messages import inert
from .store import DecisionLock, RequestStore, StoreError


def _nothing_changed(exc: Exception) -> AccessError:
    return AccessError(f"Nothing was changed: {exc}. Tell an admin.")


class UnitOfWork:
    def __init__(self, store: RequestStore, audit: AuditLog):
        self.store = store
        self.audit_log = audit
        # One decision at a time: this process's threads, and (on a shared database) every
        # bot; the claims on strategy calls are the store's, so other bots see them too.
        self.lock = DecisionLock(store)
        self.claims = store.claims()  # requests whose strategy call is under way

    def get(self, request_id: str) -> Request:
        """The request with this id, or an error saying where to look."""
        request_id = str(request_id).strip().lower()
        request = self.store.get(request_id)
        if request is None:
            raise AccessError(
                f"No request with id `{inert(request_id, 40)}`. "
                "See yours with `!access mine` (approvers: `!access list`)."
            )
        return request

    def commit(
        self, request: Request, event: str, actor: str, outcome: str, detail: str = "", **extra
    ) -> None:
        """One audit event, then one store write: never a change that is not audited."""
        self.commit_many([(request, event, actor, {"outcome": outcome, "detail": detail, **extra})])

    def commit_many(self, items: list[tuple[Request, str, str, dict]]) -> None:
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
            self.audit_log.append_many(events)
        except AuditError as exc:
            raise _nothing_changed(exc) from exc
        try:
            self.store.save_many([request for request, *_ in items])
        except StoreError as exc:
            for request, event, actor, _ in items:
                self.audit(
                    "store_write_failed",
                    actor,
                    request_id=request.id,
                    outcome="failed",
                    detail=f"{event} was not saved: {exc}",
                )
            raise _nothing_changed(exc) from exc

    def audit(self, event: str, actor: str, **fields) -> None:
        """An audit event with no store write (refusals, reloads)."""
        try:
            self.audit_log.append(event, actor=actor, **fields)
        except AuditError as exc:
            raise _nothing_changed(exc) from exc
