"""Shared test set-up: a real errbot TestBot with the real plugin, a movable clock, and
small real HTTP servers on 127.0.0.1 at the edges."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from errbot.backends.test import TestBot, TestOccupant, TestPerson

from tests.fake_pagerduty import FakePagerDuty
from tests.fakes import WebhookTarget
from tests.helpers import (
    PLUGINS,
    ROOT,
    START,
    FakeClock,
    accessbot,
    eventually,
    plain,
    policy_file,
    request_id,
    stop_test_bot,
    webhook_policy,
)

# The light helpers live in tests/helpers.py; tests import them from here too.
__all__ = [
    "PLUGINS",
    "ROOT",
    "START",
    "Chat",
    "FakeClock",
    "access_plugin",
    "accessbot",
    "eventually",
    "plain",
    "policy_file",
    "request_id",
    "sent_at_start",
    "webhook_policy",
]

# Fixtures for any module: the Slack fake and bot factory; a PostgreSQL cluster a test may stop.
pytest_plugins = ["tests.slack_fixtures", "tests.ha_bots"]

# The signing secret the test policies' webhooks name: the bot refuses a policy whose
# secret_env is not set, so every test environment has it, as a real deployment would.
os.environ.setdefault("TEST_HOOK_SECRET", "s3cret")


def access_plugin(backend):
    """The running Access plugin of an errbot backend."""
    return backend.plugin_manager.get_plugin_obj_by_name("Access")


def sent_at_start(chat, caplog) -> list[str]:
    """What the bot sent while it started (the plugin starts on its own thread):
    TestBot.start() drains (and logs) what came before its "ready"; the rest waits in the
    queue. Start the bot inside `caplog.at_level(logging.WARNING)`."""
    sent = [r.getMessage() for r in caplog.records if r.name == "errbot.backends.test"]
    while not chat.testbot.bot.outgoing_message_queue.empty():
        sent.append(chat.testbot.pop_message(timeout=1))
    return sent


class Chat:
    """Drives a TestBot as several people and records where each message went.

    The TestBackend puts every outgoing message into one queue; wrapping its
    send_message lets a test also see the destination (a channel or a person).
    """

    def __init__(self, testbot: TestBot):
        self.testbot = testbot
        self.backend = testbot.bot
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._sync = 0
        self.refusing: dict[str, str] = {}  # destination -> the error the chat answers
        original = self.backend.send_message

        def recording_send(message):
            with self._lock:
                refusal = self.refusing.get(str(message.to))
                if refusal is None:
                    self.sent.append((str(message.to), message.body))
            if refusal is not None:
                raise RuntimeError(refusal)
            original(message)

        self.backend.send_message = recording_send

    def say(
        self, user: str, text: str, room: str | None = None, email: str | None = None
    ) -> list[str]:
        """`user` types `text` (in `room`, or to the bot directly); returns what the bot
        said in response, the reply first, once the command has finished. `email` is
        the address in the user's chat profile (as Slack's users.info gives it)."""
        if room:
            self.backend.sender = TestOccupant(user, room)
            self.backend.sender._email = email  # as a Slack occupant carries it
        elif email:
            self.backend.sender = TestPerson(user, email=email)
        else:
            self.backend.sender = self.backend.build_identifier(user)
        self.delivered()  # notices of earlier work are not part of this answer
        with self._lock:
            start = len(self.sent)
        self._sync += 1
        marker = f"sync-{self._sync}"
        self.testbot.push_message(text)
        self.testbot.push_message(f"!echo {marker}")
        while self.testbot.pop_message(timeout=15) != marker:
            pass
        self.delivered()
        with self._lock:
            return [plain(body) for _, body in self.sent[start:] if body != marker]

    def delivered(self, timeout: float = 15) -> None:
        """Wait until the delivery workers have sent every notice that is due."""
        plugin = access_plugin(self.backend)
        workers = getattr(plugin, "deliveries", None)
        if workers is not None:
            assert workers.wait_idle(timeout), "the outbox never emptied"

    def refuse(self, destination: str, error: str | None) -> None:
        """The chat refuses every message to `destination` with `error` (None: no more)."""
        with self._lock:
            if error is None:
                self.refusing.pop(destination, None)
            else:
                self.refusing[destination] = error

    def reply(self, user: str, text: str, room: str | None = None) -> str:
        return self.say(user, text, room)[0]

    def to(self, destination: str) -> list[str]:
        """Everything sent to a channel or person so far."""
        with self._lock:
            return [plain(body) for to, body in self.sent if to == destination]

    def wait_for(self, destination: str, needle: str, timeout: float = 10) -> str:
        """Wait until the scheduler thread has said `needle` to `destination`."""
        return eventually(
            lambda: next((text for text in self.to(destination) if needle in text), None),
            f"{needle!r} reaching {destination}",
            timeout,
            explain=lambda: self.to(destination),
        )


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def webhook():
    target = WebhookTarget(secret="s3cret")
    yield target
    target.close()


@pytest.fixture
def webhook_target():
    target = WebhookTarget(secret="s3cret")
    yield target
    target.close()


@pytest.fixture
def pagerduty():
    fake = FakePagerDuty()
    yield fake
    fake.close()


@pytest.fixture
def policy_dir(tmp_path):
    directory = tmp_path / "policies"
    directory.mkdir()
    return directory


@pytest.fixture
def bot_factory(tmp_path, clock, policy_dir, monkeypatch):
    """Start (and later stop) real bots on the same data files; several in a row
    model a restart."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    started: list[TestBot] = []

    def start(**config) -> Chat:
        extra = {
            "BOT_ADMINS": ("admin",),
            "BOT_ASYNC": False,
            "ACCESS_POLICY_DIR": str(policy_dir),
            "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
            "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
            "ACCESS_TICK_SECONDS": 0.05,
            "ACCESS_CLOCK": clock,
            # The standing-access sweep lists the targets; tests of it turn it on.
            "ACCESS_STANDING_SWEEP": 0,
            # A loaded machine must not turn a reply into "Checking the policy..." first.
            "ACCESS_ACK_SECONDS": 60,
        }
        extra.update(config)
        bot = TestBot(extra_plugin_dir=str(PLUGINS), loglevel=logging.WARNING, extra_config=extra)
        bot.start(timeout=10)
        started.append(bot)
        access_plugin(bot.bot).started.wait(30)  # it finishes starting on its own thread
        return Chat(bot)

    def stop_last() -> None:
        stop_test_bot(started.pop())

    start.stop_last = stop_last
    yield start
    while started:
        stop_test_bot(started.pop())


@pytest.fixture
def chat(bot_factory, policy_dir, webhook):
    """The bot most tests talk to: one resource, prod-db (webhook_policy), granted through
    the `webhook` fake. A module with another policy overrides this fixture."""
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    return bot_factory()


# -- PostgreSQL: a real throwaway server for the whole session, one database per test ----


@pytest.fixture(scope="session")
def pg_server():
    from tests.pgserver import NoServer, start_server

    try:
        server = start_server()
    except NoServer as exc:
        pytest.skip(f"PostgreSQL tests need a server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty database on the test server."""
    url = pg_server.database()
    yield url
    pg_server.drop(url)
