"""Start-up is atomic for users: until the service, the scheduler and the Slack listener
exist, a command or a click is answered "starting, try again", never failed or lost."""

from __future__ import annotations

import pytest

from accessbot.integrations import slack
from tests import hook_gates
from tests.conftest import policy_file, webhook_policy
from tests.slack_fakes import click_payload
from tests.slack_fixtures import CHANNEL

GATE = """from tests import hook_gates

hook_gates.gate("start-up").wait(30)  # the bot's start-up waits here until the test opens it
"""


@pytest.fixture
def gate():
    with hook_gates.held("start-up") as opened:
        yield opened


def started_half_way(bot) -> bool:
    plugin = bot.plugin
    if plugin is None or not plugin.is_activated or plugin.ready:
        return False
    return bot.mode != "http" or bot.listening()


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_a_command_during_a_slow_start_is_told_to_try_again(
    start_bot, fake, policy_dir, webhook, gate, mode
):
    policy_file(policy_dir, "db.py", GATE + webhook_policy(webhook.url))
    bot = start_bot(mode, wait=False)
    fake.wait(lambda: started_half_way(bot), "the plugin's commands being registered")

    bot.type("UCAROL", CHANNEL, "!access resources")
    fake.wait(
        lambda: any("starting; try again" in m["text"] for m in fake.posted(CHANNEL)),
        "the starting answer",
    )
    assert not any("failed inside the bot" in m["text"] for m in fake.posted())

    gate.set()
    bot.wait_ready()
    bot.type("UCAROL", CHANNEL, "!access resources")
    fake.wait(lambda: any("prod-db" in m["text"] for m in fake.posted(CHANNEL)), "the resources")


def test_a_click_during_a_slow_start_is_answered_privately(
    start_bot, fake, policy_dir, webhook, gate
):
    policy_file(policy_dir, "db.py", GATE + webhook_policy(webhook.url))
    bot = start_bot("socket", wait=False)
    fake.wait(lambda: started_half_way(bot), "the plugin's commands being registered")
    card = {"ts": "1700000000.000001", "channel": CHANNEL, "text": "", "blocks": []}

    bot.interact(click_payload(slack.APPROVE, "abc234", "UBOB", card))

    (answer,) = fake.wait(lambda: fake.ephemeral_to("UBOB"), "bob's answer")
    assert "starting; try again" in answer
    gate.set()
    bot.wait_ready()
