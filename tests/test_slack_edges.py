"""Slack's edges as an attacker or a sloppy integration meets them: oversized bodies,
signed payloads of the wrong shape, and user text that tries to be Slack markup.

Through the real plugin on errbot's real SlackV3 backend code (tests/slack_harness.py)
against the fake Slack Web API; cards also through slack_sdk's Block Kit models alone.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from urllib.parse import urlencode

import errbot.core_plugins
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier

from accessbot.domain import Request, Status
from accessbot.integrations import slack
from tests.builders import a_request
from tests.conftest import START
from tests.slack_fakes import signed, submission_payload, validated_blocks
from tests.slack_fixtures import CHANNEL
from tests.slack_harness import SECRET

# The Slack end-to-end fixtures: the fake Slack and a bot in "socket" or "http" mode.

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


@pytest.mark.parametrize("path", ["/echo", "/metrics", "/health", "/nowhere"])
def test_a_200_mb_post_to_any_url_of_the_listener_is_refused_with_413(start_bot, fake, path):
    """errbot's own /echo (unauthenticated, reads the whole body) shares the listener."""
    bot = start_bot("http")

    assert post_huge(bot.url(path), Zeros(HUGE)) == 413
    assert post_huge(bot.url(path), ChunkedZeros(HUGE)) == 413


def test_a_small_post_to_errbots_echo_is_still_answered(start_bot, fake):
    bot = start_bot("http")

    response = requests.post(bot.url("/echo"), data="hello", timeout=10)

    assert response.status_code == 200
    assert "hello" in response.text


def test_the_limit_is_installed_once_across_plugin_reloads(start_bot, fake):
    bot = start_bot("http")
    bot.type("UCAROL", CHANNEL, "!access resources")  # the app has served a request

    bot.bot.plugin_manager.reload_plugin_by_name("Access")
    fake.wait(lambda: bot.plugin.is_activated and bot.plugin.slack, "the plugin back")

    hooks = errbot.core_plugins.flask_app.before_request_funcs[None]
    assert sum(getattr(h, "guards_slack_urls", False) for h in hooks) == 1
    assert sum(getattr(h, "limits_bodies", False) for h in hooks) == 1
    assert post_huge(bot.url("/slack/interactive"), Zeros(HUGE)) == 413


def test_a_signed_body_just_under_the_limit_is_still_read(start_bot, fake):
    bot = start_bot("http")
    payload = submission_payload("UCAROL", "prod-db", "8h", "x" * (MB - 1000))
    body, headers = signed(payload, SECRET)
    assert MB - 100 < len(body) <= MB

    response = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)

    assert response.status_code == 200
    assert response.json()["response_action"] == "errors"


# -- signed payloads of the wrong shape -------------------------------------------------------


def click(**overrides) -> dict:
    """A block_actions payload of an Approve click, with some parts replaced."""
    payload = {
        "type": "block_actions",
        "user": {"id": "UBOB", "team_id": "T0ACME"},
        "channel": {"id": CHANNEL},
        "actions": [{"action_id": slack.APPROVE, "value": "k3m9qx"}],
    }
    payload.update(overrides)
    return payload


def form(**state_values) -> dict:
    """A view_submission of the request modal, with some blocks' state replaced."""
    payload = submission_payload("UCAROL", "prod-db", "30m", "fixing INC-42")
    payload["view"]["state"]["values"].update(state_values)
    return payload


MALFORMED = {
    "actions are strings": click(actions=["x"]),
    "actions is an object": click(actions={"action_id": slack.APPROVE}),
    "user is a string": click(user="UBOB"),
    "user id is a number": click(user={"id": 42}),
    "type is a list": click(type=["block_actions"]),
    "button value is an object": click(actions=[{"action_id": slack.APPROVE, "value": {}}]),
    "channel is a string": click(channel=CHANNEL),
    "view is a list": {**form(), "view": []},
    "state values is a list": {
        **form(),
        "view": {**form()["view"], "state": {"values": ["resource"]}},
    },
    "a block is a string": form(resource="prod-db"),
    "selected option is a string": form(resource={"access_pick_resource": "prod-db"}),
    "option value is a number": form(duration={"duration": {"selected_option": {"value": 30}}}),
    "reason is a list": form(reason={"reason": {"value": ["fixing"]}}),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_payload_of_the_wrong_shape_is_refused_with_400(start_bot, fake, payload):
    bot = start_bot("http")

    response = bot.interact(payload)

    assert response.status_code == 400, response.text
    assert fake.cards(CHANNEL) == [] and fake.ephemerals == [] and fake.views == []


def test_in_socket_mode_a_payload_of_the_wrong_shape_gets_a_plain_ack_and_a_log_line(
    start_bot, fake, caplog
):
    bot = start_bot("socket")

    envelope = bot.enqueue("interactive", click(actions=["x"]))

    acks = fake.wait(lambda: bot.acks(envelope), "the acknowledgement")
    assert all(ack == {"envelope_id": envelope} for ack in acks)  # no payload, no error
    fake.wait(
        lambda: any("malformed Slack interaction" in r.getMessage() for r in caplog.records),
        "the log line",
    )


@pytest.mark.parametrize("mode", ["socket", "http"])
@pytest.mark.parametrize("duration", ["-5m", "0s", "soon", "99999999d"])
def test_a_duration_the_form_cannot_take_comes_back_on_the_duration_field(
    start_bot, fake, mode, duration
):
    bot = start_bot(mode)
    payload = submission_payload("UCAROL", "prod-db", duration, "fixing INC-42")

    if mode == "http":
        response = bot.interact(payload)
        assert response.status_code == 200
        answer = response.json()
    else:
        envelope = bot.enqueue("interactive", payload)
        answer = fake.wait(lambda: bot.acks(envelope), "the acknowledgement")[0]["payload"]

    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"duration"}
    assert re.search(r"\d+[smhd]", answer["errors"]["duration"])  # says what would do
    assert fake.cards(CHANNEL) == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'"event"', b'{"event": {}}', b'{"event": []}', b'{"event": {"type": 1}}'],
)
def test_a_signed_event_of_the_wrong_shape_is_refused_with_400(start_bot, fake, body):
    bot = start_bot("http")

    response = requests.post(
        bot.url("/slack/events"), data=body, headers=bot.sign_raw(body), timeout=10
    )

    assert response.status_code == 400


# -- random shapes ----------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "block_actions",
        "view_submission",
        "view_closed",
        slack.APPROVE,
        slack.DENY,
        slack.OPEN_FORM,
        slack.PICK_RESOURCE,
        slack.REQUEST_MODAL,
        "UCAROL",
        "UBOB",
        "prod-db",
        "30m",
        "-5m",
        "0s",
        "99999999d",
        "",
    ]
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "type",
            "user",
            "id",
            "actions",
            "action_id",
            "value",
            "selected_option",
            "view",
            "callback_id",
            "state",
            "values",
            "trigger_id",
            "channel",
            "container",
            "message",
            "ts",
            "hash",
            "resource",
            "duration",
            "reason",
            slack.PICK_RESOURCE,
        ]
    ),
    st.text(max_size=6),
)
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        WORDS,
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
VALID = [
    click(),
    click(actions=[{"action_id": slack.OPEN_FORM, "value": "open"}], trigger_id="1.2.3"),
    {
        **click(actions=[{"action_id": slack.PICK_RESOURCE, "selected_option": {"value": "x"}}]),
        "view": {"id": "V1", "hash": "h"},
    },
    submission_payload("UCAROL", "prod-db", "30m", "fixing INC-42"),
]


@st.composite
def payloads(draw):
    """Slack's own payloads with parts replaced by random JSON, or random JSON outright."""
    if draw(st.integers(0, 4)) == 0:
        return draw(JSON)
    payload = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        node = payload
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if isinstance(node[key], dict | list) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            node[key] = draw(JSON)
            break
    return payload


@settings(max_examples=500, deadline=None)
@given(payloads())
def test_any_json_either_decodes_to_slack_data_or_is_refused_as_malformed(payload):
    try:
        action = slack.parse_interaction(payload)
    except slack.InteractionError:
        return
    if action is not None:
        assert all(
            isinstance(getattr(action, name), str)
            for name in ("user_id", "request_id", "trigger_id", "resource", "reason", "view_id")
            if hasattr(action, name)
        )


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=payloads(), raw=st.booleans())
def test_the_interactivity_url_answers_any_signed_json_with_200_or_400(
    start_bot, fake, payload, raw
):
    bot = http_bot(start_bot)
    # A field of its own makes each example a new signed request, never a replay.
    nonce = next(NONCES)
    if raw:  # not even a form: the JSON is the whole body
        body = json.dumps(payload).encode() + f"&nonce={nonce}".encode()
    else:
        body = urlencode({"payload": json.dumps(payload), "nonce": nonce}).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
            timestamp=timestamp, body=body
        ),
    }

    response = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)

    assert response.status_code in (200, 400)


NONCES = itertools.count()
_BOTS: dict[int, object] = {}


def http_bot(start_bot):
    """One HTTP-mode bot for all of a hypothesis test's examples."""
    if id(start_bot) not in _BOTS:
        _BOTS.clear()
        _BOTS[id(start_bot)] = start_bot("http")
    return _BOTS[id(start_bot)]


# -- cards within Block Kit's limits ------------------------------------------------------------


def card_json(request: Request) -> list[dict]:
    """The card as slack_sdk's models validate it (they raise on any Block Kit limit)."""
    blocks = slack.approval_card(request)
    for block in blocks:
        block.validate_json()
    return validated_blocks([block.to_dict() for block in blocks])


@pytest.mark.parametrize("quorum", [1, 2])
@pytest.mark.parametrize("count", range(21))
def test_a_card_with_any_number_of_prompt_fields_is_valid_block_kit(count, quorum):
    values = {f"field_{n}": f"value-{n}" for n in range(count)}
    request = a_request(fields=values, approvals_required=quorum)

    blocks = card_json(request)

    shown = repr(blocks)
    assert all(f"*{name}*\\n{value}" in shown for name, value in values.items())
    assert ("*Approvals*" in shown) == (quorum > 1)
    assert [b["type"] for b in blocks].count("actions") == 1  # the buttons are there


def test_a_card_with_twenty_fields_is_posted_with_its_buttons(start_bot, fake):
    fields = {f"f{n}": {"pattern": "[a-z0-9-]+", "required": True} for n in range(20)}
    bot = start_bot("socket", fields=fields, approvals_required=2)
    values = " ".join(f"f{n}=v{n}" for n in range(20))

    bot.type("UCAROL", CHANNEL, f"!access request prod-db 30m {values} fixing INC-42")

    (card,) = fake.wait(lambda: fake.cards(CHANNEL), "the approval card")
    assert any(b["type"] == "actions" for b in card["blocks"]) and fake.invalid == []
    assert all(f"*f{n}*\\nv{n}" in repr(card["blocks"]) for n in range(20))


# -- user text in mrkdwn ----------------------------------------------------------------------

NASTY = "<!channel> & <https://evil.example|click>"
MARKUP = re.compile(r"[<>]|&(?!amp;|lt;|gt;)")  # what mrkdwn would read as markup


def text_objects(node):
    """Every (type, text) of the Slack text objects in a block tree."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
            yield node["type"], node["text"]
            return
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def assert_escaped(message: dict) -> None:
    """mrkdwn (and a message's top-level text, which Slack reads as mrkdwn) holds no
    markup but Slack's three entities; plain_text holds no entities."""
    texts = [("mrkdwn", message["text"]), *text_objects(message["blocks"])]
    for kind, text in texts:
        if kind == "mrkdwn":
            assert not MARKUP.search(text), text
        else:
            assert not re.search(r"&(amp|lt|gt);", text), text


def test_user_text_on_a_slack_card_is_escaped_in_mrkdwn_and_left_alone_in_plain_text(
    start_bot, fake
):
    bot = start_bot("socket", fields={"ticket": {"pattern": ".+", "required": False}})

    bot.type("UCAROL", CHANNEL, f"!access request prod-db 30m ticket=a&<b> {NASTY}")

    (card,) = fake.wait(lambda: fake.cards(CHANNEL), "the approval card")
    assert_escaped(card)
    shown = repr(card["blocks"])
    # The reason as text (slackv3 turns Slack's `<url|label>` into the label).
    assert "channel&gt; &amp; click" in shown
    assert "a&amp;&lt;\\u200bb&gt;" in shown  # the field value (a "<" opens no link)


@pytest.mark.parametrize(
    "status", ["pending", "denied", "grant_failed", "active", "revoked", "extension"]
)
def test_every_text_on_a_card_is_escaped_whatever_its_state(status):
    """Requester, resource, reason, fields, notes and decisions: any of them may be text
    someone typed (a request stored before resource names were checked, a hook's note)."""
    request = a_request(
        requester="eve<&>",
        resource="db<&>",
        reason=NASTY,
        fields={"ticket": NASTY},
        notes=[NASTY],
        auto_decision=NASTY,
        approvals_required=2,
        approvers=["@alice<&>", "bob@x.example"],
        extends="abc<&>" if status == "extension" else None,
    )
    if status != "pending" and status != "extension":
        request.add_approval("alice<&>", START, NASTY)
        request.decided_by, request.decision_note = "alice<&>", NASTY
        request.status = {
            "denied": Status.DENIED,
            "grant_failed": Status.GRANT_FAILED,
            "active": Status.ACTIVE,
            "revoked": Status.REVOKED,
        }[status]
        request.last_error = NASTY
        request.expires_at = request.ended_at = START

    blocks = card_json(request)

    assert_escaped({"text": slack.card_fallback(request), "blocks": blocks})
    header = next(b for b in blocks if b["type"] == "header")
    assert "db<&>" in header["text"]["text"]  # plain_text: shown as typed, not as &lt;


def test_the_form_offer_and_its_hint_are_escaped():
    blocks = [b.to_dict() for b in slack.request_form_button()]

    assert_escaped({"text": "", "blocks": blocks})
    assert "&lt;resource&gt;" in repr(blocks)


def test_a_link_in_a_reason_or_field_is_shown_as_text_on_the_card():
    link = "[INC-42 runbook](https://evil.example/login) <https://evil.example|INC-43>"
    request = a_request(reason=link, fields={"ticket": link})

    shown = repr(card_json(request)) + slack.card_fallback(request)

    assert "INC-42 runbook" in shown and "evil.example" in shown
    assert "](" not in shown and "|INC-43" not in shown
