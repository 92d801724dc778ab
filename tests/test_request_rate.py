"""Requests per person are rate-limited (issue 26, item 11c): one user's hundreds of
request/cancel cycles flooded the approvers' channel and buried its alerts."""

from __future__ import annotations

import pytest

from accessbot.settings import Settings, SettingsError
from tests.conftest import request_id


def cycle(chat, user: str = "carol") -> str:
    """Ask for prod-db and withdraw it: the reply to the request."""
    reply = chat.reply(user, "!access request prod-db 30m fixing INC-42")
    if reply.startswith("Request"):
        chat.reply(user, f"!access cancel {request_id(reply)}")
    return reply


def test_the_31st_request_in_an_hour_is_refused_saying_when_to_ask_again(bot_factory, chat, clock):
    for _ in range(30):
        assert cycle(chat).startswith("Request")
    clock.advance(minutes=20)

    refused = cycle(chat)

    assert "30 requests in the last hour" in refused
    assert "ACCESS_REQUESTS_PER_HOUR" in refused
    assert "ask again in 40m" in refused
    assert cycle(chat, "dave").startswith("Request")  # others are not held back
    clock.advance(minutes=40)
    assert cycle(chat).startswith("Request")


def test_the_limit_is_set_with_access_requests_per_hour(
    bot_factory, policy_dir, webhook, monkeypatch
):
    from tests.conftest import policy_file, webhook_policy

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    monkeypatch.setenv("ACCESS_REQUESTS_PER_HOUR", "2")
    chat = bot_factory(ACCESS_REQUESTS_PER_HOUR=50)  # the environment wins

    assert cycle(chat).startswith("Request") and cycle(chat).startswith("Request")
    assert "2 requests in the last hour" in cycle(chat)


def test_requests_per_hour_defaults_to_30_and_0_turns_it_off():
    assert Settings.load(None, {}).requests_per_hour == 30
    assert Settings.load(None, {"ACCESS_REQUESTS_PER_HOUR": "0"}).requests_per_hour == 0
    with pytest.raises(SettingsError, match="ACCESS_REQUESTS_PER_HOUR must be a whole number"):
        Settings.load(None, {"ACCESS_REQUESTS_PER_HOUR": "lots"})
