"""The on-call checker: the real pdpyras client against a fake PagerDuty API on 127.0.0.1."""

from __future__ import annotations

import logging
import threading

import pytest

from accessbot.integrations.pagerduty import (
    OnCallChecker,
    PagerDutyNotConfigured,
    on_call_checker,
)
from accessbot.settings import Settings, SettingsError
from tests.fake_pagerduty import TOKEN

SCHEDULE = "PABC123"


def checker(pagerduty, clock, **overrides) -> OnCallChecker:
    # Generous, so a loaded machine never turns an answer into a timeout; the hang
    # tests shorten it.
    settings = {"clock": clock, "timeout": 5.0, "rate_limit_pause": 0.01}
    settings.update(overrides)
    token = settings.pop("token", TOKEN)
    return OnCallChecker(token, pagerduty.url, **settings)


@pytest.fixture
def team(pagerduty):
    pagerduty.add_user("PALICE1", "Alice Example", "alice@example.com")
    pagerduty.add_user("PMALICE", "Mal Ice", "malice@example.com")
    pagerduty.add_user("PBOB001", "Bob Example", "bob@example.com")
    pagerduty.put_on_call("PALICE1", schedule=SCHEDULE)
    pagerduty.put_on_call("PBOB001", schedule="POTHER1", escalation_policy="PEP0002")
    return pagerduty


def test_on_call_for_a_schedule_is_one_call_for_whoever_is_on_call_there(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("alice@example.com", schedule=SCHEDULE) is True
    assert lookups.failures == []
    ((path, query),) = team.requests
    assert path == "/oncalls"
    assert query["schedule_ids[]"] == [SCHEDULE] and query["include[]"] == ["users"]
    # Routing that asks who is on call for the same schedule is answered from it.
    assert lookups.on_call_users(schedule=SCHEDULE) == ["alice@example.com"]
    assert team.count() == 1


def test_on_call_anywhere_is_found_by_email_then_that_users_oncalls(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("alice@example.com") is True
    assert lookups.is_on_call("bob@example.com") is True
    (users_path, users_query), (oncalls_path, oncalls_query), *_ = team.requests
    assert users_path == "/users" and users_query["query"] == ["alice@example.com"]
    assert oncalls_path == "/oncalls" and oncalls_query["user_ids[]"] == ["PALICE1"]
    assert "schedule_ids[]" not in oncalls_query


def test_user_on_call_for_another_schedule_is_not_on_call(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("bob@example.com", schedule=SCHEDULE) is False
    assert lookups.failures == []


def test_escalation_policy_filter_is_sent_and_matched(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("bob@example.com", escalation_policy="PEP0002") is True
    assert lookups.is_on_call("alice@example.com", escalation_policy="PEP0002") is False
    oncalls = [query for path, query in team.requests if path == "/oncalls"]
    assert [q["escalation_policy_ids[]"] for q in oncalls] == [["PEP0002"]]


def test_partial_email_matches_are_ignored_and_case_does_not_matter(team, clock):
    # GET /users?query=alice@example.com also returns malice@example.com.
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("MAlice@Example.com") is False
    assert team.requests[1][1]["user_ids[]"] == ["PMALICE"]
    assert lookups.is_on_call("Alice@EXAMPLE.com") is True
    assert lookups.is_on_call("MAlice@Example.com", schedule=SCHEDULE) is False
    assert lookups.is_on_call(" Alice@EXAMPLE.com ", schedule=SCHEDULE) is True
    assert lookups.failures == []


def test_cached_answer_needs_no_second_call(team, clock):
    on_call = checker(team, clock)

    assert on_call.lookups().is_on_call("alice@example.com", schedule=SCHEDULE)
    assert on_call.lookups().is_on_call("alice@example.com", schedule=SCHEDULE)
    assert team.count() == 1 and on_call.calls == 1


def test_on_call_answers_expire_before_user_ids(team, clock):
    on_call = checker(team, clock)
    on_call.lookups().is_on_call("bob@example.com", schedule=SCHEDULE)  # not on call there
    assert team.calls() == {"/oncalls": 1, "/users": 1}

    clock.advance(minutes=2)  # past the on-call TTL, within the user TTL
    on_call.lookups().is_on_call("bob@example.com", schedule=SCHEDULE)
    assert team.calls() == {"/users": 1, "/oncalls": 2}

    clock.advance(hours=2)  # past both
    on_call.lookups().is_on_call("bob@example.com", schedule=SCHEDULE)
    assert team.calls() == {"/users": 2, "/oncalls": 3}


def test_shift_change_is_seen_once_the_on_call_ttl_passes(team, clock):
    on_call = checker(team, clock)
    assert not on_call.lookups().is_on_call("bob@example.com", schedule=SCHEDULE)

    team.put_on_call("PBOB001", schedule=SCHEDULE)
    assert not on_call.lookups().is_on_call("bob@example.com", schedule=SCHEDULE)
    clock.advance(minutes=1, seconds=1)
    assert on_call.lookups().is_on_call("bob@example.com", schedule=SCHEDULE)


@pytest.mark.parametrize(
    "failure, reason",
    [
        ("500", "PagerDuty answered HTTP 500"),
        ("401", "PagerDuty refused the API token (HTTP 401); check ACCESS_PAGERDUTY_TOKEN"),
        ("hang", "PagerDuty did not answer within 0.25s"),
        ("garbage", "PagerDuty sent an answer that is not the JSON its API documents"),
        ("429", "PagerDuty is rate-limiting the bot (HTTP 429)"),
    ],
)
def test_pagerduty_failure_means_not_on_call_and_says_why(team, clock, failure, reason):
    team.fail_with(failure)
    lookups = checker(team, clock, timeout=0.25 if failure == "hang" else 5.0).lookups()

    assert lookups.is_on_call("alice@example.com", schedule=SCHEDULE) is False
    assert lookups.on_call_users(schedule=SCHEDULE) == []
    assert lookups.failures == [reason]


def test_a_200_mb_answer_is_not_read_past_the_cap_and_means_not_on_call(team, clock):
    team.fail_with("huge")
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("alice@example.com", schedule=SCHEDULE) is False

    assert lookups.failures == ["PagerDuty sent an answer over 262144 bytes; it was not read"]
    assert team.sent < 50 * 1024 * 1024


def test_failures_are_not_cached(team, clock):
    on_call = checker(team, clock)
    team.fail_with("500", times=1)
    assert not on_call.lookups().is_on_call("alice@example.com", schedule=SCHEDULE)

    assert on_call.lookups().is_on_call("alice@example.com", schedule=SCHEDULE)


def test_rate_limit_is_retried_by_pdpyras(team, clock):
    team.fail_with("429", times=2)
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("alice@example.com", schedule=SCHEDULE) is True
    assert team.calls() == {"/oncalls": 3}


def test_wrong_token_is_refused_and_never_shown(team, clock, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "u+wrongtoken-SECRET-9f8e"
    lookups = checker(team, clock, token=secret).lookups()

    assert lookups.is_on_call("alice@example.com", schedule=SCHEDULE) is False
    assert "HTTP 401" in lookups.failures[0]
    assert "9f8e" not in caplog.text and "9f8e" not in repr(lookups.failures)


def test_unknown_email_is_not_on_call(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call("nobody@example.com", schedule=SCHEDULE) is False
    # Not among those on call, and the card says why: PagerDuty does not know the e-mail.
    assert lookups.failures == ["no PagerDuty user has the e-mail nobody@example.com"]
    assert team.calls() == {"/oncalls": 1, "/users": 1}


@pytest.mark.parametrize("email", [None, "", "alice"])
def test_missing_email_is_not_on_call_without_asking_pagerduty(team, clock, email):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call(email, schedule=SCHEDULE) is False
    assert "no e-mail address is known for the requester" in lookups.failures[0]
    assert team.count() == 0


def test_on_call_users_gives_the_emails_of_who_is_on_call(team, clock):
    team.put_on_call("PBOB001", schedule=SCHEDULE, level=2)
    on_call = checker(team, clock)

    assert on_call.lookups().on_call_users(schedule=SCHEDULE) == [
        "alice@example.com",
        "bob@example.com",
    ]
    assert on_call.lookups().on_call_users(escalation_policy="PEP0002") == ["bob@example.com"]
    _, query = team.requests[0]
    assert query["include[]"] == ["users"] and query["schedule_ids[]"] == [SCHEDULE]
    on_call.lookups().on_call_users(schedule=SCHEDULE)
    assert team.count() == 2  # the third answer came from the cache


def test_on_call_users_needs_a_schedule_or_escalation_policy(team, clock):
    with pytest.raises(ValueError, match="schedule="):
        checker(team, clock).lookups().on_call_users()


def test_a_bad_schedule_id_in_a_policy_raises_for_its_author(team, clock):
    with pytest.raises(ValueError, match="PABC123"):
        checker(team, clock).lookups().is_on_call("alice@example.com", schedule=123)


def test_without_a_token_nobody_is_on_call_and_the_card_says_so(clock):
    lookups = on_call_checker(None, "https://api.pagerduty.com", clock).lookups()

    assert isinstance(on_call_checker("", "x", clock), PagerDutyNotConfigured)
    assert lookups.is_on_call("alice@example.com", schedule=SCHEDULE) is False
    assert lookups.on_call_users(schedule=SCHEDULE) == []
    assert lookups.failures == ["PagerDuty is not configured (set ACCESS_PAGERDUTY_TOKEN)"]


def test_concurrent_requests_get_their_own_answers_and_failures(team, clock):
    on_call = checker(team, clock)
    emails = ["alice@example.com", "bob@example.com", "nobody@example.com"] * 4
    results: dict[int, tuple[bool, list[str]]] = {}

    def ask(i: int, email: str) -> None:
        lookups = on_call.lookups()
        results[i] = (lookups.is_on_call(email, schedule=SCHEDULE), lookups.failures)

    threads = [threading.Thread(target=ask, args=(i, e)) for i, e in enumerate(emails)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    for i, email in enumerate(emails):
        on, failures = results[i]
        assert on is (email == "alice@example.com")
        assert failures == (
            ["no PagerDuty user has the e-mail nobody@example.com"]
            if email.startswith("nobody")
            else []
        )


def test_pagerduty_settings_come_from_config_and_environment():
    config = type(
        "Config", (), {"ACCESS_PAGERDUTY_TOKEN": "from-config", "ACCESS_PAGERDUTY_TIMEOUT": "2s"}
    )

    settings = Settings.load(config, environ={"ACCESS_PAGERDUTY_TOKEN": "from-env"})

    assert settings.pagerduty_token == "from-env"
    assert settings.pagerduty_timeout == 2.0
    assert settings.pagerduty_url == "https://api.pagerduty.com"
    assert Settings.load(environ={"ACCESS_PAGERDUTY_TIMEOUT": "0.5"}).pagerduty_timeout == 0.5


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_bad_pagerduty_timeout_says_what_to_write(value):
    with pytest.raises(SettingsError, match="ACCESS_PAGERDUTY_TIMEOUT must be"):
        Settings.load(environ={"ACCESS_PAGERDUTY_TIMEOUT": value})


def test_the_checker_never_shows_its_token(team, clock):
    on_call = checker(team, clock)

    assert TOKEN not in repr(on_call) and TOKEN not in str(vars(on_call).get("url"))
