"""50 threads requesting, approving and revoking against one store while the real
scheduler thread expires grants and times out requests: on TinyDB and on PostgreSQL."""

from __future__ import annotations

import os
import random
import re
import threading
from collections import Counter
from datetime import timedelta

import pytest

from accessbot.domain import FINAL, AccessError, Status
from accessbot.scheduler import Scheduler
from tests.builders import ADMIN, build_service, person
from tests.conftest import FakeClock
from tests.helpers import eventually

THREADS = 50
ROUNDS = 4
FINAL_EVENTS = {s.value for s in FINAL}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tinydb", "postgresql"])
def test_fifty_threads_and_the_scheduler_leave_every_request_final_and_revoked_once(
    tmp_path, webhook, backend, request
):
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    clock = FakeClock()
    db_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    service = build_service(tmp_path, clock, webhook.url, db_url=db_url)
    request.addfinalizer(service.store.close)
    scheduler = Scheduler(service.tick, every_seconds=0.01)
    created: list[str] = []
    grants: list[str] = []
    refusals: Counter = Counter()
    crashes: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def worker(number: int) -> None:
        rng = random.Random(number)
        approver = person("alice" if number % 2 else "bob")
        start.wait()
        for round_ in range(ROUNDS):
            # One person per round: someone still holding prod-db is refused a second grant.
            me = person(f"user{number}-{round_}")
            try:
                minutes = rng.choice([1, 5, 30])
                outcome = service.request(me, "prod-db", timedelta(minutes=minutes), "load test")
                rid = outcome.request.id
                with lock:
                    created.append(rid)
                choice = rng.random()
                if choice < 0.1:
                    service.cancel(me, rid)
                elif choice < 0.2:
                    service.deny(approver, rid, "not now")
                elif choice < 0.3:
                    pass  # left pending: the scheduler times it out
                else:
                    service.approve(approver, rid)
                    with lock:
                        grants.append(rid)
                        recent = grants[-10:]
                    if rng.random() < 0.3:
                        service.revoke(rng.choice([me, approver, ADMIN]), rid)
                    elif rng.random() < 0.3:
                        # Someone else's grant, that may be expiring or revoked right now.
                        service.revoke(ADMIN, rng.choice(recent))
            except AccessError as exc:  # a race lost politely: "already expired", ...
                with lock:
                    refusals[
                        re.sub(r"\b(?=[a-z]*\d)[a-z0-9]{6}\b", "<id>", str(exc)).split(";")[0]
                    ] += 1
            except BaseException as exc:  # noqa: BLE001 - anything else fails the test
                with lock:
                    crashes.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    scheduler.start()
    try:
        start.wait()
        while any(t.is_alive() for t in threads):
            clock.advance(minutes=1)  # grants expire while people are still working
            threading.Event().wait(0.005)
        for thread in threads:
            thread.join()
        clock.advance(hours=2)  # past every grant's end and every pending timeout
        eventually(lambda: crashes or not service.store.live(), "every request final", 20)
    finally:
        scheduler.stop()

    assert crashes == []
    assert service.store.live() == []
    assert len(created) == len(set(created)) == THREADS * ROUNDS

    statuses: Counter = Counter()
    granted = 0
    events = list(service.audit.events())
    finals_in_audit = Counter(e["request_id"] for e in events if e["event"] in FINAL_EVENTS)
    for rid in created:
        request = service.store.get(rid)
        statuses[request.status.value] += 1
        assert request.is_final
        assert sum(1 for e in request.history if e.action in FINAL_EVENTS) == 1
        assert finals_in_audit[rid] == 1
        if request.granted_at:
            granted += 1
            assert request.status in (Status.EXPIRED, Status.REVOKED)
            assert webhook.count("grant", rid) == 1 and webhook.count("revoke", rid) == 1
        else:
            assert webhook.count("revoke", rid) == 0
    result = service.audit.verify()
    assert result.ok, str(result)

    print(
        f"\n{len(created)} requests from {THREADS} threads; final states {dict(statuses)}; "
        f"{granted} grants, each revoked exactly once at the target; "
        f"{sum(refusals.values())} polite refusals {dict(refusals)}; {result}"
    )
    assert granted > 50 and statuses["expired"] and statuses["revoked"]
