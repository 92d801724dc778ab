"""DESIGN section 3, contract by contract, typed as a user types and written as a policy
author writes: the gaps a contract audit found (see /work/notes/contracts.md)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from accessbot.settings import Settings, SettingsError
from tests import hook_gate
from tests.conftest import policy_file, request_id, sent_at_start, webhook_policy


@pytest.fixture
def chat(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_duration="2d"))
    return bot_factory()


def ask(chat, text="!access request prod-db 30m fixing INC-42", user="carol") -> str:
    return request_id(chat.reply(user, text))


@pytest.mark.parametrize("typed", ["30s", "15m", "2h", "1d", "1h30m"])
def test_every_documented_duration_form_is_accepted_and_shown_as_typed(chat, typed):
    reply = chat.reply("carol", f"!access request prod-db {typed} fixing INC-42")
    assert f"for {typed}" in reply, reply
    rid = request_id(reply)
    assert f"Duration: {typed}" in chat.reply("carol", f"!access show {rid}")


def test_resources_lists_description_max_duration_and_approvers(chat):
    reply = chat.reply("dave", "!access resources")
    assert "prod-db" in reply and "Production PostgreSQL" in reply
    assert "2d" in reply and "@alice" in reply and "@bob" in reply


def test_list_is_for_approvers_and_admins(chat):
    rid = ask(chat)
    assert rid in chat.reply("alice", "!access list")
    assert rid in chat.reply("admin", "!access list")
    assert rid not in " ".join(chat.say("mallory", "!access list"))


def test_mine_shows_pending_and_active(chat):
    rid = ask(chat)
    assert rid in chat.reply("carol", "!access mine")
    chat.say("alice", f"!approve {rid}")
    assert rid in chat.reply("carol", "!access mine")


def test_show_is_for_those_involved_and_admins(chat):
    rid = ask(chat)
    assert "fixing INC-42" in chat.reply("carol", f"!access show {rid}")
    assert "fixing INC-42" in chat.reply("alice", f"!access show {rid}")
    assert "fixing INC-42" in chat.reply("admin", f"!access show {rid}")
    assert "fixing INC-42" not in " ".join(chat.say("mallory", f"!access show {rid}"))


@pytest.mark.parametrize("who", ["carol", "bob", "admin"])
def test_revoke_by_requester_approver_or_admin_ends_the_grant(chat, webhook, who):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    chat.say(who, f"!access revoke {rid}")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    assert "revoked" in chat.reply("carol", f"!access show {rid}")


def test_a_stranger_cannot_revoke(chat, webhook):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    chat.say("mallory", f"!access revoke {rid}")
    assert webhook.actions() == [("grant", rid)]


@pytest.mark.parametrize("typed", ["", " 30m", " 30m need more time", " need more time"])
def test_extend_takes_an_optional_duration_and_reason(chat, webhook, typed):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    reply = chat.reply("carol", f"!access extend {rid}{typed}")
    ext = re.search(r"request (\w+) created", reply).group(1)
    chat.say("bob", f"!approve {ext}")
    assert ("extend", rid) in webhook.actions() or any(
        c["action"] == "extend" for c in webhook.calls
    ), webhook.actions()


def test_reload_and_audit_are_for_admins_only(chat):
    assert "Reloaded" not in " ".join(chat.say("carol", "!access reload"))
    assert "Reloaded" in chat.reply("admin", "!access reload")
    rid = ask(chat)
    assert rid in " ".join(chat.say("admin", "!access audit"))
    assert rid not in " ".join(chat.say("carol", "!access audit"))


def test_approve_with_a_comment_and_deny_without_a_reason(chat):
    rid = ask(chat)
    assert chat.reply("alice", f"!approve {rid} looks fine").startswith(f"Approved {rid}")
    rid2 = ask(chat, "!access request prod-db 15m other work", user="dave")
    assert chat.reply("bob", f"!deny {rid2}").startswith(f"Denied {rid2}")


# -- the webhook contract, end to end ------------------------------------------------------

PAYLOAD_KEYS = {
    "action",
    "grant_id",
    "request_id",
    "user",
    "user_email",
    "resource",
    "expires_at",
    "reason",
    "account",
}


def test_a_grant_posts_exactly_the_documented_json_and_headers(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_USER_EMAILS={"carol": "carol@example.com"})
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    call = webhook.calls[0]
    assert set(call) >= PAYLOAD_KEYS, set(call) ^ PAYLOAD_KEYS
    assert call["action"] == "grant" and call["request_id"] == rid
    assert call["user"] == "carol" and call["user_email"] == "carol@example.com"
    assert call["resource"] == "prod-db" and call["reason"] == "fixing INC-42"
    assert re.fullmatch(r"2026-11-24T09:30:00(\.0+)?(Z|\+00:00)", call["expires_at"])
    headers = {k.lower(): v for k, v in webhook.headers_seen[0].items()}
    assert headers["x-access-timestamp"].isdigit()
    assert headers["x-access-signature"].startswith("sha256=")
    assert headers["idempotency-key"]
    assert headers["content-type"].startswith("application/json")


# -- policy files ---------------------------------------------------------------------------

HOOKED = """
SEEN = []
RESOURCES = {
    "prod-db": {
        "description": "Production PostgreSQL",
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {"type": "webhook", "url": "%s", "secret_env": "TEST_HOOK_SECRET"},
    },
}

def on_request(request, ctx):
    for name in ("id", "requester", "requester_email", "resource", "duration", "reason",
                 "created_at"):
        getattr(request, name)
    for name in ("approve", "deny", "pagerduty", "now", "log"):
        getattr(ctx, name)
    ctx.log.info("seen %%s", request.id)
    if request.reason.startswith("auto"):
        return ctx.approve("auto by policy")
    if request.reason.startswith("nope"):
        return ctx.deny("not today")
    if request.reason.startswith("boom"):
        raise RuntimeError("policy bug")
    return None
"""


@pytest.fixture
def hooked(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", HOOKED % webhook.url)
    return bot_factory()


def test_on_request_sees_every_documented_field_and_can_approve(hooked, webhook):
    reply = hooked.reply("carol", "!access request prod-db 30m auto please")
    assert webhook.actions() and webhook.actions()[0][0] == "grant", reply


def test_on_request_can_deny(hooked, webhook):
    reply = hooked.reply("carol", "!access request prod-db 30m nope please")
    assert "not today" in reply and webhook.calls == []


def test_on_request_that_raises_never_approves(hooked, webhook):
    reply = hooked.reply("carol", "!access request prod-db 30m boom please")
    assert webhook.calls == []
    assert "Approved" not in reply


def test_without_a_default_duration_a_request_may_omit_it(hooked):
    reply = hooked.reply("carol", "!access request prod-db need to look")
    assert request_id(reply)


def test_get_approvers_overrides_the_listed_approvers(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy(webhook.url) + "\ndef get_approvers(request, ctx):\n    return ['@dave']\n",
    )
    chat = bot_factory()
    rid = ask(chat)
    assert "Only the approvers" in chat.reply("alice", f"!approve {rid}")
    assert chat.reply("dave", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_policy_file_starting_with_underscore_is_not_loaded(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    policy_file(policy_dir, "_helpers.py", "RESOURCES = {'x': {}}\n")
    chat = bot_factory()
    assert "prod-db" in chat.reply("carol", "!access resources")


def test_approver_entries_by_email_and_by_id_on_the_text_backend(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir, "db.py", webhook_policy(webhook.url, approvers=["alice@example.com", "bob"])
    )
    chat = bot_factory(ACCESS_USER_EMAILS={"alice": "alice@example.com"})
    rid = ask(chat)
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
    rid = ask(chat, user="dave")
    assert chat.reply("@bob", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_quorum_of_two_needs_two_different_approvers(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, approvals_required=2))
    chat = bot_factory()
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    chat.say("alice", f"!approve {rid}")
    assert webhook.calls == []
    chat.say("bob", f"!approve {rid}")
    assert webhook.actions() == [("grant", rid)]


# -- configuration: every ACCESS_* key, its default, and the environment winning -------------

DESIGN_DEFAULTS = {
    "policy_dir": "policies",
    "db_path": "data/access.json",
    "audit_path": "data/audit.jsonl",
    "tick_seconds": 1,
    "user_emails": {},
    "pagerduty_token": None,
    "pagerduty_url": "https://api.pagerduty.com",
    "pending_timeout": timedelta(hours=1),
    "expiry_reminder": timedelta(minutes=10),
    "approval_reminder": timedelta(minutes=15),
    "db_url": None,
    "audit_sinks": (),
    "audit_checkpoint": timedelta(minutes=5),
    "standing_sweep": timedelta(hours=1),
    "standing_max_removals": 20,
    "slack_allowed_teams": frozenset(),
    "ack_seconds": 2,
}


def test_missing_keys_take_the_documented_defaults():
    settings = Settings.load(None, environ={})
    for name, default in DESIGN_DEFAULTS.items():
        assert getattr(settings, name) == default, name


class Config:
    ACCESS_ACK_SECONDS = 60
    ACCESS_PENDING_TIMEOUT = "2h"


@pytest.mark.parametrize(
    "typed, seconds", [("0", 0), ("5", 5), ("1.5", 1.5), ("5s", 5), ("1m", 60)]
)
def test_access_ack_seconds_is_a_setting_the_environment_overrides(typed, seconds):
    assert Settings.load(Config, environ={}).ack_seconds == 60
    assert Settings.load(Config, environ={"ACCESS_ACK_SECONDS": typed}).ack_seconds == seconds


@pytest.mark.parametrize("typed", ["soon", "-1"])
def test_a_bad_access_ack_seconds_says_what_to_write(typed):
    with pytest.raises(SettingsError, match=r"ACCESS_ACK_SECONDS must be .*e\.g\. 2"):
        Settings.load(None, environ={"ACCESS_ACK_SECONDS": typed})


def test_access_delivery_workers_is_a_setting_with_a_default_of_4():
    assert Settings.load(None, environ={}).delivery_workers == 4
    assert Settings.load(None, environ={"ACCESS_DELIVERY_WORKERS": "8"}).delivery_workers == 8


@pytest.mark.parametrize("typed", ["many", "0", "33"])
def test_a_bad_access_delivery_workers_says_what_to_write(typed):
    with pytest.raises(SettingsError, match=r"ACCESS_DELIVERY_WORKERS must be .*e\.g\. 4"):
        Settings.load(None, environ={"ACCESS_DELIVERY_WORKERS": typed})


SLOW = """
from tests import hook_gate

RESOURCES = {
    "prod-db": {
        "max_duration": "1h",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "strategy": {"type": "command", "argv": ["true"]},
    },
}

def on_request(request, ctx):
    hook_gate.opened.wait(30)  # the test opens the gate once carol has been answered
    return None
"""


def test_the_environments_access_ack_seconds_wins_over_the_bots_config(
    bot_factory, policy_dir, monkeypatch
):
    hook_gate.opened.clear()
    try:
        policy_file(policy_dir, "slow.py", SLOW)
        monkeypatch.setenv("ACCESS_ACK_SECONDS", "0")
        chat = bot_factory(ACCESS_ACK_SECONDS=60)
        chat.backend.sender = chat.backend.build_identifier("carol")
        chat.testbot.push_message("!access request prod-db 30m slow check")
        assert chat.testbot.pop_message(timeout=15) == "Checking the policy for prod-db..."
        hook_gate.opened.set()
        assert chat.testbot.pop_message(timeout=15).startswith("Request ")
    finally:
        hook_gate.opened.set()  # never leave a hook waiting


ENVIRONMENT_WINS = [
    ("ACCESS_POLICY_DIR", "/srv/policies", "policy_dir", "/srv/policies"),
    ("ACCESS_DB_PATH", "/srv/data/access.json", "db_path", "/srv/data/access.json"),
    ("ACCESS_AUDIT_PATH", "/srv/data/audit.jsonl", "audit_path", "/srv/data/audit.jsonl"),
    ("ACCESS_TICK_SECONDS", "2", "tick_seconds", 2),
    ("ACCESS_USER_EMAILS", '{"@carol": "carol@corp.example"}', "user_emails", None),
    ("ACCESS_PAGERDUTY_TOKEN", "pd-token", "pagerduty_token", "pd-token"),
    ("ACCESS_PAGERDUTY_URL", "https://api.eu.pagerduty.com", "pagerduty_url", None),
    ("ACCESS_PENDING_TIMEOUT", "10m", "pending_timeout", timedelta(minutes=10)),
    ("ACCESS_EXPIRY_REMINDER", "5m", "expiry_reminder", timedelta(minutes=5)),
    ("ACCESS_APPROVAL_REMINDER", "1h", "approval_reminder", timedelta(hours=1)),
    ("ACCESS_DB_URL", "postgresql://accessbot@db/accessbot", "db_url", None),
    ("ACCESS_AUDIT_CHECKPOINT", "1h", "audit_checkpoint", timedelta(hours=1)),
    ("ACCESS_STANDING_SWEEP", "0", "standing_sweep", None),
    ("ACCESS_STANDING_SWEEP", "30m", "standing_sweep", timedelta(minutes=30)),
    ("ACCESS_STANDING_MAX_REMOVALS", "5", "standing_max_removals", 5),
    ("ACCESS_SLACK_ALLOWED_TEAMS", "T0PARTNER,T0OTHER", "slack_allowed_teams", None),
    ("ACCESS_SLACK_ALLOWED_TEAMS", '["T0PARTNER"]', "slack_allowed_teams", None),
]


class Everything:
    """A config.py setting every key the environment then overrides."""

    ACCESS_POLICY_DIR = "policies"
    ACCESS_DB_PATH = "data/access.json"
    ACCESS_AUDIT_PATH = "data/audit.jsonl"
    ACCESS_TICK_SECONDS = 1
    ACCESS_USER_EMAILS = {"carol": "carol@example.com"}
    ACCESS_PAGERDUTY_TOKEN = "from-config"
    ACCESS_PAGERDUTY_URL = "https://api.pagerduty.com"
    ACCESS_PENDING_TIMEOUT = "1h"
    ACCESS_EXPIRY_REMINDER = "10m"
    ACCESS_APPROVAL_REMINDER = "15m"
    ACCESS_DB_URL = None
    ACCESS_AUDIT_CHECKPOINT = "5m"
    ACCESS_STANDING_SWEEP = "1h"
    ACCESS_STANDING_MAX_REMOVALS = 20
    ACCESS_SLACK_ALLOWED_TEAMS = []


@pytest.mark.parametrize("key, typed, name, expected", ENVIRONMENT_WINS)
def test_an_environment_variable_of_the_same_name_wins_over_the_config(key, typed, name, expected):
    expected = {
        "ACCESS_USER_EMAILS": {"carol": "carol@corp.example"},
        "ACCESS_PAGERDUTY_URL": typed,
        "ACCESS_DB_URL": typed,
        "ACCESS_SLACK_ALLOWED_TEAMS": frozenset(
            t.strip('[]"') for t in typed.replace('"', "").strip("[]").split(",")
        ),
    }.get(key, expected)
    assert getattr(Settings.load(Everything, environ={key: typed}), name) == expected


def test_the_environment_wins_over_the_bots_config_in_the_running_bot(
    bot_factory, policy_dir, webhook, monkeypatch, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    monkeypatch.setenv("ACCESS_PENDING_TIMEOUT", "10m")
    monkeypatch.setenv("ACCESS_USER_EMAILS", '{"carol": "carol@corp.example"}')
    chat = bot_factory(
        ACCESS_PENDING_TIMEOUT="1h", ACCESS_USER_EMAILS={"carol": "carol@example.com"}
    )
    waiting = ask(chat)
    clock.advance(minutes=10, seconds=1)
    chat.wait_for("carol", "timed out")
    assert "timed out" in chat.reply("carol", f"!access show {waiting}")
    rid = ask(chat, user="carol")
    chat.say("alice", f"!approve {rid}")
    assert webhook.calls[0]["user_email"] == "carol@corp.example"


def test_extend_asks_about_a_duration_inside_the_reason(chat, webhook):
    """As `!access request` does (issue 19, item 11): no duration after the id but one
    in the reason is a question, not the default length quietly."""
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    reply = chat.reply("carol", f"!access extend {rid} need more time for 45m")
    assert reply.startswith("Did you mean 45m?"), reply
    assert f"!access extend {rid} 45m need more time for" in reply
    assert "Nothing was requested" in reply
    assert "Extension request" not in chat.reply("carol", "!access mine")


def test_a_bad_configuration_value_is_named_with_what_to_write(
    bot_factory, policy_dir, webhook, caplog
):
    """A mistake in an ACCESS_* key stops the bot; whoever types a command (and the
    admins) is told which key and what to write, not only an exception's class name."""
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    with caplog.at_level(logging.WARNING):
        chat = bot_factory(ACCESS_PENDING_TIMEOUT="an hour")
        told_at_start = sent_at_start(chat, caplog)
    assert any("ACCESS_PENDING_TIMEOUT" in text for text in told_at_start), told_at_start
    reply = chat.reply("carol", "!access resources")
    assert reply.startswith("The access bot did not start: ACCESS_PENDING_TIMEOUT: "), reply
    assert "30m" in reply and "restart" in reply
