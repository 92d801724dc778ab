"""Rebuilding grants from audit events, without a bot: which settings a revoke uses, and
what cannot be rebuilt."""

from __future__ import annotations

from accessbot.domain import Status
from accessbot.rebuild import MemoryStore, rebuild

POLICY = {"type": "webhook", "url": "https://user:pw@hooks.example/access", "secret_env": "S"}


def events(strategy: dict, redacted: bool, *more: dict) -> list[dict]:
    common = {"request_id": "abc234", "user": "carol", "resource": "prod-db"}
    return [
        {
            **common,
            "event": "requested",
            "ts": "2026-11-24T09:00:00Z",
            "duration": "30m",
            "reason": "INC-42",
            "approvers": "alice, bob",
        },
        {**common, "event": "approved", "ts": "2026-11-24T09:01:00Z", "actor": "bob"},
        {
            **common,
            "event": "granted",
            "ts": "2026-11-24T09:01:00Z",
            "grant_id": "g-abc234",
            "account": "u-17",
            "granted_at": "2026-11-24T09:01:00Z",
            "expires_at": "2026-11-24T09:31:00Z",
            "strategy": strategy,
            "strategy_redacted": redacted or None,
            "channel": "#access-approvals",
        },
        *({**common, **e} for e in more),
    ]


def test_redacted_recorded_settings_give_way_to_the_current_policy():
    recorded = {"type": "webhook", "url": "https://hooks.example/access", "secret_env": "S"}
    rebuilt = rebuild(events(recorded, True), lambda resource: POLICY)
    (grant,) = rebuilt.holding
    assert grant.strategy == POLICY
    assert (grant.account, grant.grant_id, grant.status) == ("u-17", "g-abc234", Status.ACTIVE)
    assert grant.expires_at.isoformat() == "2026-11-24T09:31:00+00:00"


def test_unredacted_recorded_settings_are_what_the_grant_was_made_with():
    recorded = {"type": "webhook", "url": "https://old.example/access", "secret_env": "S"}
    (grant,) = rebuild(events(recorded, False), lambda resource: POLICY).holding
    assert grant.strategy == recorded


def test_a_grant_no_policy_and_no_record_can_revoke_is_named_for_an_admin():
    rebuilt = rebuild(events({}, False), lambda resource: None)
    assert rebuilt.holding == []
    assert "revoke it by hand" in rebuilt.problems[0]


def test_an_extension_moves_the_end_and_an_expiry_ends_the_grant():
    more = {"event": "extended", "ts": "2026-11-24T09:20:00Z", "expires_at": "2026-11-24T10:01:00Z"}
    (grant,) = rebuild(events(POLICY, False, more)).holding
    assert grant.expires_at.isoformat() == "2026-11-24T10:01:00+00:00"
    ended = {"event": "expired", "ts": "2026-11-24T10:01:02Z"}
    rebuilt = rebuild(events(POLICY, False, more, ended))
    assert rebuilt.holding == [] and rebuilt.finished[0].status is Status.EXPIRED


def test_a_memory_store_gives_due_grants_to_the_scheduler():
    from datetime import datetime

    (grant,) = rebuild(events(POLICY, False)).holding
    store = MemoryStore([grant])
    assert store.due_for_revocation(datetime.fromisoformat("2026-11-24T09:30:00Z")) == []
    due = store.due_for_revocation(datetime.fromisoformat("2026-11-24T09:31:00Z"))
    assert [r.id for r in due] == ["abc234"]
    assert store.next_revocation_at() == grant.expires_at


def test_a_salvaged_line_fills_what_the_audit_lacks_and_the_audit_wins_the_rest(tmp_path):
    import json
    from datetime import datetime, timedelta

    from accessbot.domain import Request
    from accessbot.rebuild import salvage
    from accessbot.store import StoreFiles

    files = StoreFiles.of(tmp_path / "access.json")
    saved = Request(
        id="abc234",
        requester="carol",
        resource="prod-db",
        duration=timedelta(minutes=30),
        reason="INC-42",
        created_at=datetime.fromisoformat("2026-11-24T09:00:00Z"),
        channel="#access-approvals",
        approvers=["alice", "bob"],
        approver_ids=["UALICE", "UBOB"],
        card_ref={"channel": "C1", "ts": "1.2"},
        status=Status.ACTIVE,
        expires_at=datetime.fromisoformat("2026-11-24T09:31:00Z"),  # before the extension
        version=3,
    )
    line = json.dumps(saved.to_dict()).encode()
    files.journal.write_bytes(line + b"\n" + line[:40] + b"\x00garbage\n")
    more = {"event": "extended", "ts": "2026-11-24T09:20:00Z", "expires_at": "2026-11-24T10:01:00Z"}

    (grant,) = rebuild(events(POLICY, False, more), salvaged=salvage(files)).holding

    assert grant.approver_ids == ["UALICE", "UBOB"] and grant.card_ref == {
        "channel": "C1",
        "ts": "1.2",
    }
    assert grant.expires_at.isoformat() == "2026-11-24T10:01:00+00:00"
    assert grant.version == 0  # a new record in whichever store it goes to


def test_a_request_waiting_for_approval_is_named_not_guessed_when_only_the_audit_has_it():
    (requested,) = events(POLICY, False)[:1]
    rebuilt = rebuild([requested], lambda resource: POLICY)
    assert rebuilt.live == [] and rebuilt.finished == []
    assert "abc234 (prod-db for carol) was waiting for approval" in rebuilt.problems[0]
    assert "the requester asks again" in rebuilt.problems[0]


def public_names(cls) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_public_method_of_the_service_is_allowed_or_refused_on_purpose_when_degraded():
    from accessbot.rebuild import DegradedService
    from accessbot.service import AccessService

    decided = DegradedService.ALLOWED | DegradedService.REFUSED
    assert not DegradedService.ALLOWED & DegradedService.REFUSED
    undecided = public_names(AccessService) - decided
    assert not undecided, f"add each to DegradedService.ALLOWED or REFUSED: {sorted(undecided)}"
    stale = decided - public_names(AccessService) - DegradedService.WIRING
    assert not stale, f"no such method on AccessService any more: {sorted(stale)}"


def test_a_degraded_service_forwards_the_allowed_and_refuses_the_rest_by_default():
    import pytest

    from accessbot.domain import AccessError
    from accessbot.rebuild import DegradedService

    class Service:  # what a service might grow: a state-changing method nobody listed
        def show(self, actor, request_id):
            return f"shown {request_id}"

        def revoke(self, actor, request_id):
            return f"revoked {request_id}"

        def approve(self, actor, request_id):
            raise AssertionError("reached the service")

        def grant_everyone(self):
            raise AssertionError("reached the service")

    degraded = DegradedService(Service(), "the store cannot be read (damaged)")

    assert degraded.show(None, "abc234") == "shown abc234"
    assert degraded.revoke(None, "abc234") == "revoked abc234"
    for refused in (degraded.approve, degraded.grant_everyone):
        with pytest.raises(AccessError, match=r"^Nothing was done: the store cannot be read"):
            refused(None, "abc234")


def test_events_after_a_broken_chain_may_not_end_a_grant_or_make_it_longer():
    longer = {
        "event": "extended",
        "ts": "2026-11-24T09:20:00Z",
        "expires_at": "2026-11-25T09:31:00Z",
    }
    ended = {"event": "expired", "ts": "2026-11-24T09:21:00Z"}
    told = events(POLICY, False, longer, ended)

    trusting = rebuild(told)
    assert trusting.holding == [] and trusting.untrusted == []

    rebuilt = rebuild(told, trusted=3)  # the chain broke at the fourth event
    (grant,) = rebuilt.holding
    assert grant.expires_at.isoformat() == "2026-11-24T09:31:00+00:00"  # not a day longer
    assert grant.ending == "revoked" and grant.revoke_due_at < grant.expires_at  # due now
    assert rebuilt.untrusted == [
        "event 4: extended of abc234 (not believed: the grant is revoked again at its target)",
        "event 5: expired of abc234 (not believed: the grant is revoked again at its target)",
    ]


def test_a_grant_the_log_ended_but_the_store_still_held_is_revoked_again():
    from datetime import datetime, timedelta

    from accessbot.domain import Request

    held = Request(
        id="abc234",
        requester="carol",
        resource="prod-db",
        duration=timedelta(minutes=30),
        reason="INC-42",
        created_at=datetime.fromisoformat("2026-11-24T09:00:00Z"),
        channel="#access-approvals",
        approvers=["alice", "bob"],
        status=Status.ACTIVE,
        expires_at=datetime.fromisoformat("2026-11-24T09:31:00Z"),
    )
    ended = {"event": "expired", "ts": "2026-11-24T09:05:00Z"}

    rebuilt = rebuild(events(POLICY, False, ended), salvaged={"abc234": held})

    (grant,) = rebuilt.holding
    assert grant.status is Status.ACTIVE and grant.ending == "revoked"
    assert "the audit log says expired, the store that it still held access" in rebuilt.untrusted[0]


def test_every_name_the_plugin_asks_the_service_for_is_allowed_or_refused_on_purpose():
    import re
    from pathlib import Path

    from accessbot.rebuild import DegradedService

    plugin = Path(__file__).resolve().parent.parent / "plugins" / "access"
    asked = set()
    for source in plugin.glob("*.py"):
        asked |= set(re.findall(r"\bservice\.([a-z][a-z_]*)", source.read_text()))
    assert asked, "the plugin calls its service"
    undecided = asked - DegradedService.ALLOWED - DegradedService.REFUSED
    assert not undecided, f"add each to DegradedService.ALLOWED or REFUSED: {sorted(undecided)}"
