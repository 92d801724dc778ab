"""`python -m accessbot standing [--resource R] [--remove]`, run as a real subprocess
against the bot's own files and a webhook target answering `list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from accessbot.audit import AuditLog
from accessbot.standing_sweep import StandingSweep
from accessbot.store import TinyDBStore
from tests.builders import wired
from tests.conftest import FakeClock, accessbot, policy_file, webhook_policy

MALLORY = {"user": "mallory", "user_email": "mallory@acme.com", "account": "db-mallory"}


@pytest.fixture
def deployment(tmp_path, webhook):
    policy_file(tmp_path / "policies", "db.py", webhook_policy(webhook.url))
    return tmp_path


def standing(deployment, *args):
    env = {
        "ACCESS_POLICY_DIR": str(deployment / "policies"),
        "ACCESS_DB_PATH": str(deployment / "data" / "access.json"),
        "ACCESS_AUDIT_PATH": str(deployment / "data" / "audit.jsonl"),
        "TEST_HOOK_SECRET": "s3cret",
    }
    return accessbot("standing", *args, cwd=deployment, env=env)


def audit_events(deployment) -> list[dict]:
    path = deployment / "data" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_finding_exits_1_and_names_it_without_changing_anything(deployment, webhook):
    webhook.members = [MALLORY]

    code, out, err = standing(deployment)

    assert code == 1, err
    assert out.splitlines() == [
        "prod-db: 1 found",
        "  mallory (mallory@acme.com; account db-mallory), found now",
    ]
    assert webhook.calls == [] and audit_events(deployment) == []
    assert not (deployment / "data" / "access.standing.json").exists()


def test_nothing_found_exits_0(deployment, webhook):
    webhook.members = []
    code, out, _ = standing(deployment, "--resource", "prod-db")
    assert (code, out) == (0, "prod-db: nothing found\n")


def test_a_finding_the_bot_recorded_shows_since_when(deployment, webhook):
    webhook.members = [MALLORY]
    found_at = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    clock = FakeClock(found_at)
    store = TinyDBStore(deployment / "data" / "access.json")
    service = wired(
        store, AuditLog(deployment / "data" / "audit.jsonl", clock), deployment / "policies", clock
    )
    StandingSweep(service).sweep()
    store.close()

    code, out, _ = standing(deployment)

    assert code == 1
    assert "  mallory (mallory@acme.com; account db-mallory), since 2026-01-05 08:30 UTC (" in out


def test_remove_revokes_through_the_strategy_and_audits_as_the_cli(deployment, webhook):
    webhook.members = [MALLORY]

    code, out, err = standing(deployment, "--remove")

    assert code == 1, err  # something was found
    assert out.splitlines()[1].endswith("found now: removed")
    assert [(c["action"], c["account"]) for c in webhook.calls] == [("revoke", "db-mallory")]
    events = [(e["event"], e["actor"]) for e in audit_events(deployment)]
    assert events == [("standing_found", "cli"), ("standing_removed", "cli")]


def test_remove_is_refused_while_a_bot_has_the_files_open(deployment, webhook):
    webhook.members = [MALLORY]
    running = TinyDBStore(deployment / "data" / "access.json")  # as a running bot holds it
    try:
        code, _, err = standing(deployment, "--remove")
    finally:
        running.close()
    assert code == 1 and "a bot is running on" in err and "remove_standing: True" in err
    assert webhook.calls == []


def test_a_target_that_cannot_list_is_named_and_is_not_a_failure(deployment, webhook):
    webhook.members = None  # 501
    code, out, _ = standing(deployment)
    assert code == 0
    assert out.startswith("prod-db: cannot be listed: webhook http://127.0.0.1:")


def test_a_target_that_fails_to_list_is_a_failure(deployment, webhook):
    webhook.list_status = 500
    code, out, _ = standing(deployment)
    assert code == 1 and "prod-db: could not be listed: webhook" in out


def test_an_unknown_resource_is_a_usage_error_naming_the_resources(deployment):
    code, _, err = standing(deployment, "--resource", "nope")
    assert code == 2 and "Unknown resource `nope`. Resources: prod-db." in err
