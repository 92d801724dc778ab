"""Grants that end with their ticket: the links of active `end_with` grants looked up
again every ACCESS_LINK_CHECK (on the lease holder), and a grant whose ticket left the
open statuses (or whose incident was resolved) revoked, the requester and the channel
told why ("OPS-12 moved to Done").

A tracker that cannot be reached, or no longer shows the ticket, changes nothing: the
grant keeps its normal end (never extended, never ended early on an error); the
failures are counted (`accessbot_link_checks_total{type,outcome}`) and told to the
admins once, until a pass reaches that tracker again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .domain import Request, Status
from .integrations import trackers
from .messages import LINK_CHECK
from .metrics import Metrics
from .notices import Notice
from .policy_registry import PolicyRegistry
from .provisioner import Provisioner
from .store import StoreError
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

LOOKUP_WORKERS = 8  # look-ups of one pass under way at once


@dataclass
class LinkPass:
    """What one pass did: grants revoked, links looked up, trackers not reached."""

    looked_up: int = 0
    revoked: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # "jira: why", once per tracker
    notices: list[Notice] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)


class LinkChecks:
    """One pass over the active grants that end with a link (`run`)."""

    def __init__(
        self,
        uow: UnitOfWork,
        registry: PolicyRegistry,
        lookups,  # intake.Lookups: `links` is where fields are looked up
        provisioner: Provisioner,
        clock: Callable[[], datetime],
        metrics: Metrics,
    ):
        self.uow = uow
        self.registry = registry
        self.lookups = lookups
        self.provisioner = provisioner
        self.clock = clock
        self.metrics = metrics
        self._told: set[str] = set()  # trackers the admins were told are unreachable

    def run(self) -> LinkPass:
        done = LinkPass()
        reached: set[str] = set()
        failing: dict[str, str] = {}
        checks = [
            (grant, name, spec, (spec.check["type"], repr(sorted(spec.check.items())), value))
            for grant in self.uow.store.live()
            for name, spec in self._checked(grant)
            for value in [grant.fields.get(name) or grant.links[name].get("key", "")]
        ]
        # One look-up per ticket a pass (grants that share an incident ask once), a few
        # at a time: a pass over many tickets must not take longer than its cadence.
        asks = {asked: (name, spec) for _, name, spec, asked in checks}
        done.looked_up = len(asks)
        if not asks:
            return done
        with ThreadPoolExecutor(LOOKUP_WORKERS, thread_name_prefix="accessbot-links") as pool:
            found = pool.map(lambda item: self._ask(*item[1], item[0][2]), asks.items())
            answers = dict(zip(asks, found, strict=True))
        ended: set[str] = set()
        for grant, name, spec, asked in checks:
            kind, link = spec.check["type"], answers[asked]
            if grant.id in ended:
                continue
            if isinstance(link, trackers.LinkError):
                # Unknown now (deleted, moved, permissions) is an error too: the grant
                # keeps its normal end.
                self._count(kind, "unreachable")
                failing.setdefault(kind, str(link))
                continue
            reached.add(kind)
            if link.open:
                self._count(kind, "open")
                continue
            self._count(kind, "closed")
            ended.add(grant.id)  # one closed link ends the grant
            notices = self._revoke(grant.id, name, link.status)
            if notices is not None:
                done.notices += notices
                done.revoked.append(grant.id)
        for kind, why in failing.items():
            done.unreachable.append(f"{kind}: {why}")
            if kind not in self._told:
                self._told.add(kind)
                done.alerts.append(
                    f"Access bot: could not re-check {kind} links ({why}); grants that end "
                    "with their ticket keep their normal end until it answers again."
                )
        self._told -= reached - set(failing)
        return done

    def _ask(self, name: str, spec, value: str) -> trackers.Link | trackers.LinkError:
        try:
            return self.lookups.links.look_up(name, spec.check, value)
        except trackers.LinkError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - a surprise is an unreachable tracker
            log.exception("looking up %s=%s failed", name, value)
            return trackers.Unreachable(f"the look-up failed ({type(exc).__name__})")

    def _checked(self, grant: Request):
        """(field, spec) of the grant's links that end it, under the policy in force."""
        if grant.status is not Status.ACTIVE or grant.extends or not grant.links:
            return []
        policies = self.registry.policies
        resource = policies.get(grant.resource) if policies is not None else None
        if resource is None:
            return []
        return [
            (name, resource.fields[name])
            for name, link in grant.links.items()
            if link.get("end_with")
            and not link.get("closed")
            and name in resource.fields
            and resource.fields[name].check is not None
        ]

    def _revoke(self, grant_id: str, name: str, status: str) -> list[Notice] | None:
        """Claim the grant (unless a revoke or extension has it), record why it ends,
        then revoke it as any revoke: audited, the requester and the channel told."""
        try:
            with self.uow.lock:
                grant = self.provisioner.claim_current(
                    grant_id, lambda r: r.status is Status.ACTIVE
                )
                if grant is None:
                    return None  # ending, or being revoked or extended: looked at next pass
                try:
                    why = grant.close_link(name, status, True, self.clock())
                    self.uow.commit(
                        grant, "link_closed", LINK_CHECK, outcome="revoking", detail=why
                    )
                except BaseException:
                    self.uow.claims.discard(grant_id)
                    raise
        except StoreError as exc:
            log.warning("could not record that %s's link closed: %s", grant_id, exc)
            return None
        return self.provisioner.revoke(grant, LINK_CHECK)

    def _count(self, kind: str, outcome: str) -> None:
        self.metrics.link_checks.labels(kind, outcome).inc()


class LinkCheckJob:
    """The re-check as a scheduler job: due every `every` by the injected clock, on the
    lease holder only (the scheduler runs jobs there); `deliver` takes the notices the
    outbox did not, `tell_admins` each alert."""

    name = "link check"

    def __init__(
        self,
        run: Callable[[], LinkPass],
        every: timedelta,
        clock: Callable[[], datetime],
        deliver: Callable[[list[Notice]], None],
        tell_admins: Callable[[str], None],
    ):
        self.pass_ = run
        self.every = every
        self.clock = clock
        self.deliver = deliver
        self.tell_admins = tell_admins
        self.next_at: datetime | None = None  # None: at the first poll

    def due(self, now: datetime) -> bool:
        return self.next_at is None or now >= self.next_at

    def run(self) -> LinkPass:
        self.next_at = self.clock() + self.every
        done = self.pass_()
        self.deliver(done.notices)
        for alert in done.alerts:
            self.tell_admins(alert)
        return done
