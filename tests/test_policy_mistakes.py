"""Policy mistakes that used to pass the load and fail later: a channel without `#`, a
strategy naming an environment variable that is not set, and several mistakes in one
resource. Each is a load error naming the file, the line and the key, all at once."""

import logging

import pytest

from accessbot.policy import PolicyError, load_policies
from accessbot.strategies import KINDS
from tests.conftest import policy_file, sent_at_start, webhook_policy

GOOD = """
RESOURCES = {
    "payroll": {
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#helpdesk-approvals",
        "strategy": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "PAYROLL_SECRET"},
    },
}
"""


def load_errors(directory, **kwargs) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policies(directory, **kwargs)
    return info.value.errors


# -- channel --------------------------------------------------------------------------


def test_a_channel_without_a_hash_is_a_load_error_that_says_what_to_write(policy_dir):
    policy_file(policy_dir, "pay.py", GOOD.replace('"#helpdesk-approvals"', '"helpdesk-approvals"'))
    assert load_errors(policy_dir) == [
        'pay.py:5: payroll.channel: "helpdesk-approvals" is not a channel: write '
        '"#helpdesk-approvals" (a channel name starts with #); on Slack a channel id like '
        '"C024BE91L" works too'
    ]


@pytest.mark.parametrize(
    "channel", ["", "   ", "#", "#two words", "@alice", "#a,#b", 42, "#" + "x" * 81]
)
def test_anything_but_a_channel_is_a_load_error_naming_the_key(policy_dir, channel):
    policy_file(policy_dir, "pay.py", GOOD.replace('"#helpdesk-approvals"', repr(channel)))
    [error] = load_errors(policy_dir)
    assert error.startswith("pay.py:5: payroll.channel: ")
    assert '"#' in error  # says what to write instead


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("#helpdesk-approvals", "#helpdesk-approvals"),
        ("C024BE91L", "<#C024BE91L>"),  # a bare Slack id, as errbot's Slack backend takes it
        ("G01ABCD2EF", "<#G01ABCD2EF>"),
        ("<#C024BE91L|helpdesk>", "<#C024BE91L|helpdesk>"),
    ],
)
def test_channel_names_and_slack_channel_ids_load(policy_dir, written, kept):
    policy_file(policy_dir, "pay.py", GOOD.replace('"#helpdesk-approvals"', repr(written)))
    assert load_policies(policy_dir).get("payroll").channel == kept


# -- environment variables ----------------------------------------------------------


def test_strategies_list_the_environment_variables_their_settings_name():
    webhook = {"type": "webhook", "url": "http://x", "secret_env": "HOOK_SECRET"}
    okta = {"type": "okta_group", "org_url": "https://a.okta.com", "token_env": "OKTA_TOKEN"}
    assert KINDS["webhook"].env_names(webhook) == {"strategy.secret_env": "HOOK_SECRET"}
    assert KINDS["okta_group"].env_names(okta) == {"strategy.token_env": "OKTA_TOKEN"}
    assert KINDS["github_team"].env_names({"token_env": "GH"}) == {"strategy.token_env": "GH"}
    assert KINDS["webhook"].env_names({"type": "webhook", "url": "http://x"}) == {}
    assert KINDS["command"].env_names({"type": "command", "argv": ["x"]}) == {}


def test_an_unset_variable_is_a_load_error_when_the_environment_is_checked(policy_dir):
    policy_file(policy_dir, "pay.py", GOOD)
    assert load_policies(policy_dir).get("payroll")  # not checked: loads
    assert load_errors(policy_dir, environ={}) == [
        "pay.py:6: payroll.strategy.secret_env: the environment variable PAYROLL_SECRET is "
        "not set; the webhook strategy reads it at every grant and revoke: set "
        "PAYROLL_SECRET where the bot runs"
    ]
    assert load_policies(policy_dir, environ={"PAYROLL_SECRET": "s"}).get("payroll")


def test_an_unset_variable_may_be_only_a_warning(policy_dir):
    policy_file(policy_dir, "pay.py", GOOD)
    policies = load_policies(policy_dir, environ={}, unset_env_is_error=False)
    assert policies.names() == ["payroll"]
    assert [w.split(": ")[:2] for w in policies.warnings] == [
        ["pay.py:6", "payroll.strategy.secret_env"]
    ]


def test_the_bot_refuses_at_start_a_policy_whose_secret_is_not_set(
    bot_factory, policy_dir, caplog, monkeypatch
):
    monkeypatch.delenv("PAYROLL_SECRET", raising=False)
    policy_file(policy_dir, "pay.py", GOOD)
    with caplog.at_level(logging.WARNING):
        chat = bot_factory()
    sent = sent_at_start(chat, caplog)
    assert any(
        "the policy files did not load" in m
        and "pay.py:6: payroll.strategy.secret_env: the environment variable PAYROLL_SECRET" in m
        for m in sent
    )
    assert "PAYROLL_SECRET" in chat.reply("carol", "!access request payroll 30m payday")


def test_a_reload_naming_an_unset_variable_fails_and_keeps_the_running_policies(
    bot_factory, policy_dir, webhook, monkeypatch
):
    monkeypatch.delenv("PAYROLL_SECRET", raising=False)
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    policy_file(policy_dir, "pay.py", GOOD)

    reply = chat.reply("admin", "!access reload")

    assert reply.startswith("Reload failed, nothing changed (the 1 resource(s) already loaded")
    assert "pay.py:6: payroll.strategy.secret_env: the environment variable PAYROLL_SECRET" in reply
    monkeypatch.setenv("PAYROLL_SECRET", "s3cret")
    assert "added: payroll" in chat.reply("admin", "!access reload")


# -- every problem at once ------------------------------------------------------------


FIVE_MISTAKES = """
RESOURCES = {
    "payroll": {
        "max_duraton": "4h",
        "default_duration": "forever",
        "approvers": ["@alice", "group:"],
        "channel": "helpdesk-approvals",
        "strategy": {"type": "webhook", "url": "ftp://x"},
    },
}
"""


def test_every_mistake_in_a_resource_is_reported_with_its_line_and_key(policy_dir):
    policy_file(policy_dir, "pay.py", FIVE_MISTAKES)
    errors = load_errors(policy_dir)
    assert [e.split(": ")[:2] for e in errors] == [
        ["pay.py:3", "payroll.max_duraton"],
        ["pay.py:2", "payroll.max_duration"],
        ["pay.py:4", "payroll.default_duration"],
        ["pay.py:5", "payroll.approvers"],
        ["pay.py:6", "payroll.channel"],
        ["pay.py:7", "payroll.strategy.url"],
    ]


def test_an_unknown_group_is_reported_even_when_the_resource_has_other_problems(policy_dir):
    policy_file(
        policy_dir,
        "pay.py",
        GOOD.replace('"@alice", "@bob"', '"group:payroll-team", "group:"').replace(
            '"4h"', '"soon"'
        ),
    )
    errors = load_errors(policy_dir)
    assert any('payroll.approvers: "group:" is not a group entry' in e for e in errors)
    assert any('payroll.approvers: unknown group "payroll-team"' in e for e in errors)
    assert any('payroll.max_duration: "soon" is not a duration' in e for e in errors)


def test_every_bad_field_is_reported(policy_dir):
    fields = '"fields": {"ticket": {"pattern": "["}, "env": {"required": "yes"}, "Bad": {}},'
    policy_file(policy_dir, "pay.py", GOOD.replace('"max_duration"', fields + '"max_duration"'))
    errors = load_errors(policy_dir)
    assert [e.split(": ")[1] for e in errors] == [
        "payroll.fields.ticket.pattern",
        "payroll.fields.env.required",
        "payroll.fields",
    ]


def test_a_duration_past_a_year_says_the_limit_not_that_it_is_no_duration(policy_dir):
    policy_file(policy_dir, "pay.py", GOOD.replace('"4h"', '"400d"'))
    assert load_errors(policy_dir) == [
        'pay.py:3: payroll.max_duration: "400d" is longer than any access may last (at most 366d)'
    ]
