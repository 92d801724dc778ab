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
