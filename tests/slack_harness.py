"""A real errbot on the real SlackV3 backend code with the real Access plugin, talking to
the fake Slack in tests/slack_fakes.py, in Socket Mode or HTTP mode.

In Socket Mode, a test hands envelopes to slack_sdk's socket-mode client exactly as
Slack's websocket would; in HTTP mode it POSTs signed requests to errbot's own webserver
(/slack/events for messages, /slack/interactive for clicks and forms).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import itertools
import json
import logging
import socket
import threading
import time
from pathlib import Path
from tempfile import mkdtemp

import errbot.core_plugins
import requests
from errbot.backends.test import ShallowConfig
from errbot.bootstrap import setup_bot
from errbot.core_plugins.wsview import reset_app

from tests.slack_fakes import TEAM, FakeSlack, signed

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-signing-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlackBot:
    def __init__(self, fake: FakeSlack, mode: str, extra_config: dict, wait: bool = True):
        self.fake = fake
        self.mode = mode
        self.port = free_port() if mode == "http" else None
        self._envelopes = itertools.count(1)
        self._ts = itertools.count(1)
        config = ShallowConfig()
        config.__dict__.update(importlib.import_module("errbot.config-template").__dict__)
        data_dir = mkdtemp()
        config.BOT_DATA_DIR = data_dir
        config.BOT_LOG_FILE = str(Path(data_dir) / "log.txt")
        config.BOT_LOG_LEVEL = logging.WARNING
        config.STORAGE = "Memory"
        config.BOT_EXTRA_PLUGIN_DIR = str(ROOT / "plugins")
        config.BOT_EXTRA_BACKEND_DIR = str(ROOT / "tests" / "slack_backend")
        config.BOT_PREFIX = "!"
        config.BOT_ADMINS_NOTIFICATIONS = ()
        config.FAKE_SLACK_URL = fake.base_url
        config.BOT_IDENTITY = {
            "token": "xoxb-test",
            "app_token": "xapp-test" if mode == "socket" else None,
            "signing_secret": SECRET if mode == "http" else None,
        }
        for key, value in extra_config.items():
            setattr(config, key, value)
        self.bot = setup_bot("FakeSlack", logging.getLogger("slackbot"), config)
        if mode == "http":
            self.bot.plugin_manager.set_plugin_configuration(
                "Webserver",
                {
                    "HOST": "127.0.0.1",
                    "PORT": self.port,
                    "SSL": {
                        "enabled": False,
                        "host": "127.0.0.1",
                        "port": 0,
                        "certificate": "",
                        "key": "",
                    },
                },
            )
        self.thread = threading.Thread(target=self.bot.serve_forever, daemon=True)
        self.thread.start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        self.fake.wait(self._ready, "the bot starting")

    def _ready(self) -> bool:
        plugin = self.bot.plugin_manager.get_plugin_obj_by_name("Access")
        if plugin is None or not getattr(plugin, "ready", False):
            return False
        return self.mode != "http" or self.listening()

    def listening(self) -> bool:
        """HTTP mode: errbot's webserver answers, with the plugin's routes in place.
        errbot routes a plugin's webhooks just after its activate(); Flask refuses new
        routes once it has served a request, so it is probed only when ours are there."""
        rules = {r.rule for r in errbot.core_plugins.flask_app.url_map.iter_rules()}
        if "/slack/interactive" not in rules:
            return False
        try:
            requests.get(f"http://127.0.0.1:{self.port}/", timeout=1)
        except requests.ConnectionError:
            return False
        return True

    @property
    def plugin(self):
        return self.bot.plugin_manager.get_plugin_obj_by_name("Access")

    @property
    def socket_client(self):
        return self.bot.slack_socket_mode

    # -- what Slack would send ------------------------------------------------------

    def type(self, user_id: str, channel_id: str, text: str, **extra) -> None:
        """`user_id` types `text` in `channel_id` (a C... channel or their D... DM);
        `extra` adds or overrides event fields (`user_team` for Slack Connect, say)."""
        event = {
            "type": "message",
            "channel": channel_id,
            "user": user_id,
            "text": text,
            "ts": f"1700000500.{next(self._ts):06d}",
            "team": TEAM,
            "channel_type": "im" if channel_id.startswith("D") else "channel",
            **extra,
        }
        self.send_event(event)

    def post_as_integration(self, bot_id: str, username: str, channel_id: str, text: str):
        """An incoming webhook or app posts `text` under a name it chose, as Slack sends it:
        a `bot_message` with `bot_id` and `username`, and no `user`."""
        self.send_event(
            {
                "type": "message",
                "subtype": "bot_message",
                "channel": channel_id,
                "bot_id": bot_id,
                "username": username,
                "text": text,
                "ts": f"1700000500.{next(self._ts):06d}",
                "team": TEAM,
            }
        )

    def send_event(self, event: dict) -> None:
        envelope = {"type": "event_callback", "team_id": TEAM, "event": event}
        if self.mode == "socket":
            self.enqueue("events_api", envelope)
        else:
            body = json.dumps(envelope).encode()
            headers = self.sign_raw(body)
            response = requests.post(
                self.url("/slack/events"), data=body, headers=headers, timeout=10
            )
            assert response.status_code == 200, response.text

    def interact(self, payload: dict, timestamp: int | None = None) -> requests.Response | None:
        """A click or form submission, delivered the way this mode receives it."""
        if self.mode == "socket":
            self.enqueue("interactive", payload)
            return None
        body, headers = signed(payload, SECRET, timestamp)
        return requests.post(self.url("/slack/interactive"), data=body, headers=headers, timeout=10)

    def enqueue(self, kind: str, payload: dict) -> str:
        envelope_id = f"env-{next(self._envelopes)}"
        self.socket_client.enqueue_message(
            json.dumps(
                {
                    "type": kind,
                    "envelope_id": envelope_id,
                    "payload": payload,
                    "accepts_response_payload": kind == "interactive",
                }
            )
        )
        return envelope_id

    def acks(self, envelope_id: str) -> list[dict]:
        with self.socket_client.acks_lock:
            return [a for a in self.socket_client.acks if a["envelope_id"] == envelope_id]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @staticmethod
    def sign_raw(body: bytes) -> dict:
        timestamp = str(int(time.time()))
        digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
        return {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
        }

    def stop(self) -> None:
        self.bot.stop_event.set()
        self.thread.join(timeout=20)
        reset_app()  # errbot's webserver app is global; the next bot gets a clean one
        # slackv3 memoises these with functools.lru_cache on the class, keyed by a backend
        # whose hash is always 0: the next bot in this process would hit this one's entries.
        backend = type(self.bot)
        for cached in ("get_im_channel", "channelid_to_channelname", "channelname_to_channelid"):
            getattr(backend, cached).cache_clear()
