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
            # no host, port, user or database name for whoever typed it: the log has them
            where = db.url.split("@", 1)[1]
            assert not any(part in reply for part in ["127.0.0.1", "accessbot@", where]), reply
            assert str(own_server.port) not in reply, reply
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
    assert "nothing was decided" in told[0]
    assert "postgresql://" not in told[0] and "127.0.0.1" not in told[0]  # in the log only


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


# -- seeing the database again, a hung one, and who tells the admins ---------------------


def test_a_bot_sees_the_database_within_a_beat_of_its_return_however_long_it_was_away(
    own_server,
):
    """The pool's own reconnect backoff doubled (attempts 1, 3, 7, 15, 31 s into the
    outage), so after an 18 s outage the next came about 12 s after the database was
    back; the attempts now come every half second."""
    import time

    from accessbot.postgres import Database
    from accessbot.postgres.database import DatabaseError

    db = Database(own_server.database(), lease_seconds=2, heartbeat=False, connect_timeout=2)
    try:
        with db.connection() as conn:
            conn.execute("SELECT 1")
        own_server.halt()
        away = time.monotonic()
        while time.monotonic() - away < 18:  # asked as the scheduler asks, in vain
            with pytest.raises(DatabaseError), db.waiting_at_most(0.5), db.connection() as conn:
                conn.execute("SELECT 1")
        own_server.resume()
        back = time.monotonic()
        with db.waiting_at_most(2.0), db.connection() as conn:
            conn.execute("SELECT 1")
        print(f"\nanswered {time.monotonic() - back:.2f}s after the database came back")
    finally:
        db.close()


def test_every_query_has_a_statement_timeout(pg_url):
    from accessbot.postgres import Database

    db = Database(pg_url, lease_seconds=8, heartbeat=False)
    try:
        with db.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "8s"
    finally:
        db.close()


def test_a_database_that_hangs_fails_a_query_like_one_that_is_gone(pg_url):
    """Through a proxy that stops passing anything on (a server stopped, or cut off without
    a word): the query gives up a little after the statement timeout instead of waiting
    for good, so the scheduler notices, as when the database is gone."""
    from accessbot.postgres import Database
    from accessbot.postgres.database import DatabaseError
    from tests.pgproxy import Proxy

    proxy = Proxy(int(pg_url.rsplit(":", 1)[1].split("/")[0]))
    db = Database(proxy.url(pg_url), lease_seconds=2, heartbeat=False)
    outcome: list[object] = []

    def ask() -> None:
        try:
            with db.connection() as conn:
                outcome.append(conn.execute("SELECT 1").fetchone())
        except DatabaseError as exc:
            outcome.append(exc)

    try:
        proxy.hang()
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(60)
        assert not asking.is_alive(), "the query still waits for a database that hangs"
        (error,) = outcome
        assert isinstance(error, DatabaseError), error
        proxy.open()
        ask()  # the broken connection was dropped: the next query gets a fresh one
        assert outcome[-1] == (1,)
    finally:
        proxy.open()
        db.close()
        proxy.close()


@pytest.mark.parametrize("how", ["gone", "hung"])
def test_the_admins_hear_of_an_outage_once_for_all_the_bots(pg_url, how):
    """Two bots' lease checks and watches (as the plugin wires them), each through its own
    proxy: the database goes (or hangs) for both and comes back; the bot that led tells,
    once each way; the standby tells nothing."""
    from accessbot.outage import DatabaseWatch
    from accessbot.postgres import Database, LeaderLease
    from tests.pgproxy import Proxy

    port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
    proxies = [Proxy(port), Proxy(port)]
    dbs = [
        Database(p.url(pg_url), lease_seconds=2, heartbeat=False, connect_timeout=2)
        for p in proxies
    ]
    told: list[tuple[int, str]] = []
    leases = [LeaderLease(db) for db in dbs]
    watches = [DatabaseWatch(lambda text, n=n: told.append((n, text))) for n in range(2)]

    def check_all() -> None:
        for lease, watch in zip(leases, watches, strict=True):
            leads = lease.acquire()
            watch.seen(lease.unreachable, leads)

    try:
        check_all()
        assert [lease.held for lease in leases] == [True, False]
        for proxy in proxies:
            proxy.cut() if how == "gone" else proxy.hang()
        for _ in range(2 if how == "gone" else 1):  # told once, however often it is asked
            check_all()
        for proxy in proxies:
            proxy.open()
        check_all()
        check_all()
    finally:
        for db in dbs:
            db.close()
        for proxy in proxies:
            proxy.close()
    assert [who for who, _ in told] == [0, 0], told
    lost, back = (text for _, text in told)
    assert "cannot reach its database" in lost and "reaches its database again" in back
    assert "127.0.0.1" not in lost and str(port) not in lost and "postgresql" not in lost


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(pg_url, caplog):
    """The heartbeat says when the database goes and when it is back; nothing is logged
    at each failed attempt in between (no line of the pool's per reconnect, no traceback)."""
    import logging

    from accessbot.postgres import Database
    from tests.pgproxy import Proxy

    proxy = Proxy(int(pg_url.rsplit(":", 1)[1].split("/")[0]))
    db = Database(proxy.url(pg_url), lease_seconds=0.6, connect_timeout=1)
    try:
        caplog.set_level(logging.INFO)
        caplog.clear()
        proxy.cut()
        wait_until(lambda: db.away_since is not None)
        threading.Event().wait(4)  # beats and reconnect attempts fail meanwhile
        proxy.open()
        wait_until(lambda: db.away_since is None)
    finally:
        db.close()
        proxy.close()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" (")[0].split(",")[0] for r in loud] == [
        "the database is away",
        f"the database at {db.where} answers again",
    ], [r.getMessage() for r in loud]
    assert not any(r.exc_info for r in loud)


def test_a_decision_on_a_thread_with_no_bound_waits_half_the_lease_not_the_pools_10s(pg_url):
    """A strategy worker records its call in a decision (holding this process's decision
    lock) on a thread no command or scheduler bound: during an outage it waited the pool's
    10 s per record, and every command and worker waited behind it (a batch of three
    in-flight revokes: 30 s). It waits what the scheduler waits, half the lease."""
    from urllib.parse import urlsplit

    from accessbot.postgres import Database
    from accessbot.postgres.database import DatabaseError
    from tests.pgproxy import Proxy

    proxy = Proxy(urlsplit(pg_url).port)
    db = Database(proxy.url(pg_url), lease_seconds=3.0, heartbeat=False)
    try:
        proxy.cut()  # the database goes: connections dropped, new ones refused
        failed: list[str] = []

        def record() -> None:  # a worker thread: no command's or scheduler's bound
            try:
                with db.transaction():
                    pass
            except DatabaseError as exc:
                failed.append(str(exc))

        worker = threading.Thread(target=record)
        worker.start()
        worker.join(30)
        assert len(failed) == 1
        assert "after 1.50 sec" in failed[0], failed[0]  # psycopg_pool names the wait
    finally:
        db.close()
        proxy.close()
