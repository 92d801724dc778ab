"""Strategy settings are checked when the policy loads: a missing or bad key is a load
error naming the file, the line and the key; and the per-user account maps load from
the config or, winning, from the environment as JSON."""

import pytest

from accessbot.policy import PolicyError, load_policies
from accessbot.settings import Settings, SettingsError
from accessbot.strategies import KINDS, STAND_INS, build_strategy
from tests.conftest import ROOT, policy_file

VALID = {
    "okta_group": {
        "type": "okta_group",
        "org_url": "https://acme.okta.com",
        "group_id": "00g1abcd2EFGH3ijk4x7",
        "token_env": "OKTA_API_TOKEN",
    },
    "github_team": {
        "type": "github_team",
        "org": "acme",
        "team": "sre",
        "token_env": "GITHUB_TOKEN",
    },
    "github_repo": {
        "type": "github_repo",
        "repo": "acme/api",
        "permission": "push",
        "token_env": "GITHUB_TOKEN",
    },
    "aws_iam_group": {"type": "aws_iam_group", "group": "prod-admins"},
    "aws_sso": {
        "type": "aws_sso",
        "instance_arn": "arn:aws:sso:::instance/ssoins-1111111111111111",
        "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-2222",
        "account_id": "123456789012",
        "region": "eu-west-1",
    },
    "postgres_role": {"type": "postgres_role", "dsn_env": "PROD_DB_ADMIN_DSN", "role": "prod_rw"},
}
REQUIRED = [(kind, key) for kind, settings in VALID.items() for key in settings if key != "type"]


def load(policy_dir, strategy: dict):
    text = (
        "RESOURCES = {\n"
        "    'prod': {\n"
        "        'max_duration': '1h',\n"
        "        'approvers': ['@alice'],\n"
        "        'channel': '#access',\n"
        f"        'strategy': {strategy!r},\n"
        "    },\n"
        "}\n"
    )
    policy_file(policy_dir, "prod.py", text)
    return load_policies(policy_dir)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_the_documented_settings_load(policy_dir, kind):
    policies = load(policy_dir, VALID[kind])
    assert policies.resources["prod"].strategy.describe().startswith(kind)


@pytest.mark.parametrize(("kind", "key"), REQUIRED)
def test_a_missing_required_setting_is_a_load_error_naming_the_key(policy_dir, kind, key):
    settings = {k: v for k, v in VALID[kind].items() if k != key}
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, settings)
    # A missing key is reported on the line of the strategy that lacks it.
    assert f"prod.py:6: prod.strategy.{key}: is required" in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "key", "value", "says"),
    [
        ("okta_group", "org_url", "acme.okta.com", "is not an http(s) URL"),
        ("okta_group", "group_id", "https://acme.okta.com/groups/1", "not a URL or a name"),
        ("okta_group", "token_env", "my token", "must name an environment variable"),
        ("okta_group", "timeout", "soon", "is not a duration"),
        ("github_team", "team", "SRE Team", "use the slug"),
        ("github_team", "api_url", "github.acme.com", "is not an http(s) URL"),
        ("github_repo", "repo", "api", "must be owner/name"),
        ("github_repo", "permission", "write", "use one of: pull, triage, push, maintain, admin"),
        ("aws_iam_group", "region", "Ireland", "is not an AWS region"),
        ("aws_iam_group", "group", "prod admins", "is not an IAM group name"),
        ("aws_sso", "account_id", "1234", "is not a 12-digit AWS account id"),
        ("aws_sso", "instance_arn", "ssoins-1", "is not an Identity Center instance ARN"),
        ("aws_sso", "permission_set_arn", "ps-2", "is not a permission set ARN"),
        ("aws_sso", "wait", "forever", "is not a duration"),
    ],
)
def test_a_bad_setting_is_a_load_error_that_says_what_is_wrong(policy_dir, kind, key, value, says):
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, {**VALID[kind], key: value})
    message = str(caught.value)
    assert f"prod.strategy.{key}:" in message and says in message


def test_an_unknown_setting_lists_the_ones_the_strategy_takes(policy_dir):
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, {**VALID["github_team"], "teams": "sre"})
    assert "prod.strategy.teams: is not a setting of the github_team strategy" in str(caught.value)
    assert "api_url" in str(caught.value)


def test_an_unknown_kind_lists_every_strategy(policy_dir):
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, {"type": "ldap_group"})
    for kind in ("aws_iam_group", "aws_sso", "github_repo", "github_team", "okta_group"):
        assert kind in str(caught.value)


class Config:
    ACCESS_USER_GITHUB = {"@Carol": "carol-gh"}
    ACCESS_USER_AWS = {"carol": "carol.doe"}


def test_account_maps_come_from_the_config_with_handles_normalised():
    settings = Settings.load(Config, environ={})
    assert settings.user_github == {"carol": "carol-gh"}
    assert settings.user_aws == {"carol": "carol.doe"}


def test_account_maps_in_the_environment_win_over_the_config():
    settings = Settings.load(Config, environ={"ACCESS_USER_GITHUB": '{"dave": "dave-gh"}'})
    assert settings.user_github == {"dave": "dave-gh"}
    assert settings.user_aws == {"carol": "carol.doe"}


@pytest.mark.parametrize("bad", ["{carol: carol-gh}", '["carol-gh"]', '{"carol": 7}'])
def test_a_bad_account_map_says_what_it_should_look_like(bad):
    with pytest.raises(SettingsError, match=r'ACCESS_USER_GITHUB must .*\{"alice": "alice-gh"\}'):
        Settings.load(None, environ={"ACCESS_USER_GITHUB": bad})


def test_the_shipped_targets_example_loads(policy_dir):
    example = (ROOT / "policies" / "_targets_example.py").read_text()
    policy_file(policy_dir, "targets.py", example)
    policies = load_policies(policy_dir)
    kinds = {r.strategy.kind for r in policies.resources.values()}
    assert kinds == set(VALID)


SECRET_URL = "https://robot:hunter2@api.acme.test:8443/v1?token=T0PSECRET#x"


@pytest.mark.parametrize(
    "kind, key",
    [
        ("okta_group", "org_url"),
        ("github_team", "api_url"),
        ("github_repo", "api_url"),
        ("aws_iam_group", "endpoint_url"),
        ("aws_sso", "endpoint_url"),
        ("webhook", "url"),
    ],
)
def test_a_url_setting_with_credentials_is_described_without_them(policy_dir, kind, key):
    settings = dict(VALID.get(kind, {"type": "webhook"}), **{key: SECRET_URL})
    described = load(policy_dir, settings).resources["prod"].strategy.describe()
    assert "https://api.acme.test:8443/v1" in described
    for secret in ("robot", "hunter2", "T0PSECRET", "#x"):
        assert secret not in described


def test_a_bad_url_setting_is_named_in_the_load_error_without_its_credentials(policy_dir):
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, {"type": "webhook", "url": "ftp://robot:hunter2@h.test/x?token=T0P"})
    assert "strategy.url" in str(caught.value) and "ftp://h.test/x" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "T0P" not in str(caught.value)


ALSO_VALID = {
    **VALID,
    "webhook": {"type": "webhook", "url": "https://hooks.example.com/x", "secret_env": "HOOK"},
    "command": {"type": "command", "argv": ["scripts/grant.py"], "timeout": "30s"},
}


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("webhook", {"url": "ftp://hooks", "secret_env": "", "timeout": "soon", "retries": 3}),
        ("command", {"argv": "scripts/grant.py", "timeout": "forever", "shell": True}),
        ("okta_group", {"org_url": "acme.okta.com", "token_env": "my token", "timeout": "soon"}),
        ("github_repo", {"repo": "api", "permission": "write"}),
        ("aws_sso", {"account_id": "1234", "wait": "forever", "region": "Ireland"}),
    ],
)
def test_every_bad_strategy_setting_is_reported_in_one_run(policy_dir, kind, bad):
    """Issue 19: `check` reports every problem it can find in one run, a strategy's
    settings included, not only the first."""
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, {**ALSO_VALID[kind], **bad})
    message = str(caught.value)
    for key in bad:
        assert f"prod.strategy.{key}:" in message, (key, message)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kinds_stand_in_settings_are_valid(kind):
    """The stand-ins that let a check go on past a bad setting must themselves pass."""
    assert build_strategy({"type": kind, **STAND_INS[kind]}).kind == kind


@pytest.mark.parametrize("secret_env", ["my secret", "s3cr3t-value!", ""])
def test_a_webhook_secret_env_must_name_an_environment_variable(policy_dir, secret_env):
    with pytest.raises(PolicyError) as caught:
        load(policy_dir, {**ALSO_VALID["webhook"], "secret_env": secret_env})
    assert "prod.strategy.secret_env: must name an environment variable" in str(caught.value)


def test_checking_past_a_bad_setting_logs_nothing_about_the_stand_ins(policy_dir, caplog):
    """The stand-ins are the check's own: no warning may name them to an admin."""
    with caplog.at_level("WARNING"), pytest.raises(PolicyError):
        load(policy_dir, {"type": "webhook", "url": "ftp://hooks", "timeout": "soon"})
    assert not [r for r in caplog.records if "hooks.example.com" in r.getMessage()]
