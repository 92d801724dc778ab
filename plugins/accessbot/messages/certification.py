"""Access certification as people read it: the channel's messages when a certification
opens, an item is decided, the deadline passes or it closes, and `!access certify list`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..safe_text import inert
from .basics import approvers_text, when

if TYPE_CHECKING:
    from datetime import datetime

    from ..certification import Certification, Item, Opened

SHOWN = 30  # items named in one channel message; `!access certify list` shows them all


def item_line(item: Item) -> str:
    extra = [e for e in (item.user_email, f"account {item.account}" if item.account else "") if e]
    who = inert(item.member, 80) + (f" ({inert('; '.join(extra), 160)})" if extra else "")
    return f"{item.id} {who}: {item.reason}; seen since {when(item.first_seen)}; {item.history}"


def list_line(certification: Certification, item: Item, now: datetime) -> str:
    """`!access certify list`: the item's id first, then the resource and `@member`."""
    late = "PAST ITS DEADLINE " if now >= certification.deadline_at else ""
    return (
        f"{item.id} {item.resource} {inert(item.member, 80)}: {item.reason} (certification "
        f"{certification.id}, {late}due {when(certification.deadline_at)})"
    )


def started_line(opened: Opened) -> str:
    c = opened.certification
    if c.unlisted:
        return (
            f"Certification {c.id} of {c.resource} opened, but its target could not be "
            f"listed: {inert(c.unlisted)}."
        )
    if not opened.items:
        return f"Certification {c.id} of {c.resource}: nobody holds it without a grant; closed."
    return (
        f"Certification {c.id} of {c.resource} opened: {len(opened.items)} item(s) for "
        f"{approvers_text(c.reviewers)}, due {when(c.deadline_at)}."
    )


def opened_text(opened: Opened) -> str:
    c = opened.certification
    head = f"ACCESS CERTIFICATION {c.id} of {c.resource}"
    if c.unlisted:
        return (
            f"{head}: its target could not be listed ({inert(c.unlisted)}), so nobody "
            "is reviewed here: check who holds it at the target by hand."
        )
    if not opened.items:
        return f"{head}: nobody holds it without a grant; nothing to review."
    lines = [
        f"{head}: {len(opened.items)} account(s) hold it without a grant. Reviewers "
        f"({approvers_text(c.reviewers)}), decide by {when(c.deadline_at)} with "
        "`!access certify keep <item> [note]` or `!access certify remove <item> [reason]` "
        f"(undecided then: {c.on_missed}):"
    ]
    lines += [f"- {item_line(i)}" for i in opened.items[:SHOWN]]
    if len(opened.items) > SHOWN:
        lines.append(f"- and {len(opened.items) - SHOWN} more: `!access certify list`")
    return "\n".join(lines)


def decided_text(certification: Certification, item: Item) -> str:
    """For the channel: `@carol kept by @alice: still on the DB team`."""
    verb = "kept" if item.decision == "keep" else "removed"
    note = f": {inert(item.note)}" if item.note else ""
    text = (
        f"Certification {certification.id} of {item.resource}, item {item.id}: "
        f"{inert(item.member, 80)} {verb} by {item.decided_by}{note}."
    )
    if item.decision == "remove":
        outcome = item.outcome[:1].upper() + item.outcome[1:]
        text += f" {inert(outcome, 300)}."
    return text


def decided_reply(item: Item) -> str:
    verb = "Kept" if item.decision == "keep" else "Removed"
    return f"{verb} {inert(item.member, 80)} on {item.resource} (item {item.id}): {item.outcome}."


def already_text(item: Item) -> str:
    return (
        f"Item {item.id} was already decided: {item.decision} by {item.decided_by} at "
        f"{when(item.decided_at)}."
    )


def missed_text(certification: Certification, undecided: list[Item]) -> str:
    names = ", ".join(f"{inert(i.member, 80)} ({i.outcome})" for i in undecided[:SHOWN])
    more = f" and {len(undecided) - SHOWN} more" if len(undecided) > SHOWN else ""
    return (
        f"Certification {certification.id} of {certification.resource}: the deadline passed "
        f"with {len(undecided)} item(s) undecided ({certification.on_missed}): {names}{more}."
    )


def escalated_text(certification: Certification, undecided: list[Item]) -> str:
    return (
        f"ACCESS CERTIFICATION {certification.id} of {certification.resource} escalated: "
        f"{len(undecided)} item(s) undecided at the deadline. The admins may decide them "
        f"too, by {when(certification.deadline_at)} (then they are removed): "
        "`!access certify list`."
    )


def closed_text(certification: Certification, counts: dict) -> str:
    """For the channel: how a certification ended (`counts`: its certification_closed
    event's kept / removed / not_reviewed)."""
    return (
        f"Certification {certification.id} of {certification.resource} closed: "
        f"{counts['kept']} kept, {counts['removed']} removed, {counts['not_reviewed']} "
        "not reviewed."
    )
