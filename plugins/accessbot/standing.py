"""Standing access: who holds a resource at its target that no grant explains.

Nobody should hold admin access without a grant, but a target can say otherwise: someone
added to the Okta group by hand, a revoke lost before this bot existed, a target restored
from a backup. The sweep (standing_sweep.py) lists each resource's members at its target,
and this module says which of them nothing explains, by the rule below; it does no I/O
(what people read about it is in messages/standing.py).

A member is explained by a live grant of the resource (by the account id the target gave
at grant time; a grant that has none yet, being made now or from before accounts were
recorded, by name or e-mail) or by an entry of the policy's `standing` list. Anyone else
is a `Finding`, known by a stable key (the account id, else the name or e-mail), so the
same person is one finding from sweep to sweep until they are gone or explained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .domain import from_iso, iso, new_id
from .safe_text import inert

if TYPE_CHECKING:  # the rule reads members; it never calls a target
    from .strategies import Member

REASON = "standing access without a grant"


def norm(text) -> str:
    """A name as compared: `@Carol ` and `carol` are one."""
    return str(text).strip().lstrip("@").lower()


@dataclass(frozen=True)
class Holder:
    """Who one live grant lets hold the resource: the account its grant recorded, and
    the names it may go by at the target (handle, e-mail, mapped login)."""

    request_id: str
    account: str | None
    names: frozenset[str]


@dataclass(frozen=True)
class Allowed:
    """One entry of the policy's `standing` list and the names and ids it stands for."""

    entry: str
    names: frozenset[str]


@dataclass
class Finding:
    """A member of a resource's target that no grant explains, since `found_at`;
    `attempts` counts failed removals, retried from `next_try_at`."""

    id: str
    resource: str
    key: str  # who, stably: "account:<id>", else "user:<name>" or "email:<address>"
    user: str
    user_email: str | None
    account: str | None
    note: str
    found_at: datetime
    attempts: int = 0
    next_try_at: datetime | None = None
    last_error: str = ""

    @property
    def who(self) -> str:
        """`carol (carol@acme.com; account 00u1; invitation pending)`."""
        extra = []
        if self.user_email and norm(self.user_email) != norm(self.user):
            extra.append(self.user_email)
        if self.account and self.account != self.user:
            extra.append(f"account {self.account}")
        extra += [self.note] if self.note else []
        name = inert(self.user or self.user_email or self.account or "?", 80)
        return name + (f" ({inert('; '.join(extra), 160)})" if extra else "")

    def payload(self) -> dict:
        """The revoke call that removes it: a grant's JSON (the README's webhook contract) with no
        request; the same grant id on every retry, a new one for a new finding."""
        return {
            "action": "revoke",
            "grant_id": f"s-{self.id}",
            "request_id": None,
            "user": self.user,
            "user_email": self.user_email,
            "resource": self.resource,
            "expires_at": None,
            "reason": REASON,
            "account": self.account,
        }

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "resource": self.resource,
            "key": self.key,
            "user": self.user,
            "user_email": self.user_email,
            "account": self.account,
            "note": self.note,
            "found_at": iso(self.found_at),
            "attempts": self.attempts,
            "next_try_at": iso(self.next_try_at),
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Finding:
        return cls(
            id=data["id"],
            resource=data["resource"],
            key=data["key"],
            user=data.get("user") or "",
            user_email=data.get("user_email"),
            account=data.get("account"),
            note=data.get("note") or "",
            found_at=from_iso(data["found_at"]),
            attempts=int(data.get("attempts") or 0),
            next_try_at=from_iso(data.get("next_try_at")),
            last_error=data.get("last_error") or "",
        )


@dataclass(frozen=True)
class Unlisted:
    """Why a resource's target could not be listed: it cannot (`cannot`), or it failed."""

    reason: str
    cannot: bool
    since: datetime


@dataclass
class ResourceState:
    """What is known of one resource: when it was last listed, its findings, and why its
    target could not be listed at the last try (None: it could)."""

    swept_at: datetime | None = None
    findings: list[Finding] = field(default_factory=list)
    unlisted: Unlisted | None = None

    def to_dict(self) -> dict:
        unlisted = self.unlisted
        return {
            "swept_at": iso(self.swept_at),
            "findings": [f.to_dict() for f in self.findings],
            "unlisted": None
            if unlisted is None
            else {
                "reason": unlisted.reason,
                "cannot": unlisted.cannot,
                "since": iso(unlisted.since),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping | None) -> ResourceState:
        if not data:
            return cls()
        unlisted = data.get("unlisted")
        return cls(
            from_iso(data.get("swept_at")),
            [Finding.from_dict(f) for f in data.get("findings") or []],
            None
            if not unlisted
            else Unlisted(
                unlisted["reason"], bool(unlisted["cannot"]), from_iso(unlisted["since"])
            ),
        )


def member_key(member: Member) -> str:
    if member.account:
        return f"account:{member.account}"
    if member.user:
        return f"user:{norm(member.user)}"
    return f"email:{norm(member.user_email)}"


def _names(member: Member) -> frozenset[str]:
    return frozenset(norm(n) for n in (member.user, member.user_email) if n)


@dataclass
class Comparison:
    """One resource's members against what explains them: the new findings, the known
    ones still there (with what the target says of them now), and the known ones that
    are no longer findings, each with why."""

    found: list[Finding] = field(default_factory=list)
    kept: list[Finding] = field(default_factory=list)
    cleared: list[tuple[Finding, str]] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return self.kept + self.found


class Explainer:
    """Says why a member may hold the resource: a live grant (by the account its grant
    recorded, else by name or e-mail) or the `standing` list; None when nothing does."""

    def __init__(self, holders: Iterable[Holder], allowed: Iterable[Allowed]):
        self.by_account: dict[str, Holder] = {}
        self.by_name: dict[str, Holder] = {}  # every holder's names
        self.by_name_unrecorded: dict[str, Holder] = {}  # holders with no account yet
        for holder in holders:
            if holder.account:
                self.by_account.setdefault(holder.account, holder)
            for name in holder.names:
                self.by_name.setdefault(name, holder)
                if not holder.account:
                    self.by_name_unrecorded.setdefault(name, holder)
        self.allowed: dict[str, Allowed] = {}
        for entry in allowed:
            for name in entry.names:
                self.allowed.setdefault(name, entry)

    def why(self, member: Member) -> str | None:
        names = _names(member)
        if member.account:
            # The target's own id decides against a grant that recorded one; a grant
            # that has none yet (in flight, or from before accounts were recorded) is
            # matched by name.
            holder = self.by_account.get(member.account) or _first(self.by_name_unrecorded, names)
        else:
            holder = _first(self.by_name, names)
        if holder is not None:
            return f"grant {holder.request_id}"
        ids = names | ({norm(member.account)} if member.account else set())
        allowed = _first(self.allowed, ids)
        return None if allowed is None else f"the standing list ({allowed.entry})"


def _first(index: Mapping, keys: Iterable[str]):
    for key in sorted(keys):
        if key in index:
            return index[key]
    return None


def compare(
    resource: str,
    members: Iterable[Member],
    explainer: Explainer,
    known: Iterable[Finding],
    now: datetime,
    make_id: Callable[[], str] = new_id,
) -> Comparison:
    """Which members no grant or standing entry explains, against the known findings."""
    known = {f.key: f for f in known}
    seen: set[str] = set()
    result = Comparison()
    explained: dict[str, str] = {}
    for member in members:
        key = member_key(member)
        if key in seen:
            continue  # listed twice (a collaborator with an invitation too): one finding
        seen.add(key)
        why = explainer.why(member)
        if why is not None:
            explained[key] = why
            continue
        finding = known.get(key)
        if finding is None:
            result.found.append(
                Finding(
                    make_id(),
                    resource,
                    key,
                    member.user,
                    member.user_email,
                    member.account,
                    member.note,
                    now,
                )
            )
        else:
            finding.user, finding.user_email = member.user, member.user_email
            finding.note = member.note
            result.kept.append(finding)
    for key, finding in known.items():
        if key not in seen:
            result.cleared.append((finding, "no longer holds it"))
        elif key in explained:
            result.cleared.append((finding, f"explained now by {explained[key]}"))
    return result
