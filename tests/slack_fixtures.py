"""Shared Slack fixtures and helpers: the fake Slack Web API with four people, a bot
factory on the real SlackV3 backend (tests/slack_harness.py), and card readers.
Registered for every test module by conftest.py's `pytest_plugins`."""

from __future__ import annotations

import re

import pytest

from tests.conftest import policy_file, webhook_policy
from tests.slack_fakes import FakeSlack
from tests.slack_harness import SlackBot

CHANNEL = "CAPPROVALS"
USERS = {
    "UALICE": ("alice", "alice@acme.com"),
    "UBOB": ("bob", "bob@acme.com"),
    "UCAROL": ("carol", "carol@acme.com"),
    "UMALLORY": ("mallory", "mallory@acme.com"),
}


@pytest.fixture
def fake():
    server = FakeSlack(users=USERS, channels={"access-approvals": CHANNEL})
    yield server
    server.close()


@pytest.fixture
def start_bot(fake, tmp_path, clock, policy_dir, webhook, monkeypatch):
    """Start a Slack bot in "socket" or "http" mode on the shared data files."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    bots: list[SlackBot] = []

    def start(
        mode: str = "socket", config: dict | None = None, wait: bool = True, **policy
    ) -> SlackBot:
        if not list(policy_dir.glob("*.py")) or policy:
            policy_file(policy_dir, "db.py", webhook_policy(webhook.url, **policy))
        bot = SlackBot(
            fake,
            mode,
            {
                "BOT_ADMINS": ("UADMIN",),
                "ACCESS_POLICY_DIR": str(policy_dir),
                "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
                "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
                "ACCESS_TICK_SECONDS": 0.05,
                "ACCESS_CLOCK": clock,
                "ACCESS_STANDING_SWEEP": 0,  # tests of the sweep turn it on
                **(config or {}),
            },
            wait=wait,
        )
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop()


def request_card(bot: SlackBot, fake: FakeSlack, text="!access request prod-db 30m fixing INC-42"):
    """carol asks in the channel; returns (request id, the posted card)."""
    before = len(fake.cards(CHANNEL))
    bot.type("UCAROL", CHANNEL, text)
    cards = fake.wait(lambda: fake.cards(CHANNEL)[before:], "the approval card")
    card = cards[0]
    return re.search(r"Access request (\w+)", card["text"]).group(1), card


def current(fake: FakeSlack, card: dict) -> dict:
    return next(m for m in fake.posted(CHANNEL) if m["ts"] == card["ts"])


def has_buttons(message: dict) -> bool:
    return any(b["type"] == "actions" for b in message["blocks"])


def shown(message: dict) -> str:
    return repr(message["blocks"])
