"""Standing access: who holds a resource at its target that no grant explains.

Nobody should hold admin access without a grant, but a target can say otherwise: someone
added to the Okta group by hand, a revoke lost before this bot existed, a target restored
from a backup. The sweep lists each resource's members at its target
(`Strategy.members`), compares them with the live grants and the policy's `standing`
list, and keeps what nothing explains as a finding: posted once to the resource's channel
and audited once (`standing_found`), removed through the same strategy when the policy
says `remove_standing: True` (`standing_removed`, retried like a revoke), and audited
again when it is gone (`standing_cleared`). Findings live in the store, so a restart or
another bot taking over announces nothing twice.

`compare` is the rule and is pure; `StandingSweep` lists, stores, audits and removes;
`StandingJob` is what the scheduler runs every ACCESS_STANDING_SWEEP on the bot that
leads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import messages as msg
from .approvers import static_members
from .audit import AuditError
from .domain import AccessError, Status, format_duration, from_iso, iso, new_id
from .policy import Resource
from .service import RETRY_CAP, RETRY_FIRST, AccessService, Actor, Notice
from .store import StoreError
from .strategies import CannotList, Member, SettingsError, StrategyError

log = logging.getLogger(__name__)

# A request in these statuses explains its requester holding the resource: granted, being
# granted (the call may be in flight) or not yet revoked.
GRANTING = (Status.APPROVED, Status.ACTIVE, Status.REVOKE_FAILED)
SHOWN = 20  # members named in one channel message; the rest are counted
REASON = "standing access without a grant"


def _norm(text) -> str:
    return str(text).strip().lstrip("@").lower()


# -- the rule (pure) ---------------------------------------------------------------------


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
        extra = [
            e
            for e in (
                self.user_email
                if self.user_email and _norm(self.user_email) != _norm(self.user)
                else "",
                f"account {self.account}" if self.account and self.account != self.user else "",
                self.note,
            )
            if e
        ]
        name = msg.inert(self.user or self.user_email or self.account or "?", 80)
        return name + (f" ({msg.inert('; '.join(extra), 160)})" if extra else "")

    def payload(self) -> dict:
        """The revoke call that removes it: a grant's JSON (DESIGN section 3) with no
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
        return f"user:{_norm(member.user)}"
    return f"email:{_norm(member.user_email)}"


def _names(member: Member) -> frozenset[str]:
    return frozenset(_norm(n) for n in (member.user, member.user_email) if n)


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
        ids = names | ({_norm(member.account)} if member.account else set())
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


# -- the sweep (I/O) -------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one run did. `notices` go to chat as the service's do; `alerts` to the admins."""

    notices: list[Notice] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    found: list[Finding] = field(default_factory=list)
    removed: list[Finding] = field(default_factory=list)
    failed: list[Finding] = field(default_factory=list)
    cleared: list[tuple[Finding, str]] = field(default_factory=list)
    held_back: list[Finding] = field(default_factory=list)  # over the removal limit
    findings: dict[str, list[Finding]] = field(default_factory=dict)  # per resource, now
    unlisted: dict[str, Unlisted] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # resources whose sweep failed
    skipped: str = ""  # why nothing ran
    listed: int = 0  # members listed in all


class StandingSweep:
    """Lists, compares, records and removes: one instance per service.

    `max_removals` bounds the removals of one run: a run that would remove more (a
    target answering with the wrong group, a `standing` list gone missing) removes
    nothing and alerts the admins instead. `user_emails` (ACCESS_USER_EMAILS) lets a
    `standing` entry `@alice` also match alice's e-mail at the target.
    """

    def __init__(
        self,
        service: AccessService,
        max_removals: int = 20,
        user_emails: Mapping[str, str] | None = None,
        every: timedelta | None = None,
    ):
        self.service = service
        self.store = service.store
        self.max_removals = max_removals
        self.user_emails = {_norm(k): v for k, v in (user_emails or {}).items()}
        self.every = every
        self._held_alerted: frozenset[str] = frozenset()

    # -- running ------------------------------------------------------------------------

    def not_now(self) -> str:
        """Why no sweep may run now ("" when one may): the policies failed to load, so
        who may hold what is not known."""
        if self.service.policies is None or self.service.policy_error is not None:
            return "the policy files did not load; fix them and run `!access reload`"
        return ""

    def sweep(
        self,
        only: str | None = None,
        remove: bool | None = None,
        actor: str = "scheduler",
        record: bool = True,
    ) -> SweepResult:
        """List every resource (or `only` one), record what changed, and remove what the
        policy says to (`remove` True or False overrides it). With `record` False nothing
        is written, audited, announced or removed: a look (the CLI without --remove)."""
        result = SweepResult()
        result.skipped = self.not_now()
        if result.skipped:
            log.warning("standing-access sweep skipped: %s", result.skipped)
            return result
        policies = self.service.policies
        if only is not None and policies.get(only) is None:
            names = ", ".join(policies.names()) or "none"
            raise AccessError(f"Unknown resource `{msg.inert(only, 60)}`. Resources: {names}.")
        resources = (
            [policies.resources[only]]
            if only
            else [policies.resources[n] for n in policies.names()]
        )
        for resource in resources:
            try:
                self._sweep_resource(resource, actor, record, result)
            except (AccessError, AuditError, StoreError) as exc:
                result.failures[resource.name] = str(exc)
                log.error("standing-access sweep of %s not recorded: %s", resource.name, exc)
        if record and only is None:
            self._forget_removed_resources(policies.resources, actor, result)
        if record:
            # Only what this run listed: an old finding of a target that cannot be listed
            # now is retried by `retry`, if its removal failed, and by nothing else.
            chosen = [
                (r, f)
                for r in resources
                if r.name not in result.unlisted
                for f in result.findings.get(r.name, [])
                if (r.remove_standing if remove is None else remove) and self._due(f)
            ]
            self._remove(chosen, actor, result)
        return result

    def retry(self, actor: str = "scheduler") -> SweepResult:
        """Remove again what failed to be removed, once its retry time has come."""
        result = SweepResult()
        result.skipped = self.not_now()
        if result.skipped:
            return result
        policies = self.service.policies
        known = self._states()
        chosen = [
            (policies.resources[name], finding)
            for name, state in sorted(known.items())
            if name in policies.resources and policies.resources[name].remove_standing
            for finding in state.findings
            if finding.attempts and self._due(finding)
        ]
        self._remove(chosen, actor, result)
        return result

    def next_try_at(self) -> datetime | None:
        """When the earliest failed removal is due again (of resources that remove)."""
        policies = self.service.policies
        if policies is None:
            return None
        due = [
            f.next_try_at
            for name, state in self._states().items()
            if name in policies.resources and policies.resources[name].remove_standing
            for f in state.findings
            if f.attempts and f.next_try_at
        ]
        return min(due, default=None)

    def _due(self, finding: Finding) -> bool:
        return finding.next_try_at is None or finding.next_try_at <= self.service.clock()

    # -- one resource -------------------------------------------------------------------

    def _sweep_resource(
        self, resource: Resource, actor: str, record: bool, result: SweepResult
    ) -> None:
        now = self.service.clock()
        # The grants are read before and after the listing: a grant made or ended while
        # the target was being listed explains its member either way.
        before = self._holders(resource.name)
        members, unlisted = self._list(resource, now)
        holders = before + self._holders(resource.name)
        explainer = Explainer(holders, self._allowed(resource))
        with self.service.lock:
            state = self._state(resource.name)
            if unlisted is not None:
                old = state.unlisted
                if old is not None and (old.reason, old.cannot) == (
                    unlisted.reason,
                    unlisted.cannot,
                ):
                    unlisted = old  # the same trouble as before: since then
                elif record:
                    log.warning("cannot list %s: %s", resource.name, unlisted.reason)
                result.unlisted[resource.name] = unlisted
                result.findings[resource.name] = state.findings  # unknown now: kept as they were
                if record and unlisted is not state.unlisted:
                    state.unlisted = unlisted
                    self.store.save_standing(resource.name, state.to_dict())
                return
            result.listed += len(members)
            comparison = compare(resource.name, members, explainer, state.findings, now)
            result.findings[resource.name] = comparison.findings
            result.found += comparison.found
            result.cleared += comparison.cleared
            if not record:
                return
            events = [("standing_found", self._event(f, actor, "found")) for f in comparison.found]
            events += [
                ("standing_cleared", self._event(f, actor, "cleared", why))
                for f, why in comparison.cleared
            ]
            if events:
                self._append(events)
            self.store.save_standing(
                resource.name, ResourceState(now, comparison.findings, None).to_dict()
            )
        if comparison.found:
            result.notices.append(self._found_notice(resource, comparison.found))

    def _list(self, resource: Resource, now: datetime) -> tuple[list[Member], Unlisted | None]:
        """The target's members, or why it could not say."""
        try:
            strategy = self.service._strategy(resource.strategy_settings)
            return strategy.members(resource.name), None
        except CannotList as exc:
            return [], Unlisted(str(exc), True, now)
        except (StrategyError, SettingsError) as exc:
            return [], Unlisted(str(exc), False, now)
        except Exception as exc:  # noqa: BLE001 - one resource must not stop the sweep
            log.exception("listing %s failed inside the bot", resource.name)
            return [], Unlisted(f"listing failed inside the bot ({type(exc).__name__})", False, now)

    def _forget_removed_resources(
        self, resources: Mapping, actor: str, result: SweepResult
    ) -> None:
        """Findings of a resource no policy defines any more are moot: cleared."""
        for name, state in self._states().items():
            if name in resources:
                continue
            with self.service.lock:
                why = "the resource is no longer in the policies"
                events = [
                    ("standing_cleared", self._event(f, actor, "cleared", why))
                    for f in state.findings
                ]
                if events:
                    self._append(events)
                self.store.save_standing(name, None)
            result.cleared += [(f, why) for f in state.findings]

    # -- removing -------------------------------------------------------------------------

    def _remove(
        self, chosen: list[tuple[Resource, Finding]], actor: str, result: SweepResult
    ) -> None:
        """Remove the chosen findings through their resources' strategies, unless there
        are more than `max_removals`: then none, and the admins are told once."""
        if not chosen:
            self._held_alerted = frozenset()
            return
        if len(chosen) > self.max_removals:
            result.held_back = [f for _, f in chosen]
            held = frozenset(f.id for f in result.held_back)
            if held != self._held_alerted:
                self._held_alerted = held
                result.alerts.append(self._held_text(chosen))
                try:
                    self.service._audit(
                        "standing_removal_held",
                        actor,
                        outcome="held",
                        detail=f"{len(chosen)} removals wanted, limit {self.max_removals}: none made",
                    )
                except AccessError as exc:
                    log.error("could not audit the held removals: %s", exc)
            return
        self._held_alerted = frozenset()
        by_resource: dict[str, tuple[Resource, list[Finding], list[Finding]]] = {}
        for resource, finding in chosen:
            removed, failed = self._remove_one(resource, finding, actor)
            entry = by_resource.setdefault(resource.name, (resource, [], []))
            entry[1].extend(removed)
            entry[2].extend(failed)
            result.removed += removed
            result.failed += failed
        for resource, removed, failed in by_resource.values():
            result.notices += self._removal_notices(resource, removed, failed)

    def _remove_one(
        self, resource: Resource, finding: Finding, actor: str
    ) -> tuple[list[Finding], list[Finding]]:
        """One removal; ([finding], []) when done, ([], [finding]) when it failed, and
        ([], []) when it was not made (explained by now, or gone from the store)."""
        member = Member(finding.user, finding.user_email, finding.account, finding.note)
        # A grant may have been made since the sweep: never remove someone it explains.
        if Explainer(self._holders(resource.name), self._allowed(resource)).why(member):
            return [], []
        try:
            strategy = self.service._strategy(resource.strategy_settings)
            done = strategy.call("revoke", finding.payload())
            error, note = None, done.note
        except (StrategyError, SettingsError) as exc:
            error, note = str(exc), ""
        now = self.service.clock()
        with self.service.lock:
            state = self._state(resource.name)
            current = next((f for f in state.findings if f.id == finding.id), None)
            if current is None:
                return [], []  # cleared meanwhile
            if error is None:
                self._append([("standing_removed", self._event(current, actor, "removed", note))])
                state.findings = [f for f in state.findings if f.id != current.id]
                self.store.save_standing(resource.name, state.to_dict())
                return [current], []
            current.attempts += 1
            current.next_try_at = now + min(RETRY_FIRST * 2 ** (current.attempts - 1), RETRY_CAP)
            current.last_error = error
            detail = f"attempt {current.attempts}: {error}"
            self._append(
                [("standing_remove_failed", self._event(current, actor, "remove_failed", detail))]
            )
            self.store.save_standing(resource.name, state.to_dict())
            return [], [current]

    # -- reading ---------------------------------------------------------------------------

    def _holders(self, resource: str) -> list[Holder]:
        accounts = self.service.accounts
        holders = []
        for request in self.store.live_in(GRANTING):
            if request.resource != resource:
                continue
            names = {request.requester, request.requester_email, request.requester_id}
            names |= {accounts.find(s, request.requester) for s in ("github", "aws")}
            holders.append(
                Holder(request.id, request.account, frozenset(_norm(n) for n in names if n))
            )
        return holders

    def _allowed(self, resource: Resource) -> list[Allowed]:
        accounts = self.service.accounts
        allowed = []
        for entry in resource.standing:
            handle = _norm(entry)
            names = {entry, self.user_emails.get(handle)}
            names |= {accounts.find(s, handle) for s in ("github", "aws")}
            allowed.append(Allowed(entry, frozenset(_norm(n) for n in names if n)))
        return allowed

    def _states(self) -> dict[str, ResourceState]:
        return {name: ResourceState.from_dict(doc) for name, doc in self.store.standing().items()}

    def _state(self, resource: str) -> ResourceState:
        return ResourceState.from_dict(self.store.standing().get(resource))

    def _append(self, events: list[tuple[str, dict]]) -> None:
        try:
            self.service.audit.append_many(events)
        except AuditError as exc:
            raise AccessError(f"Nothing was changed: {exc}. Tell an admin.") from exc

    @staticmethod
    def _event(finding: Finding, actor: str, outcome: str, detail: str = "") -> dict:
        return {
            "actor": actor,
            "resource": finding.resource,
            "user": finding.user or finding.user_email or finding.account,
            "user_email": finding.user_email,
            "account": finding.account,
            "finding": finding.id,
            "found_at": iso(finding.found_at),
            "outcome": outcome,
            "detail": detail,
        }

    # -- what people read ----------------------------------------------------------------

    def _found_notice(self, resource: Resource, found: list[Finding]) -> Notice:
        count = f"{len(found)} accounts hold" if len(found) > 1 else "1 account holds"
        lines = [
            f"STANDING ACCESS on {resource.name}: {count} it at the target and no grant "
            f"explains it (found {msg.when(found[0].found_at)}):"
        ]
        lines += [f"- {f.who}" for f in found[:SHOWN]]
        if len(found) > SHOWN:
            lines.append(f"- and {len(found) - SHOWN} more: `!access standing {resource.name}`")
        if resource.remove_standing:
            lines.append("The bot removes them now (the policy says remove_standing).")
        else:
            lines.append(
                "Remove them at the target, or, if they should hold it without a grant, add "
                f"them to `standing` of {resource.name} in {resource.file}. "
                f"`!access standing {resource.name}` lists what is found."
            )
        return Notice("channel", resource.channel, "\n".join(lines), None, "alert")

    def _removal_notices(
        self, resource: Resource, removed: list[Finding], failed: list[Finding]
    ) -> list[Notice]:
        notices = []
        if removed:
            names = ", ".join(f.who for f in removed[:SHOWN])
            more = f" and {len(removed) - SHOWN} more" if len(removed) > SHOWN else ""
            notices.append(
                Notice(
                    "channel",
                    resource.channel,
                    f"Removed standing access to {resource.name} (no grant explained it): "
                    f"{names}{more}.",
                )
            )
        for finding in failed:
            notices.append(
                Notice(
                    "channel",
                    resource.channel,
                    f"REMOVAL FAILED of standing access to {resource.name} for {finding.who}, "
                    f"attempt {finding.attempts}: {msg.inert(finding.last_error)}. Retrying at "
                    f"{msg.when(finding.next_try_at)}; the access is still in place.",
                    None,
                    "alert",
                )
            )
        return notices

    def _held_text(self, chosen: list[tuple[Resource, Finding]]) -> str:
        counts: dict[str, int] = {}
        for resource, _ in chosen:
            counts[resource.name] = counts.get(resource.name, 0) + 1
        where = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))
        return (
            f"Standing-access sweep: {len(chosen)} accounts would be removed ({where}), more "
            f"than ACCESS_STANDING_MAX_REMOVALS ({self.max_removals}), so none was removed. "
            "A target listing the wrong group, or a `standing` list gone missing, looks like "
            "this: check them with `!access standing`. If the removals are right, remove "
            "them with `ACCESS_STANDING_MAX_REMOVALS=<n> python -m accessbot standing "
            "--resource <resource> --remove`, or raise the limit."
        )

    def report(self, actor: Actor, resource_name: str | None = None) -> str:
        """`!access standing [resource]`: the findings with since when, and the resources
        whose targets cannot be listed; for admins and the resources' approvers."""
        policies = self.service._policies()
        if resource_name is not None:
            resource = self.service._resource(resource_name)
            if not (actor.is_admin or self._approves(actor, resource)):
                raise AccessError(
                    f"`!access standing {resource.name}` is for admins and the approvers of "
                    f"{resource.name} ({msg.approvers_text(resource.approvers)})."
                )
            shown = [resource]
        else:
            shown = [
                policies.resources[n]
                for n in policies.names()
                if actor.is_admin or self._approves(actor, policies.resources[n])
            ]
            if not shown:
                raise AccessError(
                    "`!access standing` is for admins and approvers; it shows the resources "
                    "you approve."
                )
        return render_report(
            shown, self._states(), self.service.clock(), self.every, self.not_now()
        )

    def _approves(self, actor: Actor, resource: Resource) -> bool:
        groups = self.service.policies.groups if self.service.policies else {}
        return any(
            self.service._names(actor, a) for a in static_members(resource.approvers, groups)
        )


def render_report(
    resources: list[Resource],
    states: Mapping[str, ResourceState],
    now: datetime,
    every: timedelta | None = None,
    not_now: str = "",
) -> str:
    """The findings of these resources with since when; which targets cannot be listed."""
    found: list[str] = []
    quiet: list[str] = []
    unlisted: list[str] = []
    unchecked: list[str] = []
    for resource in resources:
        state = states.get(resource.name) or ResourceState()
        if state.unlisted is not None:
            u = state.unlisted
            what = "cannot be listed" if u.cannot else "could not be listed"
            unlisted.append(
                f"- {resource.name} {what} (since {msg.when(u.since)}): {msg.inert(u.reason)}"
            )
        if state.swept_at is None and state.unlisted is None:
            unchecked.append(resource.name)
            continue
        if not state.findings:
            if state.unlisted is None:
                quiet.append(resource.name)
            continue
        checked = f"listed {_ago(state.swept_at, now)}" if state.swept_at else "not listed yet"
        removes = "; the bot removes them (remove_standing)" if resource.remove_standing else ""
        found.append(f"{resource.name} ({checked}{removes}):")
        for f in sorted(state.findings, key=lambda f: f.found_at):
            line = f"- {f.who} since {msg.when(f.found_at)} ({_ago(f.found_at, now)})"
            if f.attempts:
                line += (
                    f"; removal attempt {f.attempts} failed ({msg.inert(f.last_error, 120)}), "
                    f"next try {msg.when(f.next_try_at)}"
                )
            found.append(line)
    sweep = f"every {format_duration(every)}" if every else "on demand"
    head = (
        f"Standing access: accounts at the targets that no grant or `standing` entry "
        f"explains (checked {sweep})."
    )
    lines = [head]
    if not_now:
        lines.append(f"The sweep is not running: {not_now}.")
    lines += found or ["Nothing found."]
    if quiet:
        lines.append("Nothing found on: " + ", ".join(quiet) + ".")
    if unlisted:
        lines.append("Targets that cannot be checked:")
        lines += unlisted
    if unchecked:
        lines.append("Not checked yet: " + ", ".join(unchecked) + ".")
    return "\n".join(lines)


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    delta = now - then
    return "just now" if delta < timedelta(seconds=1) else f"{format_duration(delta)} ago"


class StandingJob:
    """The sweep as the scheduler's periodic job: due every `every` by the injected clock
    (the first at once), and whenever a failed removal's retry time has come. `deliver`
    takes the notices, `tell_admins` each alert."""

    name = "standing"

    def __init__(
        self,
        sweep: StandingSweep,
        every: timedelta,
        clock: Callable[[], datetime],
        deliver: Callable[[list[Notice]], None],
        tell_admins: Callable[[str], None],
    ):
        self.sweep = sweep
        self.every = every
        self.clock = clock
        self.deliver = deliver
        self.tell_admins = tell_admins
        self.next_sweep_at: datetime | None = None  # None: at once
        self.next_try_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        if self.sweep.not_now():
            return False
        if self.next_sweep_at is None or now >= self.next_sweep_at:
            return True
        return self.next_try_at is not None and now >= self.next_try_at

    def run(self) -> SweepResult:
        now = self.clock()
        sweeping = self.next_sweep_at is None or now >= self.next_sweep_at
        if sweeping:
            self.next_sweep_at = now + self.every
        self.next_try_at = None  # found again below: a run that fails does not spin
        result = self.sweep.sweep() if sweeping else self.sweep.retry()
        try:
            self.next_try_at = self.sweep.next_try_at()
        except StoreError as exc:
            log.warning("could not look up the next removal retry: %s", exc)
            self.next_try_at = now + RETRY_FIRST
        self.deliver(result.notices)
        for alert in result.alerts:
            self.tell_admins(alert)
        return result
