"""The approval card in Block Kit: the request, its notes, where it stands and who
decided, with Approve / Deny buttons while it is pending; and its notification text."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from ... import messages
from ...domain import Request, Status
from .ids import APPROVE, DENY
from .mrkdwn import escape, mention, user_text

SECTION_FIELDS = 10  # Block Kit's most fields in one section block


def outcome_text(request: Request) -> str:
    """One line saying where the request stands and who decided."""
    by = (
        "policy"
        if request.decided_by == "policy"
        else ", ".join(mention(h) for h in (request.decided_by or "").split(", ") if h) or "nobody"
    )
    note = f": {user_text(request.decision_note, 200)}" if request.decision_note else ""
    last = request.history[-1] if request.history else None
    status = request.status
    if status is Status.PENDING:
        return _pending_text(request)
    if status is Status.APPROVED:
        return f":white_check_mark: *Approved* by {by}{note}; granting now"
    if status is Status.ACTIVE:
        return (
            f":white_check_mark: *Approved* by {by}{note}; active until "
            f"{messages.when(request.expires_at)}"
        )
    if status is Status.DENIED:
        return f":no_entry: *Denied* by {by}{note}"
    if status is Status.CANCELLED:
        return ":heavy_multiplication_x: *Cancelled* by the requester"
    if status is Status.TIMED_OUT:
        return ":alarm_clock: *Timed out* without a decision"
    if status is Status.GRANT_FAILED:
        return f":warning: *Approved* by {by}, but the grant *failed*: {user_text(request.last_error, 200)}"
    if status is Status.EXPIRED:
        return (
            f":white_check_mark: Approved by {by}; *expired* at {messages.when(request.ended_at)}"
        )
    if status is Status.REVOKED:
        actor = mention(last.actor) if last else "someone"
        return f":white_check_mark: Approved by {by}; *revoked* by {actor} at {messages.when(request.ended_at)}"
    if status is Status.REVOKE_FAILED:
        return (
            f":rotating_light: Approved by {by}; the *revoke is failing* "
            f"(attempt {request.revoke_attempts}), retrying at {messages.when(request.next_retry_at)}"
        )
    return messages.STATUS_WORDS.get(status, str(status))


def _pending_text(request: Request) -> str:
    """Where a pending request stands: the approvals so far, or none yet."""
    if request.approvals:
        return (
            f":hourglass_flowing_sand: {len(request.approvals)} of "
            f"{request.approvals_required} approvals so far "
            f"({', '.join(mention(a.by) for a in request.approvals)})"
        )
    return ":hourglass_flowing_sand: Waiting for an approver"


def card_fallback(request: Request) -> str:
    """The notification text of a card (and what clients without Block Kit show)."""
    head = messages.card_title(request)
    if request.status is Status.PENDING:
        return escape(f"{head}: `!approve {request.id}` or `!deny {request.id} <reason>`")
    return escape(f"{head}: {messages.STATUS_WORDS[request.status]}")


def approval_card(request: Request) -> list[Block]:
    """The approval card in its current state: buttons while pending, the outcome after."""
    fields = [
        MarkdownTextObject(text=f"*{escape(name)}*\n{user_text(value, 1900)}")
        for name, value in messages.card_fields(request)
        if name != "Reason"
    ]
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=messages.inert(messages.card_title(request), 150))),
        # A section holds at most SECTION_FIELDS fields: many prompt fields take several.
        *(
            SectionBlock(fields=fields[start : start + SECTION_FIELDS])
            for start in range(0, len(fields), SECTION_FIELDS)
        ),
        SectionBlock(text=MarkdownTextObject(text=f"*Reason*\n{user_text(request.reason)}")),
    ]
    notes = [messages.note_now(request, n) for n in request.notes if n] + (
        [f"Policy: {request.auto_decision}"] if request.auto_decision else []
    )
    if notes:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(text=f":memo: {user_text(n, 1000)}") for n in notes[:9]
                ]
            )
        )
    blocks.append(SectionBlock(text=MarkdownTextObject(text=outcome_text(request))))
    if request.status is Status.PENDING:
        blocks.append(
            ActionsBlock(
                # A new block_id per state, as Slack asks for updated messages.
                block_id=f"access:{request.id}:{len(request.approvals)}",
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Approve"),
                        action_id=APPROVE,
                        value=request.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text=PlainTextObject(text="Deny"),
                        action_id=DENY,
                        value=request.id,
                        style="danger",
                        confirm=ConfirmObject(
                            title="Deny this request?",
                            text=escape(
                                f"{messages.who(request.requester)} will be told it was "
                                f"denied. To give a reason, type `!deny {request.id} <reason>` "
                                "instead."
                            ),
                            confirm="Deny",
                            deny="Back",
                        ),
                    ),
                ],
            )
        )
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=escape(
                            f"Or type `!approve {request.id} [comment]` / "
                            f"`!deny {request.id} <reason>`"
                        )
                    )
                ]
            )
        )
    else:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"History: `!access show {request.id}`")]
            )
        )
    return blocks
