"""The scheduler's work as separate `schedule` jobs, each at its own cadence (issue 16):
the revocation tick (only strategy calls, handed to the pool), housekeeping (time-outs,
nudges, escalations, reminders) and the review reminders. The leader runs them; a
standby runs none."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

from accessbot.domain import Status
from accessbot.scheduler import Periodic, Scheduler
from tests.builders import build_service, person
from tests.conftest import FakeClock, access_plugin, policy_file, webhook_policy
from tests.fakes import WebhookTarget


class Standby:
    held = False

    def acquire(self) -> bool:
        return False

    def release(self) -> None:
        pass


def test_a_periodic_job_runs_at_its_own_cadence_apart_from_the_revocation_tick():
    ticks, ran = [], threading.Event()
    scheduler = Scheduler(
        lambda: ticks.append(1),
        3600,  # the regular revocation tick is an hour away
        periodic=[Periodic("housekeeping", 0.01, ran.set)],
    )
    scheduler.start()
    try:
        assert ran.wait(10)
    finally:
        scheduler.stop()
    assert ticks == []
    assert scheduler.cadences() == {"revocation tick": 3600, "housekeeping": 0.01}


def test_a_standby_runs_no_periodic_job():
    ran = []
    scheduler = Scheduler(
        lambda: ran.append("tick"),
        3600,
        Standby(),
        periodic=[Periodic("housekeeping", 3600, lambda: ran.append("housekeeping"))],
    )
    scheduler.start()
    try:
        scheduler._jobs.run_all()  # every `schedule` job now, as if their time had come
    finally:
        scheduler.stop()
    assert ran == []


def test_the_revocation_tick_makes_strategy_calls_only_and_housekeeping_the_rest(tmp_path):
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    target = WebhookTarget(secret="s3cret")
    clock = FakeClock()
    service = build_service(tmp_path, clock, target.url)
    try:
        waiting = service.request(person("carol"), "prod-db", timedelta(minutes=30), "x")
        held = service.request(person("dave"), "prod-db", timedelta(minutes=30), "y")
        service.approve(person("alice"), held.request.id)
        clock.advance(hours=2)  # carol's request times out; dave's grant ends

        service.revocation_tick()
        assert service.drain(20)
        assert service.store.get(held.request.id).status is Status.EXPIRED
        assert service.store.get(waiting.request.id).status is Status.PENDING

        told = service.housekeeping()
        assert service.store.get(waiting.request.id).status is Status.TIMED_OUT
        assert any("timed out" in n.text for n in told)
    finally:
        target.close()


def test_the_plugin_registers_four_jobs_each_with_its_cadence(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_TICK_SECONDS=2)
    assert access_plugin(chat.backend).scheduler.cadences() == {
        "revocation tick": 2,
        "housekeeping": 2,
        "review reminders": 2,
        "overdue grants": 2,
    }
