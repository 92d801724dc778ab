"""`members()`: who holds the access at each kind of target, read in full, for the
standing-access sweep. Okta and GitHub against the fakes on 127.0.0.1 (paged lists),
webhook and command against a real receiver and real programs (AWS, on moto: in
test_strategy_aws.py)."""

from __future__ import annotations

import json
import sys

import pytest

from accessbot.strategies import CannotList, Member, Strategy, StrategyError, build_strategy
from accessbot.strategies.okta import OktaGroupStrategy
from tests.fake_targets import FakeGitHub, FakeOkta
from tests.strategy_helpers import Naps, payload

# -- Okta ---------------------------------------------------------------------------------


@pytest.fixture
def okta(monkeypatch):
    fake = FakeOkta(token="okta-t0ken")
    fake.groups["00gadmins"] = set()
    monkeypatch.setenv("OKTA_API_TOKEN", "okta-t0ken")
    yield fake
    fake.close()


def okta_group(okta):
    settings = {
        "type": "okta_group",
        "org_url": okta.url,
        "group_id": "00gadmins",
        "token_env": "OKTA_API_TOKEN",
    }
    return OktaGroupStrategy.from_settings(settings, sleep=Naps())


def test_okta_lists_every_page_of_the_group_with_login_email_and_user_id(okta):
    for n in range(5):
        okta.add_user(f"user{n}@acme.com", f"00u{n}")
        okta.groups["00gadmins"].add(f"00u{n}")
    okta.page_size = 2

    members = okta_group(okta).members("okta-admins")

    assert members == [
        Member(f"user{n}@acme.com", f"user{n}@acme.com", f"00u{n}") for n in range(5)
    ]
    assert okta.methods().count("GET /api/v1/groups/00gadmins/users") == 3


def test_okta_listing_a_missing_group_fails_in_oktas_words(okta):
    del okta.groups["00gadmins"]
    with pytest.raises(StrategyError, match="Resource not found: 00gadmins"):
        okta_group(okta).members("okta-admins")


# -- GitHub -------------------------------------------------------------------------------


@pytest.fixture
def github(monkeypatch):
    fake = FakeGitHub(token="gh-t0ken")
    fake.teams[("acme", "sre")] = {}
    fake.repos["acme/api"] = {}
    monkeypatch.setenv("GITHUB_TOKEN", "gh-t0ken")
    yield fake
    fake.close()


def github_strategy(github, kind: str, **settings):
    where = {"org": "acme", "team": "sre"} if kind == "github_team" else {"repo": "acme/api"}
    if kind == "github_repo":
        where["permission"] = settings.pop("permission", "push")
    return build_strategy(
        {"type": kind, "token_env": "GITHUB_TOKEN", "api_url": github.url, **where, **settings}
    )


def test_a_team_lists_every_page_of_members_and_its_pending_invitations_by_user_id(github):
    for n in range(120):
        github.add_user(f"member{n}", 2000 + n, org_member=True)
        github.teams[("acme", "sre")][2000 + n] = "active"
    github.add_user("outsider", 3000)
    github.teams[("acme", "sre")][3000] = "pending"  # invited, not accepted yet

    members = github_strategy(github, "github_team").members("gh-sre")

    assert len(members) == 121
    assert members[0] == Member("member0", None, "2000")
    assert members[-1] == Member("outsider", None, "3000", "invitation pending")
    assert github.methods().count("GET /orgs/acme/teams/sre/members") == 2  # 100 a page


def test_a_repository_lists_collaborators_with_at_least_its_permission_and_invitations(github):
    readers = github.add_user("reader", 201, org_member=True)
    pusher = github.add_user("pusher", 202, org_member=True)
    admin = github.add_user("admin-gh", 203, org_member=True)
    invited = github.add_user("invited", 204)
    github.repos["acme/api"] = {readers: "pull", pusher: "push", admin: "admin"}
    github.invite("acme/api", invited, "push")
    github.invite("acme/api", readers, "pull")  # a read invitation: not push access

    members = github_strategy(github, "github_repo").members("gh-api")

    assert members == [
        Member("pusher", None, "202"),
        Member("admin-gh", None, "203"),
        Member("invited", None, "204", "invitation pending"),
    ]


def test_a_github_listing_that_fails_says_so_in_githubs_words(github):
    github.script(403, {"message": "Must have admin rights to Repository."})
    with pytest.raises(StrategyError, match="Must have admin rights"):
        github_strategy(github, "github_repo").members("gh-api")


# -- webhook --------------------------------------------------------------------------------


def webhook(url):
    return build_strategy({"type": "webhook", "url": url, "secret_env": "HOOK_SECRET"})


def test_a_webhook_is_asked_to_list_with_a_signed_call_and_its_answer_read(
    webhook_target, monkeypatch
):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.members = [
        {"user": "carol", "user_email": "carol@acme.com", "account": "db-user-7"},
        {"user": "svc-deploy", "account": 42},
    ]

    members = webhook(webhook_target.url).members("prod-db")

    assert members == [
        Member("carol", "carol@acme.com", "db-user-7"),
        Member("svc-deploy", None, "42"),
    ]
    assert webhook_target.lists == [{"action": "list", "resource": "prod-db"}]
    assert webhook_target.rejected == []  # the receiver checked the signature


@pytest.mark.parametrize("status", [404, 501])
def test_a_webhook_answering_404_or_501_cannot_list(webhook_target, monkeypatch, status):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.list_status = status
    with pytest.raises(CannotList, match=f"HTTP {status} to list"):
        webhook(webhook_target.url).members("prod-db")


def test_a_webhook_failing_to_list_is_a_failure_not_cannot_list(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.list_status = 500
    with pytest.raises(StrategyError, match="HTTP 500") as caught:
        webhook(webhook_target.url).members("prod-db")
    assert not isinstance(caught.value, CannotList)


def test_a_webhook_list_answer_that_is_not_a_members_list_is_a_failure(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.members = [{"nickname": "carol"}]
    with pytest.raises(StrategyError, match="member 1 of the list names no user"):
        webhook(webhook_target.url).members("prod-db")


# -- command --------------------------------------------------------------------------------


def command(script: str):
    return build_strategy({"type": "command", "argv": [sys.executable, "-c", script]})


def test_a_command_is_asked_to_list_on_stdin_and_prints_the_members():
    script = (
        "import json, sys; call = json.load(sys.stdin); "
        "print(json.dumps({'members': [{'user': call['action'] + ':' + call['resource']}]}))"
    )
    assert command(script).members("prod-db") == [Member("list:prod-db")]


def test_a_command_exiting_64_cannot_list_and_other_failures_are_failures():
    with pytest.raises(CannotList, match="exited with 64: no list here"):
        command("import sys; sys.stderr.write('no list here'); sys.exit(64)").members("db")
    with pytest.raises(StrategyError, match="exited with 1") as caught:
        command("import sys; sys.exit(1)").members("db")
    assert not isinstance(caught.value, CannotList)


def test_the_demo_script_lists_who_it_granted(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path))
    strategy = build_strategy({"type": "command", "argv": ["scripts/grant.py"]})
    strategy.call("grant", payload(user="carol", email="carol@acme.com") | {"resource": "db"})
    assert strategy.members("db") == [Member("carol", "carol@acme.com")]
    assert strategy.members("other") == []


def test_a_strategy_without_a_way_to_list_says_it_cannot():
    class NoList(Strategy):
        kind = "nolist"

    with pytest.raises(CannotList, match="the nolist strategy cannot list who holds the access"):
        NoList().members("db")


def test_a_list_answer_is_json_with_a_members_list():
    from accessbot.strategies.base import members_from_answer

    with pytest.raises(StrategyError, match='JSON like {"members"'):
        members_from_answer(json.dumps({"users": []}).encode(), "webhook x")
    assert members_from_answer(b'{"members": []}', "webhook x") == []
