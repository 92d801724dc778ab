"""`python -m accessbot audit verify --against COPY`: every way of tampering that the hash
chain alone cannot see (each reproduced here, `verify` alone saying "intact") is found by
comparing the log with what a sink received; a copy that is only behind is lag."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest

from accessbot.postgres import LeaderLease
from tests.builders import Deployment
from tests.conftest import FakeClock, accessbot
from tests.fake_sinks import FakeSplunkHec, SyslogListener
from tests.helpers import eventually


@pytest.fixture
def shipped(tmp_path):
    """A log of `count` events shipped whole to a file sink (the copy)."""
    made: list[Deployment] = []

    def make(count: int = 20, max_bytes: int | None = None, **kwargs) -> Deployment:
        copy = tmp_path / "copy.jsonl"
        bot = Deployment(
            tmp_path,
            FakeClock(),
            {"type": "file", "path": str(copy)},
            max_bytes=max_bytes,
            **kwargs,
        )
        made.append(bot)
        bot.copy = copy
        bot.events(count)
        assert bot.ship() == count
        return bot

    yield make
    for bot in made:
        bot.close()


def verify(tmp_path, *args) -> tuple[int, str]:
    code, out, err = accessbot("audit", "verify", *args, cwd=tmp_path)
    return code, out + err


def rewrite_chain(path, change) -> None:
    """What someone with write access can do: change lines, then recompute every hash."""
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    change(records)
    prev, out = None, []
    for record in records:
        if prev is not None:
            record["prev"] = prev
        line = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
        prev = hashlib.sha256(line).hexdigest()
        out.append(line + b"\n")
    path.write_bytes(b"".join(out))


def test_a_copy_that_matches_verifies_and_exits_0(shipped, tmp_path):
    bot = shipped()
    code, out = verify(tmp_path, str(bot.path), "--against", str(bot.copy))
    assert code == 0, out
    assert "RESULT: ok: every event of the copy is in the local log, unchanged" in out


def test_the_newest_lines_deleted_are_found(shipped, tmp_path):
    bot = shipped()
    lines = bot.path.read_bytes().splitlines(keepends=True)
    bot.path.write_bytes(b"".join(lines[:-3]))
    assert verify(tmp_path, str(bot.path))[0] == 0  # the chain alone cannot tell
    code, out = verify(tmp_path, str(bot.path), "--against", str(bot.copy))
    assert code == 1
    assert (
        "TAMPERING seq 18-20 (3 events): in the copy, missing from the local log: removed "
        "after it was shipped" in out
    )
    assert "RESULT: the local log is NOT what the sink received" in out


def test_a_middle_line_edited_with_the_chain_recomputed_is_found(shipped, tmp_path):
    bot = shipped()

    def blame_mallory(records):
        records[9]["actor"] = "mallory"

    rewrite_chain(bot.path, blame_mallory)
    assert "intact" in verify(tmp_path, str(bot.path))[1]
    code, out = verify(tmp_path, str(bot.path), "--against", str(bot.copy))
    assert code == 1
    assert "TAMPERING seq 10-20 (11 events): the local event differs from the one shipped" in out


def test_every_file_deleted_and_a_new_chain_started_is_found(shipped, tmp_path):
    bot = shipped(max_bytes=2048)
    for path in bot.path.parent.glob("audit.jsonl*"):
        path.unlink()
    restarted = Deployment(tmp_path, FakeClock())  # the bot starts again: a new seed
    restarted.events(5)
    restarted.close()
    assert verify(tmp_path, str(bot.path))[0] == 0
    code, out = verify(tmp_path, str(bot.path), "--against", str(bot.copy))
    assert code == 1
    assert "TAMPERING seq 1: the local chain was started again with a new seed" in out
    assert "TAMPERING seq 1-5 (5 events): the local event differs" in out
    assert "TAMPERING seq 6-20 (15 events): in the copy, missing from the local log" in out


def test_the_live_file_and_the_newest_rotated_file_deleted_are_found(shipped, tmp_path):
    bot = shipped(count=60, max_bytes=2048)
    rotated = sorted(bot.path.parent.glob("audit.jsonl.*"), key=lambda p: int(p.suffix[1:]))
    assert len(rotated) >= 3
    bot.path.unlink()
    rotated[-1].unlink()
    restarted = Deployment(tmp_path, FakeClock(), max_bytes=2048)
    restarted.events(2)
    restarted.close()
    assert verify(tmp_path, str(bot.path))[0] == 0  # the rest still chains
    code, out = verify(tmp_path, str(bot.path), "--against", str(bot.copy))
    assert code == 1
    assert "the local event differs from the one shipped" in out
    assert "in the copy, missing from the local log" in out


def test_deleting_the_tail_of_the_postgresql_table_then_new_events_is_found(
    pg_url, shipped, tmp_path
):
    bot = shipped(db_url=pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM audit WHERE seq > 12")
    bot.events(8)  # the bots go on writing: seq 13-20 again, chained from 12
    assert verify(tmp_path, pg_url)[0] == 0
    code, out = verify(tmp_path, pg_url, "--against", str(bot.copy))
    assert code == 1
    assert "TAMPERING seq 13-20 (8 events): the local event differs from the one shipped" in out
    assert "the audit table at postgresql://" in out


def test_a_copy_that_is_behind_is_lag_not_tampering(shipped, tmp_path):
    bot = shipped(count=10)
    bot.events(5)  # not shipped yet
    code, out = verify(tmp_path, str(bot.path), "--against", str(bot.copy))
    assert code == 0
    assert "lag seq 11-15 (5 events): in the local log, not in the copy yet" in out


def test_lines_a_sink_got_twice_are_not_a_problem(shipped, tmp_path):
    bot = shipped(count=10)
    bot.copy.write_bytes(bot.copy.read_bytes() * 2)  # at least once: a batch sent again
    assert verify(tmp_path, str(bot.path), "--against", str(bot.copy))[0] == 0


def test_a_splunk_export_is_a_copy_too(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", "hec-token")
    splunk = FakeSplunkHec("hec-token")
    bot = Deployment(
        tmp_path,
        FakeClock(),
        {"type": "splunk_hec", "url": splunk.url, "token_env": "SPLUNK_HEC_TOKEN"},
    )
    try:
        bot.events(6)
        bot.ship()
        export = tmp_path / "splunk-export.json"
        splunk.export(export)
        assert verify(tmp_path, str(bot.path), "--against", str(export))[0] == 0
        bot.path.write_bytes(bot.path.read_bytes().replace(b"r00002", b"r00009"))
        code, out = verify(tmp_path, str(bot.path), "--against", str(export))
        assert code == 1 and "TAMPERING seq 3: the local event differs" in out
    finally:
        bot.close()
        splunk.close()


def test_a_syslog_servers_file_is_a_copy_too(tmp_path):
    listener = SyslogListener("udp")
    bot = Deployment(tmp_path, FakeClock(), {"type": "syslog", "address": listener.address})
    try:
        bot.events(4)
        bot.ship()
        eventually(lambda: len(listener.messages) == 4)
        copy = tmp_path / "messages.log"  # as a syslog server writes them, one a line
        copy.write_bytes(b"".join(m + b"\n" for m in listener.messages))
        assert verify(tmp_path, str(bot.path), "--against", str(copy))[0] == 0
    finally:
        bot.close()
        listener.close()


def test_only_the_bot_holding_the_scheduler_lease_ships(pg_url, tmp_path):
    copy = tmp_path / "copy.jsonl"
    sink = {"type": "file", "path": str(copy)}
    bots = []
    try:
        for _ in range(2):
            bots.append(Deployment(tmp_path, FakeClock(), sink, db_url=pg_url))
            bots[-1].sinks.leadership = LeaderLease(bots[-1].db, seconds=30)
        leader, standby = bots
        assert leader.sinks.leadership.acquire() and not standby.sinks.leadership.acquire()
        leader.events(5)
        standby.events(5)
        assert standby.ship() == 0
        assert leader.ship() == 10
        assert standby.ship() == 0
        assert copy.read_bytes().splitlines() == leader.local_lines()  # each line once
        assert "shipped by the bot holding the scheduler lease (not this one)" in (
            standby.sinks.status_text()
        )
        assert "acknowledged up to event 10 of 10, up to date" in standby.sinks.status_text()
    finally:
        for bot in bots:
            bot.close()
