"""Access certification on Slack: the real plugin on errbot's SlackV3 backend code and the
fake Slack Web API. A certification is a message with Keep / Remove buttons per item
(paged within Block Kit's 50 blocks); a reviewer's click decides and updates the page; a
click by anyone else is refused privately."""

from __future__ import annotations

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


def test_a_reviewers_click_decides_and_updates_the_message_a_strangers_is_refused(
    start_bot, fake, webhook
):
    webhook.members = [MALLORY, DAVE]
    bot = start_bot("socket", certify=CERTIFY)
    [message] = fake.wait(lambda: certification_messages(fake), "the certification's message")
    buttons = item_buttons(message)
    assert len(buttons) == 2
    [mallory] = [i for i, text in buttons.items() if "@mallory" in text]
    bot.interact(click_payload(slack.CERTIFY_KEEP, mallory, "UCAROL", message))
    refusal = fake.wait(lambda: fake.ephemeral_to("UCAROL"), "carol's refusal")[0]
    assert "Only the reviewers of certification" in refusal
    assert webhook.count_all("revoke") == 0

    bot.interact(click_payload(slack.CERTIFY_REMOVE, mallory, "UALICE", message))

    fake.wait(lambda: mallory not in item_buttons(current(fake, message)), "the page updated")
    assert "Removed by @alice" in shown(current(fake, message))
    assert [c["account"] for c in webhook.calls if c["action"] == "revoke"] == ["db-mallory"]
    answer = fake.wait(lambda: fake.ephemeral_to("UALICE"), "alice's answer")[0]
    assert answer.startswith("Removed @mallory")


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
