"""github_team and github_repo against a real HTTP server on 127.0.0.1 speaking GitHub's
REST API; the login comes from the Accounts the service hands in (ACCESS_USER_GITHUB),
and the fake keys everything by user id, so a renamed login is as real as on GitHub."""

import pytest

from accessbot.strategies import Accounts, StrategyError, build_strategy
from tests.fake_targets import FakeGitHub
from tests.strategy_helpers import payload

ACCOUNTS = Accounts(github={"@Carol": "carol-gh"})
CAROL = 101
DAVE = 102


@pytest.fixture
def github(monkeypatch):
    fake = FakeGitHub(token="gh-t0ken")
    fake.add_user("carol-gh", CAROL, org_member=True)
    fake.add_user("dave-gh", DAVE)
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


def revoke(account=str(CAROL)):
    return payload("revoke", account=account)


def test_team_grant_puts_the_membership_of_the_mapped_login_and_records_its_user_id(github):
    done = team(github).call("grant", payload())
    assert github.team("acme", "sre") == {"carol-gh": "active"}
    assert done.account == str(CAROL)
    assert github.methods() == [
        "GET /users/carol-gh",
        "PUT /orgs/acme/teams/sre/memberships/carol-gh",
    ]
    sent = github.headers_seen[1]
    assert sent["Authorization"] == "Bearer gh-t0ken"
    assert sent["Accept"] == "application/vnd.github+json"


def test_team_grant_to_someone_outside_the_org_says_the_invitation_is_pending(github):
    accounts = Accounts(github={"carol": "dave-gh"})
    note = team(github, accounts).call("grant", payload()).note
    assert "pending" in note


def test_team_grant_for_a_login_github_does_not_know_fails_saying_where_to_look(github):
    accounts = Accounts(github={"carol": "carol-typo"})
    with pytest.raises(StrategyError, match="GitHub has no user carol-typo: check ACCESS_USER"):
        team(github, accounts).call("grant", payload())


def test_team_grant_twice_succeeds(github):
    team(github).call("grant", payload())
    team(github).call("grant", payload())
    assert github.team("acme", "sre") == {"carol-gh": "active"}


def test_team_revoke_deletes_the_membership_of_the_recorded_user_id(github):
    github.teams[("acme", "sre")][CAROL] = "active"
    team(github).call("revoke", revoke())
    assert github.team("acme", "sre") == {}
    assert github.methods() == [
        "GET /user/101",
        "DELETE /orgs/acme/teams/sre/memberships/carol-gh",
    ]


def test_team_revoke_after_the_login_was_renamed_still_removes_the_membership(github):
    done = team(github).call("grant", payload())
    github.rename("carol-gh", "carol-renamed")

    team(github).call("revoke", revoke(done.account))

    assert github.team("acme", "sre") == {}
    assert github.methods()[-1] == "DELETE /orgs/acme/teams/sre/memberships/carol-renamed"


def test_team_revoke_of_a_missing_membership_succeeds_once_the_member_list_proves_it(github):
    note = team(github).call("revoke", revoke()).note
    assert "carol-gh was not in acme/sre" in note
    assert github.methods() == [
        "GET /user/101",
        "DELETE /orgs/acme/teams/sre/memberships/carol-gh",
        "GET /orgs/acme/teams/sre/members",
    ]


def test_team_revoke_of_a_deleted_account_checks_the_member_list_by_id(github):
    github.teams[("acme", "sre")][CAROL] = "active"
    github.delete_user("carol-gh")
    note = team(github).call("revoke", revoke()).note
    assert "the deleted account 101 was not in acme/sre" in note
    assert github.methods() == ["GET /user/101", "GET /orgs/acme/teams/sre/members"]


def test_team_revoke_fails_while_the_member_list_still_has_the_user_id(github):
    github.teams[("acme", "sre")][CAROL] = "active"
    github.script(404, {"message": "Not Found"})  # GET /user/101: GitHub says no such user
    with pytest.raises(StrategyError, match=r"still lists the deleted account 101 .* acme/sre"):
        team(github).call("revoke", revoke())
    assert github.team("acme", "sre") == {"carol-gh": "active"}


def test_team_revoke_that_gets_404s_and_cannot_read_the_member_list_fails(github):
    github.teams[("acme", "sre")][CAROL] = "active"
    github.delete_user("carol-gh")
    with pytest.raises(StrategyError, match=r"list the members of team acme/nope: HTTP 404"):
        team(github, team="nope").call("revoke", revoke())


def test_team_revoke_against_a_team_that_does_not_exist_fails(github):
    with pytest.raises(StrategyError, match=r"team acme/nope: HTTP 404: Not Found"):
        team(github, team="nope").call("revoke", revoke())


def test_team_revoke_reads_every_page_of_the_member_list(github):
    for n in range(250):
        github.teams[("acme", "sre")][github.add_user(f"user-{n}", 5000 + n)] = "active"
    github.teams[("acme", "sre")][CAROL] = "active"  # listed last, on page 3
    github.script(404, {"message": "Not Found"})  # GET /user/101
    with pytest.raises(StrategyError, match="still lists"):
        team(github).call("revoke", revoke())
    assert github.methods().count("GET /orgs/acme/teams/sre/members") == 3


def test_a_legacy_team_revoke_looks_the_login_up_once_and_returns_its_id(github):
    github.teams[("acme", "sre")][CAROL] = "active"
    done = team(github).call("revoke", revoke(account=None))
    assert done.account == str(CAROL)
    assert github.team("acme", "sre") == {}


def test_a_legacy_team_revoke_whose_login_is_gone_fails_instead_of_calling_it_done(github):
    github.teams[("acme", "sre")][CAROL] = "active"
    github.rename("carol-gh", "carol-renamed")
    with pytest.raises(
        StrategyError, match="no user carol-gh any more .* put their current login in"
    ):
        team(github).call("revoke", revoke(account=None))
    assert github.team("acme", "sre") == {"carol-renamed": "active"}


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
    assert github.team("acme", "sre") == {"carol-gh": "active"}


def test_a_429_with_a_long_retry_after_fails_with_githubs_words(github):
    github.script(429, {"message": "API rate limit exceeded"}, Retry_After="600")
    with pytest.raises(StrategyError, match=r"retry after 600s\): API rate limit exceeded"):
        team(github).call("grant", payload())


def test_a_validation_error_shows_githubs_details(github):
    github.script(200, {"login": "carol-gh", "id": CAROL})
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
    done = repo(github).call("grant", payload())
    assert github.collaborators("acme/api") == {"carol-gh": "push"}
    assert done.account == str(CAROL)
    assert github.methods() == ["GET /users/carol-gh", "PUT /repos/acme/api/collaborators/carol-gh"]
    assert github.bodies[1] == {"permission": "push"}


def test_repo_revoke_removes_the_collaborator(github):
    github.repos["acme/api"][CAROL] = "push"
    repo(github).call("revoke", revoke())
    assert github.collaborators("acme/api") == {}


def test_repo_revoke_after_the_login_was_renamed_still_removes_the_collaborator(github):
    done = repo(github).call("grant", payload())
    github.rename("carol-gh", "carol-renamed")
    repo(github).call("revoke", revoke(done.account))
    assert github.collaborators("acme/api") == {}


def test_repo_revoke_after_a_rename_withdraws_the_invitation_by_user_id(github):
    outsider = Accounts(github={"carol": "dave-gh"})
    done = repo(github, outsider).call("grant", payload())
    github.rename("dave-gh", "dave-renamed")
    note = repo(github, outsider).call("revoke", revoke(done.account)).note
    assert github.invitations["acme/api"] == []
    assert "1 pending invitation(s) withdrawn" in note


def test_repo_revoke_withdraws_an_invitation_not_yet_accepted(github):
    outsider = Accounts(github={"carol": "dave-gh"})
    done = repo(github, outsider).call("grant", payload())
    assert "invited" in done.note and github.invitations["acme/api"]

    note = repo(github, outsider).call("revoke", revoke(done.account)).note
    assert github.invitations["acme/api"] == []
    assert "1 pending invitation(s) withdrawn" in note


def test_repo_revoke_reads_every_page_of_invitations(github):
    for n in range(150):
        github.invite("acme/api", github.add_user(f"invitee-{n}", 7000 + n))
    github.invite("acme/api", DAVE)  # the 151st invitation: on the second page
    outsider = Accounts(github={"carol": "dave-gh"})
    note = repo(github, outsider).call("revoke", revoke(str(DAVE))).note
    assert "1 pending invitation(s) withdrawn" in note
    assert all(i["invitee_id"] != DAVE for i in github.invitations["acme/api"])
    assert len(github.invitations["acme/api"]) == 150
    assert github.methods().count("GET /repos/acme/api/invitations") == 2


def test_repo_revoke_of_someone_without_access_succeeds_once_the_lists_prove_it(github):
    note = repo(github).call("revoke", revoke()).note
    assert "had no access" in note
    assert github.methods() == [
        "GET /user/101",
        "DELETE /repos/acme/api/collaborators/carol-gh",
        "GET /repos/acme/api/collaborators",
        "GET /repos/acme/api/invitations",
    ]


def test_repo_revoke_fails_while_the_collaborator_list_still_has_the_user_id(github):
    github.repos["acme/api"][CAROL] = "push"
    github.script(404, {"message": "Not Found"})  # GET /user/101
    with pytest.raises(StrategyError, match="still lists the deleted account 101 as a collab"):
        repo(github).call("revoke", revoke())


def test_repo_revoke_on_a_repository_that_does_not_exist_fails(github):
    with pytest.raises(StrategyError, match="collaborators of acme/gone: HTTP 404"):
        repo(github, repo="acme/gone").call("revoke", revoke())


def test_a_next_page_link_to_another_host_is_refused_so_the_token_stays_home(github):
    github.script(404, {"message": "Not Found"})  # GET /user/101
    github.script(200, [], Link='<https://evil.example/steal?page=2>; rel="next"')
    with pytest.raises(StrategyError, match="next page outside"):
        team(github).call("revoke", revoke())
    assert len(github.calls) == 2


def test_describe_names_kind_and_target(github):
    assert team(github).describe() == f"github_team (acme/sre at {github.url})"
    assert repo(github, api_url=None).describe() == "github_repo (acme/api, push)"
