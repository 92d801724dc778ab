"""Slack's edges as an attacker or a sloppy integration meets them: oversized bodies,
signed payloads of the wrong shape, and user text that tries to be Slack markup.

Through the real plugin on errbot's real SlackV3 backend code (tests/slack_harness.py)
against the fake Slack Web API.
"""

from __future__ import annotations

import errbot.core_plugins
import requests

from tests import test_slack_flow as flow
from tests.slack_fakes import signed, submission_payload
from tests.slack_harness import SECRET

# The Slack end-to-end fixtures: the fake Slack and a bot in "socket" or "http" mode.
fake, start_bot = flow.fake, flow.start_bot
CHANNEL = flow.CHANNEL

MB = 1024 * 1024
HUGE = 200 * MB


class Zeros:
    """A body of `size` bytes that is made as it is sent: the test never holds it.

    It has a length, so requests sends it with a Content-Length header."""

    def __init__(self, size: int):
        self.size = size
        self.left = size

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        amount = self.left if amount is None or amount < 0 else min(amount, self.left)
        amount = min(amount, MB)
        self.left -= amount
        return b"0" * amount


class ChunkedZeros:
    """The same without a length: requests sends an iterator chunked."""

    def __init__(self, size: int):
        self.left = size

    def __iter__(self):
        while self.left > 0:
            self.left -= MB
            yield b"0" * MB


def post_huge(url: str, body) -> int:
    """POST an oversized body; the status the server answered with.

    The bot answers before reading the body. errbot's server (werkzeug's) then discards
    what the client still sends, 10 MB at a time, so that the client sees the answer
    rather than a reset; bench/bench_body_limit.py shows the bot's memory stays flat."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


# -- oversized bodies ---------------------------------------------------------------------


def test_a_200_mb_post_to_the_interactivity_url_is_refused_with_413_unread(start_bot, fake):
    bot = start_bot("http")

    body = Zeros(HUGE)

    assert post_huge(bot.url("/slack/interactive"), body) == 413


def test_a_200_mb_chunked_post_to_the_interactivity_url_is_refused_with_413(start_bot, fake):
    bot = start_bot("http")
    body = ChunkedZeros(HUGE)

    assert post_huge(bot.url("/slack/interactive"), body) == 413


def test_a_200_mb_post_to_the_events_url_is_refused_with_413(start_bot, fake):
    bot = start_bot("http")
    declared, chunked = Zeros(HUGE), ChunkedZeros(HUGE)

    assert post_huge(bot.url("/slack/events"), declared) == 413
    assert post_huge(bot.url("/slack/events"), chunked) == 413


def test_the_limit_is_installed_once_across_plugin_reloads(start_bot, fake):
    bot = start_bot("http")
    bot.type("UCAROL", CHANNEL, "!access resources")  # the app has served a request

    bot.bot.plugin_manager.reload_plugin_by_name("Access")
    fake.wait(lambda: bot.plugin.is_activated and bot.plugin.slack, "the plugin back")

    hooks = errbot.core_plugins.flask_app.before_request_funcs[None]
    assert sum(getattr(h, "limits_slack_bodies", False) for h in hooks) == 1
    assert post_huge(bot.url("/slack/interactive"), Zeros(HUGE)) == 413


def test_a_signed_body_just_under_the_limit_is_still_read(start_bot, fake):
    bot = start_bot("http")
    payload = submission_payload("UCAROL", "prod-db", "8h", "x" * (MB - 1000))
    body, headers = signed(payload, SECRET)
    assert MB - 100 < len(body) <= MB

    response = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)

    assert response.status_code == 200
    assert response.json()["response_action"] == "errors"
