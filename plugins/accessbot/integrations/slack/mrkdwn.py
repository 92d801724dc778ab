"""Text for Slack: mrkdwn escaping, so what people typed shows as text (no links, no
pings), and bot-written markdown as mrkdwn."""

from __future__ import annotations

from ... import messages


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, so user text shows as text (no links, no pings)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str) -> str:
    """A bot-written chat text (markdown as errbot writes it) as Slack mrkdwn."""
    return escape(text).replace("**", "*")


def user_text(text: str, limit: int = messages.REASON_LIMIT) -> str:
    """What someone typed, as text, at most `limit` characters once escaped (`<` takes
    four as `&lt;`; Slack refuses a text object past 3,000), cut between entities."""
    shown = escape(messages.inert(text, limit))
    if len(shown) <= limit:
        return shown
    cut = shown[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # not half an entity
    return cut + "…"


def mention(handle: str) -> str:
    return escape(messages.who(handle))
