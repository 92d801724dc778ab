"""What the bot exposes for monitoring: Prometheus metrics and a health verdict.

One `Metrics` per running bot, with its own registry (tests run many bots in one
process). The service and the plugin record events on it (a target call, a grant, a
revoke, a tick, a chat delivery); the request counts are read from the store's indexes
when Prometheus scrapes, so they are never stale. `Health` says whether revocation is
working right now: the scheduler thread is alive, it ticked (or asked for the lease)
recently, and the store can be read; and no grant is overdue (past its end plus
ACCESS_OVERDUE_GRACE without a confirmed revoke: overdue.py).
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from .domain import Status

# Seconds; a revoke later than a minute is an incident, so the buckets go well past it.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
CALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, counts: Callable[[], dict[Status, int]] | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.grants = Counter(
            "accessbot_grants", "Grant calls finished, by strategy and outcome",
            ["strategy", "outcome"], registry=r,
        )  # fmt: skip
        self.revokes = Counter(
            "accessbot_revokes", "Revoke calls finished, by strategy and outcome",
            ["strategy", "outcome"], registry=r,
        )  # fmt: skip
        self.lateness = Histogram(
            "accessbot_revocation_lateness_seconds",
            "How long after its end a grant was revoked",
            buckets=LATENESS_BUCKETS, registry=r,
        )  # fmt: skip
        self.target_calls = Histogram(
            "accessbot_target_call_seconds", "Strategy calls to targets, by strategy and action",
            ["strategy", "action"], buckets=CALL_BUCKETS, registry=r,
        )  # fmt: skip
        self.target_errors = Counter(
            "accessbot_target_call_errors", "Strategy calls that failed, by strategy and action",
            ["strategy", "action"], registry=r,
        )  # fmt: skip
        self.chat_calls = Histogram(
            "accessbot_chat_delivery_seconds", "Notices delivered to the chat platform",
            ["audience"], buckets=CALL_BUCKETS, registry=r,
        )  # fmt: skip
        self.chat_errors = Counter(
            "accessbot_chat_delivery_errors", "Notices the chat platform refused",
            ["audience"], registry=r,
        )  # fmt: skip
        self.notices_failed = Counter(
            "accessbot_notices_failed", "Notices that could not be delivered, by Slack's error",
            ["reason"], registry=r,
        )  # fmt: skip
        self.chat_rate_limited = Counter(
            "accessbot_chat_rate_limited",
            "Chat calls Slack refused as over its rate limits (429), by method",
            ["method"], registry=r,
        )  # fmt: skip
        self.pagerduty_calls = Histogram(
            "accessbot_pagerduty_call_seconds", "PagerDuty API calls",
            buckets=CALL_BUCKETS, registry=r,
        )  # fmt: skip
        self.pagerduty_errors = Counter(
            "accessbot_pagerduty_call_errors", "PagerDuty API calls that failed", registry=r
        )
        self.link_checks = Counter(
            "accessbot_link_checks",
            "Re-checks of active grants' tickets and incidents, by tracker and outcome "
            "(open, closed, unreachable)",
            ["type", "outcome"], registry=r,
        )  # fmt: skip
        self.ticks = Counter(
            "accessbot_scheduler_ticks", "Scheduler ticks this bot ran (as leader)", registry=r
        )
        self.leader = Gauge(
            "accessbot_scheduler_leader", "1 while this bot holds the scheduler lease", registry=r
        )
        self.last_tick = Gauge(
            "accessbot_scheduler_last_tick_timestamp_seconds",
            "When the scheduler last ticked or asked for the lease (Unix time)",
            registry=r,
        )
        self.overdue = Gauge(
            "accessbot_grants_overdue",
            "Grants past their end plus ACCESS_OVERDUE_GRACE without a confirmed revoke",
            registry=r,
        )
        if counts is not None:
            r.register(_RequestCounts(counts))
        self.outbox_deliveries = Counter(
            "accessbot_outbox_deliveries",
            "Notices taken from the outbox, by outcome: delivered, retried (sent again "
            "later), failed (refused for good; the admins were told)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self._sinks: Callable[[], list] | None = None
        r.register(_SinkLag(lambda: self._sinks() if self._sinks else []))
        self._outbox: Callable[[], object] | None = None
        self._outbox_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        r.register(_OutboxDepth(lambda: self._outbox() if self._outbox else None, self._outbox_now))

    def _outbox_now(self) -> datetime:
        return self._outbox_clock()

    def watch_outbox(self, depth: Callable[[], object], clock: Callable[[], datetime]) -> None:
        """Report the outbox's depth: `depth()` gives `pending` and `oldest` (when the
        oldest was put, by `clock`)."""
        self._outbox, self._outbox_clock = depth, clock

    def watch_sinks(self, status: Callable[[], list]) -> None:
        """Report each audit sink's lag (`status()` gives objects with name, kind, lag,
        failing)."""
        self._sinks = status

    def target_call(self, strategy: str, action: str, seconds: float, ok: bool) -> None:
        self.target_calls.labels(strategy, action).observe(seconds)
        if not ok:
            self.target_errors.labels(strategy, action).inc()

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The text Prometheus scrapes, in the format its `Accept` header asks for
        (prometheus_client's choice: OpenMetrics, or the text format 0.0.4), and its
        content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def sink_label(name: str) -> str:
    """A sink's name as a metric label: each URL in it cut to scheme://host[:port]. A
    token in a URL's path (Slack-style webhooks, some HEC set-ups) or query must not be
    published to whoever can scrape /metrics."""

    def host_only(match: re.Match) -> str:
        try:
            parts = urlsplit(match.group(0))
        except ValueError:
            return "(an unreadable URL)"
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    return _URL_IN_TEXT.sub(host_only, name)


def bearer_allows(authorization: str | None, token: str | None) -> bool:
    """Whether a request may read /metrics: always without ACCESS_METRICS_TOKEN, else only
    with `Authorization: Bearer <token>` (compared in constant time)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class _SinkLag:
    """Audit events not yet acknowledged by each sink, and whether it is failing."""

    def __init__(self, status: Callable[[], list]):
        self.status = status

    def describe(self):
        return []

    def collect(self):
        lag = GaugeMetricFamily(
            "accessbot_audit_sink_lag_events",
            "Audit events the sink has not acknowledged yet",
            labels=["sink", "kind"],
        )
        failing = GaugeMetricFamily(
            "accessbot_audit_sink_failing", "1 while the sink's deliveries fail", labels=["sink"]
        )
        seen: dict[str, int] = {}
        for sink in self.status():
            label = sink_label(sink.name)
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:  # two sinks on one host: each its own series
                label = f"{label} #{seen[label]}"
            lag.add_metric([label, sink.kind], sink.lag)
            failing.add_metric([label], 1 if sink.failing else 0)
        yield lag
        yield failing


class _OutboxDepth:
    """Notices waiting in the outbox, and how long the oldest has waited."""

    def __init__(self, depth: Callable[[], object], now: Callable[[], datetime]):
        self.depth = depth
        self.now = now

    def describe(self):
        return []

    def collect(self):
        try:
            depth = self.depth()
        except Exception:  # noqa: BLE001 - an unreachable outbox: no figures, not a failed scrape
            depth = None
        if depth is None:
            return
        oldest = depth.oldest
        age = max(0.0, (self.now() - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "accessbot_outbox_pending",
            "Notices in the outbox waiting to be delivered",
            value=depth.pending,
        )
        yield GaugeMetricFamily(
            "accessbot_outbox_oldest_pending_seconds",
            "How long the oldest notice in the outbox has waited (0 when none)",
            value=age,
        )


class _RequestCounts:
    """Live requests by status, read from the store's indexes at scrape time."""

    def __init__(self, counts: Callable[[], dict[Status, int]]):
        self.counts = counts

    def describe(self):
        return []

    def collect(self):
        counts = self.counts()
        family = GaugeMetricFamily(
            "accessbot_requests", "Live requests by status", labels=["status"]
        )
        for status in (Status.PENDING, Status.APPROVED, Status.ACTIVE, Status.REVOKE_FAILED):
            family.add_metric([status.value], counts.get(status, 0))
        yield family
        yield GaugeMetricFamily(
            "accessbot_active_grants",
            "Grants holding access (active, or a revoke failing)",
            value=counts.get(Status.ACTIVE, 0) + counts.get(Status.REVOKE_FAILED, 0),
        )
        yield GaugeMetricFamily(
            "accessbot_revoke_failures_outstanding",
            "Grants past their end whose revoke is failing and being retried",
            value=counts.get(Status.REVOKE_FAILED, 0),
        )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


class Health:
    """Is revocation working? The scheduler thread must be alive and must have ticked, or
    asked for the lease, within `3 * tick_seconds` (plus a grace for a slow tick), and the
    store must answer a read."""

    def __init__(
        self,
        tick_seconds: float,
        scheduler_alive: Callable[[], bool],
        store_readable: Callable[[], None],
        now: Callable[[], float] = time.monotonic,
        overdue: Callable[[], list[str]] = list,
    ):
        self.window = 3 * tick_seconds + 1.0
        self.scheduler_alive = scheduler_alive
        self.store_readable = store_readable
        self.overdue = overdue  # ids of grants past their end + grace, not revoked
        self.now = now
        self._last_beat: float | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The scheduler ticked or asked for the lease just now."""
        with self._lock:
            self._last_beat = self.now()

    def verdict(self) -> Verdict:
        if not self.scheduler_alive():
            return Verdict(False, "the scheduler thread is not running")
        with self._lock:
            last = self._last_beat
        if last is None:
            return Verdict(False, "the scheduler has not ticked yet")
        quiet = self.now() - last
        if quiet > self.window:
            return Verdict(False, f"the scheduler has not ticked for {quiet:.0f}s")
        try:
            self.store_readable()
        except Exception as exc:  # noqa: BLE001 - any failure to read is unhealthy
            return Verdict(False, f"the store cannot be read: {type(exc).__name__}: {exc}")
        overdue = self.overdue()
        if overdue:
            return Verdict(
                False,
                f"overdue: {len(overdue)} grant(s) past their end + ACCESS_OVERDUE_GRACE "
                f"without a confirmed revoke: {', '.join(overdue[:10])}",
            )
        return Verdict(True, "ok")


class CertificationCounts:
    """Open access certifications and their undecided items past the deadline, read from
    the certification store at scrape time (`counts()` gives the two numbers)."""

    def __init__(self, counts: Callable[[], tuple[int, int]]):
        self.counts = counts

    def describe(self):
        return []

    def collect(self):
        try:
            open_, late = self.counts()
        except Exception:  # noqa: BLE001 - a scrape never fails on the store
            return
        yield GaugeMetricFamily(
            "accessbot_certifications_open", "Access certifications not yet closed", value=open_
        )
        yield GaugeMetricFamily(
            "accessbot_certification_items_past_deadline",
            "Undecided certification items whose deadline has passed",
            value=late,
        )
