"""A stateful property test over the use cases: random requests, approvals, denials,
cancels, extensions, revokes, clock jumps, restarts and target failures against the real
service (the in-memory store, which a restart reopens with what was saved, and the audit
file in a temporary directory) and a webhook target on 127.0.0.1. After every step the rules a security team relies on must hold:

- nothing is granted without its approvals;
- once the target answers, no grant outlives its end by more than the retry schedule;
- every grant made at the target is revoked there exactly once (checked at the end);
- the audit chain verifies.

It is the net under any refactoring of the service: the behaviour, not the shape.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from accessbot.audit import verify_chain
from accessbot.domain import AccessError, Status
from accessbot.memory_store import MemoryStore
from accessbot.service import RETRY_CAP
from tests.builders import build_service, person
from tests.conftest import FakeClock
from tests.fakes import WebhookTarget

REQUESTERS = ("carol", "dave", "erin")
APPROVERS = ("alice", "bob")
HOLDS = (Status.ACTIVE, Status.REVOKE_FAILED)


class AccessModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="accessbot-model-"))
        self.target = WebhookTarget(secret="s3cret")
        self.clock = FakeClock()
        self.service = build_service(self.dir, self.clock, self.target.url, store=MemoryStore())
        self.ids: list[str] = []
        self.target_ok = True

    def teardown(self):
        try:
            self.target.set_status(200)
            self.target_ok = True
            # Long enough for every grant to end and every failed revoke to be retried.
            for _ in range(12):
                self.clock.advance(hours=1)
                self.service.tick()
            for rid in self.ids:
                request = self.service.store.get(rid)
                assert request.status not in HOLDS, f"{rid} still holds access: {request.status}"
            grants = [c["grant_id"] for c in self.target.calls if c["action"] == "grant"]
            revokes = [c["grant_id"] for c in self.target.calls if c["action"] == "revoke"]
            assert sorted(revokes) == sorted(set(revokes)), "a grant was revoked twice"
            assert set(grants) <= set(revokes), "a grant was never revoked at the target"
        finally:
            self.service.store.close()
            self.target.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- what people do -------------------------------------------------------------

    @rule(user=st.sampled_from(REQUESTERS), minutes=st.integers(1, 240))
    def request(self, user, minutes):
        try:
            outcome = self.service.request(
                person(user), "prod-db", timedelta(minutes=minutes), "INC-1"
            )
        except AccessError:
            return  # a duplicate: refused, nothing made
        self.ids.append(outcome.request.id)

    @precondition(lambda self: self._in(Status.PENDING))
    @rule(data=st.data(), by=st.sampled_from(APPROVERS + APPROVERS + REQUESTERS))
    def approve(self, data, by):
        self._attempt(self.service.approve, by, data, Status.PENDING)

    @precondition(lambda self: self._in(Status.PENDING))
    @rule(data=st.data(), by=st.sampled_from(APPROVERS + REQUESTERS))
    def deny(self, data, by):
        self._attempt(self.service.deny, by, data, Status.PENDING)

    @precondition(lambda self: self._in(Status.PENDING))
    @rule(data=st.data(), by=st.sampled_from(REQUESTERS))
    def cancel(self, data, by):
        self._attempt(self.service.cancel, by, data, Status.PENDING)

    @precondition(lambda self: self._in(*HOLDS))
    @rule(data=st.data(), by=st.sampled_from(APPROVERS + REQUESTERS))
    def revoke(self, data, by):
        self._attempt(self.service.revoke, by, data, *HOLDS)

    @precondition(lambda self: self._in(Status.ACTIVE))
    @rule(data=st.data(), by=st.sampled_from(REQUESTERS), minutes=st.integers(1, 120))
    def extend(self, data, by, minutes):
        rid = data.draw(st.sampled_from(self._in(Status.ACTIVE)))
        try:
            outcome = self.service.extend(person(by), rid, timedelta(minutes=minutes), "more")
        except AccessError:
            return
        self.ids.append(outcome.request.id)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), by=st.sampled_from(APPROVERS + REQUESTERS))
    def anything_on_any_request(self, data, by):
        """Decided, finished or foreign requests: refused, and nothing changes."""
        action = data.draw(
            st.sampled_from(
                [self.service.approve, self.service.deny, self.service.cancel, self.service.revoke]
            )
        )
        self._attempt(action, by, data)

    def _in(self, *statuses: Status) -> list[str]:
        return [r for r in self.ids if self.service.store.get(r).status in statuses]

    def _attempt(self, action, by, data, *statuses):
        rid = data.draw(st.sampled_from(self._in(*statuses) if statuses else self.ids))
        try:
            action(person(by), rid)
        except AccessError:
            pass  # refused with words a person can act on; nothing changed

    # -- what the world does ----------------------------------------------------------

    @rule(minutes=st.one_of(st.integers(0, 45), st.integers(0, 300)))
    def time_passes(self, minutes):
        self.clock.advance(minutes=minutes)
        self.service.tick()

    @rule(ok=st.sampled_from([True, True, False]))
    def target_health(self, ok):
        self.target.set_status(200 if ok else 503)
        self.target_ok = ok

    @rule()
    def restart(self):
        # What a bot started again finds: what was saved (the store), the audit file.
        store = self.service.store.reopen()
        self.service = build_service(self.dir, self.clock, self.target.url, store=store)
        self.service.tick()  # what the plugin does first at start

    # -- what must always hold ----------------------------------------------------------

    @invariant()
    def nothing_is_granted_without_its_approvals(self):
        for rid in self.ids:
            request = self.service.store.get(rid)
            if request.granted_at is not None and not request.extends:
                assert len({a.by_id or a.by for a in request.approvals}) >= (
                    request.approvals_required
                ), f"{rid} granted with {request.approvals}"
                assert all(not request.is_requester(a.by_id, a.by) for a in request.approvals)
                assert all(a.by_id in request.approver_ids for a in request.approvals)

    @invariant()
    def no_grant_outlives_its_end_once_the_target_answers(self):
        if not self.target_ok:
            return
        now = self.clock()
        for rid in self.ids:
            request = self.service.store.get(rid)
            if request.status is Status.ACTIVE and request.expires_at is not None:
                # Due ones are revoked at the next tick; allow the one in between.
                if request.expires_at + timedelta(minutes=300) < now:
                    self.service.tick()
                    request = self.service.store.get(rid)
                assert request.status is not Status.ACTIVE or request.expires_at > now - (
                    timedelta(minutes=300)
                )
            if request.status is Status.REVOKE_FAILED:
                assert request.next_retry_at <= now + RETRY_CAP

    @invariant()
    def the_audit_chain_verifies(self):
        log = self.dir / "data" / "audit.jsonl"
        assert not log.exists() or verify_chain([log]).ok


AccessModel.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestServiceModel = AccessModel.TestCase
