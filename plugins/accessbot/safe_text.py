"""Text that is safe to show: user text made inert and URLs shown without credentials.

What people type (reasons, comments, a tracker's titles) goes through `inert` so that it
cannot ping a channel, become a link, break the layout or smuggle control characters onto
a card. `redact_url` / `redact_urls` show a URL as scheme://host/path only, so no
password, token or query string reaches chat, a log or an audit sink. Low in the layers:
it imports nothing of the bot, so adapters that only need redaction import it alone.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REASON_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_MASS_MENTION = re.compile(r"([@!])(here|channel|everyone)\b", re.IGNORECASE)
ZWSP = "\u200b"
# Where what people type could become a link: a markdown link's "](" (errbot's Slack
# backend turns `[text](url)` into Slack's `<url|text>`), and "<" opening Slack's own
# `<url|text>`, `<#C…>`, `<@U…>`, `<!here>` or a markdown autolink `<https://…>`.
_LINK_OPENERS = re.compile(r"\]\(|<(?=[\w#@!/])")
# Slack's `<url|label>` shows only the label: inside angle brackets a "|" becomes "¦", so
# no label can hide where a link goes, even where "<" is not read as we expect.
_ANGLED = re.compile(r"<[^<>]*>")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")


def inert(text: str, limit: int = REASON_LIMIT) -> str:
    """Show user text as text: no links (a link's words stay, its syntax is broken by a
    zero-width space), no mass mentions, no control characters, one line, bounded."""
    text = _CONTROL.sub("", str(text)).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    text = _ANGLED.sub(lambda m: m.group(0).replace("|", "\u00a6"), text)
    text = _LINK_OPENERS.sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)
    text = _MASS_MENTION.sub(lambda m: m.group(1) + ZWSP + m.group(2), text)
    text = text.replace("`", "'")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """A URL as scheme://host[:port]/path only: `user:password@`, the query and the
    fragment often carry credentials (`?token=...`), so they are never shown."""
    try:
        parts = urlsplit(str(url).strip())
    except ValueError:
        return "(an unreadable URL)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_urls(text: str) -> str:
    """`text` with every URL in it shown as `redact_url` shows it (errors from a target or
    a library may quote the URL they called)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), str(text))
