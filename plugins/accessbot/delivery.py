"""Notices the chat would not take, told to the admins once, with what to fix.

Without this a card that cannot be posted (the bot is not in the channel, the channel
was archived) is one line in errbot's log while the approvers wait for nothing. The
admins hear of each destination and error once, and again only after a message there
got through in between, so a busy channel that stays broken is not a flood of DMs.

A delivery worker also needs to know what to do next with a notice: `Attempt` says
whether it went, must wait (Slack's 429 and its Retry-After), or failed for good.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .digest import Merged, settled
from .digest import merge as merge_notices
from .pacing import Pacer

# Slack errors about the channel itself: anything else sent there fails the same way.
CHANNEL_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
# Slack errors no retry can fix: the channel's, and a person who is gone or cannot be
# written to. An admin has to act (invite the bot, unarchive, change the policy).
PERMANENT_ERRORS = CHANNEL_ERRORS | frozenset(
    {"user_not_found", "users_not_found", "account_inactive", "user_disabled", "cannot_dm_bot"}
)
RATE_LIMITED = "ratelimited"  # Slack's 429: try again after its Retry-After
_SLACK_CODE = re.compile(r"[a-z][a-z0-9_]{0,49}")


def is_permanent(error: str | None) -> bool:
    """Whether a notice that failed with `error` would fail again, whatever the wait."""
    return error in PERMANENT_ERRORS


def reason(error: str) -> str:
    """A metric label for `error`: Slack's own code, else "other" (never free text)."""
    return error if _SLACK_CODE.fullmatch(error or "") else "other"


@dataclass(frozen=True)
class Attempt:
    """What came of delivering one notice: `error` None when it went; with
    `retry_after` (seconds), Slack refused a call as over its rate limit (`method`)."""

    error: str | None = None
    retry_after: float | None = None
    method: str = ""

    @property
    def delivered(self) -> bool:
        return self.error is None

    @property
    def rate_limited(self) -> bool:
        return self.retry_after is not None

    @property
    def permanent(self) -> bool:
        return is_permanent(self.error)


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
    """Which destination failed with which error since a message there last got through.
    `count(reason)` is called for every failure (the plugin counts them in
    `accessbot_notices_failed_total{reason}`)."""

    def __init__(self, count: Callable[[str], None] | None = None):
        self._lock = threading.Lock()
        self._reported: dict[str, set[str]] = {}
        self._count = count

    def failed(self, destination: str, error: str) -> bool:
        """Note a failure; True when the admins have not been told of it yet."""
        if self._count is not None:
            self._count(reason(error))
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


@dataclass
class Round:
    """What one paced pass over a channel's pending notices did, by position in the batch:
    `delivered` (every part of it went), `failed` (for good, with Slack's error: the admins
    were told), `errors` (this time only: try again later), `remaining` (part of it went:
    keep this notice in its place, so the part that went is not sent again); the rest wait
    for their turn. `retry_in`: seconds until the next pass may send (None: no wait)."""

    delivered: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    remaining: dict[int, object] = field(default_factory=dict)
    retry_in: float | None = None


def deliver_round(
    notices: Sequence,
    pacer: Pacer,
    send: Callable[[object], Attempt],
    merge: Callable[[Sequence], list[Merged]] = merge_notices,
) -> Round:
    """Merge a channel's pending `notices` and send them in order while `pacer` allows,
    with `send` (the plugin's `deliver_paced`). Stops at the first that must wait (its
    turn, or Slack's Retry-After), so a channel's notices keep their order; never sleeps."""
    parts = merge(notices)
    went: set[int] = set()
    out = Round()
    for index, part in enumerate(parts):
        out.retry_in = pacer.wait(part.notice) or None
        if out.retry_in:
            break
        attempt = send(part.notice)
        if attempt.rate_limited:
            pacer.limited(part.notice, attempt.retry_after, attempt.method)
            out.retry_in = max(pacer.wait(part.notice), attempt.retry_after)
            break
        pacer.sent(part.notice)
        if attempt.delivered:
            went.add(index)
        else:
            failures = out.failed if attempt.permanent else out.errors
            failures.update(dict.fromkeys(part.sources, attempt.error))
    out.errors = {p: e for p, e in out.errors.items() if p not in out.failed}
    out.delivered = settled(parts, went) - out.failed.keys() - out.errors.keys()
    out.remaining = _remaining(parts, went, out)
    return out


def _remaining(parts: list[Merged], went: set[int], out: Round) -> dict[int, object]:
    """Notices of which a part went and one part of their own is left (a card update after
    its merged line): that part is what remains to deliver."""
    settled_now = out.delivered | out.failed.keys() | out.errors.keys()
    left: dict[int, list[Merged]] = {}
    sent: set[int] = set()
    for index, part in enumerate(parts):
        for position in part.sources:
            if position in settled_now:
                continue
            if index in went:
                sent.add(position)
            else:
                left.setdefault(position, []).append(part)
    return {
        position: rest[0].notice
        for position, rest in left.items()
        if position in sent and len(rest) == 1 and rest[0].sources == (position,)
    }
