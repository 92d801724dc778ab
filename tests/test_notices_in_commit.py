"""Issue 17, item 1: every notice is written to the outbox in the same commit as the change
it reports. On PostgreSQL the change and its notices are one transaction (both or
neither); on TinyDB the notices are written under the same decision lock right after the
store's write. Either way a bot that dies right after a command or a tick leaves its
notices pending in the outbox, and the next start sends them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accessbot.audit import AuditLog
from accessbot.delivery_workers import DeliveryWorkers
from accessbot.domain import Status
from accessbot.outbox import FileOutbox, MemoryOutbox, outbox_path
from accessbot.service import Notice
from accessbot.store import TinyDBStore
from tests.builders import ADMIN, person, two_resource_policy, wired
from tests.helpers import policy_file
from tests.test_domain import make_request
from tests.test_outbox import Chat


class Bot:
    """A service wired as the plugin wires it (its notices written through the delivery
    workers' `put`), on TinyDB or PostgreSQL; the workers are not started, so nothing is
    sent and the outbox shows what was written."""

    def __init__(self, kind: str, tmp_path, clock, url: str, pg_url: str | None):
        policy_file(tmp_path / "policies", "prod.py", two_resource_policy(url))
        self.kind, self.tmp_path, self.pg_url, self.db = kind, tmp_path, pg_url, None
        if kind == "postgres":
            from accessbot.postgres import Database, PostgresAuditLog, PostgresStore

            self.db = Database(pg_url, heartbeat=False)
            store, audit = PostgresStore(self.db), PostgresAuditLog(self.db, clock)
        else:
            data = tmp_path / "data"
            store = TinyDBStore(data / "access.json")
            audit = AuditLog(data / "audit.jsonl", clock)
        self.box = self.open_outbox()
        self.workers = DeliveryWorkers(self.box, Chat().send, clock)
        self.service = wired(store, audit, tmp_path / "policies", clock, outbox=self.workers)

    def open_outbox(self):
        """The outbox as a fresh start would open it (a new file reader, a new connection)."""
        if self.kind == "postgres":
            from accessbot.postgres import Database
            from accessbot.postgres.outbox import PostgresOutbox

            return PostgresOutbox(self.db if self.db else Database(self.pg_url, heartbeat=False))
        return FileOutbox(outbox_path(self.tmp_path / "data" / "access.json"))

    def pending(self, request_id: str) -> list[str]:
        """The texts waiting in the outbox about one request, read afresh."""
        if self.kind == "postgres":
            from accessbot.postgres import Database
            from accessbot.postgres.outbox import PostgresOutbox

            db = Database(self.pg_url, heartbeat=False)
            try:
                return _texts(PostgresOutbox(db), request_id)
            finally:
                db.close()
        return _texts(self.open_outbox(), request_id)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        else:
            self.service.store.close()


def _texts(box, request_id: str) -> list[str]:
    return [e.text for e in box.pending() if e.request_id == request_id]


@pytest.fixture(params=["tinydb", "postgres"])
def bot(request, tmp_path, clock, webhook):
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    made = Bot(request.param, tmp_path, clock, webhook.url, pg_url)
    yield made
    made.close()


def written(outcome) -> list[str]:
    assert outcome.notices, "the command owes people notices"
    assert all(n.stored for n in outcome.notices), "every notice came back stored"
    return [n.text for n in outcome.notices]


def test_every_commands_notices_are_in_the_outbox_when_it_returns(bot, clock):
    asked = bot.service.request(person("carol"), "prod-db", timedelta(hours=1), "INC-7")
    rid = asked.request.id
    assert bot.pending(rid) == written(asked)  # the approval card

    approved = bot.service.approve(person("alice"), rid)
    assert approved.request.status is Status.ACTIVE
    assert bot.pending(rid)[1:] == written(approved)  # after the card: the grant's notices

    denied_id = bot.service.request(person("dave"), "prod-db", None, "INC-8").request.id
    denied = bot.service.deny(person("bob"), denied_id, "use the replica")
    assert bot.pending(denied_id)[1:] == written(denied)

    revoked = bot.service.revoke(ADMIN, rid)
    assert bot.pending(rid)[-len(revoked.notices) :] == written(revoked)


def test_a_ticks_notices_are_in_the_outbox_with_what_it_recorded(bot, clock):
    rid = bot.service.request(person("carol"), "prod-db", timedelta(hours=1), "INC-9").request.id
    bot.service.approve(person("alice"), rid)
    before = len(bot.pending(rid))
    clock.advance(hours=1, seconds=1)

    told = bot.service.tick()  # the revoke, recorded with its notices

    assert bot.service.store.get(rid).status is Status.EXPIRED
    ended = [n.text for n in told if n.request is not None and n.request.id == rid]
    assert ended and all(n.stored for n in told)
    assert bot.pending(rid)[before:] == ended


def test_on_postgresql_a_decision_that_rolls_back_takes_its_notices_with_it(
    tmp_path, clock, webhook, pg_url
):
    bot = Bot("postgres", tmp_path, clock, webhook.url, pg_url)
    try:
        service = bot.service
        rid = service.request(person("carol"), "prod-db", None, "INC-10").request.id
        card_only = bot.pending(rid)

        with pytest.raises(RuntimeError), service.uow.lock:
            request = service.store.get(rid)
            request.deny("bob", "no", clock())
            service.uow.commit(request, "denied", "bob", outcome="denied")
            service.uow.announce([Notice("user", "@carol", "denied", request)])
            assert bot.pending(rid) == card_only  # nobody sees either before the commit
            raise RuntimeError("the bot fails before the decision commits")

        assert service.store.get(rid).status is Status.PENDING
        assert bot.pending(rid) == card_only  # no notice of a change that never happened

        with service.uow.lock:  # the same decision, committed: both are there
            request = service.store.get(rid)
            request.deny("bob", "no", clock())
            service.uow.commit(request, "denied", "bob", outcome="denied")
            service.uow.announce([Notice("user", "@carol", "denied", request)])
        assert service.store.get(rid).status is Status.DENIED
        assert bot.pending(rid) == [*card_only, "denied"]
    finally:
        bot.close()


def test_a_commands_notices_wait_for_its_reply_and_nobody_elses_do(clock):
    chat, box = Chat(), MemoryOutbox()
    pool = DeliveryWorkers(box, chat.send, clock)
    pool.start()
    try:
        held: set[int] = set()
        with pool.holding_puts(held):  # the command's thread, in its service call
            pool.put([Notice("channel", "#ops", "card", make_request(id="c1"))], clock())
        pool.put([Notice("channel", "#ops", "expired", make_request(id="c2"))], clock())
        pool.committed()
        assert pool.wait_idle() and chat.texts() == ["expired"]  # the reply is not sent yet

        pool.release(held)  # the reply was sent
        assert pool.wait_idle() and chat.texts() == ["expired", "card"]
    finally:
        pool.stop(drain=0)


def test_a_bot_killed_at_any_moment_never_leaves_a_change_without_its_notices(
    tmp_path, webhook, pg_url
):
    """SIGKILL a bot on PostgreSQL mid-stream, again and again: every request it recorded
    has exactly the notices of its state in the outbox (a pending one its card; a denied
    one its card, the requester's DM and the channel's line), none more, none fewer."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from accessbot.postgres import Database
    from tests.conftest import PLUGINS, ROOT

    policy_file(tmp_path / "policies", "prod.py", two_resource_policy(webhook.url))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    child_script = str(ROOT / "tests" / "commit_child.py")
    rounds = 8
    for round_ in range(rounds):
        child = subprocess.Popen(
            [sys.executable, child_script, pg_url, str(tmp_path / "policies"), str(round_ * 1000)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            started = None
            for seen in range(4):
                assert child.stdout.readline().startswith("denied ")
                if seen == 0:
                    started = time.monotonic()
            cycle = (time.monotonic() - started) / 3  # one request and its denial
            # each round kills at another point of the cycle
            time.sleep(cycle * round_ / rounds)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    db = Database(pg_url, heartbeat=False)
    try:
        with db.connection() as conn:
            states = dict(conn.execute("SELECT id, status FROM requests").fetchall())
            told = dict(
                conn.execute(
                    "SELECT request_id, count(*) FROM outbox GROUP BY request_id"
                ).fetchall()
            )
    finally:
        db.close()
    assert sum(1 for s in states.values() if s == "denied") >= 4 * rounds
    owed = {"pending": 1, "denied": 3}
    assert {rid: told.get(rid, 0) for rid in states} == {
        rid: owed[status] for rid, status in states.items()
    }
    assert set(told) <= set(states)  # no notice of a change that was not made


def test_what_is_put_together_is_prepared_first_so_a_batch_of_ends_is_one_line(clock):
    """The bot's workers merge the notices of a batch of revokes recorded together (one
    `put`) into one channel line before they are written: the line goes out at once,
    ahead of the cards' updates, instead of after a channel's worth of them."""
    from accessbot.digest import merge
    from tests.test_digest import ended

    box = MemoryOutbox()
    pool = DeliveryWorkers(
        box, Chat().send, clock, prepare=lambda ns: [part.notice for part in merge(ns)]
    )
    users = ["dave", "erin", "frank", "gina"]
    pool.put([ended(f"r{n}", user, card=True) for n, user in enumerate(users)], clock())

    written = box.pending()
    assert written[0].text.startswith("4 grants to prod-db expired and were revoked: @dave")
    assert [e.kind for e in written[1:]] == ["card"] * 4  # each card still updated
