"""The request/grant state machine, durations and ids. Pure: no I/O, the clock is passed in."""

from __future__ import annotations

import copy
import re
import secrets
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from .errors import AccessBotError


class AccessError(AccessBotError):
    """A refusal a user can act on; the message says what to type instead.

    `field` names the input it is about when one is to blame ("resource", "duration",
    "reason", "fields"), so a form can show it next to that input.
    """

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.field = field


class DurationError(AccessError):
    pass


class DurationTooLong(DurationError):
    """A well-formed duration past MAX_DURATION: the caller may know a tighter limit."""


class TransitionError(AccessError):
    pass


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
MAX_DURATION_TEXT = 366 * 86400  # nothing sane lasts longer; guards against 10**30d
MAX_DURATION = timedelta(seconds=MAX_DURATION_TEXT)
# What a command holds for a typed duration past MAX_DURATION (`99999d`): longer than any
# resource allows, so the service refuses it naming the resource's own limit.
TOO_LONG = MAX_DURATION + timedelta(seconds=1)


def parse_duration(text: str) -> timedelta:
    """Parse the compact form people type: `30s`, `15m`, `2h`, `1d`, `1h30m`."""
    cleaned = str(text).strip().lower()
    match = _DURATION.match(cleaned)
    if not cleaned or not match:
        raise DurationError(f'"{text}" is not a duration: write it like 30m, 2h, 1h30m or 1d')
    seconds = sum(int(n or 0) * mult for n, (_, mult) in zip(match.groups(), _UNITS))
    if seconds > MAX_DURATION_TEXT:
        raise DurationTooLong(f'"{text}" is too long a duration: the most is 366d')
    return timedelta(seconds=seconds)


def looks_like_duration(text: str) -> bool:
    return bool(text) and bool(_DURATION.match(text.strip().lower()))


def format_duration(delta: timedelta) -> str:
    """The compact form: `1h30m`, `10m`, `1d2h`; sub-second remainders are dropped."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, mult in _UNITS:
        count, seconds = divmod(seconds, mult)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: ids are read aloud


def new_id(length: int = 6) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def normalize_handle(handle: str) -> str:
    """`@Bob`, `bob` and ` bob ` are the same chat user; so are names that look alike
    once Unicode-normalised (NFKC) and case-folded: the Kelvin sign `K` (U+212A) and
    `ｋ` are `k`. Who looks alike is refused where names are resolved (identity.py)."""
    return unicodedata.normalize("NFKC", str(handle)).strip().lstrip("@").casefold()


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    return utc(dt).isoformat().replace("+00:00", "Z") if dt else None


def from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None  # 3.11 reads a trailing Z


ERROR_TEXT_LIMIT = 2000  # characters of an error text kept in the audit log, store or chat


def cut_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """`text` cut to `limit` characters, saying how much was cut. Error texts quote what a
    target, a sink or a library answered, whose size a broken peer or an attacker picks."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text) - limit} more characters]"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    GRANT_FAILED = "grant_failed"
    REVOKE_FAILED = "revoke_failed"
    EXTENDED = "extended"  # an extension request whose time was added to its grant


FINAL = {
    Status.EXPIRED,
    Status.REVOKED,
    Status.DENIED,
    Status.CANCELLED,
    Status.TIMED_OUT,
    Status.GRANT_FAILED,
    Status.EXTENDED,
}
HOLDS_ACCESS = {Status.ACTIVE, Status.REVOKE_FAILED}
# Requests that got their access at some point: holding it now, or held it until it ended.
EVER_GRANTED = frozenset({Status.ACTIVE, Status.REVOKE_FAILED, Status.EXPIRED, Status.REVOKED})
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)  # "due now, before anything with a real time"
# A failed revoke (or a grant waiting for the disk) is tried again after 10 s, doubling
# each time, at most every 5 minutes.
RETRY_FIRST = timedelta(seconds=10)
RETRY_CAP = timedelta(minutes=5)


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after the `attempt`th failure (1, 2, ...) before trying again."""
    return min(RETRY_FIRST * 2 ** (attempt - 1), RETRY_CAP)


# status -> statuses it may move to; anything else is a TransitionError.
TRANSITIONS = {
    Status.PENDING: {
        Status.APPROVED,
        Status.DENIED,
        Status.CANCELLED,
        Status.TIMED_OUT,
    },
    Status.APPROVED: {Status.ACTIVE, Status.GRANT_FAILED, Status.EXTENDED},
    Status.ACTIVE: {Status.EXPIRED, Status.REVOKED, Status.REVOKE_FAILED},
    Status.REVOKE_FAILED: {Status.EXPIRED, Status.REVOKED, Status.REVOKE_FAILED},
}

_DONE_WORDS = {
    Status.APPROVED: "already approved",
    Status.ACTIVE: "already approved and active",
    Status.EXPIRED: "already expired",
    Status.REVOKED: "already revoked",
    Status.DENIED: "already denied",
    Status.CANCELLED: "cancelled",
    Status.TIMED_OUT: "timed out without a decision",
    Status.GRANT_FAILED: "already decided (the grant failed)",
    Status.REVOKE_FAILED: "already approved (its revoke is being retried)",
    Status.EXTENDED: "already approved and added to its grant",
}


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    action: str
    actor: str
    note: str = ""

    def to_dict(self) -> dict:
        return {"at": iso(self.at), "action": self.action, "actor": self.actor, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        return cls(from_iso(data["at"]), data["action"], data["actor"], data.get("note", ""))


@dataclass(frozen=True, slots=True)
class Approval:
    by: str  # the approver's handle, for people to read
    at: datetime
    comment: str = ""
    by_id: str = ""  # the approver's platform user id: what makes two approvals distinct


_FIELD_NAMES: dict[type, frozenset[str]] = {}  # from_dict's known keys, per class


@dataclass(slots=True)  # slots: ten thousand live grants fit in a third of the memory
class Request:
    """One access request and, once approved, its grant. The store holds these."""

    id: str
    requester: str  # normalised handle
    resource: str
    duration: timedelta
    reason: str
    created_at: datetime
    channel: str
    approvers: list[str]  # concrete entries (groups expanded at request time): who may decide
    approvals_required: int = 1
    allow_self_approval: bool = False
    strategy: dict = field(default_factory=dict)
    requester_address: str = ""  # how the chat backend reaches the requester
    requester_email: str | None = None
    requester_id: str = ""  # the platform user id: who the requester is (the handle is a name)
    status: Status = Status.PENDING
    approvals: list[Approval] = field(default_factory=list)
    decided_by: str | None = None
    decision_note: str = ""
    auto_decision: str | None = None  # set when a policy hook decided
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ending: str | None = None  # "expired" or "revoked": what a pending revoke will record
    revoke_attempts: int = 0
    next_retry_at: datetime | None = None
    last_error: str = ""
    policy_file: str = ""
    extends: str | None = None  # for an extension request: the id of the grant it extends
    extensions: int = 0  # extensions applied to this grant
    grant_round: int = 0  # grants taken back because they could not be recorded
    # When this round's grant call was first made, recorded before the call: every attempt
    # under the same grant id (by any bot, after any restart) tells the target the same
    # end, so one Idempotency-Key always comes with one body.
    grant_starts_at: datetime | None = None
    reminder_sent: bool = False  # the before-expiry reminder for the current end
    next_nudge_at: datetime | None = None  # when the approvers are reminded next
    nudges: int = 0
    # Break-glass: a grant a policy approved must be acknowledged by a human afterwards.
    review_required: bool = False
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_note: str = ""
    review_reminded_at: datetime | None = None
    notes: list[str] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)
    card_ref: dict | None = None  # where the chat backend posted the card, to update it later
    # The target's stable id for the requester (GitHub user id, Okta user id, ...), recorded
    # at grant so that revoke and extend find the same account even after a rename.
    account: str | None = None
    grant_result: dict | None = None  # the strategy's JSON answer to the grant, if any
    # The policy's own entries (`group:sre`, `pagerduty:P...`) and what each group-like
    # entry expanded to when the request was made; shown on the card.
    approver_entries: list[str] = field(default_factory=list)
    approver_groups: dict[str, list[str]] = field(default_factory=dict)
    # The user id each of `approvers` named when the request was made (same order): who
    # may decide is compared by id only, so a rename or a look-alike name decides nothing.
    approver_ids: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # the resource's prompt fields
    # Bumped by every store write; a write of an older version is refused (ConflictError).
    version: int = 0
    # Escalation (copied from the resource when the request was made, like its approvers):
    # each level {"after": seconds since the request was made, "approvers": [entries],
    # "channel": where its card goes}; `escalation_level` levels have been asked so far.
    escalation: list[dict] = field(default_factory=list)
    escalation_level: int = 0
    next_escalation_at: datetime | None = None
    earlier_cards: list[dict] = field(default_factory=list)  # cards of the earlier levels
    # after_grant / after_revoke hooks owed for this request and not yet run: written in
    # the same store write as the grant or revoke, removed once the hook has run.
    follow_ups_due: list[str] = field(default_factory=list)
    # Checked justification: field -> what its tracker said when the request was made
    # (`integrations.trackers.Link.to_dict()`: key, title, status, url, assignee, open,
    # checked); an extension keeps its grant's. `closed` is set when a re-check found the
    # link closed (the status it moved to), and an `end_with` grant ends then.
    links: dict[str, dict] = field(default_factory=dict)
    # What the revoke did to sessions opened with the access before it, as its strategy
    # declared: {"fate": "ended" | "may_last" | "unknown", "what": "...", "until": ISO time
    # for "may_last"}; None for grants ended before this was recorded.
    sessions: dict | None = None

    @classmethod
    def ask(
        cls,
        request_id: str,
        actor,
        resource,
        duration: timedelta,
        reason: str,
        at: datetime,
        next_nudge_at: datetime | None = None,
        extends: Request | None = None,
        fields: Mapping[str, str] | None = None,
        links: Mapping[str, dict] | None = None,
    ) -> Request:
        """A new request by `actor` (handle, id, address, email) for `resource` (a policy
        resource: its approvers, channel, strategy and escalation are copied on, so a
        later policy change does not touch it). An extension keeps its grant's fields and
        strategy."""
        request = cls(
            id=request_id,
            requester=actor.handle,
            requester_id=actor.id,
            requester_address=actor.address,
            requester_email=actor.email,
            resource=resource.name,
            duration=duration,
            reason=reason,
            created_at=at,
            channel=resource.channel,
            approvers=list(resource.approvers),
            approver_entries=list(resource.approvers),
            fields=dict(extends.fields if extends else fields or {}),
            links={k: dict(v) for k, v in (extends.links if extends else links or {}).items()},
            approvals_required=resource.approvals_required,
            allow_self_approval=resource.allow_self_approval,
            strategy=dict(extends.strategy if extends else resource.strategy_settings),
            policy_file=resource.file,
            extends=extends.id if extends else None,
            next_nudge_at=next_nudge_at,
            escalation=[level.to_dict() for level in resource.escalation],
            next_escalation_at=(at + resource.escalation[0].after if resource.escalation else None),
        )
        request.record(at, "requested", actor.handle, reason)
        return request

    def route_to(
        self,
        approvers: list[str],
        ids: list[str],
        entries: list[str],
        groups: Mapping[str, list[str]],
    ) -> None:
        """Who may decide, as routing found them: the entries that name someone, their
        user ids (same order), the entries asked and what each group-like one named."""
        self.approvers = approvers
        self.approver_ids = ids
        self.approver_entries = entries
        self.approver_groups = dict(groups)

    def decide_by_policy(self, approve: bool, reason: str, at: datetime) -> None:
        """The policy's on_request decided. Break-glass: whatever a policy approves, a
        human reviews afterwards."""
        self.decided_by = "policy"
        self.decision_note = reason
        self.auto_decision = f"{'approved' if approve else 'denied'}: {reason}"
        self.review_required = approve
        self.move(Status.APPROVED if approve else Status.DENIED, at, "policy", reason)

    def deny(self, by: str, reason: str, at: datetime) -> None:
        self.move(Status.DENIED, at, by, reason)
        self.decided_by = by
        self.decision_note = reason

    def cancel(self, by: str, at: datetime, note: str = "") -> None:
        self.move(Status.CANCELLED, at, by, note)

    def time_out(self, at: datetime) -> None:
        self.move(Status.TIMED_OUT, at, "scheduler")

    def ask_revoke(self, by: str, at: datetime) -> None:
        """Someone asked to end the grant now: the revoke that follows records "revoked"."""
        self.ending = "revoked"
        self.record(at, "revoke_requested", by)

    def close_link(self, field: str, status: str, end: bool, at: datetime) -> str:
        """A re-check found the field's ticket or incident closed (moved to `status`);
        with `end` (end_with), the revoke that follows records "revoked". Returns what
        happened, e.g. "OPS-12 moved to Done"."""
        link = self.links[field]
        link["closed"] = status
        why = f"{link.get('key', field)} moved to {status}"
        if end:
            self.ending = "revoked"
        self.record(at, "link_closed", "link-check", why)
        return why

    def ask_retry(self, by: str, at: datetime) -> None:
        """An admin asked to retry a failed revoke now."""
        self.record(at, "retry_requested", by)

    def remind_expiry(self, at: datetime) -> None:
        """The requester was told, once, that the grant ends soon."""
        self.reminder_sent = True
        self.record(at, "expiry_reminder", "scheduler")

    def nudge(self, at: datetime, every: timedelta) -> None:
        """The approvers were reminded; the next reminder waits twice as long."""
        self.nudges += 1
        self.next_nudge_at = at + every * 2**self.nudges
        self.record(at, "nudge", "scheduler")

    def postpone_nudge(self, at: datetime, every: timedelta) -> None:
        """A reminder due now is not sent (a new card just went out): the next in `every`."""
        if self.next_nudge_at is not None and self.next_nudge_at <= at:
            self.next_nudge_at = at + every

    def remind_review(self, at: datetime) -> None:
        """The channel was reminded that this break-glass grant awaits a review."""
        self.review_reminded_at = at

    def place_card(self, ref: Mapping) -> bool:
        """Note where the chat backend posted the card; False when nothing changed (a
        finished request keeps its record as it was)."""
        if self.is_final or self.card_ref == ref:
            return False
        self.card_ref = dict(ref)
        return True

    @property
    def grant_id(self) -> str:
        """The target's name for this grant. A grant taken back because it could not be
        recorded is granted again under a new one, so an idempotent target does not
        answer the new grant with the old, taken-back one."""
        return f"g-{self.id}" if not self.grant_round else f"g-{self.id}.{self.grant_round}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def waits_since(self) -> datetime:
        """When the request's time-out starts counting: when it was made or, with
        escalation levels, when the last level is asked (the last level's time-out is
        the request's)."""
        if not self.escalation:
            return self.created_at
        return self.created_at + timedelta(seconds=self.escalation[-1]["after"])

    def escalate(
        self,
        at: datetime,
        approvers: list[str],
        ids: list[str],
        groups: Mapping[str, list[str]],
        note: str,
    ) -> dict:
        """Ask the next escalation level: `approvers` (with their user `ids`; `groups`,
        what its group-like entries named) may decide too, the earlier ones still may, and
        its channel gets a card of its own. Returns the level."""
        if self.status is not Status.PENDING or self.escalation_level >= len(self.escalation):
            raise TransitionError(f"Request {self.id} has no escalation level left to ask.")
        level = self.escalation[self.escalation_level]
        self.escalation_level += 1
        for approver, user_id in zip(approvers, ids):
            if user_id not in self.approver_ids:
                self.approvers.append(approver)
                self.approver_ids.append(user_id)
        self.approver_entries += [e for e in level["approvers"] if e not in self.approver_entries]
        self.approver_groups.update({k: list(v) for k, v in groups.items()})
        if level.get("channel") and level["channel"] != self.channel:
            if self.card_ref:
                self.earlier_cards.append(self.card_ref)
            self.card_ref = None  # the new level's channel gets a card of its own
            self.channel = level["channel"]
        following = self.escalation[self.escalation_level : self.escalation_level + 1]
        self.next_escalation_at = (
            self.created_at + timedelta(seconds=following[0]["after"]) if following else None
        )
        self.notes.append(note)
        self.record(at, "escalated", "scheduler", note)
        return level

    @property
    def holds_access(self) -> bool:
        return self.status in HOLDS_ACCESS

    @property
    def awaits_review(self) -> bool:
        """A break-glass grant that really happened and no human has acknowledged yet."""
        return self.review_required and self.granted_at is not None and self.reviewed_at is None

    @property
    def revoke_due_at(self) -> datetime | None:
        """When the scheduler should (next) take this access away; None if it holds none.

        An asked-for revoke, or a failed revoke with no retry time, is due at once.
        """
        if self.status is Status.ACTIVE:
            return LONG_AGO if self.ending == "revoked" else self.expires_at
        if self.status is Status.REVOKE_FAILED:
            return self.next_retry_at or LONG_AGO
        return None

    def acknowledge(self, by: str, at: datetime, note: str = "") -> None:
        """A human has looked at this break-glass grant; refusals say what to do instead."""
        if not self.review_required:
            raise TransitionError(
                f"{self.id} was not a break-glass grant (a person approved it), so there is "
                "nothing to acknowledge. `!access review` lists the ones waiting."
            )
        if self.reviewed_at is not None:
            raise TransitionError(
                f"{self.id} was already acknowledged by @{self.reviewed_by} at "
                f"{self.reviewed_at:%Y-%m-%d %H:%M} UTC; see `!access show {self.id}`."
            )
        if self.granted_at is None:
            raise TransitionError(
                f"{self.id} was approved by policy but nothing was granted "
                f"({self.status.value}); there is nothing to acknowledge."
            )
        self.reviewed_by = by
        self.reviewed_at = at
        self.review_note = note
        self.record(at, "reviewed", by, note)

    def move(self, to: Status, at: datetime, actor: str, note: str = "") -> None:
        if to not in TRANSITIONS.get(self.status, set()):
            words = _DONE_WORDS.get(self.status, self.status.value)
            verb = "" if self.status is Status.TIMED_OUT else "is "  # "timed out", not "is"
            raise TransitionError(f"Request {self.id} {verb}{words}; see `!access show {self.id}`")
        self.status = to
        self.history.append(Event(at, to.value, actor, note))

    def record(self, at: datetime, action: str, actor: str, note: str = "") -> None:
        """An event in the history that does not change the status."""
        self.history.append(Event(at, action, actor, note))

    @property
    def self_approval_allowed(self) -> bool:
        """Separation of duties: with a quorum of two or more the requester never counts,
        whatever the approver list or allow_self_approval say."""
        return self.allow_self_approval and self.approvals_required == 1

    def is_requester(self, user_id: str, handle: str = "") -> bool:
        """Is this person the requester? By user id; by handle only for requests made
        before ids were recorded."""
        if self.requester_id:
            return bool(user_id) and user_id == self.requester_id
        return normalize_handle(handle) == self.requester

    @property
    def requester_entries(self) -> list[str]:
        """The approver entries that name the requester: by user id; by handle for requests
        made before ids were recorded."""
        if self.requester_id and self.approver_ids:
            return [a for a, i in zip(self.approvers, self.approver_ids) if i == self.requester_id]
        return [a for a in self.approvers if normalize_handle(a) == self.requester]

    @property
    def deciders(self) -> list[str]:
        """The approvers who may decide: everyone listed, but the requester only when the
        resource lets people approve their own request."""
        if self.self_approval_allowed:
            return list(self.approvers)
        mine = self.requester_entries
        return [a for a in self.approvers if a not in mine]

    def add_approval(self, by: str, at: datetime, comment: str = "", by_id: str = "") -> bool:
        """Count one approver's yes; returns True when the quorum is reached."""
        if self.status is not Status.PENDING:
            self.move(Status.APPROVED, at, by)  # raises with the right words
        if self.is_requester(by_id, by) and not self.self_approval_allowed:
            raise TransitionError(
                f"You cannot approve your own request {self.id}"
                + (
                    f": it needs {self.approvals_required} approvals from people other than you."
                    if self.approvals_required > 1
                    else "."
                )
            )
        if any((a.by_id or a.by) == (by_id or by) for a in self.approvals):
            raise TransitionError(
                f"You already approved {self.id}; it needs "
                f"{self.approvals_required - len(self.approvals)} more approval(s) from someone else"
            )
        self.approvals.append(Approval(by, at, comment, by_id))
        if len(self.approvals) >= self.approvals_required:
            self.decided_by = ", ".join(a.by for a in self.approvals)
            self.decision_note = comment
            self.move(Status.APPROVED, at, by, comment)
            return True
        self.record(at, "approval", by, comment)
        return False

    def activate(self, at: datetime, account: str | None = None, answer: dict | None = None):
        """The target granted, starting `at` (the start it was told): the grant ends
        `duration` later; revoke and extend act on the target's `account`; `answer` is
        the strategy's JSON answer, for the after_grant hook."""
        self.move(
            Status.ACTIVE, at, "bot", f"granted until {at + self.duration:%Y-%m-%d %H:%M} UTC"
        )
        self.granted_at = at
        self.expires_at = at + self.duration
        self.account = account
        self.grant_result = answer

    def with_end(self, end: datetime) -> Request:
        """A copy of this grant ending at `end`: what the target is told before the new
        end is recorded (a grant's start, an extension)."""
        told = self.copy()
        told.expires_at = end
        return told

    def fail_grant(self, error: str, at: datetime) -> None:
        """The grant (or an extension's time) could not be given: nothing was granted."""
        error = cut_text(error)
        self.move(Status.GRANT_FAILED, at, "bot", error)
        self.last_error = error

    def take_back(self, granted_round: int) -> None:
        """The grant made in `granted_round` could not be recorded and was taken back at
        the target: the next grant is made under a new grant id (see `grant_id`)."""
        self.grant_round = granted_round + 1
        self.grant_starts_at = None  # the new id's first call sets its own start

    def end(
        self, at: datetime, actor: str, account: str | None = None, sessions: dict | None = None
    ) -> Status:
        """The revoke worked: "revoked" if someone asked for it, else "expired". A grant
        made before accounts were recorded keeps the `account` the target named;
        `sessions` is what the revoke did to sessions opened before (Request.sessions)."""
        self._revoking(account)
        self.sessions = sessions
        final = Status.REVOKED if self.ending == "revoked" else Status.EXPIRED
        self.move(final, at, actor)
        self.ended_at = at
        self.last_error = ""
        self.next_retry_at = None
        return final

    def fail_revoke(self, error: str, at: datetime, actor: str, account: str | None = None):
        """The revoke failed: the access stays in place and the revoke is tried again
        after `retry_delay` (10 s, doubling, at most 5 minutes)."""
        error = cut_text(error)
        self._revoking(account)
        self.move(Status.REVOKE_FAILED, at, actor, error)
        self.revoke_attempts += 1
        self.next_retry_at = at + retry_delay(self.revoke_attempts)
        self.last_error = error

    def _revoking(self, account: str | None) -> None:
        self.ending = self.ending or "expired"
        self.account = self.account or account

    def extend(
        self, extension: Request, until: datetime, at: datetime, account: str | None = None
    ) -> None:
        """`extension`'s time was added at the target: the grant now ends `until`, and the
        new end earns a new reminder."""
        self.account = self.account or account
        self.expires_at = until
        self.extensions += 1
        self.reminder_sent = False
        self.record(
            at,
            "extended",
            extension.decided_by or "policy",
            f"+{format_duration(extension.duration)}, now until {until:%Y-%m-%d %H:%M} UTC "
            f"(extension {extension.id})",
        )

    def mark_applied(self, grant: Request, at: datetime) -> None:
        """This extension's time was added to `grant` (see `extend`)."""
        self.move(
            Status.EXTENDED, at, "bot", f"{grant.id} until {grant.expires_at:%Y-%m-%d %H:%M} UTC"
        )

    def owe_follow_up(self, hook: str) -> None:
        """`hook` (after_grant / after_revoke) is to run once for this request: noted in
        the same write as the grant or revoke, so it runs even if the bot stops first."""
        if hook not in self.follow_ups_due:
            self.follow_ups_due.append(hook)

    def settle_follow_up(self, hook: str, at: datetime, note: str) -> None:
        """`hook` ran (or failed, or was skipped): it is owed no more."""
        self.follow_ups_due.remove(hook)
        self.record(at, hook, "bot", note)

    def remaining(self, now: datetime) -> timedelta:
        if not self.expires_at:
            return self.duration
        return max(self.expires_at - now, timedelta(0))

    def view(self) -> RequestView:
        return RequestView(
            id=self.id,
            requester=self.requester,
            requester_email=self.requester_email,
            resource=self.resource,
            duration=self.duration,
            reason=self.reason,
            created_at=self.created_at,
            extends=self.extends,
            fields=MappingProxyType(dict(self.fields)),
            links=MappingProxyType(
                {name: MappingProxyType(_hook_link(link)) for name, link in self.links.items()}
            ),
            status=self.status.value,
            granted_at=self.granted_at,
            expires_at=self.expires_at,
            account=self.account,
            grant_result=(
                MappingProxyType(copy.deepcopy(self.grant_result))
                if self.grant_result is not None
                else None
            ),
        )

    def to_dict(self) -> dict:
        data = {}
        for f in dataclass_fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = iso(value)
            elif isinstance(value, timedelta):
                value = value.total_seconds()
            elif isinstance(value, Status):
                value = value.value
            elif f.name == "approvals":
                value = [
                    {"by": a.by, "at": iso(a.at), "comment": a.comment, "by_id": a.by_id}
                    for a in value
                ]
            elif f.name == "history":
                value = [e.to_dict() for e in value]
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Request:
        kwargs = dict(data)
        for name in (
            "created_at",
            "granted_at",
            "grant_starts_at",
            "expires_at",
            "ended_at",
            "next_retry_at",
            "next_nudge_at",
            "reviewed_at",
            "review_reminded_at",
            "next_escalation_at",
        ):
            kwargs[name] = from_iso(kwargs.get(name))
        kwargs["duration"] = timedelta(seconds=kwargs["duration"])
        kwargs["status"] = Status(kwargs["status"])
        kwargs["approvals"] = [
            Approval(a["by"], from_iso(a["at"]), a.get("comment", ""), a.get("by_id", ""))
            for a in kwargs.get("approvals", [])
        ]
        kwargs["history"] = [Event.from_dict(e) for e in kwargs.get("history", [])]
        known = _FIELD_NAMES.get(cls) or _FIELD_NAMES.setdefault(
            cls, frozenset(f.name for f in dataclass_fields(cls))
        )
        return cls(**{k: v for k, v in kwargs.items() if k in known})

    def copy(self) -> Request:
        return replace(
            self,
            approvals=list(self.approvals),
            history=list(self.history),
            notes=list(self.notes),
            approvers=list(self.approvers),
            strategy=dict(self.strategy),
            card_ref=dict(self.card_ref) if self.card_ref else None,
            grant_result=dict(self.grant_result) if self.grant_result is not None else None,
            approver_entries=list(self.approver_entries),
            approver_groups={k: list(v) for k, v in self.approver_groups.items()},
            approver_ids=list(self.approver_ids),
            fields=dict(self.fields),
            escalation=[dict(level) for level in self.escalation],
            earlier_cards=[dict(ref) for ref in self.earlier_cards],
            follow_ups_due=list(self.follow_ups_due),
            links={k: dict(v) for k, v in self.links.items()},
        )


@dataclass(frozen=True)
class RequestView:
    """What policy hooks see of a request: read-only, so a hook cannot change it."""

    id: str
    requester: str
    requester_email: str | None
    resource: str
    duration: timedelta
    reason: str
    created_at: datetime
    extends: str | None = None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    status: str = "pending"
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    account: str | None = None  # the target's id for the requester, recorded at grant
    grant_result: Mapping | None = None  # the strategy's JSON answer to the grant, if any
    # Checked justification: field -> {key, title, status, url, assignee, open, checked}
    links: Mapping[str, Mapping] = field(default_factory=lambda: MappingProxyType({}))


def _hook_link(link: Mapping) -> dict:
    """What a hook sees of one link: what the tracker said when the request was made."""
    return {
        name: link.get(name)
        for name in ("key", "title", "status", "url", "assignee", "open", "checked")
    }


# -- one serialisation per change ------------------------------------------------------
# A change's store write turns the request into its dict; the notices announced right
# after it (`UnitOfWork.announce`, on the same thread) carry that dict in the outbox
# instead of making it a second time.
_written = threading.local()


def remember_written(pairs: list[tuple[Request, dict]], keep: bool = False) -> None:
    """The dicts a store write just made (each `request.to_dict()`), for `as_written`;
    only the latest write's on this thread are kept (`keep`: another part of it)."""
    dicts = getattr(_written, "dicts", None) if keep else None
    _written.dicts = {**(dicts or {}), **{r.id: data for r, data in pairs}}


def as_written(request: Request) -> dict:
    """`request.to_dict()`: the one its store write on this thread just made, if it is
    still the request as it is (same version, status, history and card), else anew."""
    dicts = getattr(_written, "dicts", None)
    if dicts:
        data = dicts.get(request.id)
        if (
            data is not None
            and data["version"] == request.version
            and data["status"] == request.status.value
            and len(data["history"]) == len(request.history)
            and data["card_ref"] == request.card_ref
        ):
            return data
    return request.to_dict()
