"""Extending a grant: applied, refused or failed at the target, and extensions withdrawn
because their grant ended meanwhile."""

from __future__ import annotations

from ..domain import Request, Status, format_duration
from ..results import Notice
from ..safe_text import inert
from .basics import SYSTEM_ACTORS, to_channel, to_requester, when, who


def grant_stays(grant_id: str | None, grant: Request | None) -> str:
    """What a refused extension leaves of its grant."""
    if grant is None or not grant.holds_access:
        return f"Grant {grant_id} has ended."
    return f"Grant {grant_id} stays active until {when(grant.expires_at)}."


def withdrawn_reply(extension: Request, why: str) -> str:
    """To an approver of an extension withdrawn with its grant (`why`: its cancel note)."""
    return (
        f"Extension request {extension.id} was {why}; nothing to approve or deny. Still "
        f"needed? {who(extension.requester)} asks afresh with "
        f"`!access request {extension.resource} <duration> <reason>`."
    )


def grant_gone(grant: Request) -> str:
    """Why a grant can take no more time: `was revoked by @alice`, `expired`, or `is being
    revoked (its revoke failed and is retried)`."""
    if grant.status is Status.REVOKED:
        by = next((e.actor for e in reversed(grant.history) if e.action == "revoked"), "")
        return f"was revoked by {who(by)}" if by and by not in SYSTEM_ACTORS else "was revoked"
    if grant.status is Status.EXPIRED:
        return "expired"
    if grant.status is Status.REVOKE_FAILED:
        return "is being revoked (its revoke failed and is retried)"
    return "has ended"


WITHDRAWN = "withdrawn: grant "  # the start of a withdrawn extension's cancel note


def extension_withdrawn_note(grant: Request) -> str:
    """The history note and audit detail of an extension withdrawn with its grant."""
    return f"{WITHDRAWN}{grant.id} {grant_gone(grant)}"


def extension_void(extension: Request, grant: Request) -> list[Notice]:
    """A waiting extension request whose grant ended meanwhile: withdrawn, and both the
    requester and the approvers' channel are told."""
    gone = grant_gone(grant)
    return [
        to_channel(
            extension,
            f"Extension request {extension.id} is void and withdrawn: grant {grant.id} "
            f"{gone}. Nothing to approve.",
        ),
        to_requester(
            extension,
            f"Your extension request {extension.id} ({format_duration(extension.duration)} "
            f"more on {extension.resource}) was withdrawn: grant {grant.id} {gone}. Still "
            f"needed? Ask afresh: `!access request {extension.resource} "
            f"{format_duration(extension.duration)} <reason>`.",
        ),
    ]


def withdrawn_extension(extension: Request) -> str | None:
    """The cancel note of an extension withdrawn with its grant (None for any other)."""
    if not extension.extends or extension.status is not Status.CANCELLED:
        return None
    last = extension.history[-1] if extension.history else None
    if last and last.action == "cancelled" and last.note.startswith(WITHDRAWN):
        return last.note
    return None


def extension_not_applicable(extension: Request, ended: bool) -> str:
    """Why an approved extension cannot be applied to its grant now."""
    if ended:
        return (
            f"grant {extension.extends} had already ended; ask afresh with "
            f"`!access request {extension.resource} {format_duration(extension.duration)} <reason>`"
        )
    return f"grant {extension.extends} is being revoked right now"


def extension_refused(extension: Request) -> Notice:
    return to_requester(
        extension, f"Your extension {extension.id} was not applied: {extension.last_error}."
    )


def extension_applied(grant: Request, extension: Request) -> list[Notice]:
    """The extension's time was added at the target: the grant's new end."""
    ends = when(grant.expires_at)
    return [
        to_requester(
            grant,
            f"Your grant {grant.id} on {grant.resource} was extended by "
            f"{format_duration(extension.duration)} (extension {extension.id}): it now "
            f"ends {ends}.",
        ),
        Notice(
            "channel",
            grant.channel,
            f"Extension {extension.id} approved: {who(grant.requester)}'s grant "
            f"{grant.id} on {grant.resource} now ends {ends}.",
            extension,
        ),
    ]


def extension_failed(grant: Request, extension: Request) -> list[Notice]:
    """The target refused the extension (`extension.last_error`): the grant's end stays."""
    error = inert(extension.last_error)
    return [
        to_requester(
            grant,
            f"Your extension {extension.id} was approved, but the target refused it: "
            f"{error}. Your grant still ends {when(grant.expires_at)}.",
        ),
        Notice(
            "channel",
            grant.channel,
            f"EXTENSION FAILED for {extension.id} (grant {grant.id}): {error}.",
            extension,
            "alert",
        ),
    ]
