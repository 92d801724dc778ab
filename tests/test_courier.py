"""A slow chat platform never delays a revocation: the scheduler hands its notices to the
courier's thread and goes on (Slack answering chat.* in seconds delayed an unrelated
expiry by 30 s when the scheduler delivered them itself)."""

from __future__ import annotations

import re

from accessbot.integrations import slack
from tests.slack_fakes import click_payload
from tests.slack_fixtures import CHANNEL, current, has_buttons, request_card


def granted(bot, fake, user: str, text: str) -> str:
    before = len(fake.cards(CHANNEL))
    bot.type(user, CHANNEL, text)
    card = fake.wait(lambda: fake.cards(CHANNEL)[before:], "the approval card")[0]
    rid = re.search(r"Access request (\w+)", card["text"]).group(1)
    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    fake.wait(lambda: not has_buttons(current(fake, card)), "the grant")
    return rid


def test_a_slow_slack_does_not_delay_the_next_revocation(start_bot, fake, webhook, clock):
    bot = start_bot("socket")
    carol, _ = request_card(bot, fake)
    bot.interact(click_payload(slack.APPROVE, carol, "UBOB", _))
    fake.wait(lambda: webhook.count("grant", carol) == 1, "carol's grant")
    mallory = granted(bot, fake, "UMALLORY", "!access request prod-db 40m checking a report")
    seen: dict[str, int] = {}

    def count_chat_calls(call):
        if call["action"] == "revoke" and call["request_id"] == mallory:
            seen["chat calls"] = sum(1 for m in fake.calls if m.startswith("chat."))

    webhook.on_call = count_chat_calls
    fake.chat_delay = 1.0  # each of carol's expiry notices takes a second to post
    chat_before = sum(1 for m in fake.calls if m.startswith("chat."))

    clock.advance(minutes=30, seconds=1)
    fake.wait(lambda: webhook.count("revoke", carol) == 1, "carol's revoke")
    clock.advance(minutes=10)
    fake.wait(lambda: webhook.count("revoke", mallory) == 1, "mallory's revoke")

    # Carol's notices (card update, thread reply, DM) were still going out, one a second,
    # when mallory's access was taken away.
    assert seen["chat calls"] - chat_before < 3
    fake.chat_delay = 0.0
    fake.wait(lambda: any("has expired" in t for t in fake.dms("UMALLORY")), "mallory's DM")
    assert any("has expired" in t for t in fake.dms("UCAROL"))
