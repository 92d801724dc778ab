"""The pacer: when the next chat call to each channel may go, from the sends made and the
waits Slack asked for. Time is a number the test moves; nothing sleeps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from accessbot.pacing import OPEN, POST, UPDATE, Pace, Pacer, slack_calls
from accessbot.service import Notice
from tests.builders import a_request
from tests.slack_tiers import SlackTiers, Ticks

CARD = {"channel": "CAPPROVALS", "ts": "1700000000.000001"}


def channel_notice(to="#ops", card=True, kind="text", **request):
    return Notice(
        "channel", to, "news", a_request(card_ref=CARD if card else None, **request), kind
    )


def dm(to="@carol"):
    return Notice("user", to, "your access expired")


def test_the_first_post_to_a_channel_goes_at_once_and_the_next_a_second_later():
    clock = Ticks()
    pacer = Pacer(clock=clock)

    first = pacer.wait(dm())
    pacer.sent(dm())

    assert (first, pacer.wait(dm())) == (0.0, 1.0)


def test_channels_are_paced_apart():
    clock = Ticks()
    pacer = Pacer(clock=clock)
    pacer.sent(dm("@carol"))

    assert pacer.wait(dm("@dave")) == 0.0


def test_a_second_later_the_channel_may_post_again():
    clock = Ticks()
    pacer = Pacer(clock=clock)
    pacer.sent(dm())
    clock.now += 1.0

    assert pacer.wait(dm()) == 0.0


def test_card_updates_share_one_budget_across_channels_with_a_short_burst():
    clock = Ticks()
    pacer = Pacer({UPDATE: Pace(per_minute=60, burst=2, per_channel=False)}, clock)
    update = channel_notice("#ops", kind="card")

    pacer.sent(update)
    burst_left = pacer.wait(channel_notice("#dev", kind="card"))
    pacer.sent(channel_notice("#dev", kind="card"))

    assert (burst_left, pacer.wait(update)) == (0.0, 1.0)


def test_a_notice_on_a_card_is_an_update_and_a_thread_post():
    assert slack_calls(channel_notice()) == [UPDATE, POST]
    assert slack_calls(channel_notice(kind="card")) == [UPDATE]
    assert slack_calls(channel_notice(kind="card", earlier_cards=[CARD])) == [UPDATE, UPDATE]
    assert slack_calls(channel_notice(card=False, kind="card")) == [POST]
    assert slack_calls(dm()) == [OPEN, POST]


def test_a_retry_after_for_opening_a_dm_holds_every_dm_and_nothing_else():
    """Slack refusing one conversations.open (Tier 3, per workspace) would refuse the
    next DM's too: they all wait it out instead of each asking and being refused."""
    clock = Ticks()
    pacer = Pacer(clock=clock)
    assert pacer.wait(dm("@dave")) == 0.0  # not paced ahead: most DMs are open already

    pacer.limited(dm("@carol"), 3.0, OPEN)

    assert pacer.wait(dm("@dave")) == pacer.wait(dm("@erin")) == 3.0
    assert pacer.wait(channel_notice("#ops")) == 0.0
    clock.now += 3.0
    assert pacer.wait(dm("@dave")) == 0.0


def test_a_retry_after_from_slack_holds_that_channel_and_method_only():
    clock = Ticks()
    pacer = Pacer(clock=clock)

    pacer.limited(dm("@carol"), 30.0, POST)

    assert pacer.wait(dm("@carol")) == 30.0
    assert pacer.wait(dm("@dave")) == 0.0
    clock.now += 30.0
    assert pacer.wait(dm("@carol")) == 0.0


def test_a_retry_after_without_a_method_holds_every_call_of_the_notice():
    clock = Ticks()
    pacer = Pacer(clock=clock)

    pacer.limited(channel_notice("#ops"), 5.0)

    assert pacer.wait(channel_notice("#ops", kind="card")) == 5.0  # the update waits too


def test_more_calls_than_a_burst_in_one_notice_still_go_in_the_end():
    clock = Ticks()
    pacer = Pacer({UPDATE: Pace(per_minute=60, burst=2, per_channel=False)}, clock)
    escalated = channel_notice(kind="card", earlier_cards=[CARD, CARD, CARD])

    assert pacer.wait(escalated) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["#ops", "#dev", "@carol"]), st.floats(0, 3)),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.floats(0, 10), max_size=5),
)
def test_a_worker_that_sends_when_told_keeps_to_the_pace_and_always_gets_to_send(sends, refusals):
    clock = Ticks()
    pace = Pace(per_minute=60, burst=3)
    pacer = Pacer({POST: pace}, clock)
    times: dict[str, list[float]] = {}
    blocked: dict[str, float] = {}
    for n, (channel, pause) in enumerate(sends):
        clock.now += pause
        notice = dm(channel)
        if n < len(refusals):
            pacer.limited(notice, refusals[n], POST)
            blocked[channel] = max(blocked.get(channel, 0.0), clock.now + refusals[n])
        wait = pacer.wait(notice)
        clock.now += wait
        assert pacer.wait(notice) == 0.0  # waiting as told is always enough
        assert clock.now >= blocked.get(channel, 0.0)  # a Retry-After is honoured
        pacer.sent(notice)
        times.setdefault(channel, []).append(clock.now)
    for sent in times.values():  # a burst, then one an interval: what Slack's bucket takes
        for i in range(len(sent)):
            for j in range(i):
                assert sent[i] - sent[j] >= (i - j - (pace.burst - 1)) * pace.interval - 1e-6


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["#ops", "#dev", "@carol"]),
            st.sampled_from(["text", "card"]),
            st.floats(0, 2),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_sends_at_the_pacers_times_are_never_over_slacks_published_limits(sends):
    clock = Ticks()
    pacer = Pacer(clock=clock)
    slack = SlackTiers(clock=clock)
    for channel, kind, pause in sends:
        clock.now += pause
        notice = channel_notice(channel, kind=kind) if channel[0] == "#" else dm(channel)
        clock.now += pacer.wait(notice)
        for method in slack_calls(notice):
            assert slack.take(method, notice.to) == 0, (method, notice.to)
        pacer.sent(notice)
