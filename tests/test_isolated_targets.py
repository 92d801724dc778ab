"""Targets isolated from each other (issue 17, item 3): each grant or revoke call is its
own task on the provisioner's pool; the revocation tick hands out what is due and returns
without waiting; a slow or failing resource holds at most a quarter of the workers, so a
target that hangs delays only its own resource's revokes (a healthy one widens, issue 28). Time is the injected clock: "recorded on
the first tick" means recorded at the tick's own moment, with the clock standing still.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest

from accessbot.domain import Status
from tests.builders import build_service, person
from tests.conftest import FakeClock, policy_file, request_id
from tests.fakes import WebhookTarget
from tests.helpers import eventually as until


def two_targets_policy(healthy_url: str, hanging_url: str) -> str:
    """prod-db on a healthy webhook, legacy-db on one that may hang (a long timeout, so
    the hang is what the test sees, not the timeout)."""

    def resource(url: str, timeout: str) -> dict:
        return {
            "description": "a database",
            "max_duration": "4h",
            "approvers": ["@alice", "@bob"],
            "channel": "#access-approvals",
            "strategy": {
                "type": "webhook",
                "url": url,
                "secret_env": "TEST_HOOK_SECRET",
                "timeout": timeout,
            },
        }

    resources = {"prod-db": resource(healthy_url, "10s"), "legacy-db": resource(hanging_url, "60s")}
    return f"RESOURCES = {resources!r}\n"


class Told:
    """The provisioner's `notify`: notices of finished calls, and an event per text."""

    def __init__(self):
        self.notices = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def __call__(self, notices) -> None:
        with self.changed:
            self.notices.extend(notices)
            self.changed.notify_all()

    def wait_for(self, count: int, text: str) -> None:
        """Until `count` notices contain `text`: the finished tasks report themselves."""
        with self.changed:
            found = self.changed.wait_for(
                lambda: sum(text in n.text for n in self.notices) >= count, timeout=20
            )
        assert found, f"never told {count} x {text!r}: {[n.text for n in self.notices]}"


@pytest.fixture
def targets():
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    healthy, hanging = WebhookTarget(secret="s3cret"), WebhookTarget(secret="s3cret")
    yield healthy, hanging
    hanging.release()
    healthy.close()
    hanging.close()


def granted(service, user: str, resource: str) -> str:
    rid = service.request(person(user), resource, timedelta(minutes=30), "INC-9").request.id
    service.approve(person("alice"), rid)
    assert service.store.get(rid).status is Status.ACTIVE
    return rid


def on_two_targets(tmp_path, clock, targets, told, policy: str | None = None):
    """The service with 4 strategy workers: prod-db on the healthy target, legacy-db on
    the hanging one (or `policy`); what it tells goes to `told`."""
    healthy, hanging = targets
    return build_service(
        tmp_path,
        clock,
        healthy.url,
        policy=policy or two_targets_policy(healthy.url, hanging.url),
        strategy_workers=4,
        notify=told,
    )


def test_a_hanging_revoke_does_not_delay_a_healthy_one_ending_at_the_same_time(tmp_path, targets):
    healthy, hanging = targets
    clock, told = FakeClock(), Told()
    service = on_two_targets(tmp_path, clock, targets, told)
    fine = granted(service, "carol", "prod-db")
    stuck = granted(service, "dave", "legacy-db")
    hanging.hang("revoke")
    ends = clock.advance(minutes=30)

    service.revocation_tick()  # returns with the legacy-db revoke still hanging

    told.wait_for(1, f"request {fine}) has expired")
    done = service.store.get(fine)
    assert done.status is Status.EXPIRED and done.ended_at == ends  # on the first tick
    assert service.store.get(stuck).status is Status.ACTIVE
    # The healthy revoke may be recorded before the other's call reaches its target.
    until(lambda: hanging.held == [stuck], "the legacy-db revoke reaches its target")
    assert stuck in service._inflight

    clock.advance(seconds=1)
    service.revocation_tick()  # the one in flight is not handed out again
    assert hanging.held == [stuck] and hanging.most_held == 1

    hanging.release()
    assert service.drain(20)
    assert service.store.get(stuck).status is Status.EXPIRED
    assert hanging.count("revoke", stuck) == 1 and healthy.count("revoke", fine) == 1
    told.wait_for(1, f"request {stuck}) has expired")


def test_one_resource_holds_at_most_a_quarter_of_the_workers(tmp_path, targets):
    healthy, hanging = targets
    clock, told = FakeClock(), Told()
    service = on_two_targets(tmp_path, clock, targets, told)
    stuck = [granted(service, f"user{n}", "legacy-db") for n in range(5)]
    fine = [granted(service, f"user{n}", "prod-db") for n in range(5)]
    hanging.hang("revoke")
    clock.advance(minutes=30)

    service.revocation_tick()

    told.wait_for(5, "has expired")  # prod-db's five, on the three workers left
    assert all(service.store.get(rid).status is Status.EXPIRED for rid in fine)
    until(lambda: hanging.held, "a legacy-db revoke reaches its target")
    assert len(hanging.held) == 1 and hanging.most_held == 1  # 4 workers: a quarter is 1
    assert sum(service.store.get(rid).status is Status.ACTIVE for rid in stuck) == 5

    hanging.release()
    assert service.drain(20)  # the rest of legacy-db's revokes follow, one at a time
    assert all(service.store.get(rid).status is Status.EXPIRED for rid in stuck)
    assert all(hanging.count("revoke", rid) == 1 for rid in stuck)
    assert hanging.most_held == 1
    told.wait_for(10, "has expired")


def test_a_hanging_target_that_times_out_is_retried_with_the_usual_backoff(tmp_path, targets):
    healthy, hanging = targets
    clock, told = FakeClock(), Told()
    policy = two_targets_policy(healthy.url, hanging.url).replace("'60s'", "'1s'")
    service = on_two_targets(tmp_path, clock, targets, told, policy)
    stuck = granted(service, "dave", "legacy-db")
    hanging.hang("revoke")
    ends = clock.advance(minutes=30)

    service.revocation_tick()
    told.wait_for(1, "REVOKE FAILED")  # the call timed out after its 1 s
    assert service.drain(20)
    failed = service.store.get(stuck)
    assert failed.status is Status.REVOKE_FAILED
    assert failed.next_retry_at == ends + timedelta(seconds=10)

    service.revocation_tick()  # not due again before its retry time
    assert service.drain(20) and hanging.most_held == 1

    hanging.release()
    clock.advance(seconds=10)
    service.revocation_tick()
    assert service.drain(20)
    assert service.store.get(stuck).status is Status.EXPIRED


def test_through_the_bot_a_hanging_target_leaves_the_scheduler_and_the_chat_running(
    bot_factory, policy_dir, targets, clock
):
    healthy, hanging = targets
    policy_file(policy_dir, "two.py", two_targets_policy(healthy.url, hanging.url))
    chat = bot_factory(ACCESS_STRATEGY_WORKERS=4)
    rids = {}
    for user, resource in (("carol", "prod-db"), ("dave", "legacy-db")):
        rids[user] = request_id(chat.reply(user, f"!access request {resource} 30m INC-9"))
        chat.reply("bob", f"!approve {rids[user]}")
    hanging.hang("revoke")

    clock.advance(minutes=30)

    # The scheduler's jobs go on: carol's revoke is recorded and told through the outbox
    # while dave's hangs; an unrelated request still times out on schedule.
    chat.wait_for("carol", f"request {rids['carol']}) has expired")
    until(lambda: hanging.held == [rids["dave"]], "dave's revoke reaches its target")
    erin = request_id(chat.reply("erin", "!access request prod-db 30m INC-10"))
    clock.advance(hours=1, minutes=1)
    chat.wait_for("erin", f"Your request {erin} for prod-db timed out")
    assert "active" in chat.reply("dave", f"!access show {rids['dave']}")

    hanging.release()
    chat.wait_for("dave", f"request {rids['dave']}) has expired")
    assert hanging.count("revoke", rids["dave"]) == 1


def test_a_burst_on_one_healthy_resource_grows_past_its_quarter_into_idle_workers(
    tmp_path, targets
):
    """Work-conserving isolation (issue 28): the quarter holds a slow or failing resource;
    a healthy one whose calls come back fast widens into the idle workers."""
    healthy, _ = targets
    clock, told = FakeClock(), Told()
    service = on_two_targets(tmp_path, clock, targets, told)
    fine = [granted(service, f"user{n}", "prod-db") for n in range(12)]  # fast: healthy
    busy, most = [0], [0]
    lock = threading.Lock()

    def slowish(call):  # each revoke takes a moment, so calls made together overlap
        if call["action"] != "revoke":
            return
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        threading.Event().wait(0.05)
        with lock:
            busy[0] -= 1

    healthy.on_call = slowish
    clock.advance(minutes=30)

    service.revocation_tick()

    assert service.drain(20)
    assert all(service.store.get(rid).status is Status.EXPIRED for rid in fine)
    assert all(healthy.count("revoke", rid) == 1 for rid in fine)
    assert most[0] > 1  # 4 workers: a quarter is 1, yet the healthy burst used more
