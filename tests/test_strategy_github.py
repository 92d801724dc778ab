"""github_team and github_repo against a real HTTP server on 127.0.0.1 speaking GitHub's
REST API; the login comes from the Accounts the service hands in (ACCESS_USER_GITHUB)."""

import pytest

from accessbot.strategies import Accounts, StrategyError, build_strategy
from tests.fake_targets import FakeGitHub
from tests.strategy_helpers import payload

ACCOUNTS = Accounts(github={"@Carol": "carol-gh"})


@pytest.fixture
def github(monkeypatch):
    fake = FakeGitHub(token="gh-t0ken")
    fake.logins.update({"carol-gh", "dave-gh"})
    fake.org_members.add("carol-gh")
    fake.teams[("acme", "sre")] = {}
    fake.repos["acme/api"] = {}
    monkeypatch.setenv("GITHUB_TOKEN", "gh-t0ken")
    yield fake
    fake.close()


def team(github, accounts=ACCOUNTS, **overrides):
    settings = {
        "type": "github_team",
        "org": "acme",
        "team": "sre",
        "token_env": "GITHUB_TOKEN",
        "api_url": github.url,
        **overrides,
    }
    return build_strategy(settings, accounts)


def repo(github, accounts=ACCOUNTS, **overrides):
    settings = {
        "type": "github_repo",
        "repo": "acme/api",
        "permission": "push",
        "token_env": "GITHUB_TOKEN",
        "api_url": github.url,
        **overrides,
    }
    return build_strategy(settings, accounts)


def test_team_grant_puts_the_membership_of_the_mapped_login(github):
    team(github).call("grant", payload())
    assert github.teams[("acme", "sre")] == {"carol-gh": "active"}
    assert github.methods() == ["PUT /orgs/acme/teams/sre/memberships/carol-gh"]
    sent = github.headers_seen[0]
    assert sent["Authorization"] == "Bearer gh-t0ken"
    assert sent["Accept"] == "application/vnd.github+json"


def test_team_grant_to_someone_outside_the_org_says_the_invitation_is_pending(github):
    accounts = Accounts(github={"carol": "dave-gh"})
    note = team(github, accounts).call("grant", payload()).note
    assert "pending" in note


def test_team_grant_twice_succeeds(github):
    team(github).call("grant", payload())
    team(github).call("grant", payload())
    assert github.teams[("acme", "sre")] == {"carol-gh": "active"}


def test_team_revoke_deletes_the_membership(github):
    github.teams[("acme", "sre")]["carol-gh"] = "active"
    team(github).call("revoke", payload("revoke"))
    assert github.teams[("acme", "sre")] == {}
    assert github.methods() == ["DELETE /orgs/acme/teams/sre/memberships/carol-gh"]


def test_team_revoke_of_a_missing_membership_succeeds(github):
    note = team(github).call("revoke", payload("revoke")).note
    assert "was not in acme/sre" in note
    assert github.methods() == [
        "DELETE /orgs/acme/teams/sre/memberships/carol-gh",
        "GET /orgs/acme/teams/sre",
    ]


def test_team_revoke_against_a_team_that_does_not_exist_fails(github):
    with pytest.raises(StrategyError, match=r"find team acme/nope: HTTP 404: Not Found"):
        team(github, team="nope").call("revoke", payload("revoke"))


def test_a_requester_without_a_github_login_is_told_which_setting_to_fill_in(github):
    with pytest.raises(
        StrategyError, match="no GitHub login for @dave: add it to ACCESS_USER_GITHUB"
    ):
        team(github).call("grant", payload(user="dave"))
    assert github.calls == []


def test_bad_credentials_fail_with_githubs_message(github, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "expired-token-value")
    with pytest.raises(StrategyError) as caught:
        team(github).call("grant", payload())
    assert "HTTP 401: Bad credentials" in str(caught.value)
    assert "expired-token-value" not in str(caught.value)


def test_a_secondary_rate_limit_is_waited_out(github):
    naps = []
    strategy = team(github)
    strategy.sleep = naps.append
    github.script(403, {"message": "You have exceeded a secondary rate limit"}, Retry_After="2")
    strategy.call("grant", payload())
    assert naps == [2.0]
    assert github.teams[("acme", "sre")] == {"carol-gh": "active"}


def test_a_429_with_a_long_retry_after_fails_with_githubs_words(github):
    github.script(429, {"message": "API rate limit exceeded"}, Retry_After="600")
    with pytest.raises(StrategyError, match=r"retry after 600s\): API rate limit exceeded"):
        team(github).call("grant", payload())


def test_a_validation_error_shows_githubs_details(github):
    github.script(
        422, {"message": "Validation Failed", "errors": [{"message": "Cannot add an organization"}]}
    )
    with pytest.raises(
        StrategyError, match=r"HTTP 422: Validation Failed \(Cannot add an organization\)"
    ):
        team(github).call("grant", payload())


def test_extend_succeeds_without_calling_github(github):
    team(github).call("extend", payload("extend"))
    repo(github).call("extend", payload("extend"))
    assert github.calls == []


def test_repo_grant_adds_a_collaborator_with_the_permission(github):
    repo(github).call("grant", payload())
    assert github.repos["acme/api"] == {"carol-gh": "push"}
    assert github.methods() == ["PUT /repos/acme/api/collaborators/carol-gh"]
    assert github.bodies[0] == {"permission": "push"}


def test_repo_revoke_removes_the_collaborator(github):
    github.repos["acme/api"]["carol-gh"] = "push"
    repo(github).call("revoke", payload("revoke"))
    assert github.repos["acme/api"] == {}


def test_repo_revoke_withdraws_an_invitation_not_yet_accepted(github):
    outsider = Accounts(github={"carol": "dave-gh"})
    note = repo(github, outsider).call("grant", payload()).note
    assert "invited" in note and github.invitations["acme/api"]

    note = repo(github, outsider).call("revoke", payload("revoke")).note
    assert github.invitations["acme/api"] == []
    assert "1 pending invitation(s) withdrawn" in note


def test_repo_revoke_of_someone_without_access_succeeds(github):
    repo(github).call("revoke", payload("revoke"))
    assert github.methods() == [
        "DELETE /repos/acme/api/collaborators/carol-gh",
        "GET /repos/acme/api",
        "GET /repos/acme/api/invitations",
    ]


def test_repo_revoke_on_a_repository_that_does_not_exist_fails(github):
    with pytest.raises(StrategyError, match="find repository acme/gone: HTTP 404"):
        repo(github, repo="acme/gone").call("revoke", payload("revoke"))


def test_describe_names_kind_and_target(github):
    assert team(github).describe() == f"github_team (acme/sre at {github.url[7:]})"
    assert repo(github, api_url=None).describe() == "github_repo (acme/api, push)"
