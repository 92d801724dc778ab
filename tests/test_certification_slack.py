"""Access certification on Slack: the real plugin on errbot's SlackV3 backend code and the
fake Slack Web API. A certification is a message with Keep / Remove buttons per item
(paged within Block Kit's 50 blocks); a reviewer's click opens a modal with an optional
note, whose submission decides and updates the page; a click by anyone else is refused
privately."""

from __future__ import annotations

import json

import pytest

from accessbot.integrations import slack
from tests.slack_fakes import click_payload
from tests.slack_fixtures import CHANNEL, current, shown

CERTIFY = {"every": "90d", "deadline": "7d"}
MALLORY = {"user": "mallory", "user_email": "mallory@acme.com", "account": "db-mallory"}
DAVE = {"user": "dave", "user_email": "dave@acme.com", "account": "db-dave"}


def certification_messages(fake) -> list[dict]:
    return [
        m
        for m in fake.cards(CHANNEL)
        if any(
            e.get("action_id") == slack.CERTIFY_KEEP
            for b in m["blocks"]
            for e in b.get("elements", [])
        )
        or "Access certification" in m["text"]
    ]


def item_buttons(message: dict) -> dict[str, str]:
    """Item id -> the member it names, for the items that still have buttons."""
    found = {}
    for block in message["blocks"]:
        if block["type"] == "actions":
            item = block["elements"][0]["value"]
            text = next(b for b in message["blocks"] if b.get("block_id") == f"certify:{item}")
            found[item] = text["text"]["text"]
    return found


def note_submission(view: dict, user_id: str, note: str) -> dict:
    """A `view_submission` of the note modal the bot opened, with `note` typed in."""
    return {
        "type": "view_submission",
        "team": {"id": "T0ACME"},
        "user": {"id": user_id, "team_id": "T0ACME"},
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "hash": "h1",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    slack.CERTIFY_NOTE_BLOCK: {"note": {"type": "plain_text_input", "value": note}}
                }
            },
        },
    }


def submitted(bot, fake, payload: dict) -> dict:
    """What the bot answered a submission with: the socket-mode ack's payload, or the
    HTTP response's JSON body (signed like Slack's); {} for a plain acknowledgement."""
    if bot.mode == "http":
        response = bot.interact(payload)
        assert response.status_code == 200, response.text
        return response.json() if response.text else {}
    envelope = bot.enqueue("interactive", payload)
    return fake.wait(lambda: bot.acks(envelope), "the acknowledgement")[0].get("payload") or {}


def decided_events(tmp_path) -> list[dict]:
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "certification_decided"]


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_a_reviewers_click_opens_a_note_whose_submission_decides_a_strangers_is_refused(
    start_bot, fake, webhook, tmp_path, mode
):
    webhook.members = [MALLORY, DAVE]
    bot = start_bot(mode, certify=CERTIFY)
    [message] = fake.wait(lambda: certification_messages(fake), "the certification's message")
    buttons = item_buttons(message)
    assert len(buttons) == 2
    [mallory] = [i for i, text in buttons.items() if "@mallory" in text]
    bot.interact(click_payload(slack.CERTIFY_KEEP, mallory, "UCAROL", message))
    refusal = fake.wait(lambda: fake.ephemeral_to("UCAROL"), "carol's refusal")[0]
    assert "Only the reviewers of certification" in refusal
    assert fake.views == []  # no note modal for someone who may not decide

    bot.interact(click_payload(slack.CERTIFY_REMOVE, mallory, "UALICE", message))
    [opened] = fake.wait(lambda: fake.views, "the note modal")
    assert opened["method"] == "views.open" and opened["trigger_id"] == "1337.42.abcd"
    assert "Remove" in repr(opened["view"]["blocks"]) and "@mallory" in repr(opened["view"])
    assert mallory in item_buttons(current(fake, message))  # nothing decided by the click
    assert webhook.count_all("revoke") == 0

    # Carol replaying alice's modal is refused on the form, privately; nothing is decided.
    refused = submitted(bot, fake, note_submission(opened["view"], "UCAROL", "mine now"))
    assert refused["response_action"] == "errors"
    assert "Only the reviewers" in refused["errors"][slack.CERTIFY_NOTE_BLOCK]
    assert webhook.count_all("revoke") == 0

    decided = submitted(
        bot, fake, note_submission(opened["view"], "UALICE", "left the DB team in May")
    )
    assert "errors" not in decided

    fake.wait(lambda: mallory not in item_buttons(current(fake, message)), "the page updated")
    assert "Removed by @alice: left the DB team in May" in shown(current(fake, message))
    assert [c["account"] for c in webhook.calls if c["action"] == "revoke"] == ["db-mallory"]
    answer = fake.wait(lambda: fake.ephemeral_to("UALICE"), "alice's answer")[0]
    assert answer.startswith("Removed @mallory")
    [event] = fake.wait(lambda: decided_events(tmp_path), "the audit event")
    assert (event["actor"], event["decision"], event["detail"]) == (
        "@alice",
        "remove",
        "left the DB team in May",
    )
    channel = fake.wait(
        lambda: [m for m in fake.posted(CHANNEL) if "left the DB team in May" in m["text"]],
        "the channel told, with the note",
    )
    assert "removed by @alice" in channel[0]["text"]


@pytest.mark.parametrize(
    "metadata", ["not json", '{"item": "abc234", "decision": "approve"}', '{"decision": "keep"}']
)
def test_a_note_submission_not_shaped_like_ours_is_refused_with_400(start_bot, fake, metadata):
    bot = start_bot("http")
    view = {"callback_id": slack.CERTIFY_NOTE_MODAL, "private_metadata": metadata}

    response = bot.interact(note_submission(view, "UALICE", "a note"))

    assert response.status_code == 400
    assert fake.views == [] and fake.ephemeral_to("UALICE") == []


def test_pages_slack_refused_at_opening_are_posted_by_the_outbox_once(
    start_bot, fake, webhook, clock
):
    webhook.members = [MALLORY, DAVE]
    refused = []

    def refuse_the_first_page(method: str, args: dict) -> str | None:
        page = method == "chat.postMessage" and "Access certification" in str(args.get("text"))
        if page and not refused:
            refused.append(args["text"])
            return "internal_error"
        return None

    fake.refuse = refuse_the_first_page
    start_bot("socket", certify=CERTIFY)
    fake.wait(lambda: refused, "Slack refusing the page")
    fake.wait(lambda: [m for m in fake.posted(CHANNEL) if "ACCESS CERTIFICATION" in m["text"]],
              "the text message")  # fmt: skip

    def posted_again():
        clock.advance(seconds=15)  # past the outbox's backoff, whenever it was set
        return certification_messages(fake)

    [message] = fake.wait(posted_again, "the page, posted again")
    assert len(item_buttons(message)) == 2
    clock.advance(minutes=10)
    assert len(certification_messages(fake)) == 1  # posted once


def test_pages_not_posted_before_the_bot_stopped_are_posted_after_its_restart(
    start_bot, fake, webhook, clock
):
    webhook.members = [MALLORY, DAVE]
    refused = []

    def refuse_pages(method: str, args: dict) -> str | None:
        if method == "chat.postMessage" and "Access certification" in str(args.get("text")):
            refused.append(args["text"])
            return "internal_error"
        return None

    fake.refuse = refuse_pages
    first = start_bot("socket", certify=CERTIFY)
    fake.wait(lambda: refused, "Slack refusing the page")
    first.stop()  # with the pages still to post: only the outbox remembers them
    assert certification_messages(fake) == []

    fake.refuse = None
    start_bot("socket")

    def posted():
        clock.advance(seconds=15)  # past the outbox's backoff of the refused try
        return certification_messages(fake)

    [message] = fake.wait(posted, "the page, after the restart")
    assert len(item_buttons(message)) == 2


def test_a_certification_of_500_members_is_paged_within_block_kits_limits(start_bot, fake, webhook):
    webhook.members = [
        {"user": f"u{n}", "user_email": f"u{n}@acme.com", "account": f"db-{n}"} for n in range(500)
    ]
    start_bot("socket", certify=CERTIFY)
    pages = fake.wait(
        lambda: len(certification_messages(fake)) >= 21 and certification_messages(fake),
        "every page posted",
        timeout=60,
    )
    assert len(pages) == 21
    assert max(len(p["blocks"]) for p in pages) <= 50
    assert sum(len(item_buttons(p)) for p in pages) == 500
    sizes = [len(repr(p["blocks"])) for p in pages]
    print(f"500 members: {len(pages)} messages, largest {max(sizes)} characters of blocks")
