"""How access is really granted and revoked: one module per kind of target.

A strategy is built from the `strategy` dict of a policy resource (validated at policy
load, so a bad setting is a load error naming the key) and is called with one of the
actions `grant`, `revoke` or `extend` and the JSON payload of the README's webhook contract;
`members()` says who holds the access at the target (for the standing-access sweep). Targets
that know the requester by another name (a GitHub login, an AWS user) look it up in the
`Accounts` the service passes to `build_strategy`.
"""

from __future__ import annotations

from .accounts import Accounts
from .approval_only import ApprovalOnlyStrategy
from .aws import AwsIamGroupStrategy, AwsSsoStrategy
from .base import (
    RECHECKING,
    CannotList,
    Done,
    Member,
    Sessions,
    SettingsError,
    Strategy,
    StrategyError,
    payload_for,
)
from .command import CommandStrategy
from .github import GitHubRepoStrategy, GitHubTeamStrategy
from .okta import OktaGroupStrategy
from .postgres_role import PostgresRoleStrategy
from .webhook import WebhookStrategy

KINDS: dict[str, type[Strategy]] = {
    cls.kind: cls
    for cls in (
        WebhookStrategy,
        CommandStrategy,
        OktaGroupStrategy,
        GitHubTeamStrategy,
        GitHubRepoStrategy,
        AwsIamGroupStrategy,
        AwsSsoStrategy,
        ApprovalOnlyStrategy,
        PostgresRoleStrategy,
    )
}


def build_strategy(settings: dict, accounts: Accounts | None = None) -> Strategy:
    """Build the strategy a resource names; raises SettingsError naming the bad key.

    `accounts` tells strategies who the requester is on their target; policy loading
    leaves it out, since it only validates the settings.
    """
    if not isinstance(settings, dict):
        raise SettingsError("strategy", 'must be a dict like {"type": "webhook", "url": ...}')
    kind = settings.get("type")
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise SettingsError("strategy.type", f"{kind!r} is not a strategy; use one of: {known}")
    strategy = KINDS[kind].from_settings(settings)
    strategy.accounts = accounts
    return strategy


# A valid value of each kind's required settings. `strategy_problems` puts one in place
# of a wrong or missing value to go on checking the other settings, so that a policy
# check reports every problem of a strategy in one run, not one a round.
STAND_INS: dict[str, dict] = {
    "webhook": {"url": "https://hooks.example.com/access"},
    "command": {"argv": ["scripts/grant.py"]},
    "okta_group": {
        "org_url": "https://acme.okta.com",
        "group_id": "00g1abcd2EFGH3ijk4x7",
        "token_env": "OKTA_API_TOKEN",
    },
    "github_team": {"org": "acme", "team": "sre", "token_env": "GITHUB_TOKEN"},
    "github_repo": {"repo": "acme/api", "permission": "push", "token_env": "GITHUB_TOKEN"},
    "aws_iam_group": {"group": "prod-admins"},
    "aws_sso": {
        "instance_arn": "arn:aws:sso:::instance/ssoins-1111111111111111",
        "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-2222",
        "account_id": "123456789012",
        "region": "eu-west-1",
    },
    "postgres_role": {"dsn_env": "PROD_DB_ADMIN_DSN", "role": "prod_rw"},
    "none": {},
}


def strategy_problems(settings) -> tuple[Strategy | None, list[SettingsError]]:
    """The strategy a resource names, or every problem its settings have: after each
    one, the bad setting is replaced by a valid stand-in (or left out, if optional) and
    the settings are checked again, until they pass or a problem repeats."""
    try:
        return build_strategy(settings), []
    except SettingsError as first:
        problems = [first]
    if not isinstance(settings, dict) or settings.get("type") not in KINDS:
        return None, problems
    trial, stand_ins = dict(settings), STAND_INS.get(settings["type"], {})
    quiet = RECHECKING.set(True)
    try:
        _recheck(trial, stand_ins, problems)
    finally:
        RECHECKING.reset(quiet)
    return None, problems


def _recheck(trial: dict, stand_ins: dict, problems: list[SettingsError]) -> None:
    """Put a stand-in in place of the last problem's setting (or leave it out) and check
    again, adding each new problem, until the settings pass or a problem repeats."""
    for _ in range(len(trial) + len(stand_ins)):
        key = problems[-1].key.removeprefix("strategy.")
        if key in stand_ins and trial.get(key) != stand_ins[key]:
            trial[key] = stand_ins[key]
        elif key in trial and key != "type":
            del trial[key]
        else:
            break
        try:
            build_strategy(trial)
            break
        except SettingsError as exc:
            if any(p.key == exc.key for p in problems):
                break
            problems.append(exc)


__all__ = [
    "KINDS",
    "STAND_INS",
    "Accounts",
    "CannotList",
    "Done",
    "Member",
    "Sessions",
    "SettingsError",
    "Strategy",
    "StrategyError",
    "build_strategy",
    "payload_for",
    "strategy_problems",
]
