"""The unit of work: one decision at a time, and every change audited before it is stored.

Use cases take `lock` around read-decide-write, then `commit` the request: its audit
event first (fsynced), then its store write. A change the audit log cannot take is not
made; a store write that fails is audited as failed. `claims` marks requests whose
strategy call is under way (shared with other bots on PostgreSQL).

The notices a change owes people are `announce`d under the same lock, right after its
commit: written to the outbox in the same database transaction on PostgreSQL (the change
and its notices commit together or not at all), and on TinyDB right after the store's
write, before the lock lets anything else happen (the outbox is a file of its own: a
crash between the two fsyncs is the only way to lose them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from .audit import AuditError, AuditLog
from .domain import AccessError, Request, cut_text
from .notices import Notice
from .safe_text import inert
from .store import DecisionLock, RequestStore, StoreError

log = logging.getLogger(__name__)


class NoticeWriter(Protocol):
    """Where announced notices go: the outbox, through the delivery workers (which hold
    back a command's notices until its reply is sent)."""

    def put(self, notices: list[Notice], now: datetime) -> object: ...

    def committed(self) -> None:
        """The transaction that put notices has ended: look for them now."""


def _nothing_changed(exc: Exception) -> AccessError:
    return AccessError(f"Nothing was changed: {exc}. Tell an admin.")


class UnitOfWork:
    def __init__(
        self,
        store: RequestStore,
        audit: AuditLog,
        outbox: NoticeWriter | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.store = store
        self.audit_log = audit
        self.outbox = outbox  # None: notices go back to the caller, which delivers them
        self.clock = clock
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
                    **_cut_detail(fields),
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

    def announce(self, notices: Iterable[Notice]) -> list[Notice]:
        """Write the notices of a change to the outbox, in that change's commit: call it
        under `lock`, right after `commit`. The notices, marked `stored` (without an
        outbox, as they are: the caller delivers them). An outbox that cannot be written
        leaves the change made and its notices unmarked, for the caller to send."""
        notices = list(notices)
        fresh = [notice for notice in notices if not notice.stored]
        if self.outbox is None or not fresh:
            return notices
        with self.lock:
            try:
                self.outbox.put(fresh, self.clock())
            except Exception:  # noqa: BLE001 - the change is made: its notices still go out
                log.exception("could not write %d notice(s) to the outbox", len(fresh))
                return notices
            self.lock.after_exit(self.outbox.committed)
        return [notice if notice.stored else replace(notice, stored=True) for notice in notices]

    def audit(self, event: str, actor: str, **fields) -> None:
        """An audit event with no store write (refusals, reloads)."""
        try:
            self.audit_log.append(event, actor=actor, **_cut_detail(fields))
        except AuditError as exc:
            raise _nothing_changed(exc) from exc


def _cut_detail(fields: dict) -> dict:
    """An event's `detail` cut to `ERROR_TEXT_LIMIT` (it often quotes a target's error)."""
    if isinstance(fields.get("detail"), str):
        return {**fields, "detail": cut_text(fields["detail"])}
    return fields
