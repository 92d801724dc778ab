"""On Slack, who speaks is the user id Slack vouches for, never a name (issue 15).

Each test here reproduces a way found to act as someone else: an integration posting
under a chosen `username`, a failed users.info lookup, an id entry matching a look-alike
name, a user of another team, a rename. All go through the real SlackV3 backend code and
the real plugin (tests/slack_harness.py) against the fake Slack Web API.
"""

from __future__ import annotations

import re

import pytest

from accessbot.integrations import slack
from tests.slack_fakes import click_payload
from tests.slack_fixtures import CHANNEL, current, has_buttons, request_card


def answered(bot, fake, text: str, user="UCAROL") -> list[dict]:
    """`user` types `text` in the channel; wait for the bot's answer to it."""
    before = len(fake.posted(CHANNEL))
    bot.type(user, CHANNEL, text)
    return fake.wait(
        lambda: [m for m in fake.posted(CHANNEL)[before:] if not m["blocks"]],
        f"an answer to {text}",
    )


def status(bot, rid: str) -> str:
    return bot.plugin.service.store.get(rid).status.value


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_an_integration_posting_as_alice_cannot_approve(start_bot, fake, webhook, mode):
    bot = start_bot(mode)
    rid, card = request_card(bot, fake)

    bot.post_as_integration("B0HOOK", "alice", CHANNEL, f"!approve {rid}")
    answered(bot, fake, "!access mine")  # a later command was answered: the first was seen

    assert status(bot, rid) == "pending"
    assert webhook.actions() == []
    assert has_buttons(current(fake, card))


def test_an_integration_posting_as_an_admin_cannot_reload(start_bot, fake):
    bot = start_bot("socket", config={"BOT_ADMINS": ("@admin", "UADMIN")})

    bot.post_as_integration("B0HOOK", "admin", CHANNEL, "!access reload")
    answered(bot, fake, "!access mine")

    assert not any("Reloaded" in m["text"] for m in fake.posted())
    assert "policy_reload" not in open_audit(bot)


def open_audit(bot) -> str:
    from pathlib import Path

    path = Path(bot.plugin.settings.audit_path)
    return path.read_text() if path.exists() else ""


def test_an_edited_message_is_not_a_command(start_bot, fake, webhook):
    bot = start_bot("socket")
    rid, _ = request_card(bot, fake)

    bot.send_event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CHANNEL,
            "message": {"user": "UBOB", "text": f"!approve {rid}"},
            "ts": "1700000600.000001",
        }
    )
    answered(bot, fake, "!access mine")

    assert status(bot, rid) == "pending"


def test_when_slack_cannot_confirm_who_someone_is_their_command_is_refused(
    start_bot, fake, webhook
):
    bot = start_bot("socket")
    rid, _ = request_card(bot, fake)
    # users.info answers the backend once, then fails: the plugin's own lookup fails.
    fake.broken_users["UBOB"] = 1

    (reply,) = answered(bot, fake, f"!approve {rid}", user="UBOB")

    assert "could not confirm who you are" in reply["text"]
    assert status(bot, rid) == "pending" and webhook.actions() == []


def test_a_click_by_someone_slack_cannot_confirm_is_refused(start_bot, fake, webhook):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)
    fake.broken_users["UBOB"] = 0

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))

    (answer,) = fake.wait(lambda: fake.ephemeral_to("UBOB"), "bob's answer")
    assert "could not confirm who you are" in answer
    assert status(bot, rid) == "pending"


def test_an_id_entry_never_matches_a_user_named_like_it(start_bot, fake, webhook):
    fake.users["UMAL2"] = ("ualice", "mallory2@acme.com")
    bot = start_bot("socket", approvers=["UALICE"])
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UMAL2", card))
    (answer,) = fake.wait(lambda: fake.ephemeral_to("UMAL2"), "the look-alike's answer")
    assert "Only the approvers" in answer
    assert status(bot, rid) == "pending"

    bot.interact(click_payload(slack.APPROVE, rid, "UALICE", card))
    fake.wait(lambda: status(bot, rid) == "active", "alice's approval granting")


def test_a_user_of_another_team_named_alice_cannot_approve(start_bot, fake, webhook):
    fake.users["UEXT1"] = ("alice", "alice@partner.example", "T0PARTNER")
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    (reply,) = answered(bot, fake, f"!approve {rid}", user="UEXT1")
    assert "only from people in its own Slack workspace" in reply["text"]

    click = click_payload(slack.APPROVE, rid, "UEXT1", card)
    click["user"]["team_id"] = "T0PARTNER"
    bot.interact(click)
    (answer,) = fake.wait(lambda: fake.ephemeral_to("UEXT1"), "the outsider's answer")
    assert "only from people in its own Slack workspace" in answer
    assert status(bot, rid) == "pending" and webhook.actions() == []


def test_an_allowed_partner_team_may_act_but_a_name_still_decides_nothing(start_bot, fake, webhook):
    fake.users["UEXT1"] = ("alice", "alice@partner.example", "T0PARTNER")
    bot = start_bot("socket", config={"ACCESS_SLACK_ALLOWED_TEAMS": ["T0PARTNER"]})
    rid, card = request_card(bot, fake)

    (reply,) = answered(bot, fake, f"!approve {rid}", user="UEXT1")

    assert "Only the approvers of prod-db" in reply["text"]
    assert status(bot, rid) == "pending"


def test_a_rename_after_the_request_changes_nobody_who_may_decide(start_bot, fake, webhook):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)
    # alice takes a new name and mallory takes hers.
    fake.users["UALICE"] = ("alice-on-leave", "alice@acme.com")
    fake.users["UMALLORY"] = ("alice", "mallory@acme.com")

    bot.interact(click_payload(slack.APPROVE, rid, "UMALLORY", card))
    (answer,) = fake.wait(lambda: fake.ephemeral_to("UMALLORY"), "mallory's answer")
    assert "Only the approvers" in answer
    assert status(bot, rid) == "pending"

    bot.interact(click_payload(slack.APPROVE, rid, "UALICE", card))
    fake.wait(lambda: status(bot, rid) == "active", "alice's approval under her new name")


def test_one_person_cannot_meet_a_quorum_of_two_by_click_and_by_typing(start_bot, fake, webhook):
    bot = start_bot("socket", approvals_required=2)
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UALICE", card))
    fake.wait(lambda: fake.ephemeral_to("UALICE"), "alice's first answer")
    (reply,) = answered(bot, fake, f"!approve {rid}", user="UALICE")

    assert "You already approved" in reply["text"]
    assert status(bot, rid) == "pending"
    approvals = bot.plugin.service.store.get(rid).approvals
    assert [(a.by, a.by_id) for a in approvals] == [("alice", "UALICE")]


def test_the_request_keeps_the_approvers_user_ids(start_bot, fake):
    bot = start_bot("socket", approvers=["@alice", "bob@acme.com", "UCAROL", "@nobody-here"])
    rid, card = request_card(bot, fake)

    request = bot.plugin.service.store.get(rid)
    assert request.requester_id == "UCAROL"
    assert request.approver_ids == ["UALICE", "UBOB", "UCAROL"]
    assert any("@nobody-here: no such user" in n for n in request.notes)


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_an_interaction_sent_for_another_slack_app_is_refused(
    start_bot, fake, webhook, mode, caplog
):
    """Issue 15: interactions of another `api_app_id` than the bot's own (auth.test's
    app_id) are refused, whoever clicked: they were not made on this app's cards."""
    bot = start_bot(mode)
    rid, card = request_card(bot, fake)
    click = click_payload(slack.APPROVE, rid, "UALICE", card)
    click["api_app_id"] = "A0OTHERAPP"

    with caplog.at_level("WARNING"):
        if mode == "http":
            assert bot.interact(click).status_code == 403
        else:
            envelope = bot.enqueue("interactive", click)
            fake.wait(lambda: bot.acks(envelope), "the envelope's acknowledgement")
    assert any("A0OTHERAPP" in r.getMessage() for r in caplog.records)
    assert status(bot, rid) == "pending" and webhook.actions() == []

    bot.interact(click_payload(slack.APPROVE, rid, "UALICE", card))  # this app's own card
    fake.wait(lambda: status(bot, rid) == "active", "alice's approval on this app's card")


KELVIN = "\u212a"  # KELVIN SIGN: NFKC makes it "K", and .lower() made it "k"


def test_a_look_alike_name_does_not_take_over_a_handle_once_its_owner_has_left(
    start_bot, fake, webhook
):
    fake.users["UKARL"] = ("karl", "karl@acme.com")
    fake.users["UMALLORY"] = (KELVIN + "arl", "mallory@acme.com")
    fake.deleted.add("UKARL")  # the real karl has left the workspace
    bot = start_bot("socket", approvers=["@karl", "@alice"])
    rid, card = request_card(bot, fake)

    assert bot.plugin.service.store.get(rid).approver_ids == ["UALICE"]
    bot.interact(click_payload(slack.APPROVE, rid, "UMALLORY", card))
    (answer,) = fake.wait(lambda: fake.ephemeral_to("UMALLORY"), "the look-alike's answer")
    assert "Only the approvers" in answer
    assert status(bot, rid) == "pending"


def test_a_look_alike_beside_the_real_user_makes_the_handle_name_nobody(start_bot, fake):
    fake.users["UKARL"] = ("karl", "karl@acme.com")
    fake.users["UMALLORY"] = ("KARL".replace("K", KELVIN), "mallory@acme.com")
    bot = start_bot("socket", approvers=["@karl", "@alice"])
    rid, _card = request_card(bot, fake)

    request = bot.plugin.service.store.get(rid)
    assert request.approver_ids == ["UALICE"]
    assert any("@karl" in note for note in request.notes)


def test_a_look_alike_name_is_shown_as_the_user_id_not_as_the_name_it_imitates(start_bot, fake):
    fake.users["UMALLORY"] = (KELVIN + "arl", "mallory@acme.com")
    bot = start_bot("socket")
    before = len(fake.cards(CHANNEL))

    bot.type("UMALLORY", CHANNEL, "!access request prod-db 30m fixing INC-42")

    (card,) = fake.wait(lambda: fake.cards(CHANNEL)[before:], "the approval card")
    rid = re.search(r"Access request (\w+)", card["text"]).group(1)
    request = bot.plugin.service.store.get(rid)
    assert (request.requester, request.requester_id) == ("umallory", "UMALLORY")
    assert "karl" not in card["text"].lower() and KELVIN not in card["text"]
