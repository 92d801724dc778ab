"""Parsing of what people type after the command word. Pure; errors say what to type."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import NamedTuple

from .domain import (
    TOO_LONG,
    AccessError,
    DurationError,
    DurationTooLong,
    format_duration,
    looks_like_duration,
    parse_duration,
)
from .safe_text import inert

REQUEST_USAGE = "`!access request <resource> [duration] <reason>`, e.g. `!access request prod-db 30m fix INC-42`"
_ID = re.compile(r"^[a-z0-9-]{1,40}$")


class CommandSyntaxError(AccessError):
    pass


def _maybe_duration(token: str) -> bool:
    """Does this token try to be a duration (so a typo is an error, not part of the reason)?"""
    return bool(re.match(r"^[-+]?\d", token))


class RequestArgs(NamedTuple):
    resource: str
    duration: timedelta | None
    reason: str
    fields: dict[str, str]


def parse_request(
    args: str, field_names: Callable[[str], Iterable[str]] = lambda resource: ()
) -> RequestArgs:
    """`<resource> [duration] [field=value ...] <reason...>`.

    `field_names(resource)` names the prompt fields the resource declares; a
    `name=value` token for one of them, anywhere after the resource, is that field.
    Any other `a=b` text is part of the reason.
    """
    tokens = str(args).split()
    if not tokens:
        raise CommandSyntaxError(
            f"Tell me what you need: {REQUEST_USAGE}. See `!access resources`."
        )
    declared = {str(n).lower() for n in field_names(tokens[0])}
    fields, rest = extract_fields(tokens[1:], declared, f"!access request {inert(tokens[0], 60)}")
    duration, reason = _duration_and_reason(f"!access request {inert(tokens[0], 60)}", rest)
    if duration is None:
        _ask_about_stray_duration(f"!access request {inert(tokens[0], 60)}", fields, rest)
    if not reason:
        shown = f" {format_duration(duration)}" if duration is not None else ""
        shown += "".join(f" {k}={inert(v, 40)}" for k, v in fields.items())
        raise CommandSyntaxError(
            f"Say why you need it: `!access request {inert(tokens[0], 60)}{shown} <reason>`."
        )
    return RequestArgs(tokens[0], duration, reason, fields)


def _ask_about_stray_duration(
    command: str, fields: dict[str, str], reason: list[str], after: str = "the resource"
) -> None:
    """No duration after the resource (or the id, for an extension) but one in the reason
    (`fixing index for 30m`): ask, rather than quietly granting the default and keeping
    "30m" as words."""
    at = next((i for i, t in enumerate(reason) if looks_like_duration(t.rstrip(".,;:!?)"))), None)
    if at is None:
        return
    duration = reason[at].rstrip(".,;:!?)")
    given = "".join(f" {k}={inert(v, 40)}" for k, v in fields.items())
    rest = " ".join(inert(t, 80) for t in reason[:at] + reason[at + 1 :])
    typed = " ".join(inert(t, 80) for t in reason)
    raise CommandSyntaxError(
        f"Did you mean {duration}? The duration comes right after {after}: "
        f"`{command} {duration}{given} {rest}` (to keep {duration} in the reason, give a "
        f"duration first: `{command} <duration>{given} {typed}`). Nothing was requested."
    )


def resembles(word: str, choices: Iterable[str]) -> str | None:
    """The one of `choices` a typo of it most likely meant (`requst` -> `request`)."""
    close = difflib.get_close_matches(str(word).lower(), list(choices), n=1, cutoff=0.7)
    return close[0] if close else None


WHATIF_USAGE = (
    "`!access whatif <user> <resource> [duration] [field=value ...] [reason]`, "
    "e.g. `!access whatif carol prod-db 30m`"
)


def parse_whatif_args(
    args: str, field_names: Callable[[str], Iterable[str]] = lambda resource: ()
) -> tuple[str, RequestArgs]:
    """`<user> <resource> [duration] [field=value ...] [reason...]` for `!access whatif`."""
    tokens = str(args).split()
    if len(tokens) < 2:
        raise CommandSyntaxError(f"Whose request, for what? {WHATIF_USAGE}.")
    user, resource = tokens[0], tokens[1]
    command = f"!access whatif {inert(user, 40)} {inert(resource, 60)}"
    declared = {str(n).lower() for n in field_names(resource)}
    fields, rest = extract_fields(tokens[2:], declared, command)
    duration, reason = _duration_and_reason(command, rest)
    return user, RequestArgs(resource, duration, reason, fields)


def extract_fields(
    tokens: list[str], declared: set[str], command: str
) -> tuple[dict[str, str], list[str]]:
    """Take `name=value` tokens for declared field names out of `tokens`."""
    fields: dict[str, str] = {}
    rest = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or key.lower() not in declared:
            rest.append(token)
            continue
        key = key.lower()
        if not value:
            raise CommandSyntaxError(
                f"`{key}=` needs a value, e.g. `{command} {key}=<value> <reason>`."
            )
        if key in fields:
            raise CommandSyntaxError(f"`{key}` is given twice; give it once: `{key}=<value>`.")
        fields[key] = value
    return fields, rest


def _duration_and_reason(command: str, rest: list[str]) -> tuple[timedelta | None, str]:
    """An optional duration first, then the reason; a duration typo is an error."""
    duration = None
    if rest and looks_like_duration(rest[0]):
        try:
            duration = parse_duration(rest[0])
        except DurationTooLong:
            duration = TOO_LONG  # the service says the resource's own limit
        rest = rest[1:]
    elif rest and _maybe_duration(rest[0]):
        raise DurationError(
            f'"{inert(rest[0], 20)}" is not a duration: write it like 30m, 2h, 1h30m or 1d, '
            f"e.g. `{command} 30m <reason>`"
        )
    return duration, " ".join(rest)


def parse_extend_args(args: str) -> tuple[str, timedelta | None, str]:
    """`<id> [duration] [reason...]` for `!access extend`."""
    request_id, rest = parse_id_and_text(args, "access extend")
    command = f"!access extend {request_id}"
    duration, reason = _duration_and_reason(command, rest.split())
    if duration is None:
        _ask_about_stray_duration(command, {}, rest.split(), after="the request id")
    return request_id, duration, reason


def parse_id_and_text(args: str, command: str) -> tuple[str, str]:
    """`<id> [free text]` for show, cancel, revoke, approve and deny."""
    tokens = str(args).split(maxsplit=1)
    if not tokens:
        raise CommandSyntaxError(
            f"Which request? `!{command} <id>`; find ids with `!access mine` or `!access list`."
        )
    request_id = tokens[0].strip("`").lower()
    if not _ID.match(request_id):
        raise CommandSyntaxError(
            f"`{inert(request_id, 40)}` is not a request id; ids look like `k3m9qx`. "
            "Find them with `!access mine` or `!access list`."
        )
    return request_id, tokens[1] if len(tokens) > 1 else ""


def parse_resource_arg(args: str, command: str) -> str | None:
    """`[resource]`: one resource name, or none."""
    tokens = str(args).split()
    if len(tokens) > 1:
        raise CommandSyntaxError(
            f"Name one resource, or none for all: `!{command} [resource]`, e.g. "
            f"`!{command} prod-db`."
        )
    return tokens[0].strip("`") if tokens else None


AUDIT_USAGE = (
    "`!access audit [user=alice] [resource=prod-db] [id=k3m9qx] [since=2h] [limit=20]` "
    "(bare words work too: `!access audit prod-db 2h`), `!access audit verify` or "
    "`!access audit status`"
)


def parse_audit_args(args: str) -> dict:
    query: dict = {}
    for token in str(args).split():
        if token in ("verify", "status"):
            query[token] = True
            continue
        key, sep, value = token.partition("=")
        if not sep:
            # A bare word: a duration is "since", `@name` a user; anything else the
            # service resolves against resources, request ids and users.
            if looks_like_duration(token):
                query["since"] = parse_duration(token)
            elif token.startswith("@") and len(token) > 1:
                query["user"] = token
            else:
                query.setdefault("terms", []).append(token)
            continue
        if not value:
            raise CommandSyntaxError(f"`{inert(token, 40)}` is not a filter; use {AUDIT_USAGE}.")
        if key == "user":
            query["user"] = value
        elif key == "resource":
            query["resource"] = value
        elif key in ("id", "request"):
            query["request_id"] = value.lower()
        elif key == "since":
            try:
                query["since"] = parse_duration(value)
            except DurationError:
                raise DurationError(
                    f'since: "{inert(value, 20)}" is not a duration; write it like since=2h or since=7d'
                ) from None
        elif key == "limit":
            if not value.isdigit() or not 1 <= int(value) <= 500:
                raise CommandSyntaxError("limit must be a number from 1 to 500, e.g. limit=50.")
            query["limit"] = int(value)
        else:
            raise CommandSyntaxError(f"`{inert(key, 20)}` is not a filter; use {AUDIT_USAGE}.")
    return query


CERTIFY_USAGE = (
    "`!access certify list`, `!access certify keep <item> [note]`, "
    "`!access certify remove <item> [reason]`, or (admins) `!access certify start [resource]`"
)


class CertifyArgs(NamedTuple):
    action: str  # "start", "list", "keep", "remove"
    target: str | None  # the resource (start) or the item id (keep, remove)
    text: str  # the note or reason


def parse_certify_args(args: str) -> CertifyArgs:
    """`start [resource]`, `list`, `keep <item> [note]`, `remove <item> [reason]`."""
    tokens = str(args).split(maxsplit=2)
    action = tokens[0].lower() if tokens else ""
    if action in ("start", "list"):
        rest = tokens[1:]
        if action == "list" and rest:
            raise CommandSyntaxError(f"`!access certify list` takes nothing more. {CERTIFY_USAGE}.")
        if len(rest) > 1:
            raise CommandSyntaxError(
                "Name one resource, or none for every resource with `certify`: "
                "`!access certify start prod-db`."
            )
        return CertifyArgs(action, rest[0].strip("`") if rest else None, "")
    if action in ("keep", "remove"):
        if len(tokens) < 2:
            raise CommandSyntaxError(
                f"Which item? `!access certify {action} <item> [note]`; "
                "`!access certify list` shows the items, each line starting with its id."
            )
        item = tokens[1].strip("`").lower()
        if not _ID.match(item):
            raise CommandSyntaxError(
                f"`{inert(item, 40)}` is not an item id; ids look like `k3m9qx`. "
                "`!access certify list` shows them."
            )
        return CertifyArgs(action, item, tokens[2] if len(tokens) > 2 else "")
    raise CommandSyntaxError(f"Use {CERTIFY_USAGE}.")
