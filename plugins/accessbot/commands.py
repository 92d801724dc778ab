"""Parsing of what people type after the command word. Pure; errors say what to type."""

from __future__ import annotations

import re
from datetime import timedelta

from .domain import AccessError, DurationError, looks_like_duration, parse_duration
from .messages import inert

REQUEST_USAGE = "`!access request <resource> [duration] <reason>`, e.g. `!access request prod-db 30m fix INC-42`"
_ID = re.compile(r"^[a-z0-9-]{1,40}$")


class CommandSyntaxError(AccessError):
    pass


def _maybe_duration(token: str) -> bool:
    """Does this token try to be a duration (so a typo is an error, not part of the reason)?"""
    return bool(re.match(r"^[-+]?\d", token))


def parse_request_args(args: str) -> tuple[str, timedelta | None, str]:
    tokens = str(args).split()
    if not tokens:
        raise CommandSyntaxError(
            f"Tell me what you need: {REQUEST_USAGE}. See `!access resources`."
        )
    resource, rest = tokens[0], tokens[1:]
    shown_resource = inert(resource, 60)  # echoed back: never a live mention
    duration = None
    if rest and looks_like_duration(rest[0]):
        duration = parse_duration(rest[0])
        rest = rest[1:]
    elif rest and _maybe_duration(rest[0]):
        raise DurationError(
            f'"{inert(rest[0], 20)}" is not a duration: write it like 30m, 2h, 1h30m or 1d, '
            f"e.g. `!access request {shown_resource} 30m <reason>`"
        )
    reason = " ".join(rest)
    if not reason:
        shown = f" {args.split()[1]}" if duration is not None else ""
        raise CommandSyntaxError(
            f"Say why you need it: `!access request {shown_resource}{shown} <reason>`."
        )
    return resource, duration, reason


def parse_extend_args(args: str) -> tuple[str, timedelta | None, str]:
    """`<id> [duration] [reason...]` for `!access extend`."""
    request_id, rest = parse_id_and_text(args, "access extend")
    tokens = rest.split()
    duration = None
    if tokens and looks_like_duration(tokens[0]):
        duration = parse_duration(tokens[0])
        tokens = tokens[1:]
    elif tokens and _maybe_duration(tokens[0]):
        raise DurationError(
            f'"{tokens[0][:20]}" is not a duration: write it like 30m, 2h, 1h30m or 1d, '
            f"e.g. `!access extend {request_id} 30m <reason>`"
        )
    return request_id, duration, " ".join(tokens)


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


AUDIT_USAGE = (
    "`!access audit [user=alice] [resource=prod-db] [id=k3m9qx] [since=2h] [limit=20]` "
    "or `!access audit verify`"
)


def parse_audit_args(args: str) -> dict:
    query: dict = {}
    for token in str(args).split():
        if token == "verify":
            query["verify"] = True
            continue
        key, sep, value = token.partition("=")
        if not sep or not value:
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
