"""Who a Slack user is: `users.info`, cached, as a SlackUser (id, handle, e-mail, team)."""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from slack_sdk.web import WebClient

from ...errors import AccessBotError
from ..slack_limits import honour_rate_limits


@dataclass(frozen=True)
class SlackUser:
    id: str
    handle: str  # the unique `name`, what `@handle` means in a policy (never a display name)
    email: str | None = None
    display_name: str = ""
    team_id: str = ""  # the user's own workspace: another one's for a Slack Connect user


class SlackLookupError(AccessBotError):
    pass


NOT_CONFIRMED = (
    "Sorry, I could not confirm who you are with Slack, so nothing was done; try again in a moment."
)


MAX_USERS = 5000  # people kept in SlackDirectory's cache


class SlackDirectory:
    """`users.info`, cached for `ttl` seconds, so a burst of clicks costs one round trip.

    Only for the names people read: who may do what is decided by the user id, so a
    rename seen up to `ttl` late changes how someone is shown, never what they may do.
    """

    def __init__(
        self,
        client: WebClient,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = honour_rate_limits(client)  # users.info is Tier 4: a 429 waits
        self.ttl = ttl
        self.clock = clock
        # Bounded: the least recently used goes first once MAX_USERS are kept.
        self._cache: TTLCache[str, SlackUser] = TTLCache(MAX_USERS, ttl, timer=clock)
        self._lock = threading.Lock()  # clicks are answered on many threads

    def user(self, user_id: str) -> SlackUser:
        if not re.fullmatch(r"[UW][A-Z0-9]{2,30}", str(user_id)):
            raise SlackLookupError(f"{user_id!r} is not a Slack user id")
        with self._lock:
            hit = self._cache.get(user_id)
        if hit is not None:
            return hit
        try:
            data = self.client.users_info(user=user_id)["user"]
            if not isinstance(data, dict) or data.get("id", user_id) != user_id:
                raise KeyError("user")
        except Exception as exc:  # noqa: BLE001 - Slack's error, a timeout, a bad answer
            raise SlackLookupError(f"users.info failed for {user_id}: {exc}") from exc
        if data.get("deleted"):
            raise SlackLookupError(f"{user_id} is a deactivated Slack user")
        profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
        name = data.get("name")
        user = SlackUser(
            id=user_id,
            # The unique user name, or the id itself: never the display name, which anyone
            # can set to "alice"; nor a name Unicode normalises into another (the Kelvin
            # sign's "Karl" is "karl"), which would be shown and recorded as that one.
            handle=name if _plain_name(name) else user_id,
            email=profile.get("email") or None,
            display_name=profile.get("display_name") or "",
            team_id=str(data.get("team_id") or ""),
        )
        with self._lock:
            self._cache[user_id] = user
        return user


def _plain_name(name) -> bool:
    """A user name that is what it looks like: text that NFKC normalisation leaves alone."""
    return (
        isinstance(name, str) and bool(name.strip()) and unicodedata.normalize("NFKC", name) == name
    )
