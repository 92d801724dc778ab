"""The standing-access sweep against real kinds of targets: the Okta and GitHub fakes on
127.0.0.1 (with paged lists) and AWS IAM on moto. Each grants someone through the bot,
has someone else added by hand, and checks that only the latter is found, and removed
only where the policy says `remove_standing`."""

from __future__ import annotations

import pytest

from accessbot.audit import AuditLog
from accessbot.service import Actor
from accessbot.standing_sweep import StandingSweep
from accessbot.store import TinyDBStore
from accessbot.strategies import build_strategy
from tests import test_strategy_aws as aws_tests
from tests.builders import person, wired
from tests.conftest import policy_file
from tests.fake_targets import FakeGitHub, FakeOkta

# moto's server and dummy AWS credentials, as the AWS strategy tests have them.
moto_url, aws_env, aws = aws_tests.moto_url, aws_tests.aws_env, aws_tests.aws

SETTINGS = {"max_duration": "4h", "approvers": ["@alice"], "channel": "#access-approvals"}


def service_for(tmp_path, clock, resources: dict, **accounts):
    policy_file(tmp_path / "policies", "targets.py", f"RESOURCES = {resources!r}\n")
    service = wired(
        TinyDBStore(tmp_path / "data" / "access.json"),
        AuditLog(tmp_path / "data" / "audit.jsonl", clock),
        tmp_path / "policies",
        clock,
        **accounts,
    )
    assert service.policy_error is None, service.policy_error
    return service


def grant(service, resource: str, requester: Actor | None = None) -> None:
    rid = service.request(requester or person("carol"), resource, None, "INC-7").request.id
    outcome = service.approve(person("alice"), rid)
    assert outcome.request.status == "active", outcome.reply


def events(service) -> list[str]:
    return [e["event"] for e in service.audit.events() if e["event"].startswith("standing_")]


# -- Okta -----------------------------------------------------------------------------------


@pytest.fixture
def okta(monkeypatch):
    fake = FakeOkta(token="okta-t0ken")
    fake.groups["00gadmins"] = set()
    fake.page_size = 2  # the group's members come in pages of two
    monkeypatch.setenv("OKTA_API_TOKEN", "okta-t0ken")
    yield fake
    fake.close()


def okta_resource(okta, **extra) -> dict:
    strategy = {
        "type": "okta_group",
        "org_url": okta.url,
        "group_id": "00gadmins",
        "token_env": "OKTA_API_TOKEN",
    }
    return {"okta-admins": {**SETTINGS, "strategy": strategy, **extra}}


@pytest.mark.parametrize("remove", [False, True])
def test_okta_someone_added_by_hand_is_found_and_removed_only_with_remove_standing(
    tmp_path, clock, okta, remove
):
    for login, user_id in (
        ("carol@acme.com", "00ucarol"),
        ("svc@acme.com", "00usvc"),
        ("mallory@acme.com", "00umallory"),
        ("erin@acme.com", "00uerin"),
    ):
        okta.add_user(login, user_id)
    okta.groups["00gadmins"] |= {"00usvc", "00umallory", "00uerin"}  # by hand
    service = service_for(
        tmp_path,
        clock,
        okta_resource(okta, standing=["svc@acme.com"], remove_standing=remove),
    )
    grant(service, "okta-admins", Actor("carol", email="carol@acme.com"))

    result = StandingSweep(service).sweep()

    assert sorted(f.user for f in result.found) == ["erin@acme.com", "mallory@acme.com"]
    if remove:
        assert okta.groups["00gadmins"] == {"00ucarol", "00usvc"}
        assert events(service) == ["standing_found"] * 2 + ["standing_removed"] * 2
    else:
        assert okta.groups["00gadmins"] == {"00ucarol", "00usvc", "00umallory", "00uerin"}
        assert events(service) == ["standing_found"] * 2
    assert StandingSweep(service).sweep().found == []  # not announced again


def test_a_member_granted_through_another_resource_on_the_same_group_is_left_alone(
    tmp_path, clock, okta
):
    okta.add_user("carol@acme.com", "00ucarol")
    okta.add_user("mallory@acme.com", "00umallory")
    okta.groups["00gadmins"].add("00umallory")  # by hand
    (strategy,) = [r["strategy"] for r in okta_resource(okta).values()]
    resources = {
        "okta-admins": {**SETTINGS, "strategy": strategy, "remove_standing": True},
        "okta-admins-oncall": {**SETTINGS, "strategy": dict(strategy), "remove_standing": True},
    }
    service = service_for(tmp_path, clock, resources)
    grant(service, "okta-admins-oncall", Actor("carol", email="carol@acme.com"))

    result = StandingSweep(service).sweep()

    assert sorted((f.resource, f.user) for f in result.found) == [
        ("okta-admins", "mallory@acme.com"),
        ("okta-admins-oncall", "mallory@acme.com"),
    ]
    assert okta.groups["00gadmins"] == {"00ucarol"}  # carol's live grant explains her in both


def test_a_standing_entry_of_another_resource_on_the_same_group_explains_its_member(
    tmp_path, clock, okta
):
    okta.add_user("svc@acme.com", "00usvc")
    okta.groups["00gadmins"].add("00usvc")
    (strategy,) = [r["strategy"] for r in okta_resource(okta).values()]
    resources = {
        "okta-admins": {**SETTINGS, "strategy": strategy, "standing": ["svc@acme.com"]},
        "okta-admins-oncall": {**SETTINGS, "strategy": dict(strategy), "remove_standing": True},
    }
    service = service_for(tmp_path, clock, resources)

    assert StandingSweep(service).sweep().found == []
    assert okta.groups["00gadmins"] == {"00usvc"}


def test_resources_on_different_groups_do_not_explain_each_other(tmp_path, clock, okta):
    okta.add_user("carol@acme.com", "00ucarol")
    okta.groups["00gother"] = {"00ucarol"}  # by hand
    (strategy,) = [r["strategy"] for r in okta_resource(okta).values()]
    resources = {
        "okta-admins": {**SETTINGS, "strategy": strategy},
        "okta-other": {**SETTINGS, "strategy": {**strategy, "group_id": "00gother"}},
    }
    service = service_for(tmp_path, clock, resources)
    grant(service, "okta-admins", Actor("carol", email="carol@acme.com"))

    found = StandingSweep(service).sweep().found

    assert [(f.resource, f.user) for f in found] == [("okta-other", "carol@acme.com")]


# -- GitHub ---------------------------------------------------------------------------------


@pytest.fixture
def github(monkeypatch):
    fake = FakeGitHub(token="gh-t0ken")
    fake.add_user("carol-gh", 101, org_member=True)
    fake.teams[("acme", "sre")] = {}
    fake.repos["acme/api"] = {}
    monkeypatch.setenv("GITHUB_TOKEN", "gh-t0ken")
    yield fake
    fake.close()


def github_resources(github) -> dict:
    common = {"token_env": "GITHUB_TOKEN", "api_url": github.url}
    return {
        "gh-sre": {
            **SETTINGS,
            "strategy": {"type": "github_team", "org": "acme", "team": "sre", **common},
        },
        "gh-api": {
            **SETTINGS,
            "remove_standing": True,
            "strategy": {"type": "github_repo", "repo": "acme/api", "permission": "push", **common},
        },
    }


def test_github_a_paged_team_is_read_in_full_and_a_pending_invitation_is_withdrawn(
    tmp_path, clock, github
):
    for n in range(130):  # two pages of team members, added by hand
        github.add_user(f"dev{n}", 2000 + n, org_member=True)
        github.teams[("acme", "sre")][2000 + n] = "active"
    mallory = github.add_user("mallory", 3000)
    github.invite("acme/api", mallory, "push")  # a pending invitation nobody granted
    service = service_for(
        tmp_path, clock, github_resources(github), user_github={"carol": "carol-gh"}
    )
    grant(service, "gh-sre")
    grant(service, "gh-api")

    result = StandingSweep(service).sweep()

    by_resource = {r: [f.user for f in fs] for r, fs in result.findings.items()}
    assert len(by_resource["gh-sre"]) == 130 and "carol-gh" not in by_resource["gh-sre"]
    assert by_resource["gh-api"] == ["mallory"]  # her invitation, found and withdrawn
    assert [f.user for f in result.removed] == ["mallory"]
    assert github.invitations["acme/api"] == []
    assert github.collaborators("acme/api") == {"carol-gh": "push"}
    assert github.team("acme", "sre")["carol-gh"] == "active"
    assert github.methods().count("GET /orgs/acme/teams/sre/members") == 2
    [announced] = [n for n in result.notices if "gh-sre" in n.text]
    assert "and 110 more: `!access standing gh-sre`" in announced.text


# -- AWS IAM (moto) ---------------------------------------------------------------------------


def test_aws_iam_a_user_added_to_the_group_by_hand_is_removed(tmp_path, clock, aws):
    iam = aws_tests.client(aws, "iam")
    iam.create_group(GroupName="prod-admins")
    for name in ("carol", "mallory"):
        iam.create_user(UserName=name)
    iam.add_user_to_group(GroupName="prod-admins", UserName="mallory")
    strategy = {"type": "aws_iam_group", "group": "prod-admins", "endpoint_url": aws}
    resources = {"aws-admins": {**SETTINGS, "remove_standing": True, "strategy": strategy}}
    service = service_for(tmp_path, clock, resources, user_aws={"carol": "carol"})
    grant(service, "aws-admins")

    result = StandingSweep(service).sweep()

    assert [f.user for f in result.removed] == ["mallory"]
    members = [u["UserName"] for u in iam.get_group(GroupName="prod-admins")["Users"]]
    assert members == ["carol"]


# -- what counts as one target ---------------------------------------------------------------


def key(**strategy):
    return build_strategy(strategy).target_key()


def test_one_group_team_or_role_is_one_target_however_its_url_is_written():
    okta = {"type": "okta_group", "group_id": "00gadmins", "token_env": "T"}
    assert key(**okta, org_url="https://ACME.okta.com/") == key(
        **okta, org_url="https://acme.okta.com"
    )
    assert key(**okta, org_url="https://acme.okta.com") != key(
        **{**okta, "group_id": "00gother"}, org_url="https://acme.okta.com"
    )
    team = {"type": "github_team", "token_env": "T"}
    assert key(**team, org="Acme", team="SRE") == key(**team, org="acme", team="sre")
    repo = {"type": "github_repo", "repo": "acme/api", "token_env": "T"}
    assert key(**repo, permission="push") == key(**repo, permission="admin")


def test_webhooks_share_a_target_only_when_they_name_the_same_one():
    url = "https://hooks.acme.com/access"
    assert key(type="webhook", url=url) is None  # each call names its resource
    assert key(type="webhook", url=url, target="okta:admins") == key(
        type="webhook", url=url + "/", target="okta:admins"
    )
    assert key(type="webhook", url=url, target="okta:admins") != key(
        type="webhook", url=url, target="okta:readers"
    )
    assert key(type="command", argv=["scripts/grant.py"]) is None
