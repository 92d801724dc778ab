"""The standing-access sweep in the running bot: the scheduler runs it as its own job by
the injected clock, `!access standing` shows it, and on PostgreSQL only the bot holding
the scheduler lease sweeps."""

from __future__ import annotations

from datetime import timedelta

from accessbot.audit import AuditLog
from accessbot.scheduler import Scheduler
from accessbot.standing_sweep import StandingJob, StandingSweep
from tests.builders import wired
from tests.conftest import policy_file, webhook_policy
from tests.helpers import eventually

MALLORY = {"user": "mallory", "user_email": "mallory@acme.com", "account": "db-mallory"}


def standing_lines(chat) -> list[str]:
    return [t for t in chat.to("#access-approvals") if t.startswith("STANDING ACCESS")]


def test_the_bot_sweeps_at_start_and_every_interval_announcing_a_finding_once(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    webhook.members = [MALLORY]
    chat = bot_factory(ACCESS_STANDING_SWEEP="1h")

    text = chat.wait_for("#access-approvals", "STANDING ACCESS on prod-db")
    assert "mallory (mallory@acme.com; account db-mallory)" in text

    clock.advance(hours=1)  # the next sweep: the same finding is not news
    eventually(lambda: len(webhook.lists) >= 2, "a second sweep")
    eventually(
        lambda: "listed just now" in chat.reply("admin", "!access standing prod-db"),
        "the second sweep recorded",
    )
    assert len(standing_lines(chat)) == 1

    clock.advance(minutes=5)
    bot_factory.stop_last()
    restarted = bot_factory(ACCESS_STANDING_SWEEP="1h")
    eventually(
        lambda: "listed just now" in restarted.reply("admin", "!access standing"),
        "the sweep at start",
    )
    assert standing_lines(restarted) == []


def test_standing_shows_findings_to_admins_and_approvers_only(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    webhook.members = [MALLORY]
    chat = bot_factory(ACCESS_STANDING_SWEEP="1h")
    chat.wait_for("#access-approvals", "STANDING ACCESS on prod-db")

    said = chat.reply("alice", "!access standing")
    assert "prod-db (listed just now):" in said
    assert "- mallory (mallory@acme.com; account db-mallory) since 2026-11-24 09:00:00 UTC" in said
    assert "for admins and the approvers of prod-db" in chat.reply(
        "carol", "!access standing prod-db"
    )
    assert "Name one resource, or none for all" in chat.reply("admin", "!access standing a b")
    assert "!access standing [resource]" in chat.reply("carol", "!access")


def test_above_the_removal_limit_the_bot_tells_the_admins(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, remove_standing=True))
    webhook.members = [MALLORY, {"user": "eve"}]
    chat = bot_factory(ACCESS_STANDING_SWEEP="1h", ACCESS_STANDING_MAX_REMOVALS=1)

    alert = chat.wait_for("admin", "would be removed")
    assert "2 accounts would be removed (prod-db: 2)" in alert
    assert webhook.count_all("revoke") == 0


def test_with_the_sweep_off_nothing_is_listed(bot_factory, policy_dir, webhook, clock):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    webhook.members = [MALLORY]
    chat = bot_factory(ACCESS_STANDING_SWEEP="0")
    clock.advance(hours=2)
    assert "Not checked yet: prod-db." in chat.reply("admin", "!access standing")
    assert webhook.lists == []


# -- PostgreSQL: only the leader sweeps -------------------------------------------------------


def test_on_postgresql_only_the_bot_holding_the_lease_sweeps_and_a_takeover_repeats_nothing(
    tmp_path, clock, webhook, pg_url
):
    from accessbot.postgres import Database, LeaderLease, PostgresAuditLog, PostgresStore

    policy_file(tmp_path / "policies", "db.py", webhook_policy(webhook.url))
    webhook.members = [MALLORY]
    bots = []
    for name in ("first", "second"):
        db = Database(pg_url, lease_seconds=5)
        service = wired(
            PostgresStore(db), PostgresAuditLog(db, clock), tmp_path / "policies", clock
        )
        said: list = []
        job = StandingJob(StandingSweep(service), timedelta(hours=1), clock, said.extend, print)
        scheduler = Scheduler(service.tick, 3600, LeaderLease(db), clock=clock, jobs=[job])
        bots.append((name, scheduler, said, db, service))
    try:
        for _, scheduler, *_ in bots:
            scheduler.run_once()  # the first takes the lease; the second does not
        for _, scheduler, *_ in bots:
            for thread in scheduler.start_due_jobs():
                thread.join(30)

        (_, first, first_said, _, service), (_, second, second_said, _, _) = bots
        assert len(webhook.lists) == 1
        assert [n.text.split(":")[0] for n in first_said] == ["STANDING ACCESS on prod-db"]
        assert second_said == []

        first.stop()  # hands the lease back: the second takes over and sweeps at once
        assert second.run_once()
        for thread in second.start_due_jobs():
            thread.join(30)
        assert len(webhook.lists) == 2 and second_said == []
        found = [e for e in service.audit.events() if e["event"].startswith("standing_")]
        assert [e["event"] for e in found] == ["standing_found"]
    finally:
        for _, scheduler, _, db, _ in bots:
            scheduler.stop()
            db.close()


def test_postgresql_keeps_one_standing_document_per_resource(pg_url):
    from accessbot.postgres import Database, PostgresStore

    db = Database(pg_url, heartbeat=False)
    try:
        store = PostgresStore(db)
        store.save_standing("prod-db", {"findings": [], "swept_at": None})
        store.save_standing("prod-db", {"findings": [{"id": "abc"}]})
        store.save_standing("gone", {"findings": []})
        store.save_standing("gone", None)
        assert store.standing() == {"prod-db": {"findings": [{"id": "abc"}]}}
    finally:
        db.close()


def test_the_tinydb_store_keeps_standing_documents_across_a_restart(tmp_path):
    from accessbot.store import TinyDBStore

    store = TinyDBStore(tmp_path / "access.json")
    store.save_standing("prod-db", {"findings": [{"id": "abc"}]})
    store.close()
    assert TinyDBStore(tmp_path / "access.json").standing() == {
        "prod-db": {"findings": [{"id": "abc"}]}
    }
    assert (tmp_path / "access.standing.json").exists()


def test_moving_to_postgresql_keeps_the_findings_so_nothing_is_announced_again(
    tmp_path, clock, webhook, pg_url
):
    from accessbot.postgres import Database, PostgresAuditLog, PostgresStore
    from accessbot.postgres.migrate import migrate_tinydb
    from accessbot.store import TinyDBStore

    policy_file(tmp_path / "policies", "db.py", webhook_policy(webhook.url))
    webhook.members = [MALLORY]
    data = tmp_path / "data"
    store = TinyDBStore(data / "access.json")
    service = wired(store, AuditLog(data / "audit.jsonl", clock), tmp_path / "policies", clock)
    StandingSweep(service).sweep()
    store.close()

    migrate_tinydb(data / "access.json", data / "audit.jsonl", pg_url)

    db = Database(pg_url, heartbeat=False)
    try:
        moved = wired(PostgresStore(db), PostgresAuditLog(db, clock), tmp_path / "policies", clock)
        again = StandingSweep(moved).sweep()
        assert again.found == [] and again.notices == []
        assert [f.user for f in again.findings["prod-db"]] == ["mallory"]
    finally:
        db.close()
