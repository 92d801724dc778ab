"""`ctx.history`: how often someone asked for (or got) a resource before.

A policy routes first-timers differently with it (Sym's `get_event_count`):

    if ctx.history.count(status="granted", since="90d") == 0:
        return ["@dba-lead"]  # first time in 90 days: the lead decides

The counts come from the store's indexes (`RequestStore.history_count`: live and finished
requests, never a scan of the archive). `StaticHistory` answers from a policy test file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from .domain import EVER_GRANTED, DurationError, Status, normalize_handle, parse_duration

GRANTED = "granted"  # got the access at some point: active now, or held until it ended
ANY = "any"  # every request, whatever became of it
STATUS_WORDS = (GRANTED, ANY, *(s.value for s in Status if s is not Status.EXTENDED))


class HistoryCounts(Protocol):
    """The store port's `history_count`, or a test's fixed answers."""

    def history_count(
        self,
        requester: str,
        resource: str,
        statuses: Iterable[Status],
        since: datetime | None,
    ) -> int: ...


def statuses_for(status: str) -> frozenset[Status]:
    """The request statuses a `status=` word counts; ValueError names the words."""
    word = str(status).strip().lower()
    if word == GRANTED:
        return EVER_GRANTED
    if word == ANY:
        return frozenset(s for s in Status if s is not Status.EXTENDED)
    try:
        found = Status(word)
    except ValueError:
        raise ValueError(
            f"history.count(status={status!r}): status is one of {', '.join(STATUS_WORDS)}"
        ) from None
    if found is Status.EXTENDED:
        raise ValueError("history.count counts requests, not extensions; use status='granted'")
    return frozenset({found})


def since_time(since, now: datetime) -> datetime | None:
    """`since` ("90d", a timedelta, a datetime or None for ever) as a moment."""
    if since is None:
        return None
    if isinstance(since, datetime):
        return since
    if isinstance(since, timedelta):
        return now - since
    try:
        return now - parse_duration(str(since))
    except DurationError as exc:
        raise ValueError(f"history.count(since={since!r}): {exc}") from None


class RequestHistory:
    """`ctx.history` for one request: user and resource default to the request's."""

    def __init__(self, counts: HistoryCounts, requester: str, resource: str, now: datetime):
        self._counts = counts
        self._requester = requester
        self._resource = resource
        self._now = now

    def count(
        self,
        user: str | None = None,
        resource: str | None = None,
        status: str = GRANTED,
        since=None,
    ) -> int:
        """How many requests `user` made for `resource` (the request's own by default)
        that are in `status` now ("granted": ever got the access; "any": all of them),
        made at or after `since` ("90d"; None: ever). Extension requests do not count."""
        who = normalize_handle(user) if user else self._requester
        what = str(resource).strip() if resource else self._resource
        return self._counts.history_count(
            who, what, statuses_for(status), since_time(since, self._now)
        )


class StaticHistory:
    """Fixed history counts, for `python -m accessbot test`: each entry says how many
    requests of (user, resource, status) there are, whatever `since` asks."""

    source = "answer from the test file"

    def __init__(self, entries: Iterable[Mapping] = ()):
        self._counts: dict[tuple[str, str, frozenset[Status]], int] = {}
        for entry in entries:
            key = (
                normalize_handle(entry["user"]),
                str(entry["resource"]),
                statuses_for(entry.get("status", GRANTED)),
            )
            self._counts[key] = self._counts.get(key, 0) + int(entry["count"])

    def history_count(self, requester, resource, statuses, since) -> int:
        wanted = frozenset(statuses)
        return sum(
            count
            for (user, what, counted), count in self._counts.items()
            if user == requester and what == resource and counted <= wanted
        )
