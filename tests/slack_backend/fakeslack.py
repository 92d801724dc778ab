"""Tests only: errbot's real SlackV3 backend, connected to a fake Slack on 127.0.0.1.

Only `serve_once` (the connection) is replaced, because slackv3 hard-codes Slack's URL
and blocks forever. It does what slackv3's own `serve_once` does (auth.test, the bot's
identity, then Socket Mode or the HTTP Events API), with the WebClient's `base_url` at
the fake and a stop switch. Everything else is slackv3's code: message events,
identifiers, DMs through conversations.open, send_message, the socket-mode listener
chain and its acknowledgements.

Names imported here are modules, not classes: errbot wants exactly one backend class in
this module's namespace.
"""

import json
import threading

import errbot.core_plugins
import slackv3.person as slack_person
import slackv3.slackv3 as slackv3
from slack_sdk import web
from slack_sdk.socket_mode.builtin import client as socket_mode
from slackeventsapi import SlackEventAdapter


class RecordingSocketModeClient(socket_mode.SocketModeClient):
    """slack_sdk's Socket Mode client with the websocket cut off: a test enqueues envelopes
    as Slack would send them, and the acknowledgements are kept instead of sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.acks: list[dict] = []
        self.acks_lock = threading.Lock()

    def send_message(self, message: str) -> None:
        with self.acks_lock:
            self.acks.append(json.loads(message))

    def close(self) -> None:
        self.closed = True
        self.message_queue.put(None)  # wake the processor, which waits 1 s for a message
        super().close()

    def connect(self) -> None:
        self.enqueue_message(json.dumps({"type": "hello"}))  # what Slack says first


class FakeSlackBackend(slackv3.SlackBackend):
    def __init__(self, config):
        super().__init__(config)
        self.stop_event = threading.Event()

    def serve_once(self):
        self.slack_web = web.WebClient(token=self.token, base_url=self.bot_config.FAKE_SLACK_URL)
        self.auth = self.slack_web.auth_test()
        self.bot_identifier = slack_person.SlackPerson(self.slack_web, self.auth["user_id"])
        self.update_alternate_prefixes()
        if self.app_token:
            self.slack_socket_mode = RecordingSocketModeClient(
                app_token=self.app_token, web_client=self.slack_web
            )
            self.slack_socket_mode.message_listeners.append(self._sm_handle_hello)
            self.slack_socket_mode.socket_mode_request_listeners.append(
                self._sm_generic_event_handler
            )
            self.slack_socket_mode.connect()
        else:
            self.slack_events = SlackEventAdapter(
                self.signing_secret, "/slack/events", errbot.core_plugins.flask_app
            )
            self._setup_event_callbacks()
        self.stop_event.wait()
        if self.slack_socket_mode is not None:
            self.slack_socket_mode.close()
        self.disconnect_callback()
        return True
