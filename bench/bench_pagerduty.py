"""PagerDuty calls per chat request, cold and warm cache.

Runs the real service (`AccessService.request`, what one `!access request` does) with
the real pdpyras client against the fake PagerDuty API on 127.0.0.1, and counts the
HTTP requests the fake received for each chat request. Latencies are local-loopback
numbers: they show the cost of the bot's own work, not of PagerDuty's network.

    .venv/bin/python bench/bench_pagerduty.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from accessbot.audit import AuditLog  # noqa: E402
from accessbot.bootstrap import bootstrap  # noqa: E402
from accessbot.integrations.pagerduty import OnCallChecker  # noqa: E402
from accessbot.service import AccessService, Actor  # noqa: E402
from accessbot.settings import Settings  # noqa: E402
from accessbot.store import TinyDBStore  # noqa: E402
from tests.fake_pagerduty import TOKEN, FakePagerDuty  # noqa: E402
from tests.fakes import WebhookTarget  # noqa: E402

SCHEDULE = "PABC123"


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


def policies(directory: Path, url: str) -> None:
    strategy = {"type": "webhook", "url": url, "secret_env": "BENCH_HOOK_SECRET"}
    (directory / "break_glass.py").write_text(
        textwrap.dedent(f"""
        RESOURCES = {{"prod-shell": {{"max_duration": "2h", "approvers": ["@alice"],
            "channel": "#access", "strategy": {strategy!r}}}}}

        def on_request(request, ctx):
            if ctx.pagerduty.is_on_call(request.requester_email, schedule="{SCHEDULE}"):
                return ctx.approve("on call")
        """)
    )
    (directory / "routed.py").write_text(
        textwrap.dedent(f"""
        RESOURCES = {{"prod-k8s": {{"max_duration": "2h", "approvers": ["@alice"],
            "channel": "#access", "strategy": {strategy!r}}}}}

        def get_approvers(request, ctx):
            return ctx.pagerduty.on_call_users(schedule="{SCHEDULE}")

        def on_request(request, ctx):
            if ctx.pagerduty.is_on_call(request.requester_email, schedule="{SCHEDULE}"):
                return ctx.approve("on call")
        """)
    )


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the failure rows log warnings by design
    os.environ["BENCH_HOOK_SECRET"] = "bench"
    fake = FakePagerDuty()
    target = WebhookTarget(secret="bench")
    for user_id, name in (("PCAROL1", "carol"), ("PDAVE01", "dave")):
        fake.add_user(user_id, name.title(), f"{name}@example.com")
    fake.put_on_call("PCAROL1", schedule=SCHEDULE)
    clock = Clock()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "policies").mkdir()
        policies(tmp / "policies", target.url)

        def fresh_service(**checker_settings) -> AccessService:
            return bootstrap(
                Settings(policy_dir=str(tmp / "policies")),
                clock=clock,
                store=TinyDBStore(tmp / f"access-{len(rows)}.json"),
                audit=AuditLog(tmp / "audit.jsonl", clock),
                pagerduty=OnCallChecker(TOKEN, fake.url, clock=clock, **checker_settings),
            )

        def measure(label: str, service: AccessService, who: str, resource: str) -> None:
            actor = Actor(who, email=f"{who}@example.com")
            before = fake.count()
            start = time.perf_counter()
            outcome = service.request(actor, resource, None, "INC-1 bench")
            elapsed = (time.perf_counter() - start) * 1000
            result = outcome.request.status.value
            rows.append((label, fake.count() - before, f"{elapsed:.1f}", result))
            # End it, so the same person may ask again (one grant per person and resource).
            if outcome.request.status.value == "active":
                service.revoke(actor, outcome.request.id)
            elif outcome.request.status.value == "pending":
                service.cancel(actor, outcome.request.id)

        service = fresh_service()
        measure("on call, cold cache", service, "carol", "prod-shell")
        measure("on call, warm cache", service, "carol", "prod-shell")
        clock.now += timedelta(minutes=1, seconds=1)
        measure("on call, on-call answer expired (60s)", service, "carol", "prod-shell")
        clock.now += timedelta(hours=1, minutes=1)
        measure("on call, user id expired too (1h)", service, "carol", "prod-shell")
        service = fresh_service()  # cold: neither the schedule's list nor dave is known
        measure("not on call, cold cache", service, "dave", "prod-shell")
        measure("not on call, warm cache", service, "dave", "prod-shell")
        measure("unknown e-mail, cold (list cached)", service, "erin", "prod-shell")
        measure("unknown e-mail, warm", service, "erin", "prod-shell")

        service = fresh_service()
        measure("routed to on call + break-glass, cold", service, "dave", "prod-k8s")
        measure("routed to on call + break-glass, warm", service, "dave", "prod-k8s")

        service = fresh_service()
        fake.fail_with("500")
        measure("PagerDuty 500 (failures are not cached)", service, "carol", "prod-shell")
        measure("PagerDuty 500 again", service, "carol", "prod-shell")
        fake.fail_with("hang")
        service = fresh_service(timeout=1.0)
        measure("PagerDuty hangs, timeout 1s", service, "carol", "prod-shell")
        fake.fail_with(None)
    fake.close()
    target.close()

    width = max(len(r[0]) for r in rows)
    print(f"{'chat request':<{width}}  PD calls  ms      outcome")
    for label, calls, ms, result in rows:
        print(f"{label:<{width}}  {calls:>8}  {ms:>6}  {result}")


if __name__ == "__main__":
    main()
