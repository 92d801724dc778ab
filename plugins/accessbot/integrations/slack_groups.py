"""Who is in a Slack user group, for `slack-group:@handle` approver entries.

`SlackGroups` asks Slack's Web API through an injected slack_sdk `WebClient`
(`usergroups.list` to find the group by its handle, `usergroups.users.list` for its
members) and caches both answers for `ttl`. It needs the `usergroups:read` scope.
Members are Slack user ids (`U024BE7LH`), which is what a Slack user's id is in chat, so
they match like any approver entry. Every failure raises SlackGroupError with a reason
safe to show on a card (never the token); the caller treats it as "nobody".

`NoSlackGroups` stands in when the bot is not on Slack: every group names nobody, with a
note, and policies that mention Slack groups still load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cachetools import TTLCache

from ..approvers import SlackGroupError
from .slack_limits import honour_rate_limits

log = logging.getLogger(__name__)

MAX_ENTRIES = 1000  # the group list and the member lists of this many groups, at most
NOT_ON_SLACK = "Slack user groups can only be looked up when the bot runs on Slack"


class NoSlackGroups:
    """Not on Slack: no group can be expanded."""

    def members(self, handle: str) -> list[str]:
        raise SlackGroupError(NOT_ON_SLACK)


class StaticSlackGroups:
    """Fixed answers (policy tests, `python -m accessbot test`): handle -> user ids."""

    source = "answer from the test file"

    def __init__(self, groups: Mapping[str, Iterable[str]]):
        self._groups = {_handle(h): list(m) for h, m in groups.items()}

    def members(self, handle: str) -> list[str]:
        found = self._groups.get(_handle(handle))
        if found is None:
            raise SlackGroupError(f"the test file gives no members for @{_handle(handle)}")
        return list(found)


class SlackGroups:
    """Slack user group members by handle, through slack_sdk, cached for `ttl`.

    `client` is a WebClient or a callable returning the current one (the SlackV3 backend
    replaces its client when it reconnects); None means not connected.
    """

    source = "live Slack lookup"

    def __init__(
        self,
        client: Any,
        clock: Callable[[], datetime],
        ttl: timedelta = timedelta(minutes=5),
        max_entries: int = MAX_ENTRIES,
    ):
        self._client = client
        self.clock = clock
        self.ttl = ttl
        # ("groups",) and ("members", group id) -> Slack's answer; bounded, least recently
        # used first, by the injected clock
        self._cache: TTLCache[tuple, Any] = TTLCache(max_entries, ttl, timer=clock)
        self._lock = threading.Lock()  # requests and clicks expand groups on many threads
        self.calls = 0  # Slack Web API calls made, for tests and benchmarks

    def members(self, handle: str) -> list[str]:
        wanted = _handle(handle)
        groups = self._cached(("groups",), self._list_groups)
        group_id = groups.get(wanted)
        if group_id is None:
            raise SlackGroupError(f"Slack has no user group @{wanted}")
        return list(self._cached(("members", group_id), lambda: self._list_members(group_id)))

    def _client_now(self):
        client = self._client() if callable(self._client) else self._client
        if client is None:
            raise SlackGroupError(NOT_ON_SLACK)
        return honour_rate_limits(client)

    def _list_groups(self) -> dict[str, str]:
        answer = self._call("usergroups.list", lambda c: c.usergroups_list(include_users=False))
        groups = answer.get("usergroups")
        if not isinstance(groups, list):
            raise SlackGroupError("Slack's usergroups.list answer has no usergroups")
        return {
            _handle(g["handle"]): str(g["id"])
            for g in groups
            if isinstance(g, dict) and g.get("handle") and g.get("id") and not g.get("date_delete")
        }

    def _list_members(self, group_id: str) -> tuple[str, ...]:
        answer = self._call(
            "usergroups.users.list", lambda c: c.usergroups_users_list(usergroup=group_id)
        )
        users = answer.get("users")
        if not isinstance(users, list):
            raise SlackGroupError("Slack's usergroups.users.list answer has no users")
        return tuple(str(u) for u in users if isinstance(u, str) and u)

    def _call(self, method: str, work: Callable[[Any], Any]) -> dict:
        client = self._client_now()
        try:
            with self._lock:
                self.calls += 1
            response = work(client)
            data = response.data if hasattr(response, "data") else response
        except Exception as exc:  # noqa: BLE001 - any failure names nobody
            error = getattr(getattr(exc, "response", None), "data", None)
            reason = (
                f"Slack refused {method}: {error.get('error', 'error')}"
                if isinstance(error, dict)
                else f"could not reach Slack for {method} ({type(exc).__name__})"
            )
            log.warning("Slack user group lookup failed: %s", reason)
            raise SlackGroupError(reason) from None
        if not isinstance(data, dict) or not data.get("ok"):
            error = data.get("error", "error") if isinstance(data, dict) else "not JSON"
            raise SlackGroupError(f"Slack refused {method}: {error}")
        return data

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = load()
        with self._lock:
            self._cache[key] = value
        return value


def _handle(handle: str) -> str:
    return str(handle).strip().lstrip("@").lower()
