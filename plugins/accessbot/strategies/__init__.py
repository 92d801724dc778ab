"""How access is really granted and revoked: one module per kind of target.

A strategy is built from the `strategy` dict of a policy resource (validated at policy
load, so a bad setting is a load error naming the key) and is called with one of the
actions `grant`, `revoke` or `extend` and the JSON payload of DESIGN section 3.
"""

from __future__ import annotations

from .base import SettingsError, Strategy, StrategyError, payload_for
from .command import CommandStrategy
from .webhook import WebhookStrategy

KINDS: dict[str, type[Strategy]] = {
    WebhookStrategy.kind: WebhookStrategy,
    CommandStrategy.kind: CommandStrategy,
}


def build_strategy(settings: dict) -> Strategy:
    """Build the strategy a resource names; raises SettingsError naming the bad key."""
    if not isinstance(settings, dict):
        raise SettingsError("strategy", 'must be a dict like {"type": "webhook", "url": ...}')
    kind = settings.get("type")
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise SettingsError("strategy.type", f"{kind!r} is not a strategy; use one of: {known}")
    return KINDS[kind].from_settings(settings)


__all__ = [
    "KINDS",
    "SettingsError",
    "Strategy",
    "StrategyError",
    "build_strategy",
    "payload_for",
]
