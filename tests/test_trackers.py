"""The tracker adapters against real local servers speaking Jira's, PagerDuty's and
GitHub's APIs: what an open, closed, unknown or unreachable value comes back as, with
which credentials, and that no credential shows in what is said."""

import pytest

from accessbot.integrations.pagerduty import OnCallChecker
from accessbot.integrations.trackers import LinkChecker, Unknown, Unreachable, problem
from tests.fake_pagerduty import TOKEN as PD_TOKEN
from tests.fake_trackers import FakeGitHubIssues, FakeJira
from tests.helpers import FakeClock

ENV = {"JIRA_USER": "bot@acme.com", "JIRA_TOKEN": "jira-token-123", "GH_TOKEN": "ghp_issues_token"}


@pytest.fixture
def jira():
    fake = FakeJira()
    yield fake
    fake.close()


@pytest.fixture
def github():
    fake = FakeGitHubIssues()
    yield fake
    fake.close()


def jira_check(jira, **more):
    return {
        "type": "jira",
        "url": jira.url,
        "user_env": "JIRA_USER",
        "token_env": "JIRA_TOKEN",
        "projects": ["OPS"],
        "timeout": 2,
        **more,
    }


def checker(pagerduty=None, environ=ENV):
    return LinkChecker(lambda: pagerduty, environ=environ)


def test_an_open_jira_ticket_comes_back_with_its_title_status_and_assignee(jira):
    jira.add("OPS-12", "In Progress", "Rotate the DB password", assignee="carol@acme.com")
    link = checker().look_up("ticket", jira_check(jira), "OPS-12")
    assert (link.key, link.title, link.status, link.assignee, link.open) == (
        "OPS-12",
        "Rotate the DB password",
        "In Progress",
        "carol@acme.com",
        True,
    )
    assert link.url == f"{jira.url}/browse/OPS-12"
    assert jira.calls[-1][0] == "/rest/api/3/issue/OPS-12"
    assert jira.calls[-1][1].startswith("Basic ")
    assert problem(link, jira_check(jira)) is None


def test_a_done_ticket_is_closed_by_its_status_category_or_the_open_statuses(jira):
    jira.add("OPS-12", "Done")
    jira.add("OPS-13", "In Review")
    link = checker().look_up("ticket", jira_check(jira), "OPS-12")
    assert problem(link, jira_check(jira)) == "OPS-12 is Done"
    settings = jira_check(jira, open_statuses=["To Do", "In Progress"])
    review = checker().look_up("ticket", settings, "OPS-13")
    assert problem(review, settings) == "OPS-13 is In Review"


def test_a_ticket_of_another_project_is_named_with_its_project(jira):
    jira.add("SEC-4")
    link = checker().look_up("ticket", jira_check(jira), "SEC-4")
    assert problem(link, jira_check(jira)) == "SEC-4 is in project SEC, not OPS"


def test_an_unknown_ticket_is_unknown_and_a_refused_token_unreachable(jira):
    with pytest.raises(Unknown, match="OPS-99 is not a Jira issue the bot can see"):
        checker().look_up("ticket", jira_check(jira), "OPS-99")
    with pytest.raises(Unreachable, match="refused the bot's credentials") as raised:
        checker(environ={**ENV, "JIRA_TOKEN": "wrong-secret"}).look_up(
            "ticket", jira_check(jira), "OPS-99"
        )
    assert "wrong-secret" not in str(raised.value)


def test_data_center_uses_api_2_and_a_bearer_token_alone(jira):
    jira.add("OPS-12")
    settings = jira_check(jira, api_version=2)
    del settings["user_env"]
    assert checker().look_up("ticket", settings, "OPS-12").open
    assert jira.calls[-1] == ("/rest/api/2/issue/OPS-12", "Bearer jira-token-123")


def test_a_tracker_that_is_down_or_erring_is_unreachable(jira):
    jira.add("OPS-12")
    jira.failure = 503
    with pytest.raises(Unreachable, match="answered HTTP 503"):
        checker().look_up("ticket", jira_check(jira), "OPS-12")
    settings = jira_check(jira, url="http://127.0.0.1:9")
    with pytest.raises(Unreachable, match="could not connect to Jira at http://127.0.0.1:9"):
        checker().look_up("ticket", settings, "OPS-12")


def test_a_pagerduty_incident_is_open_while_triggered_or_acknowledged(pagerduty):
    pagerduty.add_user("PUSER01", "Carol", "carol@acme.com")
    pagerduty.add_incident("Q1ABC2D", "PSVC123", ["PUSER01"], status="acknowledged")
    pd = OnCallChecker(PD_TOKEN, pagerduty.url, clock=FakeClock(), timeout=2)
    settings = {"type": "pagerduty", "services": ["PSVC123"]}
    link = checker(pd).look_up("incident", settings, "https://acme.pagerduty.com/incidents/Q1ABC2D")
    assert (link.key, link.status, link.assignee, link.open) == (
        "Q1ABC2D",
        "acknowledged",
        "carol@acme.com",
        True,
    )
    assert problem(link, settings) is None
    assert problem(link, {"type": "pagerduty", "services": ["POTHER"]}) == (
        "Q1ABC2D is on service PSVC123, not POTHER"
    )
    pagerduty.set_status("Q1ABC2D", "resolved")
    assert problem(checker(pd).look_up("incident", settings, "Q1ABC2D"), settings) == (
        "Q1ABC2D is resolved"
    )
    with pytest.raises(Unknown, match="QNOPE12 is not a PagerDuty incident"):
        checker(pd).look_up("incident", settings, "QNOPE12")
    pagerduty.fail_with("500")
    with pytest.raises(Unreachable, match="HTTP 500"):
        checker(pd).look_up("incident", settings, "Q1ABC2D")


def test_a_github_issue_is_open_by_its_state(github):
    github.add("acme/ops", 123, title="Prod DB is slow")
    settings = {
        "type": "github_issue",
        "repo": "acme/ops",
        "api_url": github.url,
        "token_env": "GH_TOKEN",
    }
    link = checker().look_up("issue", settings, "#123")
    assert (link.key, link.title, link.open) == ("acme/ops#123", "Prod DB is slow", True)
    assert github.calls[-1] == ("/repos/acme/ops/issues/123", "Bearer ghp_issues_token")
    github.close_issue("acme/ops", 123)
    assert problem(checker().look_up("issue", settings, "123"), settings) == (
        "acme/ops#123 is closed"
    )
    with pytest.raises(Unknown, match="#124 is not an issue of acme/ops"):
        checker().look_up("issue", settings, "124")


def test_an_answer_larger_than_an_issue_is_not_read_in_full(jira):
    jira.add("OPS-12", summary="x" * 2_000_000)
    with pytest.raises(Unreachable, match="sent more than"):
        checker().look_up("ticket", jira_check(jira), "OPS-12")
