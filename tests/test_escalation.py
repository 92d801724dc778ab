"""Escalation through the real plugin, with the injected clock: a request still undecided
`after` its time asks the next level's approvers too (resolved to user ids, the earlier
ones may still decide) and posts the card in the level's channel saying why; the last
level's time-out is the request's; reminders keep going to the current channel."""

import re

import pytest

from accessbot.integrations import slack
from accessbot.policy import PolicyError, load_policies
from tests.conftest import policy_file, request_id
from tests.slack_fakes import FakeSlack, click_payload
from tests.slack_fixtures import USERS, has_buttons, shown

FIRST, SECOND, THIRD = "#access-approvals", "#dba", "#incidents"

ESCALATING = """
GROUPS = {{"leads": ["@erin"]}}

RESOURCES = {{
    "prod-db": {{
        "max_duration": "4h",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "escalation": [
            {{"after": "30m", "approvers": ["@bob"], "channel": "#dba"}},
            {{"after": "1h", "approvers": ["@dave", "group:leads"], "channel": "#incidents"}},
        ],
        "strategy": {{"type": "webhook", "url": "{url}", "secret_env": "TEST_HOOK_SECRET"}},
    }},
}}
"""


@pytest.fixture
def chat(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", ESCALATING.format(url=webhook.url))
    return bot_factory(ACCESS_PENDING_TIMEOUT="1h", ACCESS_APPROVAL_REMINDER="15m")


def ask(chat) -> str:
    return request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))


def test_a_request_escalates_through_two_levels_and_times_out_after_the_last(chat, clock, webhook):
    rid = ask(chat)
    assert "Only the approvers of prod-db (@alice)" in chat.reply("bob", f"!approve {rid}")

    clock.advance(minutes=15)
    chat.wait_for(FIRST, f"Reminder: request {rid} has waited 15m")

    clock.advance(minutes=15)  # 30m: the first escalation level
    card = chat.wait_for(SECOND, f"Request {rid} escalated to level 1 of 2")
    assert "no decision after 30m in #access-approvals, so now also asking @bob" in card
    assert f"Approve: !approve {rid}" in card and "Approvers: @alice, @bob" in card
    chat.wait_for(FIRST, f"Request {rid} (prod-db for @carol) had no decision after 30m, so it")

    clock.advance(minutes=15)  # 45m: the reminder goes where the request is now
    chat.wait_for(SECOND, f"Reminder: request {rid} has waited 45m")

    clock.advance(minutes=15)  # 1h: the last level, and not yet the time-out
    card = chat.wait_for(THIRD, f"Request {rid} escalated to level 2 of 2")
    assert "no decision after 1h in #dba, so now also asking @dave, @erin" in card
    assert "pending approval" in chat.reply("carol", f"!access show {rid}")

    clock.advance(minutes=45)  # 1h45m
    chat.wait_for(THIRD, f"Reminder: request {rid} has waited 1h45m")
    clock.advance(minutes=15)  # 2h: the last level's hour is up
    chat.wait_for("carol", f"Your request {rid} for prod-db timed out after 2h")
    chat.wait_for(THIRD, f"Request {rid} (prod-db for @carol) timed out after 2h")
    assert webhook.calls == []


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_after_an_escalation_the_earlier_and_the_new_approvers_may_decide(
    chat, clock, webhook, who
):
    rid = ask(chat)
    clock.advance(minutes=30)
    chat.wait_for(SECOND, f"Request {rid} escalated to level 1 of 2")

    assert chat.reply(who, f"!approve {rid}").startswith(f"Approved {rid}")
    assert webhook.actions() == [("grant", rid)]
    shown = chat.reply("carol", f"!access show {rid}")
    assert "escalated (by the bot): escalated to level 1 of 2" in shown


def test_a_request_decided_in_time_never_escalates(chat, clock, webhook):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")

    clock.advance(minutes=31)
    chat.wait_for("carol", "expired")
    assert chat.to(SECOND) == []


@pytest.mark.parametrize(
    ("levels", "says"),
    [
        (
            '[{"after": "1h", "approvers": ["@bob"]}, {"after": "30m", "approvers": ["@dave"]}]',
            "prod-db.escalation: escalation[2].after 30m must come later than the level "
            "before (1h): each after counts from the request",
        ),
        (
            '[{"after": "30m"}]',
            'escalation[1].approvers must be a list like ["@dave", "group:dba"]',
        ),
        ('[{"approvers": ["@bob"]}]', 'escalation[1].after is required, e.g. "after": "30m"'),
        (
            '[{"after": "30m", "approvers": ["@bob"], "chanel": "#dba"}]',
            "escalation[1].chanel: unknown key (allowed: after, approvers, channel)",
        ),
        (
            '[{"after": "30m", "approvers": ["@bob"], "channel": "dba"}]',
            'escalation[1].channel: "dba" is not a channel: write "#dba"',
        ),
        (
            '[{"after": "30m", "approvers": ["group:nope"]}]',
            'prod-db.approvers: unknown group "nope"',
        ),
        ('{"after": "30m"}', "prod-db.escalation: must be a non-empty list like"),
    ],
)
def test_a_wrong_escalation_is_a_load_error_naming_the_level(policy_dir, levels, says):
    policy_file(
        policy_dir,
        "db.py",
        "RESOURCES = {'prod-db': {'max_duration': '4h', 'approvers': ['@alice'], "
        "'channel': '#access-approvals', 'strategy': {'type': 'none'}, "
        f"'escalation': {levels}}}}}\n",
    )
    with pytest.raises(PolicyError) as failed:
        load_policies(policy_dir)
    assert says in str(failed.value)


# -- on Slack: a card of its own in the level's channel ---------------------------------


@pytest.fixture
def fake():
    users = {**USERS, "UDAVE": ("dave", "dave@acme.com"), "UERIN": ("erin", "erin@acme.com")}
    channels = {"access-approvals": "CAPPROVALS", "dba": "CDBA", "incidents": "CINCIDENTS"}
    server = FakeSlack(users=users, channels=channels)
    yield server
    server.close()


def current(fake: FakeSlack, card: dict) -> dict:
    """The card as it is now, in whichever channel it was posted."""
    return next(m for m in fake.posted(card["channel"]) if m["ts"] == card["ts"])


def test_on_slack_the_level_gets_a_card_of_its_own_and_a_decision_updates_both(
    start_bot, fake, clock, webhook, policy_dir
):
    policy_file(policy_dir, "db.py", ESCALATING.format(url=webhook.url))
    bot = start_bot("socket")
    bot.type("UCAROL", "CAPPROVALS", "!access request prod-db 30m fixing INC-42")
    first = fake.wait(lambda: fake.cards("CAPPROVALS"), "the first card")[0]
    rid = re.search(r"Access request (\w+)", first["text"]).group(1)

    clock.advance(minutes=30)  # the reminder due at 15m is the level's card: one card
    second = fake.wait(lambda: fake.cards("CDBA"), "the card in #dba")[0]
    assert "escalated to level 1 of 2" in shown(second) and has_buttons(second)

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", second))

    fake.wait(lambda: "*Approved* by @bob" in shown(current(fake, second)), "the #dba card")
    fake.wait(lambda: "*Approved* by @bob" in shown(current(fake, first)), "the first card")
    assert not has_buttons(current(fake, first))
    assert webhook.actions() == [("grant", rid)]
    assert len(fake.cards("CDBA")) == 1
