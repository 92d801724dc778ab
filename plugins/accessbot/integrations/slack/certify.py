"""An access certification as Block Kit: one message a page of items, each item with Keep
and Remove buttons until it is decided, then who decided and why; and the clicks decoded.
A click opens a small modal (views.open with the click's trigger_id) with an optional
note; its submission decides the item with that note.

Slack allows 50 blocks in a message: a page is a heading and PAGE items of two blocks
each (the item, its buttons or its decision), so a certification of 500 members is 21
messages. A decision updates only the page that holds the item. Plain dicts in, plain
data out: the certification and items as certification.py stores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .mrkdwn import escape, user_text
from .payloads import InteractionError, _member

KEEP = "access_certify_keep"  # action_id of an item's Keep button; its value is the item id
REMOVE = "access_certify_remove"
PAGE = 24  # items a message: 1 + 2 x 24 = 49 blocks, under Block Kit's 50
TEXT_LIMIT = 2900  # a section's text is at most 3,000 characters
NOTE_MODAL = "access_certify_note"  # callback_id of the note modal a Keep/Remove click opens
NOTE_BLOCK, NOTE_ACTION = "certify_note", "note"  # its note input
NOTE_LIMIT = 300  # characters of a note (the item keeps at most this many)


@dataclass(frozen=True)
class CertifyClick:
    """Keep or Remove pressed on an item of a certification's message."""

    decision: str  # "keep" or "remove"
    item_id: str
    user_id: str
    channel_id: str = ""
    trigger_id: str = ""  # opens the note modal (Slack sends one with every click)


@dataclass(frozen=True)
class CertifySubmission:
    """The note modal, submitted: decide `item_id` with `note`."""

    decision: str  # "keep" or "remove"
    item_id: str
    user_id: str
    note: str = ""
    channel_id: str = ""  # where the click was: the answer goes there, as an ephemeral


def certify_click(payload: dict) -> CertifyClick | None:
    """A block_actions payload of our Keep/Remove buttons (with its trigger_id), or None."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    for action in payload.get("actions") or []:
        if not isinstance(action, dict) or action.get("action_id") not in (KEEP, REMOVE):
            continue
        item = action.get("value")
        if not isinstance(item, str) or not item.strip() or not isinstance(user.get("id"), str):
            return None
        return CertifyClick(
            "keep" if action["action_id"] == KEEP else "remove",
            item.strip().lower(),
            user["id"],
            str(channel.get("id") or container.get("channel_id") or ""),
            str(payload.get("trigger_id") or ""),
        )
    return None


def note_modal(click: CertifyClick, member: str) -> dict:
    """The modal a Keep/Remove click opens: what will be decided, and an optional note.
    The item, the decision and the click's channel ride in private_metadata."""
    verb = "Keep" if click.decision == "keep" else "Remove"
    what = f"*{verb}* the access of *@{user_text(member, 80)}* (item `{escape(click.item_id)}`)" + (
        "; the bot removes it at the target." if click.decision == "remove" else "."
    )
    metadata = {"item": click.item_id, "decision": click.decision, "channel": click.channel_id}
    return {
        "type": "modal",
        "callback_id": NOTE_MODAL,
        "title": {"type": "plain_text", "text": f"{verb} access"},
        "submit": {"type": "plain_text", "text": verb},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": what[:TEXT_LIMIT]}},
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Note (for the audit log)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_ACTION,
                    "multiline": True,
                    "max_length": NOTE_LIMIT,
                    "placeholder": {"type": "plain_text", "text": "e.g. still on the DB team"},
                },
            },
        ],
    }


def certify_submission(payload: dict) -> CertifySubmission | None:
    """A view_submission of the note modal, or None when it is another view's.

    InteractionError for one not shaped like ours (its private_metadata is what we set)."""
    if not isinstance(payload, dict) or payload.get("type") != "view_submission":
        return None
    view = _member(payload, "view", dict)
    if _member(view, "callback_id", str) != NOTE_MODAL:
        return None
    user_id = _member(_member(payload, "user", dict), "id", str)
    try:
        metadata = json.loads(_member(view, "private_metadata", str) or "null")
    except (ValueError, RecursionError) as exc:
        raise InteractionError("the note modal's private_metadata is not JSON") from exc
    if not isinstance(metadata, dict) or metadata.get("decision") not in ("keep", "remove"):
        raise InteractionError("the note modal's private_metadata names no decision")
    item = metadata.get("item")
    if not isinstance(item, str) or not item.strip() or not user_id:
        raise InteractionError("the note modal names no item or no user")
    values = _member(_member(view, "state", dict), "values", dict)
    note = _member(_member(_member(values, NOTE_BLOCK, dict), NOTE_ACTION, dict), "value", str)
    return CertifySubmission(
        metadata["decision"],
        item.strip().lower(),
        user_id,
        note.strip()[:NOTE_LIMIT],
        str(metadata.get("channel") or ""),
    )


def page_count(items: list[dict]) -> int:
    return max(1, -(-len(items) // PAGE))


def page_of(items: list[dict], item_id: str) -> int | None:
    for number, item in enumerate(items):
        if item["id"] == item_id:
            return number // PAGE
    return None


def certification_page(certification: dict, items: list[dict], page: int) -> tuple[str, list]:
    """(fallback text, blocks) of one page of a certification's message."""
    pages = page_count(items)
    shown = items[page * PAGE : (page + 1) * PAGE]
    undecided = sum(1 for i in items if not i.get("decision"))
    state = (
        "closed"
        if certification.get("state") == "closed"
        else f"{undecided} of {len(items)} undecided, due {str(certification['deadline_at'])[:16]} UTC"
    )
    title = f"Access certification {certification['id']} of {certification['resource']}" + (
        f" (page {page + 1} of {pages})" if pages > 1 else ""
    )
    heading = (
        f"*{escape(title)}*: {state}. Reviewers: "
        f"{escape(', '.join(certification['reviewers']) or 'nobody')}; "
        "or type `!access certify keep|remove <item> [note]`."
    )
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": heading}}]
    for item in shown:
        blocks.append(
            {
                "type": "section",
                "block_id": f"certify:{item['id']}",
                "text": {"type": "mrkdwn", "text": _item_text(item)},
            }
        )
        if item.get("decision"):
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _decision(item)}]}
            )
        else:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"certify-actions:{item['id']}",
                    "elements": [
                        _button("Keep", KEEP, item["id"], "primary"),
                        _button("Remove", REMOVE, item["id"], "danger"),
                    ],
                }
            )
    return f"{title}: {state}", blocks


def _button(label: str, action_id: str, item_id: str, style: str) -> dict:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": item_id,
        "style": style,
    }


def _item_text(item: dict) -> str:
    who = item.get("user") or item.get("user_email") or item.get("account") or "?"
    extra = [e for e in (item.get("user_email"), item.get("account")) if e and e != who]
    why = (
        f"allowed by `standing` ({item.get('entry')})"
        if item.get("why") == "standing"
        else "no grant or `standing` entry explains it"
    )
    text = (
        f"`{item['id']}` *@{user_text(who, 80)}*"
        + (f" ({user_text('; '.join(extra), 160)})" if extra else "")
        + f": {why}; seen since {str(item.get('first_seen'))[:10]}; "
        + user_text(item.get("history") or "", 80)
    )
    return text[:TEXT_LIMIT]


def _decision(item: dict) -> str:
    verb = {"keep": "Kept", "remove": "Removed", "not reviewed": "Not reviewed"}.get(
        item["decision"], str(item["decision"])
    )
    note = f": {user_text(item['note'], 300)}" if item.get("note") else ""
    outcome = f" ({user_text(item['outcome'], 300)})" if item.get("outcome") else ""
    return f"{verb} by {escape(item.get('decided_by') or '?')}{note}{outcome}"[:TEXT_LIMIT]
