"""integrations/slack.py against a fake Slack Web API: cards, decoding, signatures, users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from slack_sdk.web import WebClient

from accessbot.domain import Status
from accessbot.integrations import slack
from tests.builders import a_request
from tests.conftest import START
from tests.slack_fakes import FakeSlack, click_payload, signed, submission_payload

SECRET = "test-signing-secret"


@pytest.fixture
def fake():
    server = FakeSlack(
        users={"UBOB": ("bob", "bob@acme.com"), "UCAROL": ("carol", "carol@acme.com")},
        channels={"access-approvals": "CAPPROVALS"},
    )
    yield server
    server.close()


@pytest.fixture
def cards(fake):
    return slack.SlackCards(WebClient(token="xoxb-test", base_url=fake.base_url))


def texts(blocks: list[dict]) -> str:
    return repr(blocks)


def buttons(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_pending_card_shows_the_request_and_buttons_carrying_its_id(fake, cards):
    request = a_request(notes=["policy check failed, needs a human: PagerDuty is down"])

    ref = cards.post_card("#access-approvals", request)

    (card,) = fake.cards("CAPPROVALS")
    assert (ref.channel, ref.ts) == ("CAPPROVALS", card["ts"])
    shown = texts(card["blocks"])
    for expected in (
        "@carol",
        "prod-db",
        "30m",
        "fixing INC-42",
        "PagerDuty is down",
        "!approve k3m9qx",
    ):
        assert expected in shown
    assert [(b["action_id"], b["value"], b.get("style")) for b in buttons(card["blocks"])] == [
        (slack.APPROVE, "k3m9qx", "primary"),
        (slack.DENY, "k3m9qx", "danger"),
    ]
    assert "!approve k3m9qx" in card["text"]  # the notification text works without blocks


def test_updated_card_shows_who_decided_and_has_no_buttons(fake, cards):
    request = a_request()
    ref = cards.post_card("#access-approvals", request)
    request.add_approval("bob", START, "looks fine")
    request.activate(START)

    cards.update_card(ref, request)

    (card,) = fake.cards("CAPPROVALS")
    assert buttons(card["blocks"]) == []
    assert "*Approved* by @bob: looks fine; active until 2026-11-24 09:30:00 UTC" in texts(
        card["blocks"]
    )


def test_denied_card_says_denied_and_by_whom(fake, cards):
    request = a_request()
    ref = cards.post_card("#access-approvals", request)
    request.move(Status.DENIED, START, "alice", "not during the freeze")
    request.decided_by, request.decision_note = "alice", "not during the freeze"

    cards.update_card(ref, request)

    assert "*Denied* by @alice: not during the freeze" in texts(
        fake.cards("CAPPROVALS")[0]["blocks"]
    )


def test_user_text_on_a_card_cannot_ping_or_link(fake, cards):
    cards.post_card(
        "#access-approvals", a_request(reason="<!channel> see <https://evil.example|docs> & <@U1>")
    )

    shown = texts(fake.cards("CAPPROVALS")[0]["blocks"])
    assert "<!channel>" not in shown and "<https://evil" not in shown and "<@U1>" not in shown
    assert "&lt;" in shown and "&amp;" in shown


def test_a_thread_reply_goes_under_the_card(fake, cards):
    ref = cards.post_card("#access-approvals", a_request())

    cards.reply_in_thread(ref, "Request k3m9qx: **expired**", broadcast=True)

    (reply,) = fake.posted("CAPPROVALS", thread_ts=ref.ts)
    assert reply["text"] == "Request k3m9qx: *expired*" and reply["reply_broadcast"]


def test_a_click_decodes_to_request_action_and_user(fake, cards):
    cards.post_card("#access-approvals", a_request())
    card = fake.cards("CAPPROVALS")[0]

    click = slack.parse_interaction(click_payload(slack.DENY, "k3m9qx", "UBOB", card))

    assert click == slack.Click(
        action="deny",
        request_id="k3m9qx",
        user_id="UBOB",
        channel_id="CAPPROVALS",
        message_ts=card["ts"],
        response_url="https://hooks.slack.invalid/actions/T0ACME/1/xyz",
    )


def test_payloads_that_are_not_ours_are_ignored_and_garbage_is_refused():
    assert slack.parse_interaction({"type": "shortcut", "user": {"id": "UBOB"}}) is None
    with pytest.raises(slack.InteractionError):
        slack.parse_interaction({"type": "block_actions"})
    with pytest.raises(slack.InteractionError):
        slack.decode_form(b"payload=not-json")
    with pytest.raises(slack.InteractionError):
        slack.decode_form(b"text=hello")


def test_signed_request_passes_and_decodes():
    body, headers = signed({"type": "block_actions", "user": {"id": "UBOB"}}, SECRET)

    slack.RequestVerifier(SECRET).verify(body, headers)

    assert slack.decode_form(body)["user"]["id"] == "UBOB"


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda b, h: (b, {**h, "X-Slack-Signature": "v0=" + "0" * 64}), "does not match"),
        (lambda b, h: (b + b"x", h), "does not match"),
        (
            lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Slack-Signature"}),
            "no Slack signature",
        ),
        (lambda b, h: (b, {**h, "X-Slack-Request-Timestamp": "soon"}), "not a number"),
    ],
)
def test_forged_requests_are_refused(tamper, why):
    body, headers = tamper(*signed({"type": "block_actions"}, SECRET))

    with pytest.raises(slack.SignatureError, match=why):
        slack.RequestVerifier(SECRET).verify(body, headers)


def test_a_stale_request_is_refused_even_when_correctly_signed():
    body, headers = signed({"type": "block_actions"}, SECRET, timestamp=1_700_000_000)

    with pytest.raises(slack.SignatureError, match="old"):
        slack.RequestVerifier(SECRET).verify(body, headers)


def test_the_same_signed_request_twice_is_a_replay():
    verifier = slack.RequestVerifier(SECRET)
    body, headers = signed({"type": "block_actions"}, SECRET)
    verifier.verify(body, headers)

    with pytest.raises(slack.SignatureError, match="already received"):
        verifier.verify(body, headers)


def test_users_are_looked_up_once_and_cached(fake):
    directory = slack.SlackDirectory(WebClient(token="xoxb-test", base_url=fake.base_url))

    first = directory.user("UBOB")
    second = directory.user("UBOB")

    assert first == second == slack.SlackUser("UBOB", "bob", "bob@acme.com", "Bob B.", "T0ACME")
    assert fake.calls.count("users.info") == 1


def test_an_unknown_user_is_a_lookup_error(fake):
    directory = slack.SlackDirectory(WebClient(token="xoxb-test", base_url=fake.base_url))

    with pytest.raises(slack.SlackLookupError):
        directory.user("UNOBODY")
    with pytest.raises(slack.SlackLookupError):
        directory.user("<@UBOB>")


@dataclass
class R:
    name: str
    max_duration: timedelta
    default_duration: timedelta
    description: str = ""


def test_modal_durations_stop_at_the_picked_resources_max(fake, cards):
    resources = [
        R("prod-db", timedelta(hours=4), timedelta(hours=1)),
        R("staging-db", timedelta(days=1), timedelta(hours=4)),
    ]

    cards.open_request_modal("1337.42.abcd", resources)
    cards.narrow_request_modal(
        slack.ResourcePicked("UCAROL", "V0MODAL", "h1", "prod-db"), resources
    )

    opened, narrowed = fake.views

    def durations(view):
        (block,) = [b for b in view["blocks"] if b["block_id"] == slack.DURATION_BLOCK]
        return [o["value"] for o in block["element"]["options"]]

    assert durations(opened["view"])[-1] == "1d"
    assert durations(narrowed["view"]) == ["15m", "30m", "1h", "2h", "4h"]


def test_a_modal_submission_decodes_to_resource_duration_and_reason():
    submission = slack.parse_interaction(
        submission_payload("UCAROL", "prod-db", "2h", "fix INC-42")
    )

    assert submission == slack.RequestSubmission(
        "UCAROL", "prod-db", timedelta(hours=2), "fix INC-42"
    )


def test_a_refusal_lands_on_the_field_it_is_about():
    assert set(slack.modal_errors("prod-db allows at most 4h.", "duration")) == {"duration"}
    assert set(slack.modal_errors("Unknown resource `x`.", "resource")) == {"resource"}
    assert set(slack.modal_errors("Say why you need it", "reason")) == {"reason"}
    # The words do not decide: an error about something else goes under the reason.
    assert set(slack.modal_errors("the duration field of db needs a value", "fields")) == {"reason"}


def test_a_policy_channel_may_be_a_name_or_a_slack_channel_link():
    assert slack.channel_of("#access-approvals") == "#access-approvals"
    assert slack.channel_of("<#C0123ABC|access-approvals>") == "C0123ABC"
    assert slack.channel_of("<#G0PRIVATE>") == "G0PRIVATE"
