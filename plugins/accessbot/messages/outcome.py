"""The one `outcome(result)` dispatch: the reply and notices people read for each typed
result a command's handler returns (`results.py`)."""

from __future__ import annotations

from functools import singledispatch

from ..domain import Request, Status, format_duration
from ..results import (
    Acknowledged,
    ApprovalCounted,
    Approved,
    AutoExtended,
    AutoGranted,
    Cancelled,
    Denied,
    DeniedByPolicy,
    Outcome,
    Result,
    Retried,
    Revoked,
    Submitted,
    Withdrawn,
)
from ..safe_text import inert
from .basics import to_channel, to_requester, when, who
from .cards import card
from .decisions import needed
from .extensions import WITHDRAWN, grant_stays, withdrawn_extension, withdrawn_reply


def _because(reason: str) -> str:
    return f": {inert(reason)}" if reason else ""


@singledispatch
def outcome(result: Result) -> Outcome:
    """The reply and notices people read for a command's typed result."""
    raise TypeError(f"no text for {type(result).__name__}")


@outcome.register
def _submitted(result: Submitted) -> Outcome:
    request = result.request
    noun = "Extension request" if request.extends else "Request"
    what = (
        f"{format_duration(request.duration)} more on {request.extends}"
        if request.extends
        else f"{request.resource} for {format_duration(request.duration)}"
    )
    reply = (
        f"{noun} {request.id} created: {what}. "
        f"Waiting for {needed(request)} in {request.channel}. "
        f"Withdraw it with `!access cancel {request.id}`; "
        f"see it with `!access show {request.id}`."
    )
    return Outcome(reply, [card(request)], request)


@outcome.register
def _denied_by_policy(result: DeniedByPolicy) -> Outcome:
    request = result.request
    noun = "Extension request" if request.extends else "Request"
    stays = f" {grant_stays(request.extends, result.grant)}" if request.extends else ""
    return Outcome(
        f"{noun} {request.id} for {request.resource} was denied by policy: "
        f"{inert(request.decision_note)}{stays}",
        [],
        request,
    )


@outcome.register
def _auto_extended(result: AutoExtended) -> Outcome:
    request, grant, done = result.request, result.grant, result.done
    if done and done.status is Status.EXTENDED:
        alert = (
            f"BREAK-GLASS EXTENSION: {who(request.requester)} got "
            f"{format_duration(request.duration)} more on {request.resource} (grant "
            f"{grant.id}, now until {when(grant.expires_at)}), reason: "
            f"{inert(request.reason)}. Approved by policy: "
            f"{inert(request.decision_note)}."
        )
        return Outcome(
            f"Extension {request.id} approved by policy: {grant.id} now ends "
            f"{when(grant.expires_at)}.",
            [to_channel(request, alert, "alert")],
            done,
        )
    return Outcome(
        f"Extension {request.id} was approved by policy but not applied: "
        f"{inert(done.last_error if done else '')}",
        [n for n in result.notices if n.audience == "channel"],
        done,
    )


@outcome.register
def _auto_granted(result: AutoGranted) -> Outcome:
    request = result.request
    if request.status is Status.ACTIVE:
        alert = (
            f"BREAK-GLASS: {who(request.requester)} got {request.resource} for "
            f"{format_duration(request.duration)} (until {when(request.expires_at)}), "
            f"reason: {inert(request.reason)}. Approved by policy: "
            f"{inert(request.decision_note)}. Request {request.id}; end it with "
            f"`!access revoke {request.id}`. An approver must review it: "
            f"`!access ack {request.id} [note]`."
        )
        reply = (
            f"Request {request.id} approved by policy ({inert(request.decision_note)}): "
            f"you have {request.resource} until {when(request.expires_at)}. "
            f"End it early with `!access revoke {request.id}`."
        )
        return Outcome(reply, [to_channel(request, alert, "alert")], request)
    if request.status is Status.APPROVED:
        return Outcome(
            f"Request {request.id} was approved by policy, but the bot could not record "
            "the grant, so it took it back; you get it as soon as the bot's disk can be "
            "written. The approvers were told.",
            result.notices,
            request,
        )
    return Outcome(
        f"Request {request.id} was approved by policy, but the grant failed: "
        f"{inert(request.last_error)}. The approvers in {request.channel} were told.",
        [n for n in result.notices if n.audience == "channel"],
        request,
    )


@outcome.register
def _approval_counted(result: ApprovalCounted) -> Outcome:
    request = result.request
    left = request.approvals_required - len(request.approvals)
    reply = (
        f"Your approval of {request.id} is recorded "
        f"({len(request.approvals)} of {request.approvals_required}); "
        f"it needs {left} more."
    )
    return Outcome(reply, [card(request)], request)


@outcome.register
def _approved(result: Approved) -> Outcome:
    request = result.request
    if request.extends:
        reply = _extension_approved(request, result.grant)
    elif result.unrecorded:
        reply = (
            f"Your approval of {request.id} is recorded: it is approved. The bot's "
            f"database stopped answering while the grant was made ({inert(result.unrecorded)}); "
            "the bot finishes the grant as soon as it answers again. Nothing more to do "
            "for you."
        )
    else:
        reply = _grant_approved(request)
    return Outcome(reply, result.notices, request)


def _extension_approved(request: Request, grant: Request | None) -> str:
    if request.status is Status.EXTENDED:
        return (
            f"Approved {request.id}: {who(request.requester)}'s grant {grant.id} on "
            f"{request.resource} now ends {when(grant.expires_at)}."
        )
    return f"Approved {request.id}, but it was not applied: {inert(request.last_error)}"


def _grant_approved(request: Request) -> str:
    if request.status is Status.ACTIVE:
        return (
            f"Approved {request.id}: {who(request.requester)} has {request.resource} "
            f"for {format_duration(request.duration)}, until {when(request.expires_at)}."
        )
    if request.status is Status.APPROVED:
        return (
            f"Your approval of {request.id} is recorded: it is approved. But the bot could "
            "not record the grant, so it took the access back at once; it grants it as "
            "soon as its audit log and store can be written. Nothing more to do for you; "
            "an admin must check the bot's disk."
        )
    return (
        f"Approved {request.id}, but the grant failed: {inert(request.last_error)}. "
        f"{who(request.requester)} was told; they can request again once it is fixed."
    )


@outcome.register
def _denied(result: Denied) -> Outcome:
    request, by, because = result.request, who(result.by), _because(result.reason)
    if request.extends:
        return _extension_denied(result)
    notices = [
        to_requester(
            request,
            f"Your request {request.id} for {request.resource} was denied by {by}{because}.",
        ),
        to_channel(
            request,
            f"Request {request.id} ({request.resource} for {who(request.requester)}) "
            f"denied by {by}{because}.",
        ),
    ]
    reply = f"Denied {request.id}; {who(request.requester)} was told."
    return Outcome(reply + _deny_hook_failed(result), notices, request)


def _deny_hook_failed(result: Denied) -> str:
    """What the denier is told when on_deny failed: the denial stands (fail closed)."""
    if not result.hook_error:
        return ""
    return (
        f" The policy's on_deny check failed ({inert(result.hook_error, 400)}); the denial "
        "stands all the same (fail closed)."
    )


def _extension_denied(result: Denied) -> Outcome:
    """A denied extension leaves its grant as it was: say so, with the grant's end."""
    extension, by, because = result.request, who(result.by), _because(result.reason)
    grant_id = extension.extends
    stays = grant_stays(grant_id, result.grant)
    more = f"{format_duration(extension.duration)} more on grant {grant_id}"
    notices = [
        to_requester(
            extension,
            f"Your extension request {extension.id} ({more}, {extension.resource}) was "
            f"denied by {by}{because}. {stays}",
        ),
        to_channel(
            extension,
            f"Extension request {extension.id} ({more}, {extension.resource} for "
            f"{who(extension.requester)}) denied by {by}{because}. {stays}",
        ),
    ]
    return Outcome(
        f"Denied extension {extension.id}; {who(extension.requester)} was told. {stays}"
        + _deny_hook_failed(result),
        notices,
        extension,
    )


@outcome.register
def _withdrawn(result: Withdrawn) -> Outcome:
    """Approving an extension whose grant ended: it was withdrawn (now or before)."""
    request = result.request
    why = withdrawn_extension(request) or f"{WITHDRAWN}{request.extends} has ended"
    return Outcome(withdrawn_reply(request, why), result.notices, request)


@outcome.register
def _cancelled(result: Cancelled) -> Outcome:
    request = result.request
    notice = to_channel(
        request,
        f"Request {request.id} ({request.resource} for {who(request.requester)}) "
        "was cancelled by the requester; nothing to approve.",
    )
    return Outcome(f"Cancelled {request.id}.", [notice], request)


@outcome.register
def _revoked(result: Revoked) -> Outcome:
    request = result.request
    if request.status is Status.REVOKED:
        reply = f"Revoked {request.id}: {who(request.requester)} no longer has {request.resource}."
    else:
        reply = (
            f"The revoke of {request.id} failed: {inert(request.last_error)}. "
            f"It is retried automatically (next at {when(request.next_retry_at)})."
        )
    return Outcome(reply, result.notices, request)


@outcome.register
def _retried(result: Retried) -> Outcome:
    request = result.request
    if request.holds_access:
        reply = (
            f"The retry of {request.id} failed again (attempt {request.revoke_attempts}): "
            f"{inert(request.last_error)}. Next automatic retry at "
            f"{when(request.next_retry_at)}."
        )
    else:
        reply = (
            f"Retried {request.id}: the revoke worked; {who(request.requester)} no "
            f"longer has {request.resource}."
        )
    return Outcome(reply, result.notices, request)


@outcome.register
def _acknowledged(result: Acknowledged) -> Outcome:
    request, by = result.request, who(result.by)
    notice = to_channel(
        request,
        f"Break-glass grant {request.id} ({request.resource} for "
        f"{who(request.requester)}) was reviewed by {by}{_because(result.note)}.",
    )
    return Outcome(
        f"Acknowledged break-glass grant {request.id} ({request.resource} for "
        f"{who(request.requester)}). Thank you.",
        [notice],
        request,
    )
