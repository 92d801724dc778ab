"""Many grants ending together: the tick revokes them on a pool of threads, each exactly
once, none skipped, with every notice delivered; and the scheduler wakes for an expiry
instead of waiting for its next regular tick."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta

from accessbot.domain import AccessError, Status
from accessbot.memory_store import MemoryStore
from accessbot.settings import Settings, SettingsError
from tests.builders import build_service, person
from tests.conftest import FakeClock, policy_file, request_id, webhook_policy
from tests.fakes import WebhookTarget

GRANTS = 120


def grants_ending_together(tmp_path, clock, url, workers=8):
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    service = build_service(tmp_path, clock, url, store=MemoryStore())
    service.strategy_workers = workers
    ids = []
    for number in range(GRANTS):
        rid = service.request(person(f"user{number}"), "prod-db", timedelta(minutes=30), "x")
        ids.append(rid.request.id)
        service.approve(person("alice"), ids[-1])
    return service, ids


def test_grants_ending_together_are_each_revoked_once_while_ticks_and_revokes_race(tmp_path):
    target = WebhookTarget(secret="s3cret", delay=0.005)
    clock = FakeClock()
    service, ids = grants_ending_together(tmp_path, clock, target.url)
    clock.advance(minutes=31)
    notices, refused = [], Counter()
    lock = threading.Lock()
    start = threading.Barrier(3)

    def tick():
        start.wait()
        found = service.tick()
        with lock:
            notices.extend(found)

    def revoke_some():
        start.wait()
        for number in range(0, GRANTS, 6):
            try:
                outcome = service.revoke(person(f"user{number}"), ids[number])
                with lock:
                    notices.extend(outcome.notices)
            except AccessError as exc:
                refused[str(exc).split(" ", 1)[1][:30]] += 1  # already gone, or in flight

    threads = [threading.Thread(target=f) for f in (tick, tick, revoke_some)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    target.close()

    assert all(target.count("revoke", rid) == 1 for rid in ids), Counter(
        target.count("revoke", rid) for rid in ids
    )
    statuses = Counter(service.store.get(rid).status for rid in ids)
    assert set(statuses) <= {Status.EXPIRED, Status.REVOKED} and sum(statuses.values()) == GRANTS
    told = Counter(n.to for n in notices if n.audience == "user")
    assert told == {f"@user{number}": 1 for number in range(GRANTS)}  # each told once
    ended = Counter(
        e["request_id"] for e in service.audit.events() if e["event"] in ("expired", "revoked")
    )
    assert ended == {rid: 1 for rid in ids}
    assert service.store.live() == []


def test_failed_revokes_in_a_burst_are_retried_and_none_is_skipped(tmp_path):
    target = WebhookTarget(secret="s3cret")
    clock = FakeClock()
    service, ids = grants_ending_together(tmp_path, clock, target.url)
    target.set_status(*[500] * 15, 200)  # the first 15 revoke calls fail
    clock.advance(minutes=31)

    first = service.tick()

    failed = [rid for rid in ids if service.store.get(rid).status is Status.REVOKE_FAILED]
    assert len(failed) == 15
    assert sum("REVOKE FAILED" in n.text for n in first) == 15
    clock.advance(seconds=11)
    service.tick()
    target.close()
    assert all(service.store.get(rid).status is Status.EXPIRED for rid in ids)
    assert all(target.count("revoke", rid) == 1 for rid in ids)  # one accepted call each


def test_one_worker_revokes_in_turn_with_the_same_result(tmp_path):
    target = WebhookTarget(secret="s3cret")
    clock = FakeClock()
    service, ids = grants_ending_together(tmp_path, clock, target.url, workers=1)
    clock.advance(minutes=31)
    notices = service.tick()
    target.close()
    assert all(target.count("revoke", rid) == 1 for rid in ids)
    assert sum("has expired" in n.text for n in notices) == GRANTS


def test_a_tick_with_nothing_due_writes_nothing(tmp_path):
    target = WebhookTarget(secret="s3cret")
    clock = FakeClock()
    service, _ = grants_ending_together(tmp_path, clock, target.url)
    events = len(list(service.audit.events()))
    clock.advance(minutes=5)
    assert service.tick() == []
    target.close()
    assert len(list(service.audit.events())) == events


def test_the_scheduler_wakes_for_an_expiry_instead_of_waiting_for_its_tick(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_TICK_SECONDS=3600)  # the regular tick is an hour away
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    chat.reply("bob", f"!approve {rid}")

    clock.advance(minutes=30)

    chat.wait_for("carol", f"request {rid}) has expired")
    assert webhook.count("revoke", rid) == 1


def test_the_number_of_strategy_workers_is_a_setting_with_a_clear_error():
    assert Settings.load(None, {}).strategy_workers == 32
    assert Settings.load(None, {"ACCESS_STRATEGY_WORKERS": "4"}).strategy_workers == 4
    for bad in ("0", "many", "65", "2.5"):
        try:
            Settings.load(None, {"ACCESS_STRATEGY_WORKERS": bad})
        except SettingsError as exc:
            assert "ACCESS_STRATEGY_WORKERS must be a whole number from 1 to 64" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
