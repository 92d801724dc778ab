"""Who a chat user is on each target: the ACCESS_USER_GITHUB / _AWS / _DB maps.

The service builds one `Accounts` from the bot's settings and hands it to every strategy
it builds (`build_strategy(settings, accounts)`), so strategies never read the bot's
configuration themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import StrategyError

# system -> (what the account is called, the config key that maps handles to it)
SYSTEMS = {
    "github": ("GitHub login", "ACCESS_USER_GITHUB"),
    "aws": ("AWS user name", "ACCESS_USER_AWS"),
    "db": ("database login", "ACCESS_USER_DB"),
}


def _handle(handle: str) -> str:
    return str(handle).strip().lstrip("@").lower()


class Accounts:
    """Chat handle -> account name, per target system."""

    def __init__(self, **maps: Mapping[str, str]):
        unknown = set(maps) - set(SYSTEMS)
        if unknown:
            raise ValueError(f"unknown account systems: {sorted(unknown)}")
        self._maps = {
            system: {_handle(k): str(v) for k, v in (mapping or {}).items()}
            for system, mapping in maps.items()
        }

    def find(self, system: str, handle: str) -> str | None:
        return self._maps.get(system, {}).get(_handle(handle)) or None

    def require(self, system: str, handle: str) -> str:
        """The account of `handle`, or a StrategyError that says which key to fill in."""
        account = self.find(system, handle)
        if account:
            return account
        what, key = SYSTEMS[system]
        raise StrategyError(f"no {what} for @{_handle(handle)}: add it to {key}")


NO_ACCOUNTS = Accounts()
