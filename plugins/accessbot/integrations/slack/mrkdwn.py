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
    return escape(messages.inert(text, limit))


def mention(handle: str) -> str:
    return escape(messages.who(handle))
