"""The standing-access sweep: lists the targets, records findings, audits, removes.

Every ACCESS_STANDING_SWEEP the bot that leads (the scheduler's lease) lists each
resource's members at its target (`Strategy.members`) and compares them with the live
grants and the policy's `standing` list (the rule: standing.py). A new finding is posted
once to the resource's channel and audited once (`standing_found`); with
`remove_standing: True` it is removed through the same strategy (`standing_removed`,
retried like a revoke); one that disappears is audited (`standing_cleared`). Findings
live in the store, so a restart or another bot taking over announces nothing twice.
Nothing runs while the policy files fail to load, and a run that would remove more than
ACCESS_STANDING_MAX_REMOVALS removes nothing and alerts the admins.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import messages as msg
from .approvers import static_members
from .audit import AuditError
from .domain import AccessError, Status, cut_text, iso, retry_delay
from .policy import Resource
from .service import RETRY_FIRST, AccessService, Actor, Notice
from .standing import (
    Allowed,
    Explainer,
    Finding,
    Holder,
    ResourceState,
    Unlisted,
    compare,
    norm,
)
from .store import StoreError
from .strategies import CannotList, Member, SettingsError, StrategyError

log = logging.getLogger(__name__)

# A request in these statuses explains its requester holding the resource: granted, being
# granted (the call may be in flight) or not yet revoked.
GRANTING = (Status.APPROVED, Status.ACTIVE, Status.REVOKE_FAILED)


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
        self.user_emails = {norm(k): v for k, v in (user_emails or {}).items()}
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
        resources = [policies.resources[n] for n in ([only] if only else policies.names())]
        for resource in resources:
            try:
                self._sweep_resource(resource, actor, record, result)
            except (AccessError, AuditError, StoreError) as exc:
                result.failures[resource.name] = str(exc)
                log.error("standing-access sweep of %s not recorded: %s", resource.name, exc)
        if record and only is None:
            self._forget_removed_resources(policies.resources, actor, result)
        if record:
            chosen = self._removable(resources, result, remove)
            if len(chosen) <= self.max_removals:
                self._held_alerted = frozenset()  # a later hold is news again
            self._remove(chosen, actor, result)
            # Each resource's new findings in one message, ahead of what was removed.
            result.notices[:0] = [
                Notice(
                    "channel",
                    r.channel,
                    msg.found_text(r, new, held=bool(result.held_back)),
                    None,
                    "alert",
                )
                for r in resources
                if (new := [f for f in result.found if f.resource == r.name])
            ]
        return result

    def _removable(
        self, resources: list[Resource], result: SweepResult, remove: bool | None
    ) -> list[tuple[Resource, Finding]]:
        """What this run should remove: what it listed, of the resources that remove.
        An old finding of a target that cannot be listed now is left to `retry` (if its
        removal failed) and to nothing else."""
        return [
            (r, f)
            for r in resources
            if (r.remove_standing if remove is None else remove) and r.name not in result.unlisted
            for f in result.findings.get(r.name, [])
            if self._due(f)
        ]

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
        sharing = self._sharing(resource)
        before = self._holders(sharing)
        members, unlisted = self._list(resource, now)
        holders = before + self._holders(sharing)
        explainer = Explainer(holders, self._allowed(sharing))
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

    def _list(self, resource: Resource, now: datetime) -> tuple[list[Member], Unlisted | None]:
        """The target's members, or why it could not say."""
        try:
            strategy = self.service._strategy(resource.strategy_settings)
            return strategy.members(resource.name), None
        except CannotList as exc:
            return [], Unlisted(cut_text(str(exc)), True, now)
        except (StrategyError, SettingsError) as exc:
            return [], Unlisted(cut_text(str(exc)), False, now)
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
        if len(chosen) > self.max_removals:
            result.held_back = [f for _, f in chosen]
            held = frozenset(f.id for f in result.held_back)
            if held != self._held_alerted:
                self._held_alerted = held
                result.alerts.append(
                    msg.held_text(Counter(r.name for r, _ in chosen), self.max_removals)
                )
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
        by_resource: dict[str, tuple[Resource, list[Finding], list[Finding]]] = {}
        for resource, finding in chosen:
            removed, failed = self._remove_one(resource, finding, actor)
            entry = by_resource.setdefault(resource.name, (resource, [], []))
            entry[1].extend(removed)
            entry[2].extend(failed)
            result.removed += removed
            result.failed += failed
        for resource, removed, failed in by_resource.values():
            if removed:
                result.notices.append(
                    Notice("channel", resource.channel, msg.removed_text(resource, removed))
                )
            result.notices += [
                Notice(
                    "channel", resource.channel, msg.removal_failed_text(resource, f), None, "alert"
                )
                for f in failed
            ]

    def _remove_one(
        self, resource: Resource, finding: Finding, actor: str
    ) -> tuple[list[Finding], list[Finding]]:
        """One removal; ([finding], []) when done, ([], [finding]) when it failed, and
        ([], []) when it was not made (explained by now, or gone from the store)."""
        member = Member(finding.user, finding.user_email, finding.account, finding.note)
        # A grant may have been made since the sweep: never remove someone it explains.
        sharing = self._sharing(resource)
        if Explainer(self._holders(sharing), self._allowed(sharing)).why(member):
            return [], []
        try:
            strategy = self.service._strategy(resource.strategy_settings)
            done = strategy.call("revoke", finding.payload())
            error, note = None, done.note
        except (StrategyError, SettingsError) as exc:
            error, note = cut_text(str(exc)), ""
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
            current.next_try_at = now + retry_delay(current.attempts)
            current.last_error = error
            detail = f"attempt {current.attempts}: {error}"
            self._append(
                [("standing_remove_failed", self._event(current, actor, "remove_failed", detail))]
            )
            self.store.save_standing(resource.name, state.to_dict())
            return [], [current]

    # -- reading ---------------------------------------------------------------------------

    def _sharing(self, resource: Resource) -> list[Resource]:
        """`resource` and every other resource whose strategy grants at the same target
        (the same group, team, role: `Strategy.target_key`): a live grant or a standing
        entry of any of them explains a member of all."""
        key = self._target_key(resource)
        policies = self.service.policies
        if key is None or policies is None:
            return [resource]
        others = [
            policies.resources[n]
            for n in policies.names()
            if n != resource.name and self._target_key(policies.resources[n]) == key
        ]
        return [resource, *others]

    def _target_key(self, resource: Resource) -> tuple | None:
        try:
            return self.service._strategy(resource.strategy_settings).target_key()
        except (SettingsError, StrategyError):
            return None

    def _holders(self, sharing: list[Resource]) -> list[Holder]:
        accounts = self.service.accounts
        names = {r.name for r in sharing}
        holders = []
        for request in self.store.live_in(GRANTING):
            if request.resource not in names:
                continue
            names = {request.requester, request.requester_email, request.requester_id}
            names |= {accounts.find(s, request.requester) for s in ("github", "aws")}
            holders.append(
                Holder(request.id, request.account, frozenset(norm(n) for n in names if n))
            )
        return holders

    def _allowed(self, sharing: list[Resource]) -> list[Allowed]:
        accounts = self.service.accounts
        allowed = []
        for entry in (e for r in sharing for e in r.standing):
            handle = norm(entry)
            names = {entry, self.user_emails.get(handle)}
            names |= {accounts.find(s, handle) for s in ("github", "aws")}
            allowed.append(Allowed(entry, frozenset(norm(n) for n in names if n)))
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
        return msg.render_report(
            shown, self._states(), self.service.clock(), self.every, self.not_now()
        )

    def _approves(self, actor: Actor, resource: Resource) -> bool:
        groups = self.service.policies.groups if self.service.policies else {}
        return any(
            self.service._names(actor, a) for a in static_members(resource.approvers, groups)
        )


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
