"""The overdue alarm (issue 26, DESIGN.md "Turn-3 contracts"): a grant past its end plus
ACCESS_OVERDUE_GRACE without a confirmed revoke is told to the admins once, counted in
`accessbot_grants_overdue` and turns /health to 503 "overdue", until it is revoked. The
target here trickles its revoke answers (a byte a second), through the real bot."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from accessbot.domain import Status
from accessbot.memory_store import MemoryStore
from accessbot.overdue import OverdueWatch
from tests.builders import a_request
from tests.conftest import access_plugin, policy_file, request_id
from tests.fake_trickle import TricklingTarget
from tests.helpers import START, FakeClock, eventually
from tests.test_deadline import trickle_policy


@pytest.fixture
def trickling():
    target = TricklingTarget(mode="body")
    yield target
    target.close()


def overdue_gauge(plugin) -> float:
    body, _ = plugin.metrics.exposition()
    match = re.search(rb"^accessbot_grants_overdue (\S+)$", body, re.M)
    assert match, "no accessbot_grants_overdue gauge"
    return float(match.group(1))


def health(plugin) -> tuple[int, dict]:
    body, status, _ = plugin.health_endpoint(None)
    return status, json.loads(body)


def test_a_grant_its_target_will_not_revoke_is_told_to_the_admins_once_and_fails_health(
    bot_factory, policy_dir, trickling, clock
):
    policy_file(policy_dir, "db.py", trickle_policy(trickling.url))
    chat = bot_factory(ACCESS_OVERDUE_GRACE="2m")
    plugin = access_plugin(chat.backend)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m INC-7"))
    chat.say("alice", f"!approve {rid}")
    assert plugin.service.store.get(rid).status is Status.ACTIVE
    eventually(lambda: health(plugin)[0] == 200, "a healthy bot")

    clock.advance(minutes=30)  # the grant ends; its revoke trickles, then fails at 2 s
    eventually(
        lambda: plugin.service.store.get(rid).status is Status.REVOKE_FAILED,
        "the first revoke failing at its deadline",
    )
    clock.advance(minutes=2)  # exactly end + grace: not past it yet
    plugin.service.drain(10)
    assert plugin.service.check_overdue() == [] and overdue_gauge(plugin) == 0

    clock.advance(seconds=1)
    alarm = chat.wait_for("admin", "OVERDUE")
    # The contract: the word "overdue" (as written), the request id and the resource.
    assert rid in alarm and "prod-db" in alarm and "overdue" in alarm
    assert "webhook (url=http://127.0.0.1:" in alarm  # which target
    assert "did not finish within 2s" in alarm  # what the last attempt said
    assert overdue_gauge(plugin) == 1
    status, verdict = health(plugin)
    assert status == 503 and verdict["reason"].startswith("overdue") and rid in verdict["reason"]

    # More retries fail, more checks run: the admins were told once.
    attempts = plugin.service.store.get(rid).revoke_attempts
    clock.advance(minutes=1)
    eventually(
        lambda: plugin.service.store.get(rid).revoke_attempts > attempts,
        "another failed retry",
    )
    chat.delivered()
    assert sum("OVERDUE" in text for text in chat.to("admin")) == 1

    trickling.recover()
    clock.advance(minutes=5)  # the next retry is due; the target answers at once now
    eventually(
        lambda: plugin.service.store.get(rid).status is Status.EXPIRED,
        "the revoke confirmed once the target recovered",
    )
    eventually(lambda: overdue_gauge(plugin) == 0, "the gauge back to 0")
    eventually(lambda: health(plugin) == (200, {"status": "ok", "reason": "ok"}), "health ok")
    assert sum("OVERDUE" in text for text in chat.to("admin")) == 1


def test_the_alarm_does_not_wait_for_a_revoke_that_is_still_in_flight():
    """A revoke call still hanging (no attempt finished) is overdue all the same: the
    watch reads the store, not the revoke path."""
    clock = FakeClock()
    store = MemoryStore()
    grant = a_request(status=Status.ACTIVE, expires_at=START + timedelta(minutes=30))
    store.save(grant)
    watch = OverdueWatch(store, clock, timedelta(minutes=2), under_way=lambda rid: True)

    clock.advance(minutes=32, seconds=1)
    (alarm,) = watch.check()

    assert alarm.audience == "admins" and grant.id in alarm.text
    assert "no revoke attempt has finished yet" in alarm.text
    assert "a revoke call is under way" in alarm.text
    assert watch.ids() == [grant.id]
    assert watch.check() == []  # once

    watch.forget()  # another bot leads now: it watches and tells
    assert watch.ids() == []


def test_a_grant_that_ended_while_no_bot_ran_gets_its_grace_from_the_start():
    """A restart's revokes are handed out at once: they are not each an alarm, unless
    they are still not done a grace after the start."""
    clock = FakeClock()
    store = MemoryStore()
    grant = a_request(status=Status.ACTIVE, expires_at=START + timedelta(minutes=30))
    store.save(grant)
    clock.advance(hours=2)  # the bot was down; it starts now
    watch = OverdueWatch(store, clock, timedelta(minutes=2))

    assert watch.check() == []
    clock.advance(minutes=2)
    assert watch.check() == []
    clock.advance(seconds=1)
    (alarm,) = watch.check()
    assert grant.id in alarm.text and "1h32m1s later" in alarm.text  # late from its end
