"""A real bot against a Slack that rate-limits at its published tiers: every message still
arrives (429 waits its Retry-After); a worker that paces a channel is told the wait
instead; a notice that fails for good is told to the admins once, with the fix, and
counted."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from accessbot import messages
from accessbot.delivery import deliver_round
from accessbot.integrations import slack
from accessbot.pacing import Pacer
from accessbot.service import Notice
from tests.slack_fakes import click_payload
from tests.slack_fixtures import CHANNEL, current, has_buttons, shown
from tests.slack_tiers import Limit, SlackTiers, Ticks

PEOPLE = {"UDAVE": "dave", "UERIN": "erin", "UFRANK": "frank", "UGINA": "gina", "UHANK": "hank"}


def granted(bot, fake, user: str) -> tuple[str, dict]:
    before = len(fake.cards(CHANNEL))
    bot.type(user, CHANNEL, "!access request prod-db 30m fixing INC-42")
    card = fake.wait(lambda: fake.cards(CHANNEL)[before:], "the approval card")[0]
    rid = re.search(r"Access request (\w+)", card["text"]).group(1)
    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    fake.wait(lambda: not has_buttons(current(fake, card)), "the grant")
    return rid, card


def granted_unpaced(bot, fake) -> list[tuple[str, dict]]:
    """A grant for each of PEOPLE, made without the bot's pacing (the cards and their
    updates would take a second each in one channel): the setting, not what is tested.
    The bot's pacer is back before the test goes on."""
    pacer, bot.plugin.pacer = bot.plugin.pacer, Pacer(paces={})
    try:
        grants = [granted(bot, fake, user_id) for user_id in PEOPLE]
        assert bot.plugin.deliveries.wait_idle()
    finally:
        bot.plugin.pacer = pacer
    return grants


def counted(bot, name: str) -> dict[tuple, float]:
    body, _ = bot.plugin.metrics.exposition()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    }


def test_grants_ending_together_on_a_rate_limiting_slack_are_all_told(
    start_bot, fake, webhook, clock
):
    for user_id, name in PEOPLE.items():
        fake.users[user_id] = (name, f"{name}@acme.com")
    bot = start_bot("socket")
    grants = granted_unpaced(bot, fake)
    tiers = fake.rate_limit()
    for _ in range(3):  # a burst of clicks just used the channel's posts
        tiers.take("chat.postMessage", CHANNEL)
    # ...and Slack has just told the bot to wait before its next call there: what ends
    # meanwhile queues in the outbox for that channel.
    bot.plugin.pacer.limited(Notice("channel", "#access-approvals", ""), 2.0)

    clock.advance(minutes=30, seconds=1)

    for user_id in PEOPLE:
        fake.wait(lambda u=user_id: any("has expired" in t for t in fake.dms(u)), "a DM")
    for rid, card in grants:
        fake.wait(lambda c=card: "*expired*" in shown(current(fake, c)), f"{rid}'s card")
    # What queued while the channel waited went out as one line; the first notice may
    # have gone alone (in its card's thread) before the rest queued. Each grant is named
    # once, never twice.
    merged = fake.wait(
        lambda: [
            m["text"] for m in fake.posted(CHANNEL) if " grants to prod-db expired" in m["text"]
        ],
        "one line for the grants that queued",
    )
    assert len(merged) == 1
    said = [m["text"] for m in fake.posted(CHANNEL) if "expired and were revoked" in m["text"]]
    for rid, card in grants:
        alone = [m for m in fake.posted(CHANNEL, card["ts"]) if "expired" in m["text"]]
        assert sum(rid in line for line in said) + len(alone) == 1
    # Paced by the bot (or told by Slack's 429 and waited): nothing failed or was lost.
    assert counted(bot, "accessbot_notices_failed_total") == {}


def test_a_paced_delivery_is_told_slacks_retry_after_instead_of_waiting(start_bot, fake):
    bot = start_bot("socket")
    ticks = Ticks()
    tiers = fake.rate_limit(SlackTiers({"chat.postMessage": Limit(60, 1, True)}, ticks))
    notice = Notice("channel", "#access-approvals", "5 grants to prod-db expired")
    assert bot.plugin.deliver_paced(notice).delivered

    refused = bot.plugin.deliver_paced(notice)
    ticks.now += refused.retry_after
    again = bot.plugin.deliver_paced(notice)

    assert (refused.error, refused.retry_after, refused.method) == (
        "ratelimited",
        1.0,
        "chat.postMessage",
    )
    assert not refused.permanent and again.delivered
    assert tiers.limited["chat.postMessage"] == 1  # refused once, not retried in-thread
    assert [m["text"] for m in fake.posted(CHANNEL)].count("5 grants to prod-db expired") == 2
    assert fake.dms("UADMIN") == []


def test_a_paced_dm_refused_by_slack_is_sent_again_not_lost(start_bot, fake):
    bot = start_bot("socket")
    ticks = Ticks()
    fake.rate_limit(SlackTiers({"chat.postMessage": Limit(60, 1, True)}, ticks))
    dm = Notice("user", "<@UCAROL>", "Your access to prod-db has expired.")
    bot.plugin.deliver_paced(dm)

    refused = bot.plugin.deliver_paced(dm)  # errbot's send would only have logged this
    ticks.now += 1
    bot.plugin.deliver_paced(dm)

    assert refused.rate_limited
    assert fake.dms("UCAROL") == ["Your access to prod-db has expired."] * 2


def test_a_dm_whose_conversations_open_is_rate_limited_waits_quietly_and_goes(
    start_bot, fake, caplog
):
    """errbot opens a DM (conversations.open, Tier 3) the first time it writes to a person;
    a 429 there raises: it is an Attempt to wait, logged without a traceback."""
    fake.users["UDAVE"] = ("dave", "dave@acme.com")
    bot = start_bot("socket")
    ticks = Ticks()
    fake.rate_limit(SlackTiers({"conversations.open": Limit(60, 1)}, ticks))
    to_carol = Notice("user", "<@UCAROL>", "Your access to prod-db has expired.")
    to_dave = Notice("user", "<@UDAVE>", "Your access to prod-shell has expired.")
    bot.plugin.deliver_paced(to_carol)

    refused = bot.plugin.deliver_paced(to_dave)  # a second DM to open within the second
    ticks.now += 1
    bot.plugin.deliver_paced(to_dave)

    assert refused.rate_limited and refused.retry_after
    assert fake.dms("UDAVE") == ["Your access to prod-shell has expired."]
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]


def test_a_message_to_an_archived_channel_is_told_to_the_admins_once_and_counted(start_bot, fake):
    bot = start_bot("socket", {"BOT_ADMINS_NOTIFICATIONS": ("<@UADMIN>",)})
    fake.users["UADMIN"] = ("admin", "admin@acme.com")
    fake.archived.add(CHANNEL)
    notice = Notice("channel", "#access-approvals", "3 grants to prod-db expired")

    attempts = [bot.plugin.deliver_paced(notice) for _ in range(3)]

    assert all(a.permanent and a.error == "is_archived" for a in attempts)
    [told] = fake.wait(lambda: fake.dms("UADMIN"), "the admins being told")
    assert "could not be delivered: is_archived" in told
    assert "#access-approvals is archived: unarchive it, or change the resource's" in told
    assert counted(bot, "accessbot_notices_failed_total") == {(("reason", "is_archived"),): 3.0}


def test_a_channel_the_bot_is_not_in_names_the_invite_to_type(start_bot, fake):
    bot = start_bot("socket", {"BOT_ADMINS_NOTIFICATIONS": ("<@UADMIN>",)})
    fake.users["UADMIN"] = ("admin", "admin@acme.com")
    fake.not_member.add(CHANNEL)

    attempt = bot.plugin.deliver_paced(Notice("channel", "#access-approvals", "news"))

    [told] = fake.wait(lambda: fake.dms("UADMIN"), "the admins being told")
    assert attempt.permanent
    assert "in #access-approvals, type /invite @accessbot" in told
    assert counted(bot, "accessbot_notices_failed_total") == {(("reason", "not_in_channel"),): 1.0}


def test_an_outbox_round_merges_a_burst_and_paces_it_without_waiting_in_thread(
    start_bot, fake, webhook, clock
):
    for user_id, name in PEOPLE.items():
        fake.users[user_id] = (name, f"{name}@acme.com")
    bot = start_bot("socket")
    grants = granted_unpaced(bot, fake)
    clock.advance(minutes=30, seconds=1)
    for user_id in PEOPLE:  # the delivery workers have told everyone
        fake.wait(lambda u=user_id: any("has expired" in t for t in fake.dms(u)), "a DM")
    assert bot.plugin.deliveries.wait_idle()
    requests = [bot.plugin.service.store.get(rid) for rid, _ in grants]
    # What the tick said about them, as an outbox would hold it for the channel.
    pending = [
        Notice("channel", "#access-approvals", messages.expired_in_channel(r), r) for r in requests
    ]
    ticks = Ticks()
    tiers = fake.rate_limit(SlackTiers(clock=ticks))
    for _ in range(3):  # a burst of clicks just used the channel's posts
        tiers.take("chat.postMessage", CHANNEL)
    pacer = Pacer(clock=ticks)
    posted = len(fake.posted(CHANNEL))

    rounds = []
    while pending:
        result = deliver_round(pending, pacer, bot.plugin.deliver_paced)
        rounds.append(result)
        for position, rest in result.remaining.items():
            pending[position] = rest
        done = result.delivered | result.failed.keys()
        pending = [n for i, n in enumerate(pending) if i not in done]
        ticks.now += result.retry_in or 0.0

    lines = [m["text"] for m in fake.posted(CHANNEL)[posted:] if not m["thread_ts"]]
    assert lines == [
        "5 grants to prod-db expired and were revoked: "
        + ", ".join(f"@{r.requester} ({r.id})" for r in sorted(requests, key=lambda r: r.requester))
        + "."
        # what the webhook's revoke says of sessions opened before (issue 32), said once
        + " Sessions opened before: unknown (the bot cannot end them or tell how long they last)."
    ]
    assert rounds[0].retry_in == 1.0  # the busy channel: told to wait, nothing slept
    assert tiers.limited["chat.postMessage"] == 1  # refused once, sent after Retry-After
    assert all(not r.failed and not r.errors for r in rounds)
