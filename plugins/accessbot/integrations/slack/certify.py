"""An access certification as Block Kit: one message a page of items, each item with Keep
and Remove buttons until it is decided, then who decided and why; and the clicks decoded.

Slack allows 50 blocks in a message: a page is a heading and PAGE items of two blocks
each (the item, its buttons or its decision), so a certification of 500 members is 21
messages. A decision updates only the page that holds the item. Plain dicts in, plain
data out: the certification and items as certification.py stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .mrkdwn import escape, user_text

KEEP = "access_certify_keep"  # action_id of an item's Keep button; its value is the item id
REMOVE = "access_certify_remove"
PAGE = 24  # items a message: 1 + 2 x 24 = 49 blocks, under Block Kit's 50
TEXT_LIMIT = 2900  # a section's text is at most 3,000 characters


@dataclass(frozen=True)
class CertifyClick:
    """Keep or Remove pressed on an item of a certification's message."""

    decision: str  # "keep" or "remove"
    item_id: str
    user_id: str
    channel_id: str = ""


def certify_click(payload: dict) -> CertifyClick | None:
    """A block_actions payload of our Keep/Remove buttons, or None."""
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
        )
    return None


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
