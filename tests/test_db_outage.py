"""A real PostgreSQL stopped and started around a target call: the grant the target made
while the database was away is recorded once it is back, with its real start and the same
Idempotency-Key, and the bot's own leftover claim never strands the request."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from accessbot.domain import Status
from accessbot.store import StoreError
from tests.builders import build_service, person
from tests.conftest import START
from tests.helpers import eventually
from tests.pgserver import NoServer, PostgresServer, start_server


def answered(service) -> None:
    """Tick as the scheduler does until the database answers again (the connection pool
    reconnects with a backoff of its own)."""

    def ticked() -> bool:
        try:
            service.tick()
        except StoreError:
            return False
        return True

    eventually(ticked, "the database answering again", 20)


@pytest.fixture
def own_server():
    """A cluster of its own: this test stops it, which the shared one must never be."""
    try:
        server = start_server(durable=True)  # a commit must survive the crash
    except NoServer as exc:
        pytest.skip(f"PostgreSQL tests need a server: {exc}")
    if not isinstance(server, PostgresServer):
        pytest.skip("needs a server it may stop (not ACCESS_TEST_DB_URL)")
    yield server
    server.stop()


def test_a_grant_made_during_an_outage_is_recorded_after_it_with_its_real_start(
    own_server, tmp_path, clock, webhook
):
    url = own_server.database()
    service = build_service(tmp_path, clock, webhook.url, db_url=url, connect_timeout=2)
    rid = service.request(person("carol"), "prod-db", timedelta(minutes=30), "INC-7").request.id

    def outage(call):
        if call["action"] == "grant" and len(webhook.calls) == 0:
            own_server.halt()  # the target grants; the database is gone before we record it

    webhook.on_call = outage
    reply = service.approve(person("bob"), rid).reply
    assert reply.startswith(f"Your approval of {rid} is recorded: it is approved.")
    assert "finishes the grant as soon as it answers again" in reply

    own_server.resume()
    clock.advance(minutes=1)
    answered(service)  # the bot's own claim from before the outage does not hold it back

    request = service.store.get(rid)
    assert request.status is Status.ACTIVE
    grants = [c for c in webhook.calls if c["action"] == "grant"]
    assert len(grants) == 2
    assert grants[0]["expires_at"] == grants[1]["expires_at"] == "2026-11-24T09:30:00Z"
    keys = [h["Idempotency-Key"] for h in webhook.headers_seen]
    assert keys == [f"g-{rid}:grant", f"g-{rid}:grant"]
    assert request.granted_at == START and request.expires_at == START + timedelta(minutes=30)

    clock.advance(minutes=30)
    service.tick()
    assert service.store.get(rid).status is Status.EXPIRED
    service.store.close()


def test_the_heartbeat_keeps_the_scheduler_lease_through_a_tick_longer_than_it(pg_url):
    from accessbot.postgres import Database, LeaderLease

    first, second = Database(pg_url, lease_seconds=0.6), Database(pg_url, lease_seconds=0.6)
    try:
        leader, standby = LeaderLease(first), LeaderLease(second)
        assert leader.acquire()
        # The leader's tick runs three lease times without asking again: its heartbeat
        # renews the lease meanwhile, so the standby never takes over mid-tick.
        threading.Event().wait(1.8)
        assert not standby.acquire()
        assert leader.holder() == first.bot_id
    finally:
        first.close()
        second.close()


def test_rows_left_by_bots_long_dead_are_cleared(pg_url):
    from accessbot.postgres import Database

    db = Database(pg_url, lease_seconds=0.5)
    try:
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO leases (name, holder, expires_at, renewed_at, host, pid) "
                "VALUES ('bot:ghost', 'ghost', now() - interval '1 hour', now(), 'h', 1)"
            )
            conn.execute("INSERT INTO claims (request_id, owner) VALUES ('abc234', 'ghost')")
        db.beat()
        with db.connection() as conn:
            leases = conn.execute("SELECT name FROM leases").fetchall()
            claims = conn.execute("SELECT request_id FROM claims").fetchall()
        assert ("bot:ghost",) not in leases and claims == []
    finally:
        db.close()


# -- commands and the admins while the database is away -------------------------------


def test_while_the_database_is_away_commands_say_so_and_decide_nothing(
    own_server, bot_factory, policy_dir, webhook
):
    from tests.conftest import access_plugin, policy_file, request_id, webhook_policy

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_DB_URL=own_server.database(), ACCESS_TICK_SECONDS=0.2)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    db = access_plugin(chat.backend).backend.db
    assert 0 < db.command_wait < 2  # a command waits this long for a connection, then answers

    own_server.halt()
    try:
        for who, command in (
            ("dave", "!access request prod-db 30m fixing INC-43"),
            ("bob", f"!approve {rid}"),
            ("carol", "!access mine"),
        ):
            reply = chat.reply(who, command)
            assert "database is not answering" in reply, reply
            assert "nothing was decided" in reply
    finally:
        own_server.resume()
    assert webhook.actions() == []


def test_the_admins_hear_once_that_the_scheduler_lost_the_database_and_once_it_is_back(
    own_server, bot_factory, policy_dir, webhook
):
    from tests.conftest import access_plugin, policy_file, webhook_policy

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    # A 2 s lease: the scheduler waits at most 1 s for a connection, so it learns soon.
    chat = bot_factory(
        ACCESS_DB_URL=own_server.database(), ACCESS_TICK_SECONDS=0.2, ACCESS_LEASE_SECONDS=2
    )
    scheduler = access_plugin(chat.backend).scheduler
    lost, back = "the scheduler cannot reach its database", "reaches its database again"

    own_server.halt()
    try:
        chat.wait_for("admin", lost, timeout=60)
        beat = scheduler_beats(chat)  # it asks again meanwhile, and is not told again
        wait_until(lambda: scheduler_beats(chat) != beat)
    finally:
        own_server.resume()
    chat.wait_for("admin", back, timeout=60)
    assert scheduler.running
    told = [t for t in chat.to("admin") if lost in t or back in t]
    assert len(told) == 2, told
    assert "nothing was decided" in told[0] and "postgresql://" in told[0]


def scheduler_beats(chat) -> float | None:
    """When the scheduler last asked for its lease (it does even while it cannot reach it)."""
    from tests.conftest import access_plugin

    return access_plugin(chat.backend).health._last_beat


def wait_until(condition, timeout: float = 60) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.1)):
        if condition():
            return
        pause.wait(0.1)
    raise AssertionError("never happened")


def test_the_command_wait_is_its_own_setting_in_seconds():
    from accessbot.settings import Settings, SettingsError

    assert Settings.load(environ={}).db_command_wait == 1.5
    assert Settings.load(environ={"ACCESS_DB_COMMAND_WAIT": "1s"}).db_command_wait == 1.0
    with pytest.raises(SettingsError, match="ACCESS_DB_COMMAND_WAIT must be seconds"):
        Settings.load(environ={"ACCESS_DB_COMMAND_WAIT": "soon"})


def test_a_slack_click_while_the_database_is_away_says_so_and_decides_nothing(
    own_server, start_bot, fake, webhook
):
    from accessbot.integrations import slack
    from tests.slack_fakes import click_payload
    from tests.slack_fixtures import request_card

    bot = start_bot(
        "socket", config={"ACCESS_DB_URL": own_server.database(), "ACCESS_TICK_SECONDS": 0.2}
    )
    rid, card = request_card(bot, fake)

    own_server.halt()
    try:
        bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
        (answer,) = fake.wait(lambda: fake.ephemeral_to("UBOB"), "bob's answer", timeout=30)
    finally:
        own_server.resume()
    assert "database is not answering" in answer and "nothing was decided" in answer
    assert webhook.actions() == []


def test_the_scheduler_waits_for_a_connection_at_most_half_its_lease(pg_url):
    """Each pass of the scheduler's loop runs inside `Backend.for_scheduler()`: with every
    connection taken (as in an outage), a query there gives up after half the lease, not
    the pool's 10 s, so the scheduler learns (and the admins hear) soon."""
    from accessbot.backends import Backend
    from accessbot.postgres import Database, LeaderLease, PostgresAuditLog, PostgresStore

    db = Database(pg_url, lease_seconds=2, max_connections=1, heartbeat=False)
    backend = Backend(
        PostgresStore(db), PostgresAuditLog(db, lambda: START), LeaderLease(db), "", db
    )
    try:
        with (
            db.connection(),  # the pool's one connection, held
            backend.for_scheduler(),
            pytest.raises(StoreError, match=r"after 1\.00 sec"),
        ):
            backend.store.next_revocation_at()
    finally:
        db.close()
