"""Slack's published Web API rate limits, for the fake Slack to enforce.

Slack limits each method per app per workspace by tier (Tier 3: 50+ a minute, Tier 4:
100+ a minute, short bursts tolerated), and chat.postMessage at about one message a
second per channel, with short bursts allowed
(https://docs.slack.dev/apis/web-api/rate-limits). A call over its limit is answered
with HTTP 429, a `Retry-After` header in whole seconds, and
`{"ok": false, "error": "ratelimited"}`.

Each limit is a token bucket: `burst` calls at once, refilled at `per_minute`. The clock
is injected, so a test of the limits moves time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: int
    per_channel: bool = False  # one bucket per channel (chat.postMessage), else one per method


TIER_3 = Limit(per_minute=50, burst=10)
TIER_4 = Limit(per_minute=100, burst=20)
# "Posting messages: 1 per second. Short bursts >1 allowed."
POSTING = Limit(per_minute=60, burst=3, per_channel=True)

LIMITS = {
    "chat.postMessage": POSTING,
    "chat.postEphemeral": POSTING,
    "chat.update": TIER_3,
    "conversations.open": TIER_3,
    "conversations.info": TIER_3,
    "users.info": TIER_4,
    "users.lookupByEmail": TIER_4,
    "usergroups.list": Limit(per_minute=20, burst=5),  # Tier 2
    "usergroups.users.list": Limit(per_minute=20, burst=5),
}


class SlackTiers:
    """Which calls Slack would refuse right now. `limited` counts the refusals by method,
    `limited_in` by (method, channel)."""

    def __init__(
        self,
        limits: dict[str, Limit] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limits = dict(LIMITS if limits is None else limits)
        self.clock = clock
        self.limited: Counter = Counter()
        self.limited_in: Counter = Counter()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, method: str, channel: str = "") -> int:
        """Count one call: 0 when Slack takes it, else the Retry-After (whole seconds)."""
        limit = self.limits.get(method)
        if limit is None:
            return 0
        key = (method, channel if limit.per_channel else "")
        rate = limit.per_minute / 60.0
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            self.limited[method] += 1
            self.limited_in[(method, channel)] += 1
            return max(1, math.ceil((1.0 - tokens) / rate))

    @property
    def total_limited(self) -> int:
        with self._lock:
            return sum(self.limited.values())


class Ticks:
    """A monotonic clock (seconds) the test moves: `clock.now += 1`. For SlackTiers and
    accessbot.pacing.Pacer, so neither a test of the limits nor of the pacing sleeps."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
