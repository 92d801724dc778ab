"""Two bot processes on one PostgreSQL database (tests/ha_child.py: the service and its
scheduler, as the plugin runs them, without chat).

- Failover: grants expire while the bot running the scheduler is killed with SIGKILL;
  the standby takes over and every grant is revoked exactly once, within
  2 x tick + lease (plus the target's own latency).
- Races: both bots approve and revoke the same requests at once, on 8 threads each;
  every request is decided once, granted once and revoked once, and the one audit
  chain verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from accessbot.domain import Status
from accessbot.postgres import LeaderLease
from tests.builders import build_service, person
from tests.ha_bots import spawn
from tests.helpers import eventually

TICK = 0.2
LEASE = 2.0
# The target answers at once, but two bots, PostgreSQL and the tests share two cores.
SLACK = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Bot:
    """A bot process; `lines()` gives what it printed, in order."""

    def __init__(self, db_url: str, root, tick: float = TICK, lease: float = LEASE):
        self.process, self.bot_id = spawn(db_url, root, tick, lease)

    def send(self, lines: list[str]) -> None:
        self.process.stdin.write("".join(f"{line}\n" for line in lines))
        self.process.stdin.flush()

    def read(self, count: int) -> list[str]:
        return [self.process.stdout.readline().strip() for _ in range(count)]

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.stdout.close()


@pytest.fixture
def bots(pg_url, tmp_path):
    started: list[Bot] = []

    def start() -> Bot:
        bot = Bot(pg_url, tmp_path)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if bot.process.poll() is None:
            bot.stop()


@pytest.mark.slow
def test_the_standby_revokes_every_grant_once_within_the_bound_after_the_leader_is_killed(
    pg_url, tmp_path, webhook, monkeypatch, bots
):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    revoked_at: dict[str, list[datetime]] = {}
    webhook.on_call = lambda body: (
        revoked_at.setdefault(body["request_id"], []).append(utcnow())
        if body["action"] == "revoke"
        else None
    )
    # People, no scheduler; grants of a few seconds, below the bot's 30s floor.
    desk = build_service(tmp_path, utcnow, webhook.url, db_url=pg_url, min_duration=timedelta(0))
    try:
        first, second = bots(), bots()
        lease = LeaderLease(desk.store.db)
        eventually(lambda: lease.holder() in (first.bot_id, second.bot_id), "an election", 10)
        leader, standby = (first, second) if lease.holder() == first.bot_id else (second, first)

        # Two grants end before the kill, six in the gap before the standby takes over and
        # just after it.
        offsets = [1.5, 2.0, 3.2, 3.5, 3.8, 4.2, 5.0, 6.0]
        start = utcnow()
        grants = []
        for number, offset in enumerate(offsets):
            me = person(f"user{number}")
            ends = start + timedelta(seconds=offset)
            rid = desk.request(me, "prod-db", ends - utcnow(), "failover").request.id
            desk.approve(person("alice"), rid)
            grants.append(rid)
        before, after = grants[:2], grants[2:]

        eventually(
            lambda: all(desk.store.get(r).status is Status.EXPIRED for r in before),
            "the leader's revokes before the kill",
            10,
        )
        with desk.store.db.connection() as conn:  # no revoke under way: kill between two
            assert conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
        leader.kill()  # mid-way: the next grant ends within about a second
        killed_at = utcnow()
        assert all(desk.store.get(r).status is Status.ACTIVE for r in after), "killed too late"

        eventually(
            lambda: all(desk.store.get(r).status is Status.EXPIRED for r in grants),
            "the standby's revokes",
            30,
        )
        assert lease.holder() == standby.bot_id
    finally:
        desk.store.close()

    bound = timedelta(seconds=2 * TICK + LEASE + SLACK)
    lateness = {}
    for rid in grants:
        assert webhook.count("grant", rid) == 1
        assert webhook.count("revoke", rid) == 1, f"{rid} revoked {webhook.count('revoke', rid)}x"
        lateness[rid] = revoked_at[rid][0] - (start + timedelta(seconds=offsets[grants.index(rid)]))
    worst = max(lateness.values())
    print(
        f"\nkilled the leader {(killed_at - start).total_seconds():.2f}s in; revocation "
        "lateness (s): "
        + ", ".join(f"{lateness[r].total_seconds():.2f}" for r in grants)
        + f"; worst {worst.total_seconds():.2f}s, bound 2 x {TICK}s + {LEASE}s lease"
    )
    assert worst <= bound, f"a grant was revoked {worst} late; the bound is {bound}"


@pytest.mark.slow
def test_two_bots_approving_and_revoking_the_same_requests_at_once_decide_each_once(
    pg_url, tmp_path, webhook, monkeypatch, bots
):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    desk = build_service(tmp_path, utcnow, webhook.url, db_url=pg_url)
    count = 40
    try:
        ids = [
            desk.request(person(f"user{n}"), "prod-db", timedelta(hours=1), "race").request.id
            for n in range(count)
        ]
        one, two = bots(), bots()
        one.send([f"approve alice {rid}" for rid in ids])
        two.send([f"approve bob {rid}" for rid in reversed(ids)])
        approvals = one.read(count) + two.read(count)
        one.send([f"revoke alice {rid}" for rid in ids])
        two.send([f"revoke user{n} {rid}" for n, rid in enumerate(ids)])
        revokes = one.read(count) + two.read(count)

        won = Counter(line.split()[2] for line in approvals if line.startswith("ok approve"))
        refused = [line for line in approvals if line.startswith("refused")]
        assert sorted(won) == sorted(ids) and set(won.values()) == {1}, approvals
        assert all("already approved" in line or "being revoked" in line for line in refused)
        done = Counter(line.split()[2] for line in revokes if line.startswith("ok revoke"))
        assert sorted(done) == sorted(ids) and set(done.values()) == {1}, revokes

        events = list(desk.audit.events())
        for rid in ids:
            request = desk.store.get(rid)
            assert request.status is Status.REVOKED
            assert webhook.count("grant", rid) == 1 and webhook.count("revoke", rid) == 1
            mine = Counter(e["event"] for e in events if e.get("request_id") == rid)
            assert mine["approved"] == 1 and mine["granted"] == 1 and mine["revoked"] == 1
        result = desk.audit.verify()
        assert result.ok, str(result)
        print(
            f"\n{count} requests, each approved by both bots at once and revoked by both: "
            f"{len(refused)} approvals and "
            f"{sum(1 for line in revokes if line.startswith('refused'))} revokes refused "
            f"politely; {result}"
        )
    finally:
        desk.store.close()
