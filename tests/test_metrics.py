"""GET /metrics (Prometheus) and GET /health on errbot's webserver, through the real
plugin on the Slack harness in HTTP mode (the mode that runs the webserver)."""

from __future__ import annotations

import re

import requests
from prometheus_client.parser import text_string_to_metric_families

from accessbot.integrations import slack
from accessbot.metrics import Health
from tests.slack_fakes import click_payload
from tests.slack_fixtures import current, has_buttons, request_card


def scrape(bot) -> dict[tuple[str, tuple], float]:
    response = requests.get(bot.url("/metrics"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_grants_revokes_and_lateness(start_bot, fake, webhook, clock):
    bot = start_bot("http")
    rid, card = request_card(bot, fake)

    before = scrape(bot)
    assert before[("accessbot_requests", (("status", "pending"),))] == 1
    assert before[("accessbot_active_grants", ())] == 0

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    fake.wait(lambda: not has_buttons(current(fake, card)), "the grant")
    granted = scrape(bot)
    assert granted[("accessbot_active_grants", ())] == 1
    assert (
        granted[("accessbot_grants_total", (("outcome", "granted"), ("strategy", "webhook")))] == 1
    )
    calls = ("accessbot_target_call_seconds_count", (("action", "grant"), ("strategy", "webhook")))
    assert granted[calls] == 1

    clock.advance(minutes=30, seconds=2)
    fake.wait(lambda: "*expired*" in repr(current(fake, card)["blocks"]), "the expiry")
    assert bot.plugin.deliveries.wait_idle()
    done = scrape(bot)
    assert done[("accessbot_active_grants", ())] == 0
    assert done[("accessbot_revokes_total", (("outcome", "expired"), ("strategy", "webhook")))] == 1
    assert done[("accessbot_revocation_lateness_seconds_count", ())] == 1
    # The injected clock moved 2s past the end before the scheduler saw it.
    assert done[("accessbot_revocation_lateness_seconds_bucket", (("le", "5.0"),))] == 1
    assert done[("accessbot_revocation_lateness_seconds_bucket", (("le", "1.0"),))] == 0
    assert done[("accessbot_scheduler_leader", ())] == 1
    assert done[("accessbot_scheduler_ticks_total", ())] >= 1
    assert done[("accessbot_chat_delivery_seconds_count", (("audience", "channel"),))] >= 1
    assert done[("accessbot_outbox_pending", ())] >= 0
    assert done[("accessbot_outbox_deliveries_total", (("outcome", "delivered"),))] >= 1


def test_metrics_show_each_audit_sinks_lag(start_bot, fake, tmp_path):
    copy = tmp_path / "copy.jsonl"
    bot = start_bot("http", config={"ACCESS_AUDIT_SINKS": [{"type": "file", "path": str(copy)}]})
    request_card(bot, fake)  # something to ship
    fake.wait(lambda: copy.exists() and copy.read_text(), "the sink's copy")
    name = f"file {copy}"
    lag = ("accessbot_audit_sink_lag_events", (("kind", "file"), ("sink", name)))
    fake.wait(lambda: scrape(bot).get(lag) == 0, "the sink catching up")
    assert scrape(bot)[("accessbot_audit_sink_failing", (("sink", name),))] == 0


def test_health_is_ok_while_the_scheduler_ticks_and_503_when_it_stops(start_bot, fake):
    bot = start_bot("http")
    fake.wait(lambda: requests.get(bot.url("/health"), timeout=10).status_code == 200, "health")
    assert requests.get(bot.url("/health"), timeout=10).json() == {
        "status": "ok",
        "reason": "ok",
    }

    bot.plugin.scheduler.stop()

    answer = requests.get(bot.url("/health"), timeout=10)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "the scheduler thread is not running"


class Moving:
    def __init__(self):
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def test_health_fails_when_the_scheduler_stalls_or_the_store_cannot_be_read():
    now = Moving()
    broken = {"store": None}

    def store_readable():
        if broken["store"]:
            raise OSError(broken["store"])

    health = Health(1.0, scheduler_alive=lambda: True, store_readable=store_readable, now=now)
    assert health.verdict().reason == "the scheduler has not ticked yet"
    health.beat()
    assert health.verdict().ok
    now.at += 5  # three ticks of 1s, and a second's grace, have passed
    assert re.fullmatch(r"the scheduler has not ticked for 5s", health.verdict().reason)
    health.beat()
    broken["store"] = "disk gone"
    assert health.verdict().reason == "the store cannot be read: OSError: disk gone"
