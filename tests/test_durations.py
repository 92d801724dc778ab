"""`"durations": [...]`: only these may be asked for, typed or on the Slack form (which
offers exactly these); another is refused listing them; a listed duration above
max_duration, or a default_duration not in the list, is a load error."""

import pytest

from accessbot.integrations import slack
from accessbot.policy import PolicyError, load_policies
from tests.conftest import policy_file, request_id, webhook_policy
from tests.slack_fakes import submission_payload
from tests.slack_fixtures import CHANNEL

FIXED = {"durations": ["30m", "1h", "4h"], "default_duration": "1h"}


@pytest.fixture
def chat(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, **FIXED))
    return bot_factory()


def test_a_listed_duration_is_requested_and_an_omitted_one_is_the_default(chat):
    assert "prod-db for 4h" in chat.reply("carol", "!access request prod-db 4h fixing INC-42")
    assert "prod-db for 1h" in chat.reply("dave", "!access request prod-db fixing INC-43")


def test_another_typed_duration_is_refused_listing_the_durations(chat, webhook):
    reply = chat.reply("carol", "!access request prod-db 2h fixing INC-42")

    assert reply == (
        "prod-db can be asked for 30m, 1h or 4h only (its durations); you asked for 2h. "
        "Try !access request prod-db 1h fixing INC-42"
    )
    assert "No pending requests" in chat.reply("admin", "!access list")
    assert webhook.calls == []


def test_an_extension_is_asked_for_in_the_durations_too(chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    chat.say("alice", f"!approve {rid}")

    assert "can be asked for 30m, 1h or 4h only" in chat.reply("carol", f"!access extend {rid} 45m")
    assert "Extension request" in chat.reply("carol", f"!access extend {rid} 30m more")


def test_resources_lists_the_durations(chat):
    assert "durations: 30m, 1h or 4h" in chat.reply("carol", "!access resources")


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"durations": ["30m", "8h"]},
            "prod-db.durations: 8h is longer than max_duration 4h",
        ),
        (
            {"durations": ["30m", "4h"], "default_duration": "1h"},
            "prod-db.default_duration: 1h is not one of the durations (30m, 4h)",
        ),
        (
            {"durations": "30m"},
            'prod-db.durations: must be a non-empty list like ["30m", "1h", "4h"]',
        ),
        ({"durations": ["30m", "soon"]}, 'prod-db.durations: "soon" is not a duration'),
    ],
)
def test_wrong_durations_are_a_load_error(policy_dir, settings, says):
    policy_file(policy_dir, "db.py", webhook_policy("https://x.example/hook", **settings))
    with pytest.raises(PolicyError) as failed:
        load_policies(policy_dir)
    assert says in str(failed.value)


def test_without_a_default_the_first_listed_duration_is_it(policy_dir):
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy("https://x.example/hook", durations=["1h", "30m"]).replace(
            "'default_duration': '1h', ", ""
        ),
    )
    resource = load_policies(policy_dir).get("prod-db")
    assert [str(d) for d in resource.durations] == ["0:30:00", "1:00:00"]
    assert str(resource.default_duration) == "1:00:00"


# -- the Slack request form ---------------------------------------------------------------------


def test_the_slack_form_offers_exactly_the_durations(start_bot, fake):
    bot = start_bot("socket", **FIXED)
    bot.type("UCAROL", CHANNEL, "!access request")
    fake.wait(lambda: [e for e in fake.ephemerals if e["user"] == "UCAROL"], "the form offer")

    bot.interact(
        {
            "type": "block_actions",
            "user": {"id": "UCAROL"},
            "trigger_id": "42.42.abc",
            "actions": [{"action_id": slack.OPEN_FORM, "value": "open"}],
        }
    )

    (opened,) = fake.wait(lambda: fake.views, "views.open")
    duration = next(b for b in opened["view"]["blocks"] if b["block_id"] == "duration")
    assert [o["value"] for o in duration["element"]["options"]] == ["30m", "1h", "4h"]
    assert duration["element"]["initial_option"]["value"] == "1h"
    assert duration["hint"]["text"] == "prod-db can be asked for 30m, 1h or 4h"


def test_a_duration_not_in_the_list_sent_by_the_form_is_refused_on_the_form(start_bot, fake):
    bot = start_bot("http", **FIXED)

    answer = bot.interact(submission_payload("UCAROL", "prod-db", "2h", "fixing INC-42")).json()

    assert answer["response_action"] == "errors"
    assert "can be asked for 30m, 1h or 4h only" in answer["errors"]["duration"]
    assert fake.cards(CHANNEL) == []
