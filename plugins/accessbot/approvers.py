"""Approver entries and how they become people.

A policy's `approvers` (or what `get_approvers` returns) may mix plain entries (a chat
handle `@alice`, a platform user id `U024BE7LH`, an e-mail) with entries that name
several people:

- `group:sre`: a named list, from `ACCESS_GROUPS` in the config or `GROUPS` in a policy file;
- `slack-group:@sre-team`: the members of a Slack user group (asked of Slack, cached);
- `pagerduty:PABC123`: whoever is on call for that PagerDuty schedule right now.

`resolve` expands them when a request is made; the request keeps the concrete entries,
so a later reload or rota change never changes who may decide a request already made.
An entry that cannot be expanded names nobody and leaves a note for the card: failing
closed, like every other lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .domain import normalize_handle
from .errors import AccessBotError

GROUP = "group:"
SLACK_GROUP = "slack-group:"
PAGERDUTY = "pagerduty:"
KINDS = (GROUP, SLACK_GROUP, PAGERDUTY)

GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_SLACK_HANDLE = re.compile(r"^@?[a-z0-9][a-z0-9._-]{0,79}$", re.IGNORECASE)
_PAGERDUTY_ID = re.compile(r"^P[A-Z0-9]{5,15}$")


def kind_of(entry: str) -> str | None:
    """`group:`, `slack-group:` or `pagerduty:` for a group-like entry, None for a person."""
    return next((k for k in KINDS if entry.startswith(k)), None)


def entry_problem(entry: str) -> str | None:
    """What is wrong with one approver entry, as a policy author can fix it; None if fine."""
    kind = kind_of(entry)
    value = entry[len(kind) :] if kind else ""
    if kind == GROUP and not GROUP_NAME.match(value):
        return f'"{entry}" is not a group entry; write it like "group:sre"'
    if kind == SLACK_GROUP and not _SLACK_HANDLE.match(value):
        return f'"{entry}" is not a Slack user group; write its handle like "slack-group:@sre-team"'
    if kind == PAGERDUTY and not _PAGERDUTY_ID.match(value):
        return (
            f'"{entry}" is not a PagerDuty schedule; write its id like "pagerduty:PABC123" '
            "(the P... at the end of the schedule's web address)"
        )
    if kind is None and ":" in entry:
        return (
            f'"{entry}" is not an approver: use a handle, user id or e-mail, or one of '
            '"group:<name>", "slack-group:@<handle>", "pagerduty:<schedule id>"'
        )
    return None


def static_members(entries: Iterable[str], groups: Mapping[str, Iterable[str]]) -> list[str]:
    """The people the entries name without asking anyone: plain entries and `group:`
    members (`slack-group:` and `pagerduty:` are only known at request time)."""
    found: list[str] = []
    for entry in entries:
        kind = kind_of(entry)
        if kind is None:
            found.append(entry)
        elif kind == GROUP:
            found.extend(groups.get(entry[len(GROUP) :], ()))
    return _unique(found)


def is_dynamic(entry: str) -> bool:
    return kind_of(entry) in (SLACK_GROUP, PAGERDUTY)


@dataclass
class Resolved:
    """The people a request's approver entries named when it was made."""

    approvers: list[str]  # concrete entries, each person once
    groups: dict[str, list[str]] = field(default_factory=dict)  # group-like entry -> members
    notes: list[str] = field(default_factory=list)


class SlackGroupError(AccessBotError):
    """A Slack user group could not be expanded; the message is safe to show in chat."""


def resolve(
    entries: Iterable[str],
    groups: Mapping[str, Iterable[str]],
    on_call,
    slack_groups,
) -> Resolved:
    """Expand every entry. `on_call` is the request's PagerDuty lookups (failures recorded
    there, shown on the card); `slack_groups.members(handle)` raises SlackGroupError."""
    people: list[str] = []
    expanded: dict[str, list[str]] = {}
    notes: list[str] = []
    for entry in entries:
        kind = kind_of(entry)
        if kind is None:
            people.append(entry)
            continue
        value = entry[len(kind) :]
        members: list[str] = []
        if kind == GROUP:
            if value in groups:
                members = list(groups[value])
            else:
                notes.append(f"{entry}: no such group; it names nobody")
        elif kind == PAGERDUTY:
            members = list(on_call.on_call_users(schedule=value))
            if not members:
                notes.append(f"{entry}: PagerDuty named nobody on call, so it names nobody")
        else:
            try:
                members = list(slack_groups.members(value))
            except SlackGroupError as exc:
                notes.append(f"{entry}: {exc}; it names nobody")
        expanded[entry] = _unique(members)
        people.extend(members)
    return Resolved(_unique(people), expanded, notes)


def same_person_key(entry: str) -> str:
    """Entries that surely name one person compare equal (`@Bob`, `bob`)."""
    entry = str(entry).strip()
    return entry.lower() if "@" in entry[1:] else normalize_handle(entry)


def _unique(entries: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    found = []
    for entry in entries:
        entry = str(entry).strip()
        key = same_person_key(entry)
        if entry and key not in seen:
            seen.add(key)
            found.append(entry)
    return found
