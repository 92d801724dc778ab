"""Every look-up cache is bounded (cachetools): a workspace with more groups, people or
calls than a cache holds costs a look-up again, never memory without end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk import WebClient
from slack_sdk.signature import Clock

from accessbot.identity import MAX_EMAILS, SlackPeople
from accessbot.integrations import pagerduty, slack_groups
from accessbot.integrations.slack import directory, signing
from accessbot.integrations.slack_groups import SlackGroups
from tests.conftest import FakeClock
from tests.slack_fakes import TOKEN, FakeSlack


@pytest.fixture
def slack():
    fake = FakeSlack(token=TOKEN)
    yield fake
    fake.close()


def test_slack_groups_past_the_bound_forget_the_least_recently_used(slack):
    for n in range(5):
        slack.add_group(f"S{n}", f"team-{n}", [f"U0{n}"])
    clock = FakeClock()
    client = WebClient(token=TOKEN, base_url=slack.base_url)
    groups = SlackGroups(client, clock, timedelta(minutes=5), max_entries=3)

    for n in range(5):  # the group list and five member lists: more than three entries
        assert groups.members(f"@team-{n}") == [f"U0{n}"]
    asked = slack.calls.count("usergroups.users.list")
    assert groups.members("@team-4") == ["U04"]  # recent: still kept
    assert slack.calls.count("usergroups.users.list") == asked
    assert groups.members("@team-0") == ["U00"]  # the oldest went: asked again
    assert slack.calls.count("usergroups.users.list") == asked + 1


def test_pagerduty_cache_keeps_at_most_its_bound_and_each_entry_its_own_time():
    clock = FakeClock()
    cache = pagerduty._TTLCache(clock)
    for n in range(pagerduty._TTLCache.MAX_ENTRIES + 10):
        cache.put(("user", n), f"P{n}", timedelta(hours=1))
    assert len(cache) == pagerduty._TTLCache.MAX_ENTRIES
    assert cache.get(("user", 0)) == (False, None)
    assert cache.get(("user", pagerduty._TTLCache.MAX_ENTRIES + 9)) == (True, "P5009")

    cache.put("on call", True, timedelta(minutes=1))
    cache.put("nobody", None, timedelta(minutes=1))
    assert cache.get("nobody") == (True, None)  # None is an answer, kept
    clock.advance(minutes=1)
    assert cache.get("on call") == (False, None)  # a minute: gone at its end
    assert cache.get(("user", 5009)) == (True, "P5009")  # an hour: still kept


def test_every_cache_has_a_size_bound():
    clock = FakeClock()
    client = WebClient(token=TOKEN, base_url="http://127.0.0.1:9/api/")
    caches = {
        "PagerDuty": pagerduty.OnCallChecker("t", clock=clock)._cache._entries,
        "Slack directory": directory.SlackDirectory(client)._cache,
        "Slack groups": SlackGroups(client, clock)._cache,
        "identity": SlackPeople(client)._emails,
        "signing": signing.RequestVerifier("secret", Clock())._seen,
    }
    bounds = {name: cache.maxsize for name, cache in caches.items()}
    assert bounds == {
        "PagerDuty": pagerduty._TTLCache.MAX_ENTRIES,
        "Slack directory": directory.MAX_USERS,
        "Slack groups": slack_groups.MAX_ENTRIES,
        "identity": MAX_EMAILS,
        "signing": signing.MAX_SEEN,
    }
    assert all(0 < bound <= 100_000 for bound in bounds.values())
