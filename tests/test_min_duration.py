"""A floor under durations (issue 29 item 14): `1s` was accepted. A resource's
`min_duration`, else ACCESS_MIN_DURATION (default 30s), is the shortest one may ask for,
and a shorter ask is refused with the command that would do."""

from datetime import timedelta

import pytest

from accessbot.policy import PolicyError, load_policies
from accessbot.settings import Settings
from tests.conftest import policy_file, request_id, webhook_policy


def test_a_request_for_one_second_is_refused_with_the_global_floor(chat):
    reply = chat.reply("carol", "!access request prod-db 1s fixing the index")

    assert reply == (
        "prod-db grants at least 30s (ACCESS_MIN_DURATION); you asked for 1s. "
        "Try !access request prod-db 30s fixing the index"
    )
    assert "no pending requests" in chat.reply("carol", "!access mine")


def test_a_resource_sets_its_own_floor(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, min_duration="15m"))
    chat = bot_factory()

    reply = chat.reply("carol", "!access request prod-db 10m fixing the index")
    assert reply == (
        "prod-db grants at least 15m (its min_duration); you asked for 10m. "
        "Try !access request prod-db 15m fixing the index"
    )
    request_id(chat.reply("carol", "!access request prod-db 15m fixing the index"))
    assert "Max 4h, default 1h, min 15m;" in chat.reply("carol", "!access resources")


def test_the_global_floor_comes_from_the_configuration(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_MIN_DURATION="5m")

    assert "at least 5m" in chat.reply("carol", "!access request prod-db 2m fixing the index")


def test_an_extension_below_the_floor_is_refused(chat, webhook):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    chat.say("alice", f"!approve {rid}")

    reply = chat.reply("carol", f"!access extend {rid} 5s a little more")

    assert "at least 30s" in reply and f"Try !access extend {rid} 30s a little more" in reply


def test_the_floor_setting_defaults_to_30s_and_may_be_turned_off():
    # 30s, not more: the documented duration forms (DESIGN 3) start at `30s`.
    assert Settings.load(environ={}).min_duration == timedelta(seconds=30)
    assert Settings.load(environ={"ACCESS_MIN_DURATION": "0"}).min_duration == timedelta(0)
    assert Settings.load(environ={"ACCESS_MIN_DURATION": "2m"}).min_duration == timedelta(minutes=2)


@pytest.mark.parametrize(
    "overrides, says",
    [
        ({"min_duration": "5h"}, "min_duration: 5h is longer than max_duration 4h"),
        ({"min_duration": "2h"}, "default_duration: 1h is shorter than min_duration 2h"),
        (
            {"min_duration": "20m", "durations": ["10m", "30m"], "default_duration": "30m"},
            "durations: 10m is shorter than min_duration 20m",
        ),
        ({"min_duration": "soon"}, "min_duration"),
    ],
)
def test_a_floor_that_contradicts_the_other_durations_is_a_load_error(policy_dir, overrides, says):
    policy_file(policy_dir, "db.py", webhook_policy("https://hooks.example/x", **overrides))

    with pytest.raises(PolicyError) as raised:
        load_policies(policy_dir, environ={"TEST_HOOK_SECRET": "s"})

    assert says in str(raised.value)


def test_the_slack_form_offers_no_duration_below_the_resources_floor(policy_dir):
    from accessbot.integrations.slack.modal import request_modal

    policy_file(policy_dir, "db.py", webhook_policy("https://hooks.example/x", min_duration="1h"))
    resource = load_policies(policy_dir, environ={"TEST_HOOK_SECRET": "s"}).resources["prod-db"]

    view = request_modal([resource], "prod-db").to_dict()
    offered = [
        option["value"]
        for block in view["blocks"]
        for option in (block.get("element") or {}).get("options", [])
    ]  # the resource's option too ("prod-db"), and every duration offered

    assert "15m" not in offered and "30m" not in offered
    assert "1h" in offered and "4h" in offered
