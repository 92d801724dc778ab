"""Who a person is: the platform's user id. Names and e-mails are only ways to find one.

Every authorisation check (may this person approve, is this their own request, is this a
second distinct approver) compares user ids. A policy's approver entries are turned into
ids when a request is made (`People.user_id`), and the request keeps them, so a later
rename, a display name, or a look-alike entry of another kind never changes who may decide.

An entry has exactly one kind, and an entry of one kind never matches another kind:
- `U024BE7LH` / `W0123ABCD` (upper case, as Slack writes them): a platform user id;
- `bob@acme.com`: an e-mail, found through the platform (Slack: `users.lookupByEmail`);
- `@bob` or `bob`: a handle, the platform's unique user name (never a display name).

On the Text backend there are no platform ids: a person's id is their normalised handle,
e-mails are found through `ACCESS_USER_EMAILS`, and a `U…` entry names nobody.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cachetools import TTLCache

from .domain import normalize_handle

log = logging.getLogger(__name__)

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def entry_kind(entry: str) -> str:
    """ "id", "email" or "handle" for one person entry."""
    entry = str(entry).strip()
    if USER_ID.match(entry):
        return "id"
    if "@" in entry[1:]:
        return "email"
    return "handle"


class People(Protocol):
    def user_id(self, entry: str) -> str | None:
        """The user id one person entry names right now; None when it names nobody."""


class NamedPeople:
    """The Text backend (and any backend without user ids): the handle is the id."""

    def __init__(self, emails: Mapping[str, str] | None = None):
        self._by_email = {
            str(email).strip().lower(): normalize_handle(handle)
            for handle, email in (emails or {}).items()
            if email
        }

    def user_id(self, entry: str) -> str | None:
        kind = entry_kind(entry)
        if kind == "id":
            return None
        if kind == "email":
            return self._by_email.get(str(entry).strip().lower())
        return normalize_handle(entry) or None


# users.list pages read at most (200 members each): 100,000 people. A workspace larger,
# or a Slack that keeps answering a next_cursor, stops here rather than loop for ever.
MAX_USER_PAGES = 500
MAX_EMAILS = 5000  # e-mail look-ups kept by SlackPeople
_MISSING = object()


class SlackPeople:
    """Slack: ids as they are; e-mails by `users.lookupByEmail`; handles by the workspace's
    `users.list` (the unique `name`, never a display name). Answers are cached for `ttl`
    seconds. A failed lookup names nobody (fail closed) and is logged.

    `client` is a WebClient or a callable returning the current one (the SlackV3 backend
    replaces its client when it reconnects); while there is none (not on Slack), `fallback`
    answers.
    """

    def __init__(
        self,
        client: Any,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: People | None = None,
        max_pages: int = MAX_USER_PAGES,
    ):
        self._client = client
        self.max_pages = max_pages
        self.fallback = fallback or NamedPeople()
        self.ttl = ttl
        self.clock = clock
        # e-mail -> user id, or None for nobody; bounded, the least recently used goes first
        self._emails: TTLCache[str, str | None] = TTLCache(MAX_EMAILS, ttl, timer=clock)
        self._names: tuple[float, dict[str, str]] | None = None
        self._lock = threading.Lock()

    def user_id(self, entry: str) -> str | None:
        if self._client_now() is None:
            return self.fallback.user_id(entry)
        entry = str(entry).strip()
        kind = entry_kind(entry)
        if kind == "id":
            return entry
        if kind == "email":
            return self._by_email(entry.lower())
        return self._by_name().get(normalize_handle(entry)) or None

    def _client_now(self):
        return self._client() if callable(self._client) else self._client

    def _by_email(self, email: str) -> str | None:
        with self._lock:
            hit = self._emails.get(email, _MISSING)
        if hit is not _MISSING:
            return hit
        found = None
        try:
            answer = self._client_now().users_lookupByEmail(email=email)
            user = answer.get("user") or {}
            if not user.get("deleted") and USER_ID.match(str(user.get("id", ""))):
                found = user["id"]
        except Exception as exc:  # noqa: BLE001 - users_not_found, or Slack is down: nobody
            log.info("users.lookupByEmail found nobody for an approver entry: %s", exc)
        with self._lock:
            self._emails[email] = found
        return found

    def _by_name(self) -> dict[str, str]:
        now = self.clock()
        with self._lock:
            if self._names and now - self._names[0] < self.ttl:
                return self._names[1]
        names: dict[str, str] = {}
        owners: dict[str, str] = {}  # name -> the first user id seen with it
        clashes: set[str] = set()
        try:
            cursor, seen = None, set()
            for _ in range(self.max_pages):
                answer = self._client_now().users_list(limit=200, cursor=cursor)
                for user in answer.get("members") or []:
                    if not user.get("name"):
                        continue
                    if USER_ID.match(str(user.get("id", ""))):
                        name = normalize_handle(user["name"])
                        # Two people whose names look alike (compared normalised: the
                        # Kelvin sign's "Karl" is "karl"): it names nobody. Someone who left
                        # keeps their name, so a look-alike cannot take it over. The same
                        # person again (a repeated page) is still one person.
                        if owners.setdefault(name, user["id"]) != user["id"]:
                            if name not in clashes:
                                log.warning(
                                    "two Slack users are named like %r: it names nobody", name
                                )
                            clashes.add(name)
                        names[name] = "" if name in clashes or user.get("deleted") else user["id"]
                cursor = (answer.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
                if cursor in seen:
                    log.warning(
                        "users.list answered the same cursor again after %d page(s); stopped "
                        "there (handles of people on later pages may name nobody)",
                        len(seen) + 1,
                    )
                    break
                seen.add(cursor)
            else:
                log.warning(
                    "users.list stopped after %d pages (%d names); handles of people on later "
                    "pages may name nobody",
                    self.max_pages,
                    len(names),
                )
        except Exception as exc:  # noqa: BLE001 - keep what we had; a handle may name nobody
            log.warning("users.list failed; handles in approver lists may name nobody: %s", exc)
            with self._lock:
                return self._names[1] if self._names else {}
        with self._lock:
            self._names = (now, names)
        return names


class EntryPeople:
    """Dry runs with no chat platform (`python -m accessbot test`): every entry names the
    one person it spells, so the result shows who would be asked."""

    def user_id(self, entry: str) -> str | None:
        entry = str(entry).strip()
        kind = entry_kind(entry)
        if kind == "handle":
            return normalize_handle(entry) or None
        return f"{kind}:{entry.lower() if kind == 'email' else entry}"
