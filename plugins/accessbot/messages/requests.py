"""Asking for access and looking at requests: `!access request`'s refusals, `!access show`,
`!access mine` and `!access list`."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain import Request, Status, format_duration
from ..safe_text import inert
from .basics import (
    STATUS_WORDS,
    SYSTEM_ACTORS,
    moment,
    readable_times,
    request_approvers,
    when,
    who,
)
from .cards import note_now
from .endings import sessions_said
from .links import fields_text, links_lines
from .review import review_status


def too_many_requests(limit: int, again: datetime, now: datetime) -> str:
    """The refusal of a person's request over ACCESS_REQUESTS_PER_HOUR."""
    wait = format_duration(max(again - now, timedelta(minutes=1)))
    return (
        f"You made {limit} requests in the last hour, the most this bot takes from one "
        f"person (ACCESS_REQUESTS_PER_HOUR). You can ask again in {wait} "
        f"({when(again)}); an active grant can be extended with `!access extend <id>`."
    )


def ask_again(resource: str, duration: timedelta, specs=(), values=None) -> str:
    """The command that asks afresh, with every field the person gave (`values`) and a
    placeholder for any other the resource requires:
    `!access request payroll 30m ticket=OPS-12 <reason>`."""
    values = values or {}
    fields = "".join(
        f" {s.name}={inert(values[s.name], 40)}" if s.name in values else f" {s.name}=<{s.name}>"
        for s in specs
        if s.required or s.name in values
    )
    return f"`!access request {resource} {format_duration(duration)}{fields} <reason>`"


def length(request: Request) -> str:
    """How long it lasts: what was asked, and what extensions added since (`1h30m (1h,
    extended by 30m)`)."""
    if request.extensions and request.granted_at and request.expires_at:
        total = request.expires_at - request.granted_at
        if total > request.duration:
            return (
                f"{format_duration(total)} ({format_duration(request.duration)}, extended by "
                f"{format_duration(total - request.duration)})"
            )
    return format_duration(request.duration)


def request_line(request: Request, now: datetime) -> str:
    """One line for `!access mine` / `!access list`."""
    base = (
        f"`{request.id}` {request.resource} for {who(request.requester)}, "
        f"{length(request)}: {STATUS_WORDS[request.status]}"
    )
    if request.holds_access and request.expires_at:
        base += f", {time_left(request, now)} (until {when(request.expires_at)})"
    elif request.status is Status.PENDING and request.approvals_required > 1:
        base += f" ({len(request.approvals)} of {request.approvals_required} approvals)"
    return base


def time_left(request: Request, now: datetime) -> str:
    """`29m44s left`, or past the end without a confirmed revoke `none, overdue by 1m50s`."""
    if request.expires_at and now > request.expires_at:
        return f"none, overdue by {format_duration(now - request.expires_at)}"
    return f"{format_duration(request.remaining(now))} left"


def grant_end(request: Request) -> str:
    """When a grant ends, or ended: a revoke before the end says when it was revoked."""
    if request.status is Status.REVOKED and request.ended_at:
        if request.ended_at < request.expires_at:
            return f"revoked: {when(request.ended_at)} (it was to end {when(request.expires_at)})"
        return f"revoked: {when(request.ended_at)}"
    if request.status is Status.EXPIRED and request.ended_at:
        late = request.ended_at - request.expires_at
        removed = f" (removed {when(request.ended_at)})" if late >= timedelta(seconds=1) else ""
        return f"ended: {when(request.expires_at)}{removed}"
    return f"ends: {when(request.expires_at)}"


def show(request: Request, now: datetime) -> str:
    lines = [
        f"**Request {request.id}**: {STATUS_WORDS[request.status]}",
        f"Requester: {who(request.requester)}"
        + (f" ({request.requester_email})" if request.requester_email else ""),
        f"Resource: {request.resource}",
        f"Duration: {length(request)}",
        f"Reason: {inert(request.reason)}",
    ]
    if request.fields:
        lines.append(f"Fields: {fields_text(request)}")
    lines += links_lines(request)
    lines.append(
        f"Approvers: {request_approvers(request)} "
        f"({request.approvals_required} needed) in {request.channel}"
    )
    if request.expires_at:
        lines.append(f"Granted: {when(request.granted_at)}; {grant_end(request)}")
        if request.holds_access:
            left = time_left(request, now)
            lines.append(f"Time left: {left.removesuffix(' left')}")
    if request.sessions:
        lines.append(f"At the revoke:{sessions_said(request)}")
    if request.last_error:
        lines.append(f"Last error: {inert(request.last_error)}")
    if request.review_required:
        lines.append(f"Break-glass review: {review_status(request)}")
    lines += [f"Note: {inert(note_now(request, n))}" for n in request.notes]
    lines.append("History:")
    lines += [history_line(event) for event in request.history]
    return "\n".join(lines)


# Steps the bot takes itself, as a person reads them in a history.
_HISTORY_WORDS = {"nudge": "approvers reminded", "expiry_reminder": "requester reminded of the end"}


def history_line(event) -> str:
    """One step in `!access show`: `approved by @alice`, `approvers reminded (by the bot)`."""
    note = f": {readable_times(inert(event.note))}" if event.note else ""
    action = _HISTORY_WORDS.get(event.action, event.action.replace("_", " "))
    system = SYSTEM_ACTORS.get(event.actor)
    by = f" (by {system})" if system else f" by {who(event.actor)}"
    return f"- {moment(event.at)} {action}{by}{note}"


def checking_policy(resource: str) -> str:
    """Said first when a request's policy check is slow."""
    return f"Checking the policy for {inert(resource, 60)}..."


def mine(own: list[Request], now: datetime) -> str:
    """`!access mine`: the person's own requests and grants."""
    if not own:
        return "You have no pending requests or active grants. Ask with `!access request <resource> [duration] <reason>`; see `!access resources`."
    return "Your requests and grants:\n" + "\n".join(f"- {request_line(r, now)}" for r in own)


def live_list(live: list[Request], now: datetime, scope: list[str] | None = None) -> str:
    """`!access list`: the pending requests and active grants one may see; `scope`, the
    resources an approver approves (None: an admin, who sees every resource)."""
    if scope is None:
        where, note = "on every resource", ""
    else:
        names = ", ".join(inert(n, 60) for n in scope[:8]) + (", ..." if len(scope) > 8 else "")
        where = "on the resources you approve" + (f" ({names})" if names else "")
        note = "; admins see every resource"
    if not live:
        return f"No pending requests or active grants {where}{note}."
    return f"Pending requests and active grants {where}:\n" + "\n".join(
        f"- {request_line(r, now)}" for r in live
    )
