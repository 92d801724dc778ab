"""Slack end to end: the real plugin on errbot's real SlackV3 backend code, a fake Slack
Web API on 127.0.0.1, clicks and forms delivered by Socket Mode or signed HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from accessbot.integrations import slack
from tests.slack_fakes import click_payload, signed, submission_payload
from tests.slack_fixtures import CHANNEL, current, has_buttons, request_card, shown
from tests.slack_harness import SECRET

# -- approve, deny, strangers ----------------------------------------------------------------


def test_approve_click_grants_updates_the_card_and_tells_everyone(start_bot, fake, webhook, clock):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)
    assert has_buttons(card) and "fixing INC-42" in shown(card)

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))

    fake.wait(lambda: not has_buttons(current(fake, card)), "the card losing its buttons")
    assert "*Approved* by @bob" in shown(current(fake, card))
    assert fake.wait(lambda: fake.ephemeral_to("UBOB"), "bob's answer")[0].startswith(
        f"Approved {rid}"
    )
    fake.wait(lambda: any("approved by @bob" in t for t in fake.dms("UCAROL")), "carol's DM")
    assert webhook.actions() == [("grant", rid)]
    assert webhook.calls[0]["user_email"] == "carol@acme.com"  # from carol's Slack profile

    clock.advance(minutes=30, seconds=1)
    fake.wait(lambda: "*expired*" in shown(current(fake, card)), "the card showing the expiry")
    fake.wait(
        lambda: any(
            "expired and was revoked" in m["text"] for m in fake.posted(CHANNEL, card["ts"])
        ),
        "the expiry in the card's thread",
    )
    fake.wait(lambda: any("has expired" in t for t in fake.dms("UCAROL")), "carol's expiry DM")


def test_deny_click_over_http_denies_and_tells_the_requester(start_bot, fake, webhook):
    bot = start_bot("http")
    rid, card = request_card(bot, fake)

    response = bot.interact(click_payload(slack.DENY, rid, "UALICE", card))

    assert response.status_code == 200
    fake.wait(
        lambda: "*Denied* by @alice" in shown(current(fake, card)), "the card showing the denial"
    )
    assert not has_buttons(current(fake, card))
    fake.wait(lambda: any("denied by @alice" in t for t in fake.dms("UCAROL")), "carol's DM")
    assert webhook.actions() == []


def test_a_strangers_click_changes_nothing_and_explains_privately(start_bot, fake, webhook):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UMALLORY", card))

    (answer,) = fake.wait(lambda: fake.ephemeral_to("UMALLORY"), "mallory's answer")
    assert "Only the approvers of prod-db" in answer
    assert has_buttons(current(fake, card)) and fake.updates == []
    assert webhook.actions() == []
    assert fake.dms("UCAROL") == []


def test_the_requesters_own_click_is_refused(start_bot, fake, webhook):
    bot = start_bot("socket", approvers=["@alice", "@bob", "@carol"])
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UCAROL", card))

    (answer,) = fake.wait(lambda: fake.ephemeral_to("UCAROL"), "carol's answer")
    assert "cannot approve your own request" in answer
    assert webhook.actions() == []


def test_a_double_click_grants_once(start_bot, fake, webhook):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))

    answers = fake.wait(
        lambda: len(fake.ephemeral_to("UBOB")) == 2 and fake.ephemeral_to("UBOB"), "two answers"
    )
    assert sum(a.startswith(f"Approved {rid}") for a in answers) == 1
    assert any("already approved" in a for a in answers)
    assert webhook.actions() == [("grant", rid)]


def test_with_two_approvals_needed_the_card_counts_and_keeps_its_buttons(start_bot, fake, webhook):
    bot = start_bot("socket", approvals_required=2)
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    fake.wait(lambda: "1 of 2 approvals so far (@bob)" in shown(current(fake, card)), "the count")
    assert has_buttons(current(fake, card)) and webhook.actions() == []

    bot.interact(click_payload(slack.APPROVE, rid, "UALICE", card))
    fake.wait(lambda: "*Approved* by @bob, @alice" in shown(current(fake, card)), "the approval")
    assert not has_buttons(current(fake, card))
    fake.wait(lambda: webhook.actions() == [("grant", rid)], "the grant")


@pytest.mark.parametrize("listed_as", ["@bob", "UBOB", "bob@acme.com"])
def test_an_approver_listed_by_handle_id_or_email_can_click(start_bot, fake, webhook, listed_as):
    bot = start_bot("socket", approvers=[listed_as])
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))

    fake.wait(lambda: webhook.actions() == [("grant", rid)], "the grant")


def test_typed_approve_on_slack_updates_the_card_too(start_bot, fake, webhook):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    bot.type("UBOB", CHANNEL, f"!approve {rid} ok")

    fake.wait(lambda: "*Approved* by @bob: ok" in shown(current(fake, card)), "the card update")
    assert webhook.actions() == [("grant", rid)]


# -- socket-mode acknowledgements and HTTP signatures ------------------------------------------


def test_socket_mode_clicks_are_acknowledged(start_bot, fake):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    envelope = bot.enqueue("interactive", click_payload(slack.APPROVE, rid, "UBOB", card))

    acks = fake.wait(lambda: bot.acks(envelope), "the acknowledgement")
    assert acks[0] == {"envelope_id": envelope}


def test_a_forged_click_is_refused_with_401(start_bot, fake, webhook):
    bot = start_bot("http")
    rid, card = request_card(bot, fake)
    body, headers = signed(click_payload(slack.APPROVE, rid, "UBOB", card), "not-the-secret")
    response = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)

    assert response.status_code == 401
    assert webhook.actions() == [] and fake.updates == [] and fake.ephemerals == []


def test_a_stale_or_replayed_click_is_refused_with_401(start_bot, fake, webhook):
    bot = start_bot("http")
    rid, card = request_card(bot, fake)
    payload = click_payload(slack.APPROVE, rid, "UBOB", card)

    stale = bot.interact(payload, timestamp=int(time.time()) - 600)
    assert stale.status_code == 401

    body, headers = signed(payload, SECRET)
    first = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)
    replay = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)
    assert (first.status_code, replay.status_code) == (200, 401)
    fake.wait(lambda: webhook.actions() == [("grant", rid)], "the one grant")


def test_a_signed_click_that_is_not_a_slack_payload_is_refused_with_400(start_bot, fake):
    bot = start_bot("http")
    body = b"text=hello"
    headers = {**bot.sign_raw(body), "Content-Type": "application/x-www-form-urlencoded"}

    response = requests.post(bot.url("/slack/interactive"), data=body, headers=headers, timeout=10)

    assert response.status_code == 400


# -- the request form -------------------------------------------------------------------------


def test_access_request_without_arguments_offers_the_form_and_opens_it(start_bot, fake):
    bot = start_bot("socket")

    bot.type("UCAROL", CHANNEL, "!access request")
    (offer,) = fake.wait(
        lambda: [e for e in fake.ephemerals if e["user"] == "UCAROL"], "the form offer"
    )
    button = offer["blocks"][0]["accessory"]
    assert button["action_id"] == slack.OPEN_FORM

    bot.interact(
        {
            "type": "block_actions",
            "user": {"id": "UCAROL"},
            "trigger_id": "42.42.abc",
            "actions": [{"action_id": slack.OPEN_FORM, "value": "open"}],
        }
    )

    (opened,) = fake.wait(lambda: fake.views, "views.open")
    assert fake.calls.count("chat.postEphemeral") == 1
    assert opened["trigger_id"] == "42.42.abc"
    assert [b["block_id"] for b in opened["view"]["blocks"]] == ["resource", "duration", "reason"]


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_a_too_long_duration_on_the_form_is_refused_on_the_form(start_bot, fake, mode):
    bot = start_bot(mode)
    payload = submission_payload("UCAROL", "prod-db", "8h", "fixing INC-42")

    if mode == "http":
        answer = bot.interact(payload).json()
    else:
        envelope = bot.enqueue("interactive", payload)
        answer = fake.wait(lambda: bot.acks(envelope), "the acknowledgement")[0]["payload"]

    assert answer["response_action"] == "errors"
    assert "at most 4h" in answer["errors"]["duration"]
    assert fake.cards(CHANNEL) == []


def test_a_good_form_makes_the_same_request_as_typing(start_bot, fake):
    bot = start_bot("http")

    response = bot.interact(submission_payload("UCAROL", "prod-db", "2h", "fixing INC-42"))

    assert response.status_code == 200 and response.text == ""
    (card,) = fake.wait(lambda: fake.cards(CHANNEL), "the approval card")
    assert "2h" in shown(card) and "@carol" in shown(card)
    fake.wait(lambda: any("created" in t for t in fake.dms("UCAROL")), "carol's confirmation DM")


# -- restarts ---------------------------------------------------------------------------------


def test_the_card_is_still_updated_after_a_restart(start_bot, fake, webhook, clock):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)
    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    fake.wait(lambda: webhook.actions() == [("grant", rid)], "the grant")
    bot.stop()

    start_bot("socket")
    clock.advance(minutes=31)

    fake.wait(lambda: "*expired*" in shown(current(fake, card)), "the same card showing the expiry")
