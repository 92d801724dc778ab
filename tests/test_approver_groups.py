"""Approver groups through the real plugin: `group:` (ACCESS_GROUPS or a policy file's
GROUPS), `slack-group:` (Slack user groups, against a fake Slack Web API) and
`pagerduty:` (who is on call now, against a fake PagerDuty). Groups are expanded when a
request is made and the people are kept on it."""

from collections import Counter
from datetime import timedelta

import pytest
from slack_sdk import WebClient

from accessbot.approvers import SlackGroupError
from accessbot.integrations.slack_groups import SlackGroups
from accessbot.policy import PolicyError, load_policies
from tests.conftest import FakeClock, policy_file, request_id
from tests.fake_pagerduty import TOKEN as PD_TOKEN
from tests.slack_fakes import TOKEN as SLACK_TOKEN
from tests.slack_fakes import FakeSlack

CHANNEL = "#access-approvals"
SCHEDULE = "PABC123"


def policy(url: str, approvers: list[str], extra: str = "", **settings) -> str:
    resource = {
        "max_duration": "4h",
        "approvers": approvers,
        "channel": CHANNEL,
        "strategy": {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"},
        **settings,
    }
    return f"{extra}\nRESOURCES = {{'prod-db': {resource!r}}}\n"


def ask(chat, user="carol") -> str:
    said = chat.say(user, "!access request prod-db 30m fixing INC-42")
    return request_id(said[0])


def load_error(directory, groups=None) -> str:
    with pytest.raises(PolicyError) as info:
        load_policies(directory, groups)
    return str(info.value)


@pytest.fixture
def slack():
    fake = FakeSlack(token=SLACK_TOKEN)
    yield fake
    fake.close()


# -- group: -------------------------------------------------------------------------


def test_a_config_group_expands_on_the_card_and_its_members_decide(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", policy(webhook.url, ["group:sre", "@erin"]))
    chat = bot_factory(ACCESS_GROUPS={"sre": ["@alice", "@bob"]})

    said = chat.say("carol", "!access request prod-db 30m fixing INC-42")
    rid = request_id(said[0])

    assert "Approvers: group:sre (@alice, @bob), @erin" in chat.to(CHANNEL)[-1]
    assert "Only the approvers of prod-db" in chat.reply("mallory", f"!approve {rid}")
    assert chat.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_a_group_defined_in_one_policy_file_is_usable_from_another(
    bot_factory, policy_dir, webhook
):
    policy_file(
        policy_dir, "a_groups.py", policy(webhook.url, ["@alice"], "GROUPS = {'dba': ['@dave']}")
    )
    other = policy(webhook.url, ["group:dba"]).replace("'prod-db'", "'reporting-db'")
    policy_file(policy_dir, "b_reporting.py", other)
    chat = bot_factory()

    rid = request_id(chat.reply("carol", "!access request reporting-db 30m monthly report"))

    assert "Approvers: group:dba (@dave)" in chat.to(CHANNEL)[-1]
    assert chat.reply("dave", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_reload_that_changes_a_group_adds_nobody_to_a_request_made_and_removes_at_once(
    bot_factory, policy_dir, webhook
):
    text = policy(webhook.url, ["group:sre"], "GROUPS = {'sre': ['@alice', '@erin']}")
    policy_file(policy_dir, "db.py", text)
    chat = bot_factory()
    rid = ask(chat)

    policy_file(policy_dir, "db.py", text.replace("['@alice', '@erin']", "['@bob', '@erin']"))
    reloaded = chat.reply("admin", "!access reload")
    assert "groups changed: sre" in reloaded

    assert "Only the approvers of prod-db (@alice, @erin)" in chat.reply("bob", f"!approve {rid}")
    assert "no longer an approver of prod-db" in chat.reply("alice", f"!approve {rid}")
    assert chat.reply("erin", f"!approve {rid}").startswith(f"Approved {rid}")
    later = ask(chat, user="dave")
    assert "Approvers: group:sre (@bob, @erin)" in chat.to(CHANNEL)[-1] and later


def test_get_approvers_may_return_a_group(bot_factory, policy_dir, webhook):
    hook = "def get_approvers(request, ctx):\n    return ['group:sre']\n"
    policy_file(policy_dir, "db.py", policy(webhook.url, ["@alice"]) + hook)
    chat = bot_factory(ACCESS_GROUPS={"sre": ["@bob", "@dave"]})
    rid = ask(chat)
    assert "Approvers: group:sre (@bob, @dave)" in chat.to(CHANNEL)[-1]
    assert chat.reply("dave", f"!approve {rid}").startswith(f"Approved {rid}")


def test_an_unknown_group_is_a_load_error_naming_file_and_line(policy_dir):
    policy_file(policy_dir, "db.py", policy("http://127.0.0.1:9/x", ["group:sre"]))
    error = load_error(policy_dir, {"dba": ["@dave"]})
    assert 'db.py:1: prod-db.approvers: unknown group "sre" (groups: dba)' in error


def test_a_group_defined_twice_is_a_load_error(policy_dir):
    policy_file(
        policy_dir, "a.py", policy("http://127.0.0.1:9/x", ["@a"], "GROUPS = {'sre': ['@x']}")
    )
    text = policy("http://127.0.0.1:9/x", ["@a"], "GROUPS = {\n  'sre': ['@y'],\n}")
    policy_file(policy_dir, "b.py", text.replace("'prod-db'", "'other'"))
    error = load_error(policy_dir)
    assert "b.py:2: GROUPS.sre: group 'sre' is already defined in a.py" in error


def test_a_file_group_clashing_with_access_groups_is_a_load_error(policy_dir):
    policy_file(
        policy_dir, "a.py", policy("http://127.0.0.1:9/x", ["@a"], "GROUPS = {'sre': ['@x']}")
    )
    assert "group 'sre' is already defined in ACCESS_GROUPS" in load_error(
        policy_dir, {"sre": ["@y"]}
    )


@pytest.mark.parametrize(
    ("groups", "says"),
    [
        ("GROUPS = {'sre': []}", "GROUPS.sre: must be a non-empty list"),
        ("GROUPS = {'sre': ['group:dba']}", '"group:dba" is not a person'),
        ("GROUPS = {'s r e': ['@a']}", "is not a group name"),
        ("GROUPS = ['@a']", "GROUPS must be a dict"),
    ],
)
def test_bad_groups_are_load_errors(policy_dir, groups, says):
    policy_file(policy_dir, "a.py", policy("http://127.0.0.1:9/x", ["@a"], groups))
    assert says in load_error(policy_dir)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("team:sre", "is not an approver: use a handle"),
        ("pagerduty:abc", "is not a PagerDuty schedule"),
        ("slack-group:two words", "is not a Slack user group"),
    ],
)
def test_malformed_approver_entries_are_load_errors(policy_dir, entry, says):
    policy_file(policy_dir, "a.py", policy("http://127.0.0.1:9/x", [entry]))
    assert says in load_error(policy_dir)


def test_a_quorum_larger_than_the_group_is_a_load_error(policy_dir):
    text = policy("http://127.0.0.1:9/x", ["group:sre"], approvals_required=3)
    policy_file(policy_dir, "a.py", text)
    error = load_error(policy_dir, {"sre": ["@alice", "@bob"]})
    assert "prod-db.approvals_required: is 3 but the approvers name only 2 person(s)" in error


# -- pagerduty: ---------------------------------------------------------------------


@pytest.fixture
def on_call(pagerduty):
    pagerduty.add_user("PDAVE01", "Dave Example", "dave@example.com")
    pagerduty.put_on_call("PDAVE01", schedule=SCHEDULE)
    return pagerduty


def pd_bot(bot_factory, on_call, **config):
    settings = {
        "ACCESS_PAGERDUTY_URL": on_call.url,
        "ACCESS_PAGERDUTY_TOKEN": PD_TOKEN,
        "ACCESS_PAGERDUTY_TIMEOUT": 5,
        "ACCESS_USER_EMAILS": {"dave": "dave@example.com", "carol": "carol@example.com"},
    }
    return bot_factory(**{**settings, **config})


def test_a_pagerduty_entry_routes_to_whoever_is_on_call(bot_factory, policy_dir, webhook, on_call):
    policy_file(policy_dir, "db.py", policy(webhook.url, [f"pagerduty:{SCHEDULE}", "@alice"]))
    chat = pd_bot(bot_factory, on_call)
    rid = ask(chat)
    assert f"Approvers: pagerduty:{SCHEDULE} (dave@example.com), @alice" in chat.to(CHANNEL)[-1]
    assert chat.reply("dave", f"!approve {rid}").startswith(f"Approved {rid}")


def test_pagerduty_down_names_nobody_and_the_card_says_why(
    bot_factory, policy_dir, webhook, on_call
):
    policy_file(policy_dir, "db.py", policy(webhook.url, [f"pagerduty:{SCHEDULE}", "@alice"]))
    on_call.fail_with("500")
    chat = pd_bot(bot_factory, on_call)
    rid = ask(chat)
    card = chat.to(CHANNEL)[-1]
    assert f"pagerduty:{SCHEDULE} (nobody), @alice" in card
    assert "PagerDuty check failed: PagerDuty answered HTTP 500" in card
    assert "Only the approvers" in chat.reply("dave", f"!approve {rid}")


def test_when_only_pagerduty_could_approve_and_it_is_down_the_request_is_refused(
    bot_factory, policy_dir, webhook, on_call
):
    policy_file(policy_dir, "db.py", policy(webhook.url, [f"pagerduty:{SCHEDULE}"]))
    on_call.fail_with("hang")
    chat = pd_bot(bot_factory, on_call, ACCESS_PAGERDUTY_TIMEOUT=0.3)
    reply = chat.reply("carol", "!access request prod-db 30m fixing INC-42")
    assert reply.startswith("Nobody can approve prod-db right now")
    assert "PagerDuty did not answer" in reply
    assert "no pending requests" in chat.reply("carol", "!access mine")


# -- slack-group: -------------------------------------------------------------------


def test_off_slack_a_slack_group_names_nobody_and_the_policy_still_loads(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", policy(webhook.url, ["slack-group:@sre-team", "@alice"]))
    chat = bot_factory()
    rid = ask(chat)
    card = chat.to(CHANNEL)[-1]
    assert "Approvers: slack-group:@sre-team (nobody), @alice" in card
    assert "slack-group:@sre-team: Slack user groups can only be looked up" in card
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


def test_on_slack_the_group_members_decide_and_the_answer_is_cached(
    bot_factory, policy_dir, webhook, slack
):
    slack.add_group("S0SRE", "sre-team", ["U0ALICE", "U0BOB"])
    policy_file(policy_dir, "db.py", policy(webhook.url, ["slack-group:@sre-team"]))
    chat = bot_factory()
    # What the SlackV3 backend holds: its authenticated WebClient.
    chat.backend.slack_web = WebClient(token=SLACK_TOKEN, base_url=slack.base_url)

    rid = ask(chat)
    assert "Approvers: slack-group:@sre-team (U0ALICE, U0BOB)" in chat.to(CHANNEL)[-1]
    # The members are Slack user ids, kept on the request: only those ids may decide.
    plugin = chat.backend.plugin_manager.get_plugin_obj_by_name("Access")
    assert plugin.service.store.get(rid).approver_ids == ["U0ALICE", "U0BOB"]
    ask(chat, user="dave")
    assert Counter(slack.calls) == {"usergroups.list": 1, "usergroups.users.list": 1}


def resolver(slack, clock):
    return SlackGroups(
        WebClient(token=SLACK_TOKEN, base_url=slack.base_url), clock, timedelta(minutes=5)
    )


def test_slack_groups_are_asked_again_after_the_cache_expires(slack):
    slack.add_group("S0SRE", "sre-team", ["U0ALICE"])
    clock = FakeClock()
    groups = resolver(slack, clock)
    assert groups.members("@sre-team") == ["U0ALICE"]
    slack.groups[0]["users"] = ["U0BOB"]
    assert groups.members("sre-team") == ["U0ALICE"]
    clock.advance(minutes=5, seconds=1)
    assert groups.members("sre-team") == ["U0BOB"]
    assert slack.calls.count("usergroups.users.list") == 2


@pytest.mark.parametrize(
    ("arrange", "says"),
    [
        (lambda s: s.add_group("S1", "other", ["U1"]), "Slack has no user group @sre-team"),
        (lambda s: s.add_group("S1", "sre-team", ["U1"], deleted=True), "no user group"),
        (
            lambda s: setattr(s, "error", "missing_scope"),
            "Slack refused usergroups.list: missing_scope",
        ),
        (
            lambda s: setattr(s, "token", "xoxb-other"),
            "Slack refused usergroups.list: invalid_auth",
        ),
    ],
)
def test_slack_failures_name_nobody_with_a_reason(slack, arrange, says):
    arrange(slack)
    with pytest.raises(SlackGroupError, match=says):
        resolver(slack, FakeClock()).members("@sre-team")


def test_an_unreachable_slack_is_a_reason_not_a_crash():
    groups = SlackGroups(
        WebClient(
            token=SLACK_TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2, retry_handlers=[]
        ),
        FakeClock(),
    )
    with pytest.raises(SlackGroupError, match="could not reach Slack for usergroups.list"):
        groups.members("sre-team")


def test_a_group_member_counts_as_an_approver_for_list_and_whatif(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", policy(webhook.url, ["group:sre"]))
    chat = bot_factory(ACCESS_GROUPS={"sre": ["@alice"]})
    assert chat.reply("alice", "!access list") == "No pending requests or active grants."
    assert chat.reply("alice", "!access whatif carol prod-db").startswith("What if @carol")
    assert "is for approvers and admins" in chat.reply("mallory", "!access list")
