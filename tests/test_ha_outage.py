"""Two and three bot processes (tests/ha_child.py) on one PostgreSQL that goes away while
the leader's revoke calls are in flight (a real `pg_ctl stop -m immediate`; each bot
reaches the server through its own proxy, tests/pgproxy.py, so the test decides who sees
it back first).

The invariant: after the outage, every due grant is revoked within about lease + tick +
the target's time of the database coming back, whichever bot leads; no claim outlives
its call. The calls were made (the target revoked) but their record failed, so the bot
that made them still has claim rows in the database while its heartbeat comes back.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from accessbot.domain import Status
from accessbot.postgres import LeaderLease
from tests.builders import build_service, person
from tests.ha_bots import spawn
from tests.helpers import eventually
from tests.pgproxy import Proxy

TICK = 0.5
LEASE = 3.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Bot:
    """A bot process reaching the database at `db_url`; what it logs goes to a file."""

    def __init__(self, db_url: str, root, name: str):
        self.log = root / f"{name}.log"
        self._log = self.log.open("w")
        self.process, self.bot_id = spawn(db_url, root, TICK, LEASE, stderr=self._log)

    def logged(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stdout.close()
        self._log.close()


def unrecorded(log: str) -> int:
    """How many revoke outcomes the bot said it could not record."""
    return sum(int(n) for n in re.findall(r"could not record (\d+) revocation", log))


def take_over(conn, leader: str, claimer: str) -> None:
    """As the database comes back: `leader` wins the race for the scheduler lease, and the
    heartbeat of `claimer` (the bot whose record failed) is back before anyone ticks: its
    lease is fresh for a minute, as its own heartbeat would keep it (which renews it for a
    lease at a time once it reaches the database)."""
    for name, holder, lease in (("scheduler", leader, LEASE), (f"bot:{claimer}", claimer, 60)):
        conn.execute(
            """
            INSERT INTO leases (name, holder, expires_at, renewed_at, host, pid)
            VALUES (%(name)s, %(holder)s, now() + make_interval(secs => %(lease)s), now(),
                    'test', 0)
            ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
                expires_at = EXCLUDED.expires_at, renewed_at = EXCLUDED.renewed_at
            """,
            {"name": name, "holder": holder, "lease": lease},
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("count", "due", "leads_after"),
    [
        (2, 1, "another bot"),
        (2, 3, "the same bot"),
        # Two bots with a batch, another leading, is this one's case with a bystander less
        # (it passed 4 of 4 by hand): left out to keep the suite's time.
        (3, 3, "another bot"),
    ],
)
def test_after_an_outage_every_due_grant_is_revoked_soon_whichever_bot_leads(
    own_server, tmp_path, webhook, monkeypatch, count, due, leads_after
):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    url = own_server.database()
    proxies = [Proxy(own_server.port) for _ in range(count)]
    desk = build_service(tmp_path, utcnow, webhook.url, db_url=url)  # people, no scheduler
    bots: list[Bot] = []
    revoked_at: list[datetime] = []
    webhook.on_call = lambda body: body["action"] == "revoke" and revoked_at.append(utcnow())
    try:
        bots.append(Bot(proxies[0].url(url), tmp_path, "bot0"))  # starts first: it leads
        lease = LeaderLease(desk.store.db)
        eventually(lambda: lease.holder() == bots[0].bot_id, "the first bot leading", 20)
        bots += [Bot(p.url(url), tmp_path, f"bot{n}") for n, p in enumerate(proxies[1:], 1)]
        leader = bots[0]

        webhook.hang("revoke")
        ends = utcnow() + timedelta(seconds=2)
        grants = []
        for number in range(due):
            rid = desk.request(person(f"user{number}"), "prod-db", ends - utcnow(), "outage")
            desk.approve(person("alice"), rid.request.id)
            grants.append(rid.request.id)
        eventually(lambda: len(webhook.held) == due, "the leader's revokes in flight", 30)

        # The database goes while the calls are under way; they come back done, and their
        # record fails (the pool's wait for a connection runs out while it is away).
        for proxy in proxies:
            proxy.cut()
        own_server.halt()
        webhook.release()
        eventually(lambda: unrecorded(leader.logged()) >= due, "the leader's records failing", 90)
        own_server.resume()
        next_leader = leader if leads_after == "the same bot" else bots[-1]
        # The test's own connections, not the desk's pool (which reconnects on its own time).
        with psycopg.connect(url, autocommit=True) as conn:
            take_over(conn, next_leader.bot_id, leader.bot_id)
        for proxy in proxies:
            proxy.open()
        back = utcnow()

        def statuses() -> dict[str, str]:
            with psycopg.connect(url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT id, status FROM requests WHERE id = ANY(%s)", (grants,)
                ).fetchall()
            return dict(rows)

        eventually(
            lambda: set(statuses().values()) == {Status.EXPIRED.value},
            "every due grant revoked after the outage",
            60,
            statuses,
        )
    finally:
        for bot in bots:
            bot.stop()
        desk.store.close()
        for proxy in proxies:
            proxy.close()

    last = max(revoked_at)
    for rid in grants:
        assert webhook.count("revoke", rid) == 2, "once before the outage, once after"
        keys = {
            h["Idempotency-Key"]
            for h, c in zip(webhook.headers_seen, webhook.calls, strict=True)
            if c["request_id"] == rid and c["action"] == "revoke"
        }
        assert len(keys) == 1, keys
    print(
        f"\n{count} bots, {due} revoke(s) in flight, {leads_after} leads after: the last due "
        f"grant revoked {(last - back).total_seconds():.2f}s after the database came back "
        f"(lease {LEASE}s, tick {TICK}s)"
    )


@pytest.mark.slow
def test_a_grant_redone_by_another_bot_tells_the_target_the_same_end_under_the_same_key(
    pg_url, tmp_path, webhook, monkeypatch
):
    """One bot approves (the grant runs on its command's thread) and is killed while the
    target holds the call; the leader redoes the grant once the dead bot's claim lapses.
    The second call carries the body of the first: the start recorded before the first
    call, not the time of the second."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    desk = build_service(tmp_path, utcnow, webhook.url, db_url=pg_url)
    bots: list[Bot] = []
    try:
        bots.append(Bot(pg_url, tmp_path, "leader"))
        lease = LeaderLease(desk.store.db)
        eventually(lambda: lease.holder() == bots[0].bot_id, "the first bot leading", 20)
        bots.append(Bot(pg_url, tmp_path, "approver"))
        rid = desk.request(person("carol"), "prod-db", timedelta(minutes=30), "INC-9")
        rid = rid.request.id

        webhook.hang("grant")
        bots[1].process.stdin.write(f"approve alice {rid}\n")
        bots[1].process.stdin.flush()
        eventually(lambda: webhook.held == [rid], "the approver's grant call under way", 20)
        os.kill(bots[1].process.pid, signal.SIGKILL)  # dies mid-call
        bots[1].process.wait()
        webhook.release()  # the target did grant; nobody recorded it
        eventually(lambda: desk.store.get(rid).status is Status.ACTIVE, "the leader's grant", 30)
    finally:
        for bot in bots:
            bot.stop()
        desk.store.close()
    grants = [
        (call, headers["Idempotency-Key"])
        for call, headers in zip(webhook.calls, webhook.headers_seen, strict=True)
        if call["action"] == "grant"
    ]
    assert len(grants) == 2, grants
    (first, key1), (second, key2) = grants
    assert key1 == key2
    assert second["expires_at"] == first["expires_at"], (first, second)
