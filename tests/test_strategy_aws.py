"""aws_iam_group and aws_sso with a real boto3 client over HTTP: against moto's server
on 127.0.0.1 for IAM and IAM Identity Center, and against a small fake speaking the
Identity Center JSON protocol for what moto cannot show (provisioning that stays
IN_PROGRESS, or fails)."""

import json
from datetime import UTC, datetime

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from accessbot.strategies import Accounts, Member, StrategyError, build_strategy
from accessbot.strategies.aws import AwsSsoStrategy
from tests.fake_targets import FakeIdentityCenter
from tests.strategy_helpers import Naps, payload

ACCOUNTS = Accounts(aws={"carol": "carol"})
ACCOUNT_ID = "123456789012"


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials from the environment; nothing from this machine's AWS config."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws(moto_url):
    requests.post(f"{moto_url}/moto-api/reset", timeout=5).raise_for_status()
    return moto_url


def client(url, service, region="us-east-1"):
    return boto3.client(service, region_name=region, endpoint_url=url)


# -- aws_iam_group ------------------------------------------------------------------


@pytest.fixture
def iam(aws):
    iam = client(aws, "iam")
    iam.create_group(GroupName="prod-admins")
    iam.create_user(UserName="carol")
    return iam


def iam_group(url, accounts=ACCOUNTS, **overrides):
    settings = {"type": "aws_iam_group", "group": "prod-admins", "region": "us-east-1"}
    settings.update(endpoint_url=url, **overrides)
    return build_strategy(settings, accounts)


def members(iam, group="prod-admins"):
    return [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]]


def user_id(iam, name="carol"):
    return iam.get_user(UserName=name)["User"]["UserId"]


def test_iam_grant_adds_the_mapped_user_to_the_group_and_records_its_user_id(aws, iam):
    done = iam_group(aws).call("grant", payload())
    assert members(iam) == ["carol"]
    assert "carol added to group prod-admins" in done.note
    assert done.account == user_id(iam)
    assert done.answer == {"UserName": "carol", "UserId": user_id(iam)}


def test_iam_grant_twice_succeeds(aws, iam):
    iam_group(aws).call("grant", payload())
    iam_group(aws).call("grant", payload())
    assert members(iam) == ["carol"]


def test_iam_revoke_removes_the_user_and_a_second_revoke_succeeds(aws, iam):
    iam.add_user_to_group(GroupName="prod-admins", UserName="carol")
    iam_group(aws).call("revoke", payload("revoke", account=user_id(iam)))
    assert members(iam) == []
    note = iam_group(aws).call("revoke", payload("revoke", account=user_id(iam))).note
    assert "was not in group" in note


def test_iam_revoke_after_the_user_was_renamed_still_removes_it(aws, iam):
    done = iam_group(aws).call("grant", payload())
    iam.update_user(UserName="carol", NewUserName="carol.doe")  # ACCESS_USER_AWS says carol

    note = iam_group(aws).call("revoke", payload("revoke", account=done.account)).note

    assert members(iam) == []
    assert "carol.doe removed from group prod-admins" in note


def test_iam_revoke_of_a_deleted_user_checks_the_group_by_user_id(aws, iam):
    done = iam_group(aws).call("grant", payload())
    iam.remove_user_from_group(GroupName="prod-admins", UserName="carol")
    iam.delete_user(UserName="carol")
    note = iam_group(aws).call("revoke", payload("revoke", account=done.account)).note
    assert f"user {done.account} was not in group prod-admins" in note


def test_a_legacy_iam_revoke_looks_the_name_up_once_and_returns_the_user_id(aws, iam):
    iam.add_user_to_group(GroupName="prod-admins", UserName="carol")
    done = iam_group(aws).call("revoke", payload("revoke"))
    assert members(iam) == [] and done.account == user_id(iam)


def test_a_legacy_iam_revoke_whose_user_name_is_gone_fails_instead_of_calling_it_done(aws, iam):
    iam.add_user_to_group(GroupName="prod-admins", UserName="carol")
    iam.update_user(UserName="carol", NewUserName="carol.doe")
    with pytest.raises(StrategyError, match="no user carol any more .* ACCESS_USER_AWS"):
        iam_group(aws).call("revoke", payload("revoke"))
    assert members(iam) == ["carol.doe"]


def test_iam_revoke_against_a_missing_group_fails_in_aws_words(aws, iam):
    with pytest.raises(
        StrategyError, match=r"list the members of IAM group nope: NoSuchEntity: .*nope"
    ):
        iam_group(aws, group="nope").call("revoke", payload("revoke", account=user_id(iam)))


def test_iam_grant_for_an_unknown_iam_user_fails_in_aws_words(aws, iam):
    accounts = Accounts(aws={"carol": "carol-typo"})
    with pytest.raises(StrategyError, match=r"find IAM user carol-typo: NoSuchEntity"):
        iam_group(aws, accounts).call("grant", payload())


def test_iam_grant_without_a_mapping_names_access_user_aws(aws, iam):
    with pytest.raises(
        StrategyError, match="no AWS user name for @dave: add it to ACCESS_USER_AWS"
    ):
        iam_group(aws).call("grant", payload(user="dave"))


def test_iam_without_credentials_says_how_to_provide_them(aws, iam, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StrategyError, match="no AWS credentials .*AWS_PROFILE"):
        iam_group(aws).call("grant", payload())


def test_iam_unreachable_endpoint_is_a_failure_not_a_crash(aws):
    with pytest.raises(StrategyError, match="AWS IAM is unreachable"):
        iam_group("http://127.0.0.1:9", timeout="1s").call("grant", payload())


def test_iam_extend_makes_no_call(aws):
    assert (
        "nothing to extend"
        in iam_group("http://127.0.0.1:9").call("extend", payload("extend")).note
    )


# -- aws_sso on moto ------------------------------------------------------------------


@pytest.fixture
def sso(aws):
    """One Identity Center instance (moto makes it), a user carol and a permission set."""
    admin = client(aws, "sso-admin", "eu-west-1")
    instance = admin.list_instances()["Instances"][0]
    store = client(aws, "identitystore", "eu-west-1")
    user_id = store.create_user(
        IdentityStoreId=instance["IdentityStoreId"],
        UserName="carol",
        DisplayName="Carol",
        Name={"GivenName": "Carol", "FamilyName": "Doe"},
        Emails=[{"Value": "carol@acme.com", "Primary": True}],
    )["UserId"]
    permission_set = admin.create_permission_set(
        Name="ProdAdmin", InstanceArn=instance["InstanceArn"]
    )["PermissionSet"]["PermissionSetArn"]
    return {
        "admin": admin,
        "instance_arn": instance["InstanceArn"],
        "permission_set_arn": permission_set,
        "user_id": user_id,
    }


def sso_strategy(url, sso, accounts=ACCOUNTS, **overrides):
    settings = {
        "type": "aws_sso",
        "instance_arn": sso["instance_arn"],
        "permission_set_arn": sso["permission_set_arn"],
        "account_id": ACCOUNT_ID,
        "region": "eu-west-1",
        "endpoint_url": url,
        **overrides,
    }
    return build_strategy(settings, accounts)


def assigned(sso):
    found = sso["admin"].list_account_assignments(
        InstanceArn=sso["instance_arn"],
        AccountId=ACCOUNT_ID,
        PermissionSetArn=sso["permission_set_arn"],
    )["AccountAssignments"]
    return [(a["PrincipalType"], a["PrincipalId"]) for a in found]


def test_sso_grant_assigns_the_permission_set_and_records_the_identity_store_user_id(aws, sso):
    done = sso_strategy(aws, sso).call("grant", payload())
    assert assigned(sso) == [("USER", sso["user_id"])]
    assert "assigned permission set" in done.note
    assert done.account == sso["user_id"]


def test_sso_grant_twice_makes_one_assignment(aws, sso):
    sso_strategy(aws, sso).call("grant", payload())
    note = sso_strategy(aws, sso).call("grant", payload()).note
    assert assigned(sso) == [("USER", sso["user_id"])]
    assert "already assigned" in note


def test_sso_finds_the_user_by_email_when_access_user_aws_has_no_entry(aws, sso):
    sso_strategy(aws, sso, Accounts()).call("grant", payload())
    assert assigned(sso) == [("USER", sso["user_id"])]


def test_sso_revoke_deletes_the_assignment_and_a_second_revoke_succeeds(aws, sso):
    done = sso_strategy(aws, sso).call("grant", payload())
    sso_strategy(aws, sso).call("revoke", payload("revoke", account=done.account))
    assert assigned(sso) == []
    again = sso_strategy(aws, sso).call("revoke", payload("revoke", account=done.account))
    assert "was not assigned" in again.note


def test_sso_revoke_by_the_recorded_id_works_after_the_user_name_changed(aws, sso):
    done = sso_strategy(aws, sso).call("grant", payload())
    renamed = Accounts(aws={"carol": "carol.doe"})  # the store no longer has "carol"
    sso_strategy(aws, sso, renamed).call("revoke", payload("revoke", account=done.account))
    assert assigned(sso) == []


def test_sso_grant_for_a_user_the_identity_store_lacks_fails(aws, sso):
    with pytest.raises(StrategyError, match="Identity Center has no user with the user name ghost"):
        sso_strategy(aws, sso, Accounts(aws={"carol": "ghost"})).call("grant", payload())


def test_a_legacy_sso_revoke_for_a_user_the_identity_store_lacks_fails(aws, sso):
    sso_strategy(aws, sso).call("grant", payload())
    with pytest.raises(StrategyError, match="no user with the user name ghost any more"):
        sso_strategy(aws, sso, Accounts(aws={"carol": "ghost"})).call("revoke", payload("revoke"))
    assert assigned(sso) == [("USER", sso["user_id"])]


def test_a_legacy_sso_revoke_looks_the_user_up_once_and_returns_the_id(aws, sso):
    sso_strategy(aws, sso).call("grant", payload())
    done = sso_strategy(aws, sso).call("revoke", payload("revoke"))
    assert assigned(sso) == [] and done.account == sso["user_id"]


def test_sso_without_a_user_name_or_email_names_access_user_aws(aws, sso):
    with pytest.raises(
        StrategyError, match="no AWS user name or e-mail for @dave: add it to ACCESS_USER_AWS"
    ):
        sso_strategy(aws, sso).call("grant", payload(user="dave", email=None))


def test_sso_with_an_unknown_instance_says_what_to_check(aws, sso):
    strategy = sso_strategy(aws, sso, instance_arn="arn:aws:sso:::instance/ssoins-0000000000000000")
    with pytest.raises(
        StrategyError, match="no Identity Center instance .*check instance_arn and region"
    ):
        strategy.call("grant", payload())


# -- aws_sso: provisioning that takes a while, or fails (fake Identity Center) ----------


@pytest.fixture
def center():
    fake = FakeIdentityCenter()
    fake.users["carol"] = "user-carol"
    yield fake
    fake.close()


class Monotonic:
    """An injected monotonic clock that moves only when the strategy sleeps."""

    def __init__(self):
        self.now = 0.0
        self.naps = Naps()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps(seconds)
        self.now += seconds


def slow_sso(center, clock, **overrides):
    settings = {
        "type": "aws_sso",
        "instance_arn": "arn:aws:sso:::instance/ssoins-1111111111111111",
        "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-2222",
        "account_id": ACCOUNT_ID,
        "identity_store_id": "d-1234567890",
        "region": "eu-west-1",
        "endpoint_url": center.url,
        **overrides,
    }
    strategy = AwsSsoStrategy.from_settings(settings, sleep=clock.sleep, monotonic=clock)
    strategy.accounts = ACCOUNTS
    return strategy


def test_sso_polls_an_assignment_in_progress_until_it_succeeds(center):
    clock = Monotonic()
    center.polls_in_progress = 2
    slow_sso(center, clock).call("grant", payload())
    assert center.targets == [
        "GetUserId",
        "ListAccountAssignments",
        "CreateAccountAssignment",
        "DescribeAccountAssignmentCreationStatus",
        "DescribeAccountAssignmentCreationStatus",
    ]
    assert clock.naps.taken == [1.0, 1.0]
    assert center.assignments == {
        (ACCOUNT_ID, slow_sso(center, clock).permission_set_arn, "user-carol")
    }


def test_sso_polls_a_deletion_until_it_succeeds(center):
    clock = Monotonic()
    strategy = slow_sso(center, clock)
    center.assignments.add((ACCOUNT_ID, strategy.permission_set_arn, "user-carol"))
    center.polls_in_progress = 1
    strategy.call("revoke", payload("revoke", account="user-carol"))
    assert center.assignments == set()
    assert center.targets[-1] == "DescribeAccountAssignmentDeletionStatus"
    assert "GetUserId" not in center.targets  # the recorded id needs no look-up


def test_sso_revoke_after_the_user_was_renamed_in_the_identity_store(center):
    strategy = slow_sso(center, Monotonic())
    done = strategy.call("grant", payload())
    center.users = {"carol.doe": "user-carol"}  # renamed: same user id
    strategy.call("revoke", payload("revoke", account=done.account))
    assert center.assignments == set()


def test_sso_a_failed_provisioning_is_reported_with_awss_reason(center):
    center.polls_in_progress = 1
    center.outcome = "FAILED"
    center.failure_reason = "Received a 404 status error: No permission set found"
    with pytest.raises(
        StrategyError, match="could not create the assignment: FAILED: Received a 404"
    ):
        slow_sso(center, Monotonic()).call("grant", payload())


def test_sso_gives_up_waiting_after_the_wait_setting(center):
    clock = Monotonic()
    center.polls_in_progress = 1000
    with pytest.raises(
        StrategyError,
        match=r"still working on the create after 5s \(request 00000000-0000-4000-8000-000000000001\)",
    ):
        slow_sso(center, clock, wait="5s").call("grant", payload())
    assert sum(clock.naps.taken) == 5.0


def test_an_unreachable_endpoint_with_credentials_in_its_url_never_shows_them(aws):
    url = "http://robot:hunter2@127.0.0.1:9/?token=T0PSECRET"
    with pytest.raises(StrategyError) as caught:
        iam_group(url, timeout="1s").call("grant", payload())
    assert "AWS IAM is unreachable" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "T0PSECRET" not in str(caught.value)


# -- members(): who holds it, for the standing-access sweep -------------------------------------------------------------------------------


def test_an_iam_group_lists_its_users_with_their_user_ids(aws, iam):
    iam.create_user(UserName="dave")
    for name in ("carol", "dave"):
        iam.add_user_to_group(GroupName="prod-admins", UserName=name)
    strategy = build_strategy(
        {"type": "aws_iam_group", "group": "prod-admins", "endpoint_url": aws}
    )

    members = strategy.members("aws-prod-admins")

    ids = {n: iam.get_user(UserName=n)["User"]["UserId"] for n in ("carol", "dave")}
    assert sorted(members, key=lambda m: m.user) == [
        Member("carol", None, ids["carol"]),
        Member("dave", None, ids["dave"]),
    ]


def test_identity_center_lists_users_and_groups_assigned_the_permission_set(aws, sso):
    store_id = sso["admin"].list_instances()["Instances"][0]["IdentityStoreId"]
    identitystore = client(aws, "identitystore", "eu-west-1")
    group_id = identitystore.create_group(IdentityStoreId=store_id, DisplayName="oncall")["GroupId"]
    for kind, principal in (("USER", sso["user_id"]), ("GROUP", group_id)):
        sso["admin"].create_account_assignment(
            InstanceArn=sso["instance_arn"],
            TargetId=ACCOUNT_ID,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=sso["permission_set_arn"],
            PrincipalType=kind,
            PrincipalId=principal,
        )

    members = sso_strategy(aws, sso).members("aws-prod-sso")

    assert members == [
        Member("carol", "carol@acme.com", sso["user_id"]),
        Member("group oncall", None, f"group:{group_id}", "group assignment"),
    ]


def test_a_group_assignment_found_standing_is_removed_through_the_same_strategy(aws, sso):
    store_id = sso["admin"].list_instances()["Instances"][0]["IdentityStoreId"]
    identitystore = client(aws, "identitystore", "eu-west-1")
    group_id = identitystore.create_group(IdentityStoreId=store_id, DisplayName="oncall")["GroupId"]
    sso["admin"].create_account_assignment(
        InstanceArn=sso["instance_arn"],
        TargetId=ACCOUNT_ID,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=sso["permission_set_arn"],
        PrincipalType="GROUP",
        PrincipalId=group_id,
    )
    sso_strategy(aws, sso).call("grant", payload())  # carol, by a grant

    done = sso_strategy(aws, sso).call("revoke", payload("revoke", account=f"group:{group_id}"))

    assert "removed" in done.note and assigned(sso) == [("USER", sso["user_id"])]


# -- sessions opened before a revoke (issue 32) -------------------------------------------


def test_sso_revoke_says_sessions_may_last_the_permission_sets_session_length(aws, sso):
    admin = sso["admin"]
    longer = admin.create_permission_set(
        Name="ProdAdmin2h", InstanceArn=sso["instance_arn"], SessionDuration="PT2H"
    )["PermissionSet"]["PermissionSetArn"]
    strategy = sso_strategy(aws, sso, permission_set_arn=longer)
    done = strategy.call("grant", payload())

    revoked = strategy.call("revoke", payload("revoke", account=done.account))

    assert (revoked.sessions.fate, revoked.sessions.seconds) == ("may_last", 7200)


def test_an_iam_group_revoke_declares_role_sessions_may_last_twelve_hours(aws, iam):
    declared = iam_group(aws).sessions_at_revoke()
    assert (declared.fate, declared.seconds) == ("may_last", 12 * 3600)


def inline_policy(sso, arn=None):
    found = sso["admin"].get_inline_policy_for_permission_set(
        InstanceArn=sso["instance_arn"], PermissionSetArn=arn or sso["permission_set_arn"]
    )["InlinePolicy"]
    return json.loads(found) if found else {}


def test_sso_end_sessions_denies_the_permission_sets_sessions_issued_before_the_revoke(aws, sso):
    own = {"Sid": "ReadLogs", "Effect": "Allow", "Action": "logs:Get*", "Resource": "*"}
    sso["admin"].put_inline_policy_to_permission_set(
        InstanceArn=sso["instance_arn"],
        PermissionSetArn=sso["permission_set_arn"],
        InlinePolicy=json.dumps({"Version": "2012-10-17", "Statement": [own]}),
    )
    strategy = sso_strategy(aws, sso, end_sessions=True)
    done = strategy.call("grant", payload())
    before = datetime.now(UTC).replace(microsecond=0)

    revoked = strategy.call("revoke", payload("revoke", account=done.account))
    strategy.call("revoke", payload("revoke", account=done.account))  # a retry: one Deny still

    statements = inline_policy(sso)["Statement"]
    assert statements[0] == own
    assert len(statements) == 2
    deny = statements[1]
    assert (deny["Effect"], deny["Action"], deny["Resource"]) == ("Deny", "*", "*")
    issued = deny["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert datetime.fromisoformat(issued.replace("Z", "+00:00")) >= before
    assert assigned(sso) == []
    provisioned = sso["admin"].list_permission_sets_provisioned_to_account(
        InstanceArn=sso["instance_arn"], AccountId=ACCOUNT_ID
    )["PermissionSets"]
    assert sso["permission_set_arn"] in provisioned
    assert revoked.sessions.fate == "ended"
    assert "issued before" in revoked.note


def test_sso_without_end_sessions_leaves_the_inline_policy_alone(aws, sso):
    strategy = sso_strategy(aws, sso)
    done = strategy.call("grant", payload())
    strategy.call("revoke", payload("revoke", account=done.account))
    assert inline_policy(sso) == {}
