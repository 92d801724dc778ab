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
    CannotList,
    Done,
    Member,
    SettingsError,
    Strategy,
    StrategyError,
    payload_for,
)
from .command import CommandStrategy
from .github import GitHubRepoStrategy, GitHubTeamStrategy
from .okta import OktaGroupStrategy
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


__all__ = [
    "KINDS",
    "Accounts",
    "CannotList",
    "Done",
    "Member",
    "SettingsError",
    "Strategy",
    "StrategyError",
    "build_strategy",
    "payload_for",
]
