"""Break-glass grants (approved by policy) and their review by an approver."""

from __future__ import annotations

from ..domain import Request, format_duration
from ..safe_text import inert
from .basics import STATUS_WORDS, when, who


def review_status(request: Request) -> str:
    if request.reviewed_at:
        note = f": {inert(request.review_note)}" if request.review_note else ""
        return f"acknowledged by {who(request.reviewed_by or '?')} at {when(request.reviewed_at)}{note}"
    if request.granted_at is None:
        return "nothing was granted, nothing to review"
    return f"NOT YET REVIEWED; an approver acknowledges it with `!access ack {request.id} [note]`"


def review_line(request: Request) -> str:
    """One unreviewed break-glass grant, for `!access review` and the daily reminder."""
    return (
        f"`{request.id}` {request.resource} for {who(request.requester)}, "
        f"{format_duration(request.duration)} from {when(request.granted_at)} "
        f"({STATUS_WORDS[request.status]}), reason: {inert(request.reason, 120)}; "
        f"policy said: {inert(request.decision_note, 120)}"
    )


def review_list(requests: list[Request]) -> str:
    return (
        f"Break-glass grants waiting for review ({len(requests)}); acknowledge each with "
        "`!access ack <id> [note]`:\n" + "\n".join(f"- {review_line(r)}" for r in requests)
    )


def review_reminder(requests: list[Request]) -> str:
    count = len(requests)
    grants = "grant has" if count == 1 else "grants have"
    return (
        f"Reminder: {count} break-glass {grants} not been reviewed yet. An approver "
        "acknowledges each with `!access ack <id> [note]`:\n"
        + "\n".join(f"- {review_line(r)}" for r in requests)
    )
