"""When the next chat call to each channel may go, so a burst of notices is sent at the
pace Slack takes instead of being refused.

Slack posts about one message a second per channel (short bursts allowed) and limits
chat.update to Tier 3 (50+ a minute) across the workspace; a call over the limit is
refused with 429 and a `Retry-After`. A delivery worker asks `wait(notice)` before it
sends, tells `sent(notice)` after, and `limited(notice, seconds)` when Slack refused one
anyway. Pure bookkeeping with an injected clock (monotonic seconds): nothing here sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

POST = "chat.postMessage"
UPDATE = "chat.update"
# errbot opens a DM (Tier 3, per workspace) the first time it writes to a person. It is
# not paced ahead (most DMs go to people it wrote to before), but a Retry-After Slack
# gives for it holds every DM, not just the one refused.
OPEN = "conversations.open"
WORKSPACE_WIDE = {OPEN}


@dataclass(frozen=True)
class Pace:
    """`per_minute` calls on average, `burst` of them back to back; one budget per
    channel when `per_channel`, else one for the whole workspace."""

    per_minute: float
    burst: int = 1
    per_channel: bool = True

    @property
    def interval(self) -> float:
        return 60.0 / self.per_minute


# A little under Slack's published limits, so other callers (clicks, commands) fit too.
SLACK_PACES = {
    POST: Pace(per_minute=60, burst=1, per_channel=True),
    UPDATE: Pace(per_minute=45, burst=5, per_channel=False),
}


def slack_calls(notice) -> list[str]:
    """The Slack methods delivering `notice` takes (see the plugin's `deliver_one` and
    `SlackApp.deliver`): a DM may open its conversation first; a card on a posted card is
    updated (and each earlier card of an escalated request), and anything but a
    card-only notice is also posted."""
    if notice.audience == "user":
        return [OPEN, POST]
    request = getattr(notice, "request", None)
    if notice.audience != "channel" or request is None or not request.card_ref:
        return [POST]
    updates = [UPDATE] * (1 + sum(1 for ref in request.earlier_cards if ref))
    return updates if notice.kind == "card" else [*updates, POST]


class Pacer:
    """The next allowed time of each (channel, method), from the sends made and the
    waits Slack asked for. Thread-safe; one per bot."""

    def __init__(
        self,
        paces: dict[str, Pace] | None = None,
        clock: Callable[[], float] = time.monotonic,
        calls: Callable[[object], Sequence[str]] = slack_calls,
    ):
        self.paces = dict(SLACK_PACES if paces is None else paces)
        self.clock = clock
        self.calls = calls
        self._next: dict[tuple[str, str], float] = {}  # (channel, method) -> theoretical time
        self._blocked: dict[tuple[str, str], float] = {}  # until when Slack said to wait
        self._lock = threading.Lock()

    def wait(self, notice) -> float:
        """Seconds until every call `notice` takes may be made (0: now)."""
        return self.wait_for(notice.to, self.calls(notice))

    def sent(self, notice) -> None:
        """`notice` was delivered now: its calls use up their channel's budget."""
        self.record(notice.to, self.calls(notice))

    def limited(self, notice, retry_after: float, method: str = "") -> None:
        """Slack refused a call of `notice` and asked for `retry_after` seconds: nothing of
        that method goes to its channel before then (every method of `notice` when the
        refused one is not known)."""
        for name in [method] if method else self.calls(notice):
            self.block(notice.to, name, retry_after)

    # -- by channel and method --------------------------------------------------------

    def wait_for(self, channel: str, methods: Sequence[str]) -> float:
        """Seconds until `methods` (repeats count) may be called for `channel`."""
        now = self.clock()
        with self._lock:
            due = now
            for method, count in _counted(methods).items():
                key = self._key(channel, method)
                due = max(due, self._blocked.get(key, now))
                pace = self.paces.get(method)
                if pace is None:
                    continue
                # The budget allows `burst` calls ahead of the even pace (virtual
                # scheduling): `count` more fit once the last of them is within it. More
                # than a burst in one notice (many earlier cards) go as one full burst.
                count = min(count, pace.burst)
                ahead = (pace.burst - 1) * pace.interval
                last = max(self._next.get(key, now), now) + (count - 1) * pace.interval
                due = max(due, last - ahead)
        return max(due - now, 0.0)

    def record(self, channel: str, methods: Sequence[str]) -> None:
        now = self.clock()
        with self._lock:
            for method in methods:
                pace = self.paces.get(method)
                if pace is not None:
                    key = self._key(channel, method)
                    self._next[key] = max(self._next.get(key, now), now) + pace.interval
            self._forget(now)

    def block(self, channel: str, method: str, retry_after: float) -> None:
        now = self.clock()
        with self._lock:
            key = self._key(channel, method)
            until = now + max(retry_after, 0.0)
            self._blocked[key] = max(self._blocked.get(key, until), until)

    def _key(self, channel: str, method: str) -> tuple[str, str]:
        pace = self.paces.get(method)
        if method in WORKSPACE_WIDE or (pace is not None and not pace.per_channel):
            return ("", method)
        return (channel, method)

    def _forget(self, now: float) -> None:
        """Drop what is in the past, so a bot that posts to many people stays small."""
        if len(self._next) + len(self._blocked) < 4096:
            return
        self._next = {k: t for k, t in self._next.items() if t > now}
        self._blocked = {k: t for k, t in self._blocked.items() if t > now}


def _counted(methods: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for method in methods:
        counts[method] = counts.get(method, 0) + 1
    return counts
