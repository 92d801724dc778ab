"""The words every text shares: times, people, approver lists, and whom a notice goes to."""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta

from ..approvers import same_person_key
from ..domain import MAX_DURATION, Request, Status, format_duration
from ..results import Notice

STATUS_WORDS = {
    Status.PENDING: "pending approval",
    Status.APPROVED: "approved, granting",
    Status.ACTIVE: "active",
    Status.EXPIRED: "expired",
    Status.REVOKED: "revoked",
    Status.DENIED: "denied",
    Status.CANCELLED: "cancelled",
    Status.TIMED_OUT: "timed out",
    Status.GRANT_FAILED: "grant failed",
    Status.REVOKE_FAILED: "revoke failed, retrying",
    Status.EXTENDED: "approved, added to its grant",
}


def when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "-"


def moment(dt: datetime | None) -> str:
    """A time in a history, to the minute: `2026-11-27 16:51 UTC`."""
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


_ISO_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?")


def readable_times(text: str) -> str:
    """`text` with each ISO 8601 time in it (`2026-11-27T16:51:33.880690Z`, as notes written
    by older versions hold them) shown as `moment` shows it."""

    def shown(match: re.Match) -> str:
        try:
            at = datetime.fromisoformat(match.group(0))
            return moment(at.astimezone(UTC) if at.tzinfo else at)
        except ValueError:
            return match.group(0)

    return _ISO_TIME.sub(shown, text)


def asked(duration: timedelta) -> str:
    """A requested duration in a refusal; one past what any duration may be (`99999d`)
    is "more than 366d"."""
    if duration > MAX_DURATION:
        return f"more than {format_duration(MAX_DURATION)}"
    return format_duration(duration)


def durations_text(durations) -> str:
    """`30m, 1h or 4h`: a resource's fixed durations."""
    shown = [format_duration(d) for d in durations]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def closest(typed: str, names: list[str]) -> str | None:
    """The name someone surely meant: the same but for case, or a small typo away."""
    by_lower = {name.lower(): name for name in names}
    found = difflib.get_close_matches(str(typed).lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[found[0]] if found else None


def who(handle: str) -> str:
    return handle if handle.startswith("@") or "@" in handle else f"@{handle}"


def approvers_text(entries) -> str:
    return ", ".join(_entry(e) for e in entries) or "nobody"


def _entry(entry: str) -> str:
    if entry.startswith(("U", "W")) or ":" in entry:  # a Slack user id, a group-like entry
        return entry
    return who(entry)


def request_approvers(request: Request) -> str:
    """Who may decide: the policy's entries as written, each group with whom it named when
    the request was made (`group:sre (@alice, @bob), @dave`). The requester is left out,
    and said to be, unless they may approve their own request."""
    own = [] if request.self_approval_allowed else request.requester_entries
    mine = {same_person_key(e) for e in own}
    if request.approver_groups:
        text = ", ".join(_entries_without(request, mine)) or "nobody"
    else:
        text = approvers_text([a for a in request.approvers if a not in own])
    if own:
        text += f"; not {approvers_text(own)}, who cannot approve their own request"
    return text


def _entries_without(request: Request, mine: set[str]):
    """The request's approver entries, each group with its members, leaving out `mine`."""
    for entry in request.approver_entries:
        named = request.approver_groups.get(entry)
        if named is None:
            if same_person_key(entry) not in mine:
                yield _entry(entry)
            continue
        members = [m for m in named if same_person_key(m) not in mine]
        yield f"{entry} ({approvers_text(members) if members or not named else 'only the requester'})"


SYSTEM_ACTORS = {"scheduler": "the bot", "bot": "the bot", "policy": "the policy"}


def to_requester(request: Request, text: str) -> Notice:
    """A direct message to the requester about their request."""
    return Notice("user", request.requester_address or request.requester, text, request)


def to_channel(request: Request, text: str, kind: str = "text") -> Notice:
    """A message in the request's approval channel (a "card" or an "alert")."""
    return Notice("channel", request.channel, text, request, kind)
