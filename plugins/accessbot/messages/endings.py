"""The channel's lines when grants end or revokes fail, one by one and merged for a busy
channel (digest.py compares a notice with the single line to know it may merge it)."""

from __future__ import annotations

from ..domain import Request, from_iso
from ..safe_text import inert
from .basics import when, who


def sessions_said(request: Request) -> str:
    """What became of sessions opened with the access before its revoke (as its strategy
    declared, `Request.sessions`), as a sentence to append with its leading space; "" for
    a grant ended before this was recorded."""
    return sessions_sentence(request.sessions)


def sessions_sentence(said) -> str:
    """`sessions_said` for a recorded statement (the grant's, or a revoke's audit event)."""
    if not isinstance(said, dict):
        return ""
    what = inert(str(said.get("what") or "sessions"), 120)
    what = what[:1].upper() + what[1:]
    fate = said.get("fate")
    if fate == "ended":
        return f" {what} opened before: ended."
    if fate == "may_last" and said.get("until"):
        try:
            until = when(from_iso(str(said["until"])))
        except ValueError:
            until = inert(str(said["until"]), 40)
        return f" {what} opened before: may last until {until}."
    return f" {what} opened before: unknown (the bot cannot end them or tell how long they last)."


def expired_in_channel(request: Request) -> str:
    """The channel's line when a grant ran out and was revoked."""
    return (
        f"Request {request.id}: {who(request.requester)}'s access to "
        f"{request.resource} expired and was revoked." + sessions_said(request)
    )


def revoked_in_channel(request: Request, actor: str) -> str:
    """The channel's line when someone revoked a grant before its end."""
    return (
        f"Request {request.id}: {who(request.requester)}'s access to "
        f"{request.resource} was revoked by {who(actor)}." + sessions_said(request)
    )


def ended_together(requests: list[Request], resource: str, revoked_by: str | None) -> str:
    """One line for many grants to `resource` that ended at once: who held them and which
    request each was, so nothing the single lines said is left out."""
    count = len(requests)
    grants = "1 grant" if count == 1 else f"{count} grants"
    held = ", ".join(f"{who(r.requester)} ({r.id})" for r in requests)
    if revoked_by is None:
        return (
            f"{grants} to {resource} expired and {'was' if count == 1 else 'were'} revoked: {held}."
        ) + _sessions_of_all(requests)
    return (
        f"{grants} to {resource} {'was' if count == 1 else 'were'} revoked by {who(revoked_by)}: "
        f"{held}." + _sessions_of_all(requests)
    )


def _sessions_of_all(requests: list[Request]) -> str:
    """`sessions_said` for many grants of one resource: each different sentence once, the
    latest "may last until" standing for the earlier ones of the same kind."""
    latest: dict[tuple, Request] = {}
    for request in requests:
        said = request.sessions if isinstance(request.sessions, dict) else {}
        key = (said.get("fate"), said.get("what"))
        if key not in latest or str(said.get("until") or "") >= str(
            (latest[key].sessions or {}).get("until") or ""
        ):
            latest[key] = request
    return "".join(dict.fromkeys(sessions_said(r) for r in latest.values()))


def revoke_failed_in_channel(request: Request) -> str:
    """The channel's alert when a revoke failed (`request.last_error`) and will be retried."""
    return (
        f"REVOKE FAILED for request {request.id} ({request.resource} for "
        f"{who(request.requester)}), attempt {request.revoke_attempts}: "
        f"{inert(request.last_error)}. Retrying at {when(request.next_retry_at)}; "
        "the access is still in place until a revoke succeeds."
    )


def revokes_failed_together(requests: list[Request], resource: str) -> str:
    """One alert for many failed revokes of `resource`: each grant, its attempt and error."""
    count = len(requests)
    grants = "1 grant" if count == 1 else f"{count} grants"
    each = "; ".join(
        f"{who(r.requester)} ({r.id}, attempt {r.revoke_attempts}: {inert(r.last_error, 120)}, "
        f"next at {when(r.next_retry_at)})"
        for r in requests
    )
    return (
        f"REVOKE FAILED for {grants} to {resource}; the access is still in place until a "
        f"revoke succeeds, and each is retried automatically: {each}."
    )
