"""Request latency and revocation lateness: TinyDB beside PostgreSQL (and two bots).

Runs the real service against a webhook target on 127.0.0.1, on each backend:
- latency of `request`, `approve` (which grants through the webhook) and `revoke`, as
  one chat command each costs the bot (no chat, no network beyond loopback);
- revocation lateness: grants end spread over a few seconds while the real scheduler
  ticks every ACCESS_TICK_SECONDS (1 s, the default); lateness is when the target got
  the revoke minus when the grant ended.
PostgreSQL runs as a throwaway local cluster with fsync on (as TinyDB fsyncs), so the
numbers compare the bots' own work, not a network. "postgresql x2" runs two services
(two bots' worth of pools, claims and leases) on one database, sending commands to both.

    .venv/bin/python bench/bench_backends.py
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from accessbot.postgres import LeaderLease  # noqa: E402
from accessbot.scheduler import Scheduler  # noqa: E402
from tests.builders import build_service, person  # noqa: E402
from tests.fakes import WebhookTarget  # noqa: E402
from tests.pgserver import NoServer, start_server  # noqa: E402

COMMANDS = 150  # request + approve + revoke each
EXPIRING = 40  # grants ending over SPREAD seconds
SPREAD = 4.0
TICK = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"p50 {statistics.median(values) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


def latency(services, target) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"request": [], "approve+grant": [], "revoke": []}
    for number in range(COMMANDS):
        service = services[number % len(services)]
        me = person(f"lat{number}")
        began = time.perf_counter()
        rid = service.request(me, "prod-db", timedelta(hours=1), "bench").request.id
        timings["request"].append(time.perf_counter() - began)
        began = time.perf_counter()
        service.approve(person("alice"), rid)
        timings["approve+grant"].append(time.perf_counter() - began)
        began = time.perf_counter()
        service.revoke(me, rid)
        timings["revoke"].append(time.perf_counter() - began)
    return timings


def lateness(services, leaders, target) -> list[float]:
    revoked: dict[str, datetime] = {}
    target.on_call = lambda body: (
        revoked.setdefault(body["request_id"], utcnow()) if body["action"] == "revoke" else None
    )
    schedulers = [
        Scheduler(service.tick, TICK, leader) for service, leader in zip(services, leaders)
    ]
    for scheduler in schedulers:
        scheduler.start()
    try:
        start = utcnow() + timedelta(seconds=2)
        ends = {}
        for number in range(EXPIRING):
            service = services[number % len(services)]
            end = start + timedelta(seconds=SPREAD * number / EXPIRING)
            me = person(f"exp{number}")
            rid = service.request(me, "prod-db", end - utcnow(), "bench").request.id
            service.approve(person("alice"), rid)
            ends[rid] = services[0].store.get(rid).expires_at
        deadline = time.monotonic() + SPREAD + 30
        while len(revoked) < EXPIRING and time.monotonic() < deadline:
            threading.Event().wait(0.05)
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        target.on_call = None
    return [(revoked[rid] - end).total_seconds() for rid, end in ends.items() if rid in revoked]


def run(name: str, root: Path, target, db_url: str | None, bots: int = 1) -> None:
    services = [
        build_service(root, utcnow, target.url, db_url=db_url, lease_seconds=3) for _ in range(bots)
    ]
    leaders = [LeaderLease(s.store.db) if db_url else None for s in services]
    try:
        timings = latency(services, target)
        late = lateness(services, leaders, target)
    finally:
        for service in services:
            service.store.close()
    for what, values in timings.items():
        print(f"  {name:15s} {what:14s} {ms(values)}")
    print(
        f"  {name:15s} {'lateness':14s} p50 {statistics.median(late) * 1000:6.0f} ms  "
        f"max {max(late) * 1000:6.0f} ms  ({len(late)}/{EXPIRING} revoked, tick {TICK:g} s)"
    )


def main() -> None:
    logging.disable(logging.WARNING)
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    target = WebhookTarget(secret="s3cret")
    print(
        f"Request latency ({COMMANDS} request/approve/revoke each) and revocation lateness "
        f"({EXPIRING} grants ending over {SPREAD:g} s):"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run("tinydb", Path(tmp), target, None)
        try:
            server = start_server(durable=True)
        except NoServer as exc:
            print(f"  postgresql: skipped, {exc}")
            return
        try:
            for bots in (1, 2):
                url = server.database()
                with tempfile.TemporaryDirectory() as tmp:
                    run(
                        "postgresql" + (f" x{bots}" if bots > 1 else ""),
                        Path(tmp),
                        target,
                        url,
                        bots,
                    )
        finally:
            server.stop()
    finally:
        target.close()


if __name__ == "__main__":
    main()
