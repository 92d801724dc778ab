"""PostgreSQL beyond the store port: migrations, transactions, claims and leases between
bots, the audit table, and the whole bot through errbot with ACCESS_DB_URL set."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import psycopg.types.json
import pytest

from accessbot.domain import Status
from accessbot.postgres import Database, DatabaseError, LeaderLease, PostgresAuditLog, PostgresStore
from accessbot.postgres.database import migrate
from accessbot.postgres.schema import NEWEST
from accessbot.settings import Settings, SettingsError
from tests.conftest import START, FakeClock, policy_file, request_id, webhook_policy
from tests.helpers import eventually
from tests.test_domain import make_request


@pytest.fixture
def open_db(pg_url):
    """Open bots' databases on one test database; all closed at the end."""
    opened: list[Database] = []

    def open_(lease_seconds: float = 5) -> Database:
        db = Database(pg_url, lease_seconds=lease_seconds)
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()


# -- migrations -------------------------------------------------------------------------


def test_a_new_database_gets_every_migration_once(open_db, pg_url):
    open_db()
    open_db()  # a second bot finds nothing left to do
    with psycopg.connect(pg_url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == list(range(1, NEWEST + 1))


def test_an_older_database_is_migrated_forward_at_start(open_db, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn, "the test database", upto=1)  # as the first release left it
    assert open_db().schema_version() == NEWEST


def test_migration_4_fills_the_look_up_columns_of_requests_written_before_it(open_db, pg_url):
    asked = make_request(id="asked2", duration=timedelta(hours=1), extends="base22")
    asked.add_approval("alice", START)
    asked.activate(START)
    asked.ending = "revoked"
    pending = make_request(id="pend22", next_nudge_at=START + timedelta(minutes=5))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn, "the test database", upto=3)  # as the release before it left it
        for request in (asked, pending):
            conn.execute(
                "INSERT INTO requests (id, status, final, requester, resource, created_at, "
                "expires_at, version, saved_seq, data) VALUES (%s, %s, false, %s, %s, %s, %s, "
                "1, nextval('requests_saved_seq'), %s)",
                (
                    request.id,
                    request.status.value,
                    request.requester,
                    request.resource,
                    request.created_at,
                    request.expires_at,
                    psycopg.types.json.Jsonb({**request.to_dict(), "version": 1}),
                ),
            )
    store = PostgresStore(open_db())
    assert [r.id for r in store.due_for_revocation(START)] == ["asked2"]
    assert store.next_revocation_at() < START
    assert [r.id for r in store.extensions_of("base22")] == ["asked2"]
    assert [r.id for r in store.nudges_due(START + timedelta(minutes=5))] == ["pend22"]
    assert [r.id for r in store.expiring_unreminded(START + timedelta(hours=1))] == ["asked2"]


def test_a_database_migrated_by_a_newer_bot_is_refused(open_db, pg_url):
    open_db()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, description) VALUES (99, 'future')")
    with pytest.raises(DatabaseError, match="schema version 99, newer than this bot knows"):
        Database(pg_url)


def test_an_unreachable_database_is_named_without_its_password(pg_server):
    url = "postgresql://accessbot:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseError) as caught:
        Database(url, connect_timeout=2)
    assert "hunter2" not in str(caught.value)
    assert "postgresql://accessbot:***@127.0.0.1:1/nowhere" in str(caught.value)
    assert "Check ACCESS_DB_URL" in str(caught.value)


# -- transactions, claims, leases ---------------------------------------------------------


def test_a_decision_that_fails_leaves_neither_its_audit_event_nor_its_write(open_db):
    db = open_db()
    store, audit = PostgresStore(db), PostgresAuditLog(db, FakeClock())
    audit.append("started", actor="bot")
    with pytest.raises(RuntimeError), store.transaction():
        audit.append("requested", actor="carol", request_id="gone22")
        store.save(make_request(id="gone22"))
        raise RuntimeError("the bot fell over mid-decision")
    assert store.get("gone22") is None
    assert [e["event"] for e in audit.events()] == ["started"]


def test_claims_of_one_bot_are_seen_by_another_until_its_heartbeat_stops(open_db):
    first, second = open_db(lease_seconds=0.5), open_db()
    PostgresStore(first).save(make_request(id="clm222"))
    PostgresStore(first).claims().add("clm222")
    theirs = PostgresStore(second).claims()
    assert "clm222" in theirs
    theirs.discard("clm222")  # only the owner can hand a claim back
    assert "clm222" in theirs
    first._stop.set()  # the first bot hangs: no more heartbeats
    first._heartbeat.join()
    eventually(lambda: "clm222" not in theirs, "a dead bot's claim lapsing", 5)


def test_a_bot_that_closes_hands_back_its_claims(open_db):
    first, second = open_db(), open_db()
    PostgresStore(first).claims().add("clm333")
    first.close()
    assert "clm333" not in PostgresStore(second).claims()


def test_one_bot_at_a_time_leads_and_a_standby_takes_over_a_lapsed_lease(open_db):
    first, second = open_db(), open_db()
    leader, standby = LeaderLease(first, seconds=0.3), LeaderLease(second, seconds=0.3)
    assert leader.acquire() and leader.acquire()  # renewing keeps it
    assert not standby.acquire()
    assert standby.holder() == first.bot_id
    eventually(standby.acquire, "the lease lapsing", 5)  # the leader stops renewing
    assert not leader.acquire()
    standby.release()
    assert leader.acquire()  # handed back: taken at once


# -- the audit table -------------------------------------------------------------------------


def test_two_bots_append_to_one_chain_that_verifies(open_db):
    clock = FakeClock()
    one, two = PostgresAuditLog(open_db(), clock), PostgresAuditLog(open_db(), clock)
    for number in range(5):
        (one if number % 2 else two).append("tick", actor="scheduler", detail=str(number))
    result = one.verify()
    assert result.ok, str(result)
    assert result.lines == 5
    assert [e["seq"] for e in two.events()] == [1, 2, 3, 4, 5]
    assert str(result) == "audit log intact: 5 events, hash chain verified"


def test_a_batch_of_audit_events_and_writes_commits_together_or_not_at_all(open_db):
    db = open_db()
    store, audit = PostgresStore(db), PostgresAuditLog(db, FakeClock())
    audit.append("started", actor="bot")
    one, two = make_request(id="one222"), make_request(id="two222")
    with pytest.raises(RuntimeError), store.transaction():
        audit.append_many([("requested", {"request_id": "one222"}), ("requested", {})])
        store.save_many([one, two])
        raise RuntimeError("the bot fell over mid-batch")
    assert store.get("one222") is None and store.get("two222") is None
    assert [e["event"] for e in audit.events()] == ["started"]
    written = audit.append_many([("expired", {"request_id": f"r{n}"}) for n in range(3)])
    assert [e["seq"] for e in written] == [2, 3, 4]
    assert audit.verify().ok, str(audit.verify())
    assert [e["request_id"] for e in audit.query(limit=2)] == ["r1", "r2"]
    assert [e["seq"] for e in audit.events_newest_first()] == [4, 3, 2, 1]


def test_a_changed_row_in_the_audit_table_is_found(open_db, pg_url):
    audit = PostgresAuditLog(open_db(), FakeClock())
    for actor in ("carol", "alice", "bob"):
        audit.append("approved", actor=actor, request_id="abc234")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE audit SET line = replace(line, 'alice', 'mallory') WHERE seq = 2")
    result = audit.verify()
    assert not result.ok
    assert result.bad_line == 3 and "hash chain broken" in result.reason
    assert "audit table at postgresql://" in str(result)


def test_removed_newest_rows_are_found_by_the_bot_that_wrote_them(open_db, pg_url):
    audit = PostgresAuditLog(open_db(), FakeClock())
    for number in range(3):
        audit.append("tick", actor="bot", detail=str(number))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM audit WHERE seq = 3")
    result = audit.verify()
    assert not result.ok and "were removed" in result.reason


# -- settings -------------------------------------------------------------------------------


def test_access_db_url_must_be_a_postgresql_url():
    with pytest.raises(SettingsError, match="must be a PostgreSQL URL like postgresql://"):
        Settings.load(environ={"ACCESS_DB_URL": "mysql://db/access"})
    assert Settings.load(environ={}).db_url is None
    url = "postgresql://accessbot@db/accessbot"
    assert Settings.load(environ={"ACCESS_DB_URL": url}).db_url == url


def test_the_lease_must_outlast_a_tick():
    with pytest.raises(SettingsError, match="at least ACCESS_TICK_SECONDS"):
        Settings.load(
            environ={
                "ACCESS_DB_URL": "postgresql://db/a",
                "ACCESS_LEASE_SECONDS": "0.5",
                "ACCESS_TICK_SECONDS": "1",
            }
        )


# -- the whole bot ------------------------------------------------------------------------------


# `pg_url` comes first, so its database outlives the bots: fixtures end in reverse order.


@pytest.mark.slow
def test_the_bot_on_postgresql_requests_approves_expires_and_audits(
    pg_url, bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_DB_URL=pg_url)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fix INC-7"))
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
    assert "already approved" in chat.reply("bob", f"!approve {rid}")
    clock.advance(minutes=30)
    chat.wait_for("carol", "expired")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    assert "hash chain verified" in chat.reply("admin", "!access audit verify")
    assert "granted" in chat.reply("admin", f"!access audit id={rid}")

    store = PostgresStore(Database(pg_url))
    try:
        assert store.get(rid).status is Status.EXPIRED
        assert store.live() == []
    finally:
        store.close()


@pytest.mark.slow
def test_a_grant_that_expired_while_the_postgresql_bot_was_down_is_revoked_at_start(
    pg_url, bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_DB_URL=pg_url)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fix"))
    chat.say("alice", f"!approve {rid}")
    bot_factory.stop_last()
    clock.advance(minutes=45)
    chat = bot_factory(ACCESS_DB_URL=pg_url)
    # The start pass hands the revoke out and waits for no call: it is recorded at once.
    eventually(
        lambda: "expired" in chat.reply("carol", f"!access show {rid}"), "the revoke at start"
    )
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]


def test_the_bot_says_plainly_when_postgresql_is_unreachable(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_DB_URL="postgresql://accessbot:pw@127.0.0.1:1/accessbot")
    reply = chat.reply("carol", "!access mine")
    assert reply.startswith("The access bot did not start: cannot use PostgreSQL at")
    assert ":pw@" not in reply


def test_extensions_and_timeouts_work_on_postgresql_too(tmp_path, webhook, pg_url, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    from tests.builders import build_service, person

    clock = FakeClock(START)
    service = build_service(tmp_path, clock, webhook.url, db_url=pg_url)
    try:
        rid = service.request(person("carol"), "prod-db", timedelta(hours=1), "fix").request.id
        service.approve(person("alice"), rid)
        ext = service.extend(person("carol"), rid, timedelta(minutes=30), "more").request.id
        service.approve(person("bob"), ext)
        assert service.store.get(rid).expires_at == START + timedelta(hours=1, minutes=30)
        late = service.request(person("dave"), "prod-db", None, "later").request.id
        clock.advance(hours=2)
        service.tick()
        assert service.store.get(late).status is Status.TIMED_OUT
        assert service.store.get(rid).status is Status.EXPIRED
        assert service.audit.verify().ok
    finally:
        service.store.close()
