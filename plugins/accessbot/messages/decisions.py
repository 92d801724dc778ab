"""Texts about deciding a pending request: whose decision it waits for, votes refused,
cancels, time-outs, reminders and escalation to further approvers."""

from __future__ import annotations

from ..domain import Request, Status
from ..results import Notice
from ..safe_text import inert
from .basics import approvers_text, to_channel, to_requester, who
from .cards import card_body


def no_longer_approver(request: Request, verb: str, resource) -> str:
    """The answer to an approver of a request whom the policy in force no longer names."""
    if resource is None:
        return (
            f"{request.resource} is no longer in the policies, so nobody can {verb} "
            f"{request.id}; ask an admin."
        )
    return (
        f"You are no longer an approver of {request.resource} (the policy changed since "
        f"{request.id} was made), so you cannot {verb} it; its approvers now: "
        f"{approvers_text(resource.approvers)}."
    )


def vote_refused(verb: str, request_id: str, why: str) -> str:
    """The answer to an approval or denial the policy's on_approve / on_deny refused."""
    what = "approval" if verb == "approve" else "denial"
    return (
        f"Your {what} of {request_id} was not counted: {inert(why, 400)}. "
        f"The request is unchanged; see `!access show {request_id}`."
    )


def escalation_note(number: int, levels: int, after: str, before: str, approvers) -> str:
    """Why a request was escalated, for its card and history."""
    return (
        f"escalated to level {number} of {levels}: no decision after {after} in {before}, "
        f"so now also asking {approvers_text(approvers)}"
    )


def escalated(request: Request, why: str) -> str:
    """The card of an escalated request, saying why, in the level's channel."""
    return f"Request {request.id} {why}.\n{card_body(request)}"


def escalated_away(request: Request, before: str, after: str) -> str:
    """What the channel a request was escalated away from is told."""
    return (
        f"Request {request.id} ({request.resource} for {who(request.requester)}) had no "
        f"decision after {after}, so it was escalated to {request.channel}. The approvers "
        f"here may still decide: `!approve {request.id}` or `!deny {request.id} <reason>`."
    )


def needed(request: Request) -> str:
    """Whose decision a request waits for: `an approval from @bob, @carol`."""
    count = (
        f"{request.approvals_required} approvals"
        if request.approvals_required > 1
        else "an approval"
    )
    return f"{count} from {approvers_text(request.deciders)}"


def which_to_cancel(pending: list[Request]) -> str:
    """`!access cancel` without an id, and not exactly one pending request to withdraw."""
    if not pending:
        return "You have no pending request to withdraw; `!access mine` lists yours."
    shown = ", ".join(f"{r.id} ({r.resource})" for r in pending[:10])
    return (
        f"You have {len(pending)} pending requests: {shown}; say which: "
        f"`!access cancel {pending[0].id}`."
    )


def not_yours_to_cancel(request: Request, approver: bool, admin: bool) -> str:
    """Someone else's request: what this person can do about it, in its state."""
    if request.holds_access and (approver or admin):
        return (
            f"{request.id} is an active grant, not a pending request; end it with "
            f"`!access revoke {request.id}`."
        )
    only = f"Only the requester, {who(request.requester)}, can cancel {request.id}"
    if request.holds_access:
        return (
            f"{only}; it is an active grant, which only {who(request.requester)}, "
            f"the approvers of {request.resource} or an admin can end."
        )
    if request.status is Status.PENDING and approver:
        return f"{only}; as an approver you can deny it: `!deny {request.id} <reason>`."
    return f"{only}."


def timed_out(request: Request, waited: str, ask_again: str) -> list[Notice]:
    return [
        to_requester(
            request,
            f"Your request {request.id} for {request.resource} timed out after {waited} "
            f"without a decision. Ask again with {ask_again}.",
        ),
        to_channel(
            request,
            f"Request {request.id} ({request.resource} for {who(request.requester)}) "
            f"timed out after {waited}; it can no longer be approved.",
        ),
    ]


def nudge(request: Request, waited: str) -> Notice:
    text = f"Reminder: request {request.id} has waited {waited} for a decision.\n" + card_body(
        request
    )
    return to_channel(request, text, "card")


def escalation_notices(request: Request, why: str, before: str, after: str) -> list[Notice]:
    """The escalated request's card in its (new) channel, and a word in the old one."""
    text = escalated(request, why)
    if request.channel == before:
        return [to_channel(request, text)]
    return [
        to_channel(request, text, "card"),
        Notice("channel", before, escalated_away(request, before, after), None),
    ]
