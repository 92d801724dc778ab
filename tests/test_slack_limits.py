"""Slack's rate limits: the fake Slack refuses what Slack would (429 + Retry-After), and
every client the bot uses waits the Retry-After and tries again, except on a thread that
paces itself, which is told how long to wait instead."""

from __future__ import annotations

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from accessbot.integrations.slack_groups import SlackGroups
from accessbot.integrations.slack_limits import (
    RateLimitRetry,
    honour_rate_limits,
    rate_limits_reported,
    retry_after,
    slack_calls_watched,
)
from tests.conftest import FakeClock
from tests.fake_slack import TOKEN
from tests.fake_slack import FakeSlack as FakeGroupsSlack
from tests.slack_fakes import FakeSlack
from tests.slack_tiers import Limit, SlackTiers, Ticks


@pytest.fixture
def slack():
    server = FakeSlack(users={"UCAROL": ("carol", "carol@acme.com")}, channels={"ops": "COPS"})
    yield server
    server.close()


def post(fake: FakeSlack, method: str, **args) -> requests.Response:
    return requests.post(
        fake.base_url + method,
        data=args,
        headers={"Authorization": "Bearer xoxb-test"},
        timeout=5,
    )


def client(fake: FakeSlack) -> WebClient:
    return honour_rate_limits(WebClient(token="xoxb-test", base_url=fake.base_url))


# -- the fake: Slack's published tiers ------------------------------------------------------


def test_the_fake_refuses_posts_past_a_short_burst_with_429_and_retry_after(slack):
    clock = Ticks()
    tiers = slack.rate_limit(SlackTiers(clock=clock))

    answers = [post(slack, "chat.postMessage", channel="COPS", text=str(n)) for n in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json() == {"ok": False, "error": "ratelimited"}
    assert answers[3].headers["Retry-After"] == "1"
    assert tiers.limited["chat.postMessage"] == 1
    assert len(slack.posted("COPS")) == 3  # the refused one was not posted


def test_the_fake_paces_posts_per_channel_at_one_a_second(slack):
    clock = Ticks()
    tiers = slack.rate_limit(SlackTiers(clock=clock))
    for n in range(3):
        post(slack, "chat.postMessage", channel="COPS", text=str(n))

    other = post(slack, "chat.postMessage", channel="CDEV", text="another channel")
    clock.now += 1.0
    again = post(slack, "chat.postMessage", channel="COPS", text="a second later")
    too_soon = post(slack, "chat.postMessage", channel="#ops", text="same channel by name")

    assert (other.status_code, again.status_code, too_soon.status_code) == (200, 200, 429)
    assert tiers.limited_in[("chat.postMessage", "COPS")] == 1


def test_the_fake_limits_chat_update_at_tier_3_across_channels(slack):
    clock = Ticks()
    tiers = slack.rate_limit(SlackTiers(clock=clock))
    card = post(slack, "chat.postMessage", channel="COPS", text="card").json()

    answers = [
        post(slack, "chat.update", channel="COPS", ts=card["ts"], text=str(n)).status_code
        for n in range(11)
    ]
    clock.now += 60 / 50  # Tier 3: 50 a minute
    later = post(slack, "chat.update", channel="COPS", ts=card["ts"], text="later")

    assert answers == [200] * 10 + [429]
    assert later.status_code == 200
    assert tiers.limited == {"chat.update": 1}


def test_the_fake_limits_users_info_at_tier_4(slack):
    clock = Ticks()
    tiers = slack.rate_limit(SlackTiers(clock=clock))

    answers = [post(slack, "users.info", user="UCAROL").status_code for _ in range(21)]

    assert answers.count(429) == 1 and answers[-1] == 429
    assert tiers.limited == {"users.info": 1}


def test_the_fake_with_no_limits_takes_every_call(slack):
    answers = [post(slack, "chat.postMessage", channel="COPS", text=str(n)) for n in range(10)]

    assert {a.status_code for a in answers} == {200}


# -- the bot's clients: wait Retry-After, or report it ----------------------------------------


def test_a_users_info_call_refused_once_succeeds_after_retry_after(slack):
    tiers = slack.rate_limit(SlackTiers({"users.info": Limit(per_minute=120, burst=1)}))
    web = client(slack)
    web.users_info(user="UCAROL")

    user = web.users_info(user="UCAROL")  # refused once (Retry-After: 1), then answered

    assert user["user"]["name"] == "carol"
    assert tiers.limited["users.info"] == 1


def test_a_pacing_thread_is_told_the_retry_after_instead_of_waiting(slack):
    clock = Ticks()
    tiers = slack.rate_limit(SlackTiers({"chat.postMessage": Limit(60, 1, True)}, clock))
    web = client(slack)
    web.chat_postMessage(channel="COPS", text="first")

    with rate_limits_reported() as report, pytest.raises(SlackApiError) as refused:
        web.chat_postMessage(channel="COPS", text="second")

    assert (report.retry_after, report.method, report.channel) == (1.0, "chat.postMessage", "COPS")
    assert retry_after(refused.value) == 1.0
    assert tiers.limited["chat.postMessage"] == 1  # asked once: nothing waited, no retry


def test_outside_the_report_block_the_same_client_waits_again(slack):
    slack.rate_limit(SlackTiers({"chat.postMessage": Limit(120, 1, True)}))
    web = client(slack)
    with rate_limits_reported():
        web.chat_postMessage(channel="COPS", text="first")

    web.chat_postMessage(channel="COPS", text="second")  # waits about a second

    assert [m["text"] for m in slack.posted("COPS")] == ["first", "second"]


def test_the_handler_is_added_once_per_client(slack):
    web = WebClient(token="xoxb-test", base_url=slack.base_url)

    honour_rate_limits(honour_rate_limits(web))

    assert sum(isinstance(h, RateLimitRetry) for h in web.retry_handlers) == 1
    assert honour_rate_limits(None) is None


def test_an_error_that_is_not_a_429_has_no_retry_after(slack):
    with pytest.raises(SlackApiError) as refused:
        client(slack).users_info(user="UNOBODY")

    assert retry_after(refused.value) is None


def test_a_slack_group_lookup_refused_once_is_answered_after_retry_after():
    groups_slack = FakeGroupsSlack()
    try:
        groups_slack.add_group("S0SRE", "sre-team", ["U0ALICE"])
        tiers = SlackTiers({"usergroups.list": Limit(per_minute=120, burst=1)})
        groups_slack.tiers = tiers
        tiers.take("usergroups.list")  # someone else just listed the groups
        web = WebClient(token=TOKEN, base_url=groups_slack.url)  # as the backend makes it

        members = SlackGroups(web, FakeClock()).members("@sre-team")

        assert members == ["U0ALICE"]
        assert tiers.limited["usergroups.list"] == 1
    finally:
        groups_slack.close()


def test_a_pacing_thread_sees_slack_errors_errbot_would_swallow(slack):
    slack.not_member.add("COPS")
    web = client(slack)

    with slack_calls_watched() as answers, pytest.raises(SlackApiError):
        web.chat_postMessage(channel="COPS", text="hello")

    assert answers.errors == ["not_in_channel"]


def test_a_429_waited_out_in_thread_is_no_error_of_the_call(slack):
    slack.rate_limit(SlackTiers({"chat.postMessage": Limit(120, 1, True)}))
    web = client(slack)
    web.chat_postMessage(channel="COPS", text="first")

    with slack_calls_watched() as answers:
        web.chat_postMessage(channel="COPS", text="second")  # refused once, then taken

    assert answers.refused == 1 and answers.errors == []


@pytest.mark.parametrize("status", [200, 500])
def test_a_200_mb_answer_from_slack_is_not_read_past_the_cap(status):
    from slack_sdk.errors import SlackRequestError

    from tests.fake_sinks import HugeAnswer

    huge = HugeAnswer(200 * 1024 * 1024, status, prefix=b'{"ok": true, "x": "', suffix=b'"}')
    try:
        client = honour_rate_limits(WebClient(token="xoxb-test", base_url=huge.url + "/api/"))

        with pytest.raises(SlackRequestError, match="more than 2097152 bytes"):
            client.users_info(user="UCAROL")

        assert huge.sent < 50 * 1024 * 1024
    finally:
        huge.close()
