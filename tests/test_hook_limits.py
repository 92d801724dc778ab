"""Policy hooks run with a time limit (ACCESS_HOOK_TIMEOUT) through the real plugin: a
hook that raises or overruns never approves, and the card and the log name file and line."""

import logging

import pytest

from accessbot.settings import Settings, SettingsError
from tests.conftest import policy_file, request_id, webhook_policy

CHANNEL = "#access-approvals"

SLOW = """
import threading


def on_request(request, ctx):
    threading.Event().wait(5)
    return ctx.approve("too late to matter")
"""

RAISES = """

def on_request(request, ctx):
    return ctx.approve(request.fields["ticket"])
"""


def test_an_overrunning_hook_never_approves_and_the_card_names_file_and_line(
    bot_factory, policy_dir, webhook, caplog
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url) + SLOW)
    chat = bot_factory(ACCESS_HOOK_TIMEOUT=0.3)

    with caplog.at_level(logging.WARNING):
        said = chat.say("carol", "!access request prod-db 30m fixing INC-42")

    rid = request_id(said[0])
    assert "Waiting for an approval" in said[0]
    card = chat.to(CHANNEL)[-1]
    assert (
        "Note: policy check failed, needs a human: db.py:7: on_request took longer than 0.3s"
        in card
    )
    assert any(
        "db.py:7: on_request took longer than 0.3s" in r.getMessage() for r in caplog.records
    )
    assert webhook.calls == []
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_hook_that_raises_never_approves_and_the_card_names_file_and_line(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url) + RAISES)
    chat = bot_factory()

    said = chat.say("carol", "!access request prod-db 30m fixing INC-42")

    assert "Waiting for an approval" in said[0]
    assert "db.py:5: on_request raised KeyError: 'ticket'" in chat.to(CHANNEL)[-1]
    assert webhook.calls == []


@pytest.mark.parametrize(("value", "seconds"), [("2.5", 2.5), ("30s", 30.0), (7, 7.0)])
def test_the_hook_timeout_is_configurable(value, seconds):
    assert Settings.load(environ={"ACCESS_HOOK_TIMEOUT": str(value)}).hook_timeout == seconds
    assert Settings.load(environ={}).hook_timeout == 10.0


def test_a_bad_hook_timeout_says_what_to_write():
    with pytest.raises(SettingsError, match="ACCESS_HOOK_TIMEOUT must be seconds, e.g. 10"):
        Settings.load(environ={"ACCESS_HOOK_TIMEOUT": "soon"})
