"""One paced pass over a channel's pending notices (what an outbox worker runs): merged,
sent in order while the pacer allows, stopped at the first that must wait. Against a
Slack that keeps to its published limits, on a clock the test moves: every notice ends
delivered or failed for good, nobody is named twice, and nothing sleeps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from accessbot.delivery import RATE_LIMITED, Attempt, deliver_round
from accessbot.pacing import Pacer, slack_calls
from accessbot.service import Notice
from tests.slack_tiers import SlackTiers, Ticks
from tests.test_digest import a_notice, ended, mergeable


class PacedSlack:
    """`deliver_paced` as Slack would answer it: calls over the limits refused (429),
    `broken` channels failing for good, `busy` extra calls made by others."""

    def __init__(self, clock, broken=(), busy=()):
        self.tiers = SlackTiers(clock=clock)
        self.broken = set(broken)
        self.busy = list(busy)
        self.sent: list[Notice] = []

    def __call__(self, notice) -> Attempt:
        if self.busy:  # someone else (a click, a command) used the channel's budget
            self.tiers.take("chat.postMessage", self.busy.pop())
        if notice.to in self.broken:
            return Attempt("is_archived")
        for method in slack_calls(notice):
            wait = self.tiers.take(method, notice.to)
            if wait:
                return Attempt(RATE_LIMITED, float(wait), method)
        self.sent.append(notice)
        return Attempt()


def run(notices, slack: PacedSlack, clock: Ticks, pacer: Pacer, rounds=10_000):
    pending = list(range(len(notices)))
    delivered, failed = set(), {}
    for _ in range(rounds):
        if not pending:
            return delivered, failed
        result = deliver_round([notices[p] for p in pending], pacer, slack)
        delivered |= {pending[p] for p in result.delivered}
        failed |= {pending[p]: e for p, e in result.failed.items()}
        for position, rest in result.remaining.items():  # what an outbox stores in its place
            notices[pending[position]] = rest
        done = result.delivered | result.failed.keys()
        pending = [p for i, p in enumerate(pending) if i not in done]
        clock.now += result.retry_in or 0.0
    raise AssertionError(f"{len(pending)} notices never went")


def test_a_burst_of_expiries_goes_out_as_one_line_at_slacks_pace():
    clock = Ticks(0.0)
    slack = PacedSlack(clock)
    notices = [ended(f"r{n:03d}", f"user{n:03d}", card=True) for n in range(120)]

    delivered, failed = run(notices, slack, clock, Pacer(clock=clock))

    assert delivered == set(range(120)) and failed == {}
    lines = [n.text for n in slack.sent if n.request is None]
    assert [line.split(" ", 1)[0] for line in lines] == ["100", "20"]
    assert sum(n.kind == "card" for n in slack.sent) == 120
    assert slack.tiers.total_limited == 0  # the pacer kept to the limits: no 429 at all
    assert clock.now < 200  # the card updates at the Tier 3 pace (45 a minute) set the time


def test_a_retry_after_stops_the_round_and_the_rest_go_after_it():
    clock = Ticks()
    slack = PacedSlack(clock)
    for _ in range(3):  # others (clicks, commands) used the channel's burst
        slack.tiers.take("chat.postMessage", "#access-approvals")
    notices = [ended("a1", "dave"), Notice("channel", "#access-approvals", "news")]

    first = deliver_round(notices, Pacer(clock=clock), slack)

    assert first.delivered == set() and first.retry_in == 1.0
    assert slack.tiers.total_limited == 1


def test_a_channel_that_fails_for_good_fails_every_notice_it_held():
    clock = Ticks()
    slack = PacedSlack(clock, broken=["#access-approvals"])
    notices = [ended(f"r{n}", "dave") for n in range(4)]

    result = deliver_round(notices, Pacer(clock=clock), slack)

    assert result.failed == dict.fromkeys(range(4), "is_archived")
    assert result.delivered == set() and result.retry_in is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(a_notice(), max_size=40, unique_by=lambda n: n.request.id if n.request else n.text),
    st.lists(st.sampled_from(["#access-approvals", "#other"]), max_size=10),
    st.sets(st.sampled_from(["#other", "@dave"]), max_size=1),
)
def test_every_notice_ends_delivered_or_failed_and_nobody_is_named_twice(notices, busy, broken):
    clock = Ticks()
    slack = PacedSlack(clock, broken, busy)

    delivered, failed = run(notices, slack, clock, Pacer(clock=clock))

    assert delivered | failed.keys() == set(range(len(notices)))
    assert all(notices[p].to in broken for p in failed)
    named = [
        word
        for n in slack.sent
        if n.request is None and n.audience == "channel"
        for word in n.text.split()
        if word.startswith("(r")
    ]
    assert len(named) == len(set(named))  # a merged line never repeats a request
    for p in delivered:
        notice = notices[p]
        if not mergeable(notice):
            assert notice in slack.sent  # DMs, cards and other alerts went as they were
