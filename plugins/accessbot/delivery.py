"""Notices the chat would not take, told to the admins once, with what to fix.

Without this a card that cannot be posted (the bot is not in the channel, the channel
was archived) is one line in errbot's log while the approvers wait for nothing. The
admins hear of each destination and error once, and again only after a message there
got through in between, so a busy channel that stays broken is not a flood of DMs.
"""

from __future__ import annotations

import threading

# Slack errors about the channel itself: anything else sent there fails the same way.
CHANNEL_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})


def error_code(exc: BaseException) -> str:
    """Slack's own error code (`not_in_channel`) for a Slack API error, else the
    exception's name and message on one short line."""
    response = getattr(exc, "response", None)
    try:
        code = response.get("error") if response is not None else None
    except (AttributeError, TypeError):
        code = None
    if code:
        return str(code)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:200]


class UndeliveredNotices:
    """Which destination failed with which error since a message there last got through."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reported: dict[str, set[str]] = {}

    def failed(self, destination: str, error: str) -> bool:
        """Note a failure; True when the admins have not been told of it yet."""
        with self._lock:
            told = self._reported.setdefault(destination, set())
            if error in told:
                return False
            told.add(error)
            return True

    def delivered(self, destination: str) -> None:
        """A message reached `destination`: its next failure is news again."""
        with self._lock:
            self._reported.pop(destination, None)
