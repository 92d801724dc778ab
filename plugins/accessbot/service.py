"""Use cases: one method per command, plus `tick` for the scheduler.

Each method returns an Outcome: the reply for the person who typed the command, and
notices for others (the approval channel, the requester). The drivers (plugin and
scheduler) deliver them; the service never talks to chat. Every state change is one
audit event (written first, so nothing changes unaudited) plus one store write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import messages as msg
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
from .integrations.pagerduty import PagerDutyNotConfigured
from .policy import (
    HookFailed,
    PolicyContext,
    PolicyError,
    PolicySet,
    Resource,
    load_policies,
    run_hook,
)
from .store import RequestStore, StoreError
from .strategies import SettingsError, StrategyError, build_strategy, payload_for

log = logging.getLogger(__name__)

RETRY_FIRST = timedelta(seconds=10)
RETRY_CAP = timedelta(minutes=5)


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

    def matches(self, entry: str) -> bool:
        """Does an approver entry (`@bob`, `bob`, `U024BE7LH`, `bob@acme.com`) name me?"""
        entry = str(entry).strip()
        if "@" in entry[1:]:
            return bool(self.email) and entry.lower() == self.email.lower()
        if self.id and entry == self.id:
            return True
        return normalize_handle(entry) == self.handle


@dataclass(frozen=True)
class Notice:
    audience: str  # "channel" or "user"
    to: str  # channel name or user address
    text: str
    request: Request | None = None
    kind: str = "text"  # "card" for an approval card, "alert" for a loud one


@dataclass
class Outcome:
    reply: str
    notices: list[Notice] = field(default_factory=list)
    request: Request | None = None


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
    ):
        self.store = store
        self.audit = audit
        self.policy_dir = Path(policy_dir)
        self.clock = clock
        self.pending_timeout = pending_timeout
        self.pagerduty = pagerduty or PagerDutyNotConfigured()
        self.hook_timeout = hook_timeout
        self.lock = threading.RLock()
        self._inflight: set[str] = set()  # requests whose strategy call is under way
        self.policies: PolicySet | None = None
        self.policy_error: PolicyError | None = None
        try:
            self.policies = load_policies(self.policy_dir)
        except PolicyError as exc:
            self.policy_error = exc
            log.error("policies did not load:\n%s", exc)

    # -- requesting -------------------------------------------------------------

    def request(
        self, actor: Actor, resource_name: str, duration: timedelta | None, reason: str
    ) -> Outcome:
        resource = self._resource(resource_name)
        if duration is None:
            duration = resource.default_duration
        if duration <= timedelta(0):
            raise AccessError(
                f"A duration must be longer than 0s; {resource.name} allows up to "
                f"{format_duration(resource.max_duration)}, e.g. "
                f"`!access request {resource.name} {format_duration(resource.default_duration)} <reason>`"
            )
        if duration > resource.max_duration:
            raise AccessError(
                f"{resource.name} allows at most {format_duration(resource.max_duration)}; "
                f"you asked for {format_duration(duration)}. Try "
                f"`!access request {resource.name} {format_duration(resource.max_duration)} {reason or '<reason>'}`"
            )
        reason = " ".join(str(reason).split())
        if not reason:
            raise AccessError(
                f"Say why you need it: `!access request {resource.name} "
                f"{format_duration(duration)} <reason>`"
            )
        now = self.clock()
        request = Request(
            id=self._unique_id(),
            requester=actor.handle,
            requester_address=actor.address,
            requester_email=actor.email,
            resource=resource.name,
            duration=duration,
            reason=reason,
            created_at=now,
            channel=resource.channel,
            approvers=list(resource.approvers),
            approvals_required=resource.approvals_required,
            allow_self_approval=resource.allow_self_approval,
            strategy=dict(resource.strategy_settings),
            policy_file=resource.file,
        )
        request.record(now, "requested", actor.handle, reason)
        ctx = PolicyContext(self.pagerduty, now, logging.getLogger(f"policy.{resource.file}"))
        self._route(request, resource, ctx)
        decision = self._policy_decision(request, resource, ctx)

        with self.lock:
            self._commit(request, "requested", actor.handle, outcome="pending")
            if decision is not None and not decision.approve:
                request.decided_by = "policy"
                request.decision_note = decision.reason
                request.auto_decision = f"denied: {decision.reason}"
                request.move(Status.DENIED, now, "policy", decision.reason)
                self._commit(request, "denied", "policy", outcome="denied", detail=decision.reason)
                return Outcome(
                    f"Request {request.id} for {resource.name} was denied by policy: "
                    f"{msg.inert(decision.reason)}",
                    [],
                    request,
                )
            if decision is not None and decision.approve:
                request.decided_by = "policy"
                request.decision_note = decision.reason
                request.auto_decision = f"approved: {decision.reason}"
                request.move(Status.APPROVED, now, "policy", decision.reason)
                self._commit(
                    request, "approved", "policy", outcome="approved", detail=decision.reason
                )
        if decision is not None and decision.approve:
            return self._auto_granted(request)

        card = Notice("channel", request.channel, msg.card_body(request), request, kind="card")
        reply = (
            f"Request {request.id} created: {resource.name} for {format_duration(duration)}. "
            f"Waiting for {self._needed_text(request)} in {request.channel}. "
            f"Withdraw it with `!access cancel {request.id}`; "
            f"see it with `!access show {request.id}`."
        )
        return Outcome(reply, [card], request)

    def _auto_granted(self, request: Request) -> Outcome:
        notices = self._grant(request)
        request = self.store.get(request.id) or request
        if request.status is Status.ACTIVE:
            alert = (
                f"BREAK-GLASS: {msg.who(request.requester)} got {request.resource} for "
                f"{format_duration(request.duration)} (until {msg.when(request.expires_at)}), "
                f"reason: {msg.inert(request.reason)}. Approved by policy: "
                f"{msg.inert(request.decision_note)}. Request {request.id}; end it with "
                f"`!access revoke {request.id}`."
            )
            reply = (
                f"Request {request.id} approved by policy ({msg.inert(request.decision_note)}): "
                f"you have {request.resource} until {msg.when(request.expires_at)}. "
                f"End it early with `!access revoke {request.id}`."
            )
            return Outcome(
                reply, [Notice("channel", request.channel, alert, request, "alert")], request
            )
        return Outcome(
            f"Request {request.id} was approved by policy, but the grant failed: "
            f"{msg.inert(request.last_error)}. The approvers in {request.channel} were told.",
            [n for n in notices if n.audience == "channel"],
            request,
        )

    def _route(self, request: Request, resource: Resource, ctx: PolicyContext) -> None:
        if "get_approvers" not in resource.hooks:
            return
        try:
            found = run_hook(resource, "get_approvers", request.view(), ctx, self.hook_timeout)
            if isinstance(found, str) or not isinstance(found, (list, tuple, set)):
                raise HookFailed(
                    f"{resource.file}: get_approvers returned {type(found).__name__}, not a list"
                )
            entries = [str(e).strip() for e in found if str(e).strip()]
            if entries:
                request.approvers = entries
                return
            note = f"{resource.file}: get_approvers returned nobody"
        except HookFailed as exc:
            note = str(exc)
        log.warning("routing fell back to the listed approvers: %s", note)
        request.notes.append(f"get_approvers failed ({note}); routed to the listed approvers")
        if not request.approvers:
            raise AccessError(
                f"Nobody can approve {resource.name} right now ({note}). "
                "Ask an admin to check the policy file."
            )

    def _policy_decision(self, request: Request, resource: Resource, ctx: PolicyContext):
        if "on_request" not in resource.hooks:
            return None
        try:
            decision = run_hook(resource, "on_request", request.view(), ctx, self.hook_timeout)
        except HookFailed as exc:
            log.warning("on_request failed, falling back to human approval: %s", exc)
            request.notes.append(f"policy check failed, needs a human: {exc}")
            return None
        if decision is None:
            return None
        if not hasattr(decision, "approve") or not hasattr(decision, "reason"):
            request.notes.append(
                f"{resource.file}: on_request returned {decision!r}; it must return "
                "ctx.approve(reason), ctx.deny(reason) or None. Needs a human."
            )
            return None
        return decision

    # -- deciding ---------------------------------------------------------------

    def approve(self, actor: Actor, request_id: str, comment: str = "") -> Outcome:
        comment = " ".join(comment.split())
        with self.lock:
            request = self._get(request_id)
            self._check_approver(actor, request, "approve")
            now = self.clock()
            done = request.add_approval(actor.handle, now, comment)
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
        notices = self._grant(request)
        request = self.store.get(request.id) or request
        if request.status is Status.ACTIVE:
            reply = (
                f"Approved {request.id}: {msg.who(request.requester)} has {request.resource} "
                f"for {format_duration(request.duration)}, until {msg.when(request.expires_at)}."
            )
        else:
            reply = (
                f"Approved {request.id}, but the grant failed: {msg.inert(request.last_error)}. "
                f"{msg.who(request.requester)} was told; they can request again once it is fixed."
            )
        return Outcome(reply, notices, request)

    def deny(self, actor: Actor, request_id: str, reason: str = "") -> Outcome:
        reason = " ".join(reason.split())
        with self.lock:
            request = self._get(request_id)
            self._check_approver(actor, request, "deny")
            now = self.clock()
            request.move(Status.DENIED, now, actor.handle, reason)
            request.decided_by = actor.handle
            request.decision_note = reason
            self._commit(request, "denied", actor.handle, outcome="denied", detail=reason)
        because = f": {msg.inert(reason)}" if reason else ""
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

    def cancel(self, actor: Actor, request_id: str) -> Outcome:
        with self.lock:
            request = self._get(request_id)
            if request.requester != actor.handle:
                raise AccessError(
                    f"Only {msg.who(request.requester)} can cancel {request.id}; "
                    f"approvers can `!deny {request.id} <reason>`."
                )
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

    def revoke(self, actor: Actor, request_id: str) -> Outcome:
        with self.lock:
            request = self._get(request_id)
            if not (
                actor.is_admin
                or request.requester == actor.handle
                or any(actor.matches(a) for a in request.approvers)
            ):
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
            if request.id in self._inflight:
                raise AccessError(f"{request.id} is being revoked right now.")
            request.ending = "revoked"
            request.record(self.clock(), "revoke_requested", actor.handle)
            self._commit(request, "revoke_requested", actor.handle, outcome="revoking")
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
        if not (
            actor.is_admin
            or request.requester == actor.handle
            or any(actor.matches(a) for a in request.approvers)
        ):
            raise AccessError(
                f"Only the requester, the approvers of {request.resource} and admins can see "
                f"{request.id}. Your own requests: `!access mine`."
            )
        return msg.show(request, self.clock())

    def mine(self, actor: Actor) -> str:
        now = self.clock()
        own = [r for r in self.store.live() if r.requester == actor.handle]
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
            live = [r for r in live if any(actor.matches(a) for a in r.approvers)]
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
            )
        return "\n".join(lines)

    def reload(self, actor: Actor) -> str:
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can reload policies.")
        try:
            new = load_policies(self.policy_dir)
        except PolicyError as exc:
            self._audit(
                "policy_reload_failed", actor.handle, outcome="failed", detail="; ".join(exc.errors)
            )
            kept = (
                f"the {len(self.policies.resources)} resources already loaded stay in force"
                if self.policies
                else "no policies are loaded"
            )
            return (
                "Reload failed, nothing changed (" + kept + "). Fix these and run "
                "`!access reload` again:\n" + "\n".join(f"- {e}" for e in exc.errors)
            )
        old = self.policies.resources if self.policies else {}
        added = sorted(set(new.resources) - set(old))
        removed = sorted(set(old) - set(new.resources))
        changed = sorted(
            n
            for n in set(old) & set(new.resources)
            if old[n].summary() != new.resources[n].summary()
        )
        with self.lock:
            self.policies = new
            self.policy_error = None
        summary = (
            f"added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}; "
            f"changed: {', '.join(changed) or 'none'}"
        )
        self._audit("policy_reloaded", actor.handle, outcome="ok", detail=summary)
        return (
            f"Reloaded {len(new.files)} policy file(s), {len(new.resources)} resource(s) "
            f"({summary}). Requests already made keep the rules they were made under."
        )

    def audit_events(
        self,
        actor: Actor,
        *,
        user: str | None = None,
        resource: str | None = None,
        request_id: str | None = None,
        since: timedelta | None = None,
        limit: int = 20,
    ) -> str:
        if not actor.is_admin:
            raise AccessError("Only bot admins (BOT_ADMINS) can read the audit log.")
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
        """Revoke what expired, retry failed revokes, finish interrupted grants, time out.

        Revocations go first: they are the promise that matters most.
        """
        notices: list[Notice] = []
        now = self.clock()
        for request in self.store.due_for_expiry(now):
            if request.id in self._inflight:
                continue
            if request.ending is None:
                with self.lock:
                    current = self.store.get(request.id)
                    if not current or current.status is not Status.ACTIVE:
                        continue
                    current.ending = "expired"
                    self.store.save(current)
                    request = current
            notices += self._revoke(request, "scheduler")
        for request in self.store.live():
            if request.id in self._inflight:
                continue
            if request.status is Status.APPROVED:
                notices += self._grant(request)  # approved, but the bot stopped mid-grant
            elif request.status is Status.ACTIVE and request.ending == "revoked":
                notices += self._revoke(request, "scheduler")  # stopped mid-revoke
            elif (
                request.status is Status.PENDING
                and request.created_at + self.pending_timeout <= now
            ):
                notices += self._time_out(request.id)
        return notices

    def _time_out(self, request_id: str) -> list[Notice]:
        with self.lock:
            request = self.store.get(request_id)
            if not request or request.status is not Status.PENDING:
                return []
            request.move(Status.TIMED_OUT, self.clock(), "scheduler")
            self._commit(request, "timed_out", "scheduler", outcome="timed_out")
        waited = format_duration(self.pending_timeout)
        return [
            self._to_requester(
                request,
                f"Your request {request.id} for {request.resource} timed out after {waited} "
                f"without a decision. Ask again with `!access request {request.resource} "
                f"{format_duration(request.duration)} <reason>`.",
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
        with self.lock:
            if request.id in self._inflight:
                return []
            self._inflight.add(request.id)
        try:
            error = None
            try:
                note = build_strategy(request.strategy).call(
                    "grant", payload_for("grant", self._with_expiry(request))
                )
            except (StrategyError, SettingsError) as exc:
                error, note = str(exc), ""
            with self.lock:
                request = self.store.get(request.id)
                now = self.clock()
                if error is None:
                    request.activate(now)
                    self._commit(
                        request,
                        "granted",
                        "bot",
                        outcome="active",
                        detail=f"until {msg.when(request.expires_at)}; {note}",
                    )
                else:
                    request.last_error = error
                    request.move(Status.GRANT_FAILED, now, "bot", error)
                    self._commit(
                        request, "grant_failed", "bot", outcome="grant_failed", detail=error
                    )
        finally:
            self._inflight.discard(request.id)
        if error is None:
            by = msg.who(request.decided_by) if request.decided_by != "policy" else "policy"
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
                f"`!access request {request.resource} {format_duration(request.duration)} <reason>` "
                "once the approvers have looked at it.",
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

    def _revoke(self, request: Request, actor: str) -> list[Notice]:
        with self.lock:
            if request.id in self._inflight:
                return []
            self._inflight.add(request.id)
        try:
            error = None
            try:
                build_strategy(request.strategy).call("revoke", payload_for("revoke", request))
            except (StrategyError, SettingsError) as exc:
                error = str(exc)
            with self.lock:
                request = self.store.get(request.id)
                now = self.clock()
                if error is None:
                    final = Status.REVOKED if request.ending == "revoked" else Status.EXPIRED
                    request.ended_at = now
                    request.last_error = ""
                    request.next_retry_at = None
                    request.move(final, now, actor)
                    self._commit(request, final.value, actor, outcome=final.value)
                else:
                    request.revoke_attempts += 1
                    delay = min(RETRY_FIRST * 2 ** (request.revoke_attempts - 1), RETRY_CAP)
                    request.next_retry_at = now + delay
                    request.last_error = error
                    request.move(Status.REVOKE_FAILED, now, actor, error)
                    self._commit(
                        request,
                        "revoke_failed",
                        actor,
                        outcome="revoke_failed",
                        detail=f"attempt {request.revoke_attempts}: {error}",
                    )
        finally:
            self._inflight.discard(request.id)
        if error is None:
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

    # -- helpers ------------------------------------------------------------------

    def _commit(self, request: Request, event: str, actor: str, outcome: str, detail: str = ""):
        """One audit event, then one store write: never a change that is not audited."""
        self._audit(
            event,
            actor,
            request_id=request.id,
            user=request.requester,
            resource=request.resource,
            outcome=outcome,
            detail=detail,
        )
        try:
            self.store.save(request)
        except StoreError as exc:
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

    def _with_expiry(self, request: Request) -> Request:
        """The grant payload names the end the grant will get when it succeeds now."""
        preview = request.copy()
        preview.expires_at = self.clock() + request.duration
        return preview

    def _to_requester(self, request: Request, text: str) -> Notice:
        return Notice("user", request.requester_address or request.requester, text, request)

    def _needed_text(self, request: Request) -> str:
        count = (
            f"{request.approvals_required} approvals"
            if request.approvals_required > 1
            else "an approval"
        )
        return f"{count} from {msg.approvers_text(request.approvers)}"

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
            raise AccessError(
                f"Unknown resource `{msg.inert(name, 60)}`. You can request: {names}. "
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
        is_requester = request.requester == actor.handle
        if is_requester and not request.allow_self_approval:
            raise AccessError(
                f"You cannot {verb} your own request {request.id}; "
                f"{msg.approvers_text([a for a in request.approvers if not actor.matches(a)]) or 'another approver'} must."
            )
        if not any(actor.matches(a) for a in request.approvers):
            raise AccessError(
                f"Only the approvers of {request.resource} "
                f"({msg.approvers_text(request.approvers)}) can {verb} {request.id}."
            )

    def _is_any_approver(self, actor: Actor) -> bool:
        if any(actor.matches(a) for r in self.store.live() for a in r.approvers):
            return True
        policies = self.policies
        return bool(policies) and any(
            actor.matches(a) for res in policies.resources.values() for a in res.approvers
        )

    def _unique_id(self) -> str:
        for _ in range(100):
            candidate = new_id()
            if not self.store.exists(candidate):
                return candidate
        raise AccessError("Could not pick a free request id; try again.")
