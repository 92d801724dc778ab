"""A real target end to end through the real plugin: a GitHub team membership is put
on approval and deleted at expiry, against a fake GitHub on 127.0.0.1."""

import pytest

from tests.conftest import policy_file, request_id
from tests.fake_targets import FakeGitHub


@pytest.fixture
def github(monkeypatch):
    fake = FakeGitHub(token="gh-t0ken")
    fake.add_user("carol-gh", 101, org_member=True)
    fake.teams[("acme", "sre")] = {}
    monkeypatch.setenv("GITHUB_TOKEN", "gh-t0ken")
    yield fake
    fake.close()


@pytest.fixture
def chat(bot_factory, policy_dir, github):
    strategy = {
        "type": "github_team",
        "org": "acme",
        "team": "sre",
        "token_env": "GITHUB_TOKEN",
        "api_url": github.url,
    }
    settings = {
        "description": "Members of the SRE team",
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": strategy,
    }
    policy_file(policy_dir, "sre.py", f"RESOURCES = {{'gh-sre': {settings!r}}}\n")
    return bot_factory(ACCESS_USER_GITHUB={"@carol": "carol-gh"})


def test_approval_puts_the_team_membership_and_expiry_deletes_it(chat, github, clock):
    rid = request_id(chat.reply("carol", "!access request gh-sre 30m deploy hotfix"))
    assert github.calls == []

    said = chat.say("bob", f"!approve {rid}")
    assert said[0].startswith(f"Approved {rid}")
    assert github.methods() == [
        "GET /users/carol-gh",
        "PUT /orgs/acme/teams/sre/memberships/carol-gh",
    ]
    assert github.team("acme", "sre") == {"carol-gh": "active"}

    clock.advance(minutes=30, seconds=1)
    chat.wait_for("carol", "expired")
    assert github.methods()[-1] == "DELETE /orgs/acme/teams/sre/memberships/carol-gh"
    assert github.team("acme", "sre") == {}


def test_a_user_who_renames_her_github_login_still_loses_the_team_at_expiry(chat, github, clock):
    rid = request_id(chat.reply("carol", "!access request gh-sre 30m deploy hotfix"))
    chat.say("bob", f"!approve {rid}")
    github.rename("carol-gh", "carol-new")  # ACCESS_USER_GITHUB still says carol-gh

    clock.advance(minutes=30, seconds=1)
    chat.wait_for("carol", "expired")
    assert github.team("acme", "sre") == {}
    assert github.methods()[-1] == "DELETE /orgs/acme/teams/sre/memberships/carol-new"


def test_a_revoke_whose_404s_prove_nothing_is_announced_as_failed_and_retried(chat, github, clock):
    rid = request_id(chat.reply("carol", "!access request gh-sre 30m deploy hotfix"))
    chat.say("bob", f"!approve {rid}")
    github.rename("carol-gh", "carol-new")
    # GitHub says "no such user" for the recorded id (an outage, a suspended account),
    # while the team still lists her: that proves nothing is removed.
    github.script(404, {"message": "Not Found"})

    said = chat.say("carol", f"!access revoke {rid}")
    assert "still lists the deleted account 101" in said[0] and "retried" in said[0]
    assert any("REVOKE FAILED" in t for t in chat.to("#access-approvals"))
    assert "revoke failed" in chat.reply("carol", f"!access show {rid}")
    assert github.team("acme", "sre") == {"carol-new": "active"}

    clock.advance(seconds=11)
    chat.wait_for("carol", "was revoked")
    assert github.team("acme", "sre") == {}


def test_a_requester_without_a_github_login_gets_a_grant_failure_saying_what_to_add(chat, github):
    rid = request_id(chat.reply("dave", "!access request gh-sre 30m deploy hotfix"))
    said = chat.say("bob", f"!approve {rid}")
    assert "no GitHub login for @dave: add it to ACCESS_USER_GITHUB" in said[0]
    assert any(
        "GRANT FAILED" in t and "ACCESS_USER_GITHUB" in t for t in chat.to("#access-approvals")
    )
    assert github.calls == []


def test_a_refused_revoke_is_announced_in_githubs_words_and_retried(
    chat, github, clock, monkeypatch
):
    rid = request_id(chat.reply("carol", "!access request gh-sre 30m deploy hotfix"))
    chat.say("bob", f"!approve {rid}")

    monkeypatch.setenv("GITHUB_TOKEN", "revoked-token")
    said = chat.say("carol", f"!access revoke {rid}")
    assert "Bad credentials" in said[0] and "retried automatically" in said[0]
    assert any(
        "REVOKE FAILED" in t and "Bad credentials" in t for t in chat.to("#access-approvals")
    )
    assert "revoked-token" not in " ".join(chat.to("#access-approvals"))

    monkeypatch.setenv("GITHUB_TOKEN", "gh-t0ken")
    clock.advance(seconds=11)
    chat.wait_for("carol", "was revoked")
    assert github.team("acme", "sre") == {}


def test_resources_shows_the_strategy_kind(chat, github):
    said = chat.reply("carol", "!access resources")
    assert f"grants via github_team (acme/sre at {github.url})" in said
