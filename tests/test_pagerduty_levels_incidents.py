"""`is_on_call(..., max_level=N)` and `has_incident(...)`: the real pdpyras client against
the fake PagerDuty API (now with `GET /incidents`), failing closed like every lookup; the
same answers from `StaticOnCall` for `python -m accessbot test`; and a break-glass policy
through the real plugin."""

from __future__ import annotations

import pytest

from accessbot.integrations.pagerduty import (
    OnCallChecker,
    PagerDutyNotConfigured,
    RecordedLookups,
    StaticOnCall,
)
from tests.conftest import policy_file, request_id, webhook_policy
from tests.fake_pagerduty import TOKEN

SCHEDULE, POLICY, DATABASE = "PABC123", "PEP0001", "PDB0001"


def checker(pagerduty, clock) -> OnCallChecker:
    return OnCallChecker(TOKEN, pagerduty.url, clock=clock, timeout=5.0, rate_limit_pause=0.01)


@pytest.fixture
def team(pagerduty):
    pagerduty.add_user("PALICE1", "Alice Example", "alice@example.com")
    pagerduty.add_user("PBOB001", "Bob Example", "bob@example.com")
    pagerduty.add_user("PCAROL1", "Carol Example", "carol@example.com")
    pagerduty.put_on_call("PALICE1", schedule=SCHEDULE, escalation_policy=POLICY, level=1)
    pagerduty.put_on_call("PBOB001", schedule=SCHEDULE, escalation_policy=POLICY, level=2)
    pagerduty.add_incident("PINC001", DATABASE, ["PCAROL1"], status="acknowledged")
    pagerduty.add_incident("PINC002", "POTHER1", ["PBOB001"], status="triggered")
    pagerduty.add_incident("PINC003", DATABASE, ["PBOB001"], status="resolved")
    return pagerduty


# -- escalation levels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "ask", "expected"),
    [
        ("alice@example.com", {"schedule": SCHEDULE, "max_level": 1}, True),
        ("bob@example.com", {"schedule": SCHEDULE, "max_level": 1}, False),
        ("bob@example.com", {"schedule": SCHEDULE, "max_level": 2}, True),
        ("bob@example.com", {"schedule": SCHEDULE}, True),
        ("bob@example.com", {"escalation_policy": POLICY, "max_level": 1}, False),
        ("bob@example.com", {"max_level": 1}, False),  # anywhere, by the user's on-calls
        ("bob@example.com", {"max_level": 2}, True),
    ],
)
def test_max_level_counts_only_the_levels_up_to_it(team, clock, email, ask, expected):
    lookups = checker(team, clock).lookups()

    assert lookups.is_on_call(email, **ask) is expected
    assert lookups.failures == []


def test_the_levels_share_one_cached_answer_for_a_schedule(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.on_call_users(schedule=SCHEDULE, max_level=1) == ["alice@example.com"]
    assert lookups.on_call_users(schedule=SCHEDULE) == ["alice@example.com", "bob@example.com"]
    assert team.count("/oncalls") == 1


@pytest.mark.parametrize("level", [0, "1", 1.5, True])
def test_a_wrong_max_level_is_the_policy_authors_mistake(team, clock, level):
    with pytest.raises(ValueError, match="max_level must be a whole number of 1 or more"):
        checker(team, clock).lookups().is_on_call("bob@example.com", max_level=level)


# -- incidents ---------------------------------------------------------------------------------


def test_an_engineer_assigned_an_open_incident_of_the_service_has_one(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.has_incident(email="carol@example.com", service=DATABASE) is True
    ((path, query),) = [r for r in team.requests if r[0] == "/incidents"]
    assert query["user_ids[]"] == ["PCAROL1"] and query["service_ids[]"] == [DATABASE]
    assert query["statuses[]"] == ["acknowledged", "triggered"]
    assert query["date_range"] == ["all"]  # an incident opened long ago may still be open


@pytest.mark.parametrize(
    ("email", "ask", "expected"),
    [
        ("bob@example.com", {"service": DATABASE}, False),  # resolved
        ("bob@example.com", {"service": DATABASE, "statuses": ("resolved",)}, True),
        ("bob@example.com", {}, True),  # any service: PINC002
        ("alice@example.com", {}, False),
        ("carol@example.com", {"service": "POTHER1"}, False),
        ("carol@example.com", {"statuses": "acknowledged"}, True),
    ],
)
def test_has_incident_asks_for_the_statuses_and_service_given(team, clock, email, ask, expected):
    lookups = checker(team, clock).lookups()

    assert lookups.has_incident(email=email, **ask) is expected
    assert lookups.failures == []


def test_an_old_incident_still_open_is_found(team, clock):
    team.add_incident("PINC004", DATABASE, ["PALICE1"], created_at="2026-01-02T03:04:05Z")

    assert checker(team, clock).lookups().has_incident(email="alice@example.com") is True


@pytest.mark.parametrize("failure", ["500", "401", "429", "garbage"])
def test_pagerduty_failing_means_no_incident_and_says_why(team, clock, failure):
    lookups = checker(team, clock).lookups()
    lookups.is_on_call("carol@example.com", schedule=SCHEDULE)  # warms the user lookup
    team.fail_with(failure)

    assert lookups.has_incident(email="carol@example.com", service=DATABASE) is False
    assert len(lookups.failures) == 1


def test_an_unknown_or_missing_email_has_no_incident(team, clock):
    lookups = checker(team, clock).lookups()

    assert lookups.has_incident(email="nobody@example.com") is False
    assert lookups.has_incident(email=None) is False
    assert "no PagerDuty user has the e-mail nobody@example.com" in lookups.failures[0]
    assert "no e-mail address is known" in lookups.failures[1]


def test_without_pagerduty_nobody_has_an_incident():
    lookups = PagerDutyNotConfigured().lookups()

    assert lookups.has_incident(email="carol@example.com") is False
    assert "PagerDuty is not configured" in lookups.failures[0]


def test_wrong_statuses_are_the_policy_authors_mistake(team, clock):
    with pytest.raises(ValueError, match="statuses must be some of triggered, acknowledged"):
        checker(team, clock).lookups().has_incident(email="carol@example.com", statuses=["open"])


def test_whatif_lookups_say_what_was_asked(team, clock):
    lookups = RecordedLookups(checker(team, clock))

    lookups.is_on_call("bob@example.com", schedule=SCHEDULE, max_level=1)
    lookups.has_incident(email="carol@example.com", service=DATABASE)

    assert lookups.lines == [
        "is bob@example.com on call for schedule PABC123 at level 1 or nearer? no "
        "(live PagerDuty lookup)",
        "is carol@example.com assigned a triggered, acknowledged incident of service "
        "PDB0001? yes (live PagerDuty lookup)",
    ]


# -- the test file's answers agree ---------------------------------------------------------------


def test_static_answers_know_levels_and_incidents():
    static = StaticOnCall(
        {SCHEDULE: ["alice@example.com", {"email": "bob@example.com", "level": 2}]},
        incidents=[{"email": "carol@example.com", "service": DATABASE, "status": "acknowledged"}],
    ).lookups()

    assert static.is_on_call("bob@example.com", schedule=SCHEDULE, max_level=1) is False
    assert static.is_on_call("bob@example.com", schedule=SCHEDULE) is True
    assert static.on_call_users(schedule=SCHEDULE, max_level=1) == ["alice@example.com"]
    assert static.has_incident(email="carol@example.com", service=DATABASE) is True
    assert static.has_incident(email="carol@example.com", statuses=["triggered"]) is False


# -- through the plugin -------------------------------------------------------------------------

BREAK_GLASS = """

def on_request(request, ctx):
    if ctx.pagerduty.is_on_call(request.requester_email, schedule="PABC123", max_level=1):
        return ctx.approve("primary on call")
    if ctx.pagerduty.has_incident(email=request.requester_email, service="PDB0001"):
        return ctx.approve("working a database incident")
"""


@pytest.mark.parametrize(
    ("user", "outcome"),
    [
        ("alice", "approved by policy (primary on call)"),
        ("carol", "approved by policy (working a database incident)"),
        ("bob", "Waiting for an approval"),  # level 2; his open incident is another service's
    ],
)
def test_break_glass_by_level_and_by_incident_through_the_plugin(
    team, bot_factory, policy_dir, webhook, user, outcome
):
    policy_file(policy_dir, "shell.py", webhook_policy(webhook.url) + BREAK_GLASS)
    chat = bot_factory(
        ACCESS_PAGERDUTY_URL=team.url,
        ACCESS_PAGERDUTY_TOKEN=TOKEN,
        ACCESS_PAGERDUTY_TIMEOUT=5,
        ACCESS_USER_EMAILS={n: f"{n}@example.com" for n in ("alice", "bob", "carol")},
    )

    said = chat.reply(user, "!access request prod-db 30m INC-7 database down")

    assert outcome in said
    granted = [("grant", request_id(said))] if "approved" in said else []
    assert webhook.actions() == granted
