"""The approval card: everything an approver needs to decide, and the exact commands."""

from __future__ import annotations

from ..domain import Request, Status, format_duration
from ..results import Notice
from ..safe_text import inert
from .basics import STATUS_WORDS, request_approvers, to_channel, who
from .links import link_text


def card_title(request: Request) -> str:
    if request.extends:
        return (
            f"Extension request {request.id}: {format_duration(request.duration)} more on "
            f"{request.extends} ({request.resource} for {who(request.requester)})"
        )
    return f"Access request {request.id}: {request.resource} for {who(request.requester)}"


def card_fields(request: Request) -> list[tuple[str, str]]:
    fields = [
        ("Requester", who(request.requester)),
        ("Resource", request.resource),
        ("Duration", format_duration(request.duration)),
        ("Reason", inert(request.reason)),
    ]
    fields += [
        (name, link_text(request.links[name]) if name in request.links else inert(value, 80))
        for name, value in request.fields.items()
    ]
    fields.append(("Approvers", request_approvers(request)))
    if request.approvals_required > 1:
        approved = ", ".join(who(a.by) for a in request.approvals)
        fields.append(
            (
                "Approvals",
                f"{len(request.approvals)} of {request.approvals_required}"
                + (f" ({approved})" if approved else ""),
            )
        )
    return fields


def card_body(request: Request) -> str:
    """The approval card as text: everything an approver needs, and the exact commands."""
    lines = [f"**{card_title(request)}**"]
    lines += [f"{name}: {value}" for name, value in card_fields(request)]
    lines += [f"Note: {inert(note_now(request, n))}" for n in request.notes]
    if request.status is Status.PENDING:
        lines.append(f"Approve: `!approve {request.id}`   Deny: `!deny {request.id} [reason]`")
    else:
        lines.append(f"Status: {STATUS_WORDS[request.status]}")
    return "\n".join(lines)


def note_now(request: Request, note: str) -> str:
    """A note as it reads now: an extension's "which has 29m44s left" was true only while
    it waited, so once decided or withdrawn only the grant it extends is named."""
    if request.extends and request.status is not Status.PENDING:
        head = f"extends grant {request.extends}, which has "
        if note.startswith(head):
            return f"extends grant {request.extends}"
    return note


def card(request: Request) -> Notice:
    return to_channel(request, card_body(request), "card")
