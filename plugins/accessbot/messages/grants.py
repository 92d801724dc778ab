"""The strategy calls' notices (provisioner.py): a grant made, failed or taken back, a
revoke done or failed, what became of sessions, and what follow-up hooks told."""

from __future__ import annotations

from ..domain import Request, Status, format_duration
from ..results import Notice
from ..safe_text import inert
from .basics import to_channel, to_requester, when, who
from .endings import expired_in_channel, revoke_failed_in_channel, revoked_in_channel, sessions_said
from .links import LINK_CHECK, link_closed_text, links_sentence


def follow_up_failed(request: Request, hook: str, error: str) -> str:
    """What the admins are told when an after_grant / after_revoke hook failed."""
    undone = "the grant stands" if hook == "after_grant" else "the access stays removed"
    return (
        f"Access bot: the {hook} hook for request {request.id} ({request.resource} for "
        f"{who(request.requester)}) failed: {inert(error, 400)}. Nothing was undone ({undone}) "
        f"and it is not run again; fix {request.policy_file or 'the policy file'} and do by hand "
        "what it should have done."
    )


def expiry_reminder(request: Request, left: str) -> Notice:
    return to_requester(
        request,
        f"Your access to {request.resource} (grant {request.id}) ends in {left}, at "
        f"{when(request.expires_at)}. Need more time? "
        f"`!access extend {request.id} {format_duration(request.duration)} <reason>`. "
        f"Done already? `!access revoke {request.id}`.",
    )


def granted(request: Request) -> list[Notice]:
    """The grant was made: the requester's DM and the channel's line."""
    by = (
        ", ".join(who(h) for h in request.decided_by.split(", ") if h)
        if request.decided_by and request.decided_by != "policy"
        else "policy"
    )
    until = when(request.expires_at)
    return [
        to_requester(
            request,
            f"Your request {request.id} was approved by {by}: you have {request.resource} for "
            f"{format_duration(request.duration)}, until {until}.{links_sentence(request)} "
            f"End it early with `!access revoke {request.id}`.",
        ),
        to_channel(
            request,
            f"Request {request.id} approved by {by}: {who(request.requester)} has "
            f"{request.resource} until {until}.",
        ),
    ]


def grant_failed(request: Request, ask_again: str) -> list[Notice]:
    """The target refused the grant (`request.last_error`): nothing was granted."""
    error = inert(request.last_error)
    return [
        to_requester(
            request,
            f"Your request {request.id} for {request.resource} was approved, but the grant "
            f"failed: {error}. Nothing was granted. Ask again with {ask_again} once the "
            "approvers have looked at it.",
        ),
        to_channel(
            request,
            f"GRANT FAILED for request {request.id} ({request.resource} for "
            f"{who(request.requester)}): {error}. Nothing was granted.",
            "alert",
        ),
    ]


def taken_back(request: Request, why: str) -> list[Notice]:
    """The target granted but the bot could not record it, so it took the grant back."""
    text = (
        f"Request {request.id} ({request.resource} for {who(request.requester)}) is "
        f"approved, but the bot could not record the grant ({inert(why)}), so it "
        "took it back at once. It grants it again as soon as the audit log and the store "
        "can be written; an admin must check the bot's disk."
    )
    return [to_channel(request, text, "alert"), to_requester(request, text)]


def grant_ended(request: Request, actor: str) -> list[Notice]:
    """The revoke worked: the requester's DM and the channel's line (see digest.py)."""
    if request.status is Status.EXPIRED:
        user_text = (
            f"Your access to {request.resource} (request {request.id}) has expired and "
            f"was removed. Need more? `!access request {request.resource} <duration> <reason>`."
        )
        channel_text = expired_in_channel(request)
    elif actor == LINK_CHECK:
        why = link_closed_text(request)
        user_text = (
            f"Your access to {request.resource} (request {request.id}) was revoked: {why}, "
            "and this grant ends with it. Still needed? Ask again with an open one: "
            f"`!access request {request.resource} <duration> <reason>`."
        )
        channel_text = (
            f"Request {request.id}: {who(request.requester)}'s access to {request.resource} "
            f"was revoked: {why}."
        )
    else:
        user_text = f"Your access to {request.resource} (request {request.id}) was revoked" + (
            f" by {who(actor)}." if actor != request.requester else "."
        )
        channel_text = revoked_in_channel(request, actor)
    if request.status is not Status.EXPIRED and actor == LINK_CHECK:
        channel_text += sessions_said(request)
    user_text += sessions_said(request)
    return [to_requester(request, user_text), to_channel(request, channel_text)]


def revoke_failed(request: Request) -> Notice:
    """The revoke failed and is retried: the channel's alert (see digest.py)."""
    return to_channel(request, revoke_failed_in_channel(request), "alert")


def follow_up_notices(
    request: Request, told: list[tuple[str, str]], hook: str, failed: str | None
) -> list[Notice]:
    """What an after_grant / after_revoke hook told ("user" or "channel"), and the admins'
    notice when it `failed`."""
    notices = [
        to_requester(request, inert(text, 1000))
        if audience == "user"
        else to_channel(request, inert(text, 1000))
        for audience, text in told
    ]
    if failed is not None:
        notices.append(Notice("admins", "", follow_up_failed(request, hook, failed), request))
    return notices
