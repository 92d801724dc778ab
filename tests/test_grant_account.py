"""The account a target names is kept on the request: recorded at grant (with the
target's answer), sent back on revoke and extend, and learnt late for grants made
before accounts were recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accessbot.memory_store import MemoryStore
from accessbot.store import TinyDBStore
from tests.builders import build_service, person
from tests.conftest import FakeClock
from tests.fakes import WebhookTarget


@pytest.fixture
def target(monkeypatch):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    fake = WebhookTarget(secret="s3cret")
    yield fake
    fake.close()


def granted(service, user="carol") -> str:
    rid = service.request(person(user), "prod-db", timedelta(minutes=30), "deploy").request.id
    service.approve(person("alice"), rid)
    return rid


def test_the_grant_records_the_account_and_the_answer_and_they_survive_a_restart(tmp_path, target):
    target.answer = {"account": "db-user-4711", "role": "rw"}
    service = build_service(tmp_path, FakeClock(), target.url)
    rid = granted(service)

    stored = TinyDBStore(tmp_path / "data" / "access.json").get(rid)
    assert stored.account == "db-user-4711"
    assert stored.grant_result == {"account": "db-user-4711", "role": "rw"}
    assert stored.copy().grant_result == stored.grant_result
    assert stored.copy().grant_result is not stored.grant_result


def test_a_grant_made_without_an_account_learns_it_from_the_revoke(tmp_path, target):
    clock = FakeClock()
    service = build_service(tmp_path, clock, target.url, store=MemoryStore())
    rid = granted(service)
    assert service.store.get(rid).account is None

    target.answer = {"account": "db-user-4711"}
    service.revoke(person("carol"), rid)

    assert target.calls[-1]["account"] is None
    assert service.store.get(rid).account == "db-user-4711"


def test_revokes_on_the_pool_record_the_accounts_they_learn(tmp_path, target):
    clock = FakeClock()
    service = build_service(tmp_path, clock, target.url, store=MemoryStore())
    service.strategy_workers = 4
    ids = [granted(service, f"user{n}") for n in range(6)]
    target.answer = {"account": "learnt-on-revoke"}
    clock.advance(minutes=31)
    service.tick()
    assert [service.store.get(rid).status.value for rid in ids] == ["expired"] * 6
    assert {service.store.get(rid).account for rid in ids} == {"learnt-on-revoke"}
