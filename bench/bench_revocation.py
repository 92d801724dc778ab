"""Target 2: revocation lateness when many grants end in the same second.

10,000 active grants, 1,000 of them expiring in the same second T, against webhook
targets on 127.0.0.1 (each its own process) that take 20 ms per call. Two layouts: the
whole burst on one resource (it starts on a quarter of ACCESS_STRATEGY_WORKERS and
widens into the idle ones while its calls come back fast), and the same burst
spread over 8 resources on 4 targets. The real service,
store and Scheduler run on the wall clock as the plugin wires them (regular tick every
ACCESS_TICK_SECONDS=1, plus a wake-up when the next revocation comes due). Lateness is
when each revoke call reached the target, minus T; "recorded" is when its audit event
was written. Also: the cost of one tick with nothing due at 10,000 active grants.

    .venv/bin/python bench/bench_revocation.py [--quick]
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import (
    SECRET,
    SECRET_ENV,
    SlowTarget,
    active,
    header,
    median,
    ms,
    percentile,
    quiet_logs,
    strategy,
    table,
    wired,
    write_policy,
    write_resources,
)

from accessbot.audit import AuditLog
from accessbot.domain import from_iso
from accessbot.provisioner import per_resource
from accessbot.scheduler import Periodic, Scheduler
from accessbot.service import AccessService
from accessbot.store import TinyDBStore

ACTIVE = 10_000
BURST = 1_000
DELAY = 0.020
TICK = 1.0
LEAD = 3.0  # seconds between start-up and T
SPREAD = 8  # resources in the spread layout, two on each target


def utcnow() -> datetime:
    return datetime.now(UTC)


def on_resources(grants: list, resources: dict[str, dict]) -> list:
    """Deal the grants over `resources` (name -> strategy settings) in turn."""
    names = list(resources)
    for number, grant in enumerate(grants):
        grant.resource = names[number % len(names)]
        grant.strategy = dict(resources[grant.resource])
    return grants


def layout(targets: list[SlowTarget], spread: bool) -> dict[str, dict]:
    """Resource name -> strategy: one resource, or SPREAD over the targets."""
    if not spread:
        return {"prod-db": strategy(targets[0].url)}
    return {f"db-{n}": strategy(targets[n % len(targets)].url) for n in range(SPREAD)}


def build(data: Path, resources: dict, burst_at: datetime, now: datetime) -> list[str]:
    """10,000 active grants in the store: BURST end at `burst_at`, the rest hours later."""
    url = next(iter(resources.values()))["url"]
    burst = on_resources(active(BURST, url, now, lambda n: burst_at, prefix="b"), resources)
    rest = active(
        ACTIVE - BURST, url, now, lambda n: now + timedelta(hours=1, seconds=3 * n), prefix="r"
    )
    rest = on_resources(rest, resources)
    store = TinyDBStore(data / "access.json")
    store.save_many(burst + rest)
    store.compact()
    return [r.id for r in burst]


def service_on(data: Path, policies: Path, clock, workers: int, notify=None) -> AccessService:
    return wired(
        TinyDBStore(data / "access.json"),
        AuditLog(data / "audit.jsonl", clock, max_bytes=None),
        policies,
        clock,
        strategy_workers=workers,
        notify=notify,
    )


def one_burst(targets: list[SlowTarget], workers: int, spread: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        resources = layout(targets, spread)
        write_resources(tmp / "policies", resources)
        now = utcnow()
        burst_at = datetime.fromtimestamp(math.ceil(now.timestamp() + LEAD), UTC)
        ids = build(tmp / "data", resources, burst_at, now)
        notices = []
        lock = threading.Lock()

        def told(found):  # the plugin's hand-over to the outbox, as it wires it
            with lock:
                notices.extend(found)

        service = service_on(tmp / "data", tmp / "policies", utcnow, workers, told)
        told(service.tick())  # the start pass (nothing is due yet: it waits for no call)
        scheduler = Scheduler(  # the plugin's jobs: the tick hands out calls, never waits
            service.revocation_tick,
            TICK,
            next_due=service.next_revocation_at,
            clock=utcnow,
            periodic=[Periodic("housekeeping", TICK, lambda: told(service.housekeeping()))],
        )
        scheduler.start()
        deadline = time.time() + LEAD + 60
        while time.time() < deadline:
            with lock:
                if sum(1 for n in notices if n.audience == "user") >= BURST:
                    break
            time.sleep(0.1)
        scheduler.stop()
        service.close()
        calls = [call for target in targets for call in target.arrivals()]
        recorded = [
            from_iso(e["ts"]).timestamp() for e in service.audit.events() if e["event"] == "expired"
        ]
    t = burst_at.timestamp()
    revokes = [(rid, at) for action, rid, at in calls if action == "revoke"]
    per_id = {}
    for rid, at in revokes:
        per_id.setdefault(rid, []).append(at)
    twice = sum(1 for v in per_id.values() if len(v) > 1)
    missed = len(set(ids) - set(per_id))
    stray = len(set(per_id) - set(ids))
    lateness = [min(v) - t for v in per_id.values()]
    return {
        "lateness": lateness,
        "recorded": [r - t for r in recorded],
        "twice": twice,
        "missed": missed,
        "stray": stray,
        "told": sum(1 for n in notices if n.audience == "user" and "has expired" in n.text),
    }


def idle_tick_cost(target_url: str, runs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_policy(tmp / "policies", target_url)
        now = utcnow()
        active_grants = active(
            ACTIVE, target_url, now, lambda n: now + timedelta(hours=1, seconds=3 * n)
        )
        store = TinyDBStore(tmp / "data" / "access.json")
        store.save_many(active_grants)
        service = service_on(tmp / "data", tmp / "policies", lambda: now, 16)
        service.tick()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            service.tick()
            samples.append(time.perf_counter() - start)
    return median(samples), percentile(samples, 99)


def main() -> None:
    quiet_logs()
    os.environ[SECRET_ENV] = SECRET
    quick = "--quick" in sys.argv
    header(
        f"Target 2: revocation lateness, {ACTIVE:,} active grants, {BURST:,} ending in the "
        f"same second, targets 20 ms per call, tick {TICK:g} s"
    )
    targets = [SlowTarget(DELAY) for _ in range(SPREAD // 2)]
    try:
        one = "1 resource"
        spread = f"{SPREAD} resources, {len(targets)} targets"
        plans = (
            [(one, 32, 1), (spread, 32, 1)]
            if quick
            else [(one, 32, 3), (spread, 32, 3), (one, 16, 1), (one, 8, 1)]
        )
        rows = []
        for burst_on, workers, runs in plans:
            lateness, recorded, twice, missed, told = [], [], 0, 0, 0
            for _ in range(runs):
                result = one_burst(targets, workers, spread=burst_on == spread)
                lateness += result["lateness"]
                recorded += result["recorded"]
                twice += result["twice"] + result["stray"]
                missed += result["missed"]
                told += result["told"]
            rows.append(
                [
                    burst_on,
                    f"{workers} ({per_resource(workers)})",
                    str(runs),
                    f"{median(lateness):.2f}",
                    f"{percentile(lateness, 99):.2f}",
                    f"{max(lateness):.2f}",
                    f"{percentile(recorded, 99):.2f}",
                    f"{twice}/{missed}",
                    f"{told}/{runs * BURST}",
                ]
            )
        table(
            rows,
            [
                "burst on",
                "workers (per resource)",
                "runs",
                "p50 s (<=1.3)",
                "p99 s (<=2)",
                "max s",
                "recorded p99 s",
                "twice/missed",
                "requesters told",
            ],
        )
        print(
            "   a burst on one healthy resource starts on a quarter of the workers and widens "
            "into the idle ones;\n   a slow or failing resource stays at its quarter."
        )
    finally:
        for target in targets:
            target.close()
    p50, p99 = idle_tick_cost("http://127.0.0.1:9/never-called", 300 if quick else 2000)
    print(
        f"\n   one tick with nothing due at {ACTIVE:,} active grants: "
        f"p50 {ms(p50)} ms, p99 {ms(p99)} ms (target < 1 ms)"
    )


if __name__ == "__main__":
    main()
