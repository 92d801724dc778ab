"""Audit sinks: the log shipped off the host to real receivers on 127.0.0.1, in order, at
least once, byte for byte; retried with backoff; never in the way of a command; checked
against at start; and checkpoints of the chain head."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

import pytest

from accessbot.audit import AuditLog
from accessbot.domain import cut_text
from accessbot.settings import Settings, SettingsError
from accessbot.sinks import Checkpoints
from accessbot.store import SinkCursor, TinyDBStore
from tests.builders import Deployment
from tests.conftest import FakeClock, policy_file, request_id, sent_at_start, webhook_policy
from tests.fake_sinks import AuditReceiver, FakeSplunkHec, HugeAnswer, SyslogListener
from tests.helpers import eventually

SECRET = "sink-secret"


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("AUDIT_SINK_SECRET", SECRET)
    fake = AuditReceiver(SECRET)
    yield fake
    fake.close()


def http_sink(url: str, **extra) -> dict:
    return {"type": "http", "url": url, "secret_env": "AUDIT_SINK_SECRET", **extra}


@pytest.fixture
def deploy(tmp_path):
    made: list[Deployment] = []

    def make(*sinks: dict, clock=None, max_bytes=None) -> Deployment:
        deployment = Deployment(tmp_path, clock or FakeClock(), *sinks, max_bytes=max_bytes)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()


# -- http ------------------------------------------------------------------------------


def test_the_http_sink_posts_the_stored_lines_byte_for_byte_in_seq_order_signed(deploy, receiver):
    bot = deploy(http_sink(receiver.url, batch=100), max_bytes=8192)  # rotates mid-way
    bot.events(250)
    assert list(bot.path.parent.glob("audit.jsonl.*"))  # the log spans several files
    assert bot.ship() == 250
    assert receiver.lines() == bot.local_lines()  # identical bytes, in order, each once
    assert len(receiver.bodies) == 3  # batches of 100
    assert {h["Content-Type"] for h in receiver.headers} == {"application/x-ndjson"}
    assert receiver.headers[0]["X-Access-Audit-Seq"] == "1-100"
    assert receiver.refused == 0  # every batch carried a valid signature
    cursor = bot.store.sink_cursor(bot.sinks.workers[0].name)
    assert cursor.seq == 250
    assert cursor.hash == hashlib.sha256(bot.local_lines()[-1]).hexdigest()


def test_a_batch_signed_with_the_wrong_secret_is_refused_and_shipped_again_once_fixed(
    deploy, receiver, monkeypatch
):
    monkeypatch.setenv("AUDIT_SINK_SECRET", "not-the-receivers")
    bot = deploy(http_sink(receiver.url))
    bot.events(3)
    assert bot.ship() == 0
    assert receiver.refused == 1 and receiver.lines() == []
    monkeypatch.setenv("AUDIT_SINK_SECRET", SECRET)
    bot.clock.advance(seconds=1)
    assert bot.ship() == 5  # and the sink_failing and sink_recovered events
    assert receiver.lines() == bot.local_lines()


def test_a_sink_answering_503_is_retried_with_backoff_and_loses_nothing(deploy, receiver):
    receiver.statuses = [503, 503, 200]
    bot = deploy(http_sink(receiver.url))
    bot.events(5)
    worker = bot.sinks.workers[0]
    assert worker.step() == 0 and receiver.attempts == 1
    assert worker.step() == 0 and receiver.attempts == 1  # waits: first retry after 1s
    bot.clock.advance(seconds=1)
    assert worker.step() == 0 and receiver.attempts == 2
    bot.clock.advance(seconds=1)
    assert worker.step() == 0 and receiver.attempts == 2  # the second waits 2s
    status = bot.sinks.status_text()
    assert "acknowledged up to event 0 of 6, 6 behind" in status  # 5 + sink_failing
    assert "FAILING since" in status and "answered HTTP 503: busy" in status
    assert "attempt 2" in status
    bot.clock.advance(seconds=1)
    assert bot.ship() == 7  # and the sink_recovered event it wrote
    assert receiver.lines() == bot.local_lines()
    events = [json.loads(line)["event"] for line in receiver.lines()]
    assert events.count("sink_failing") == 1 and events[-1] == "sink_recovered"
    status = bot.sinks.status_text()
    assert "up to date" in status and "last error" in status and "FAILING" not in status


def test_a_sink_never_gets_a_line_twice_nor_one_out_of_order_across_a_restart(
    deploy, receiver, tmp_path
):
    first = deploy(http_sink(receiver.url, batch=7))
    first.events(10)
    assert first.ship() == 10
    first.close()
    again = deploy(http_sink(receiver.url, batch=7))  # the same files: a restart
    again.events(5)
    assert again.ship() == 5
    assert receiver.lines() == again.local_lines()


def test_a_sink_with_its_secret_unset_is_told_to_the_admins_at_start(deploy, monkeypatch):
    monkeypatch.delenv("AUDIT_SINK_SECRET", raising=False)
    bot = deploy(http_sink("http://127.0.0.1:9/audit"))
    told = bot.sinks.check_at_start()
    assert told == [
        "Audit sink http http://127.0.0.1:9/audit cannot ship: the environment variable "
        "AUDIT_SINK_SECRET (its signing secret) is not set."
    ]


# -- splunk, file, syslog --------------------------------------------------------------------


def test_splunk_hec_events_carry_each_lines_fields_seq_and_hash_with_the_token(deploy, monkeypatch):
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", "hec-token")
    splunk = FakeSplunkHec("hec-token")
    try:
        bot = deploy({"type": "splunk_hec", "url": splunk.url, "token_env": "SPLUNK_HEC_TOKEN"})
        bot.events(4)
        assert bot.ship() == 4
        lines = bot.local_lines()
        assert [e["event"] for e in splunk.events] == [
            {**json.loads(line), "hash": hashlib.sha256(line).hexdigest()} for line in lines
        ]
        assert [e["event"]["seq"] for e in splunk.events] == [1, 2, 3, 4]
        assert {e["sourcetype"] for e in splunk.events} == {"accessbot:audit"}
        assert splunk.events[0]["time"] == bot.clock().timestamp()
    finally:
        splunk.close()


def test_splunk_refusing_the_token_is_the_sinks_last_error(deploy, monkeypatch):
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", "stale")
    splunk = FakeSplunkHec("hec-token")
    try:
        bot = deploy({"type": "splunk_hec", "url": splunk.url, "token_env": "SPLUNK_HEC_TOKEN"})
        bot.events(1)
        assert bot.ship() == 0 and splunk.events == []
        assert "answered HTTP 403" in bot.sinks.status_text()
        assert "stale" not in bot.sinks.status_text()
    finally:
        splunk.close()


MB = 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True])
def test_a_sinks_200_mb_answer_is_not_read_past_the_cap(deploy, monkeypatch, chunked):
    monkeypatch.setenv("AUDIT_SINK_SECRET", SECRET)
    huge = HugeAnswer(200 * MB, chunked=chunked)
    try:
        bot = deploy(http_sink(huge.url))
        bot.events(3)

        assert bot.ship() == 3  # any 2xx acknowledges: the answer's body is not needed

        assert huge.sent < 50 * MB  # the bot hung up instead of reading 200 MB
    finally:
        huge.close()


@pytest.mark.parametrize(
    ("size", "says"), [(20 * MB, "answered more than the 262144 bytes"), (200_000, "[cut: ")]
)
def test_a_long_splunk_refusal_is_cut_in_the_audit_log_and_says_so(deploy, monkeypatch, size, says):
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", "hec-token")
    refusal = HugeAnswer(size, 200, prefix=b'{"code": 6, "text": "', suffix=b'"}')
    try:
        bot = deploy({"type": "splunk_hec", "url": refusal.url, "token_env": "SPLUNK_HEC_TOKEN"})
        bot.events(1)

        assert bot.ship() == 0

        failing = [r for r in bot.audit.query(limit=50) if r["event"] == "sink_failing"]
        assert failing and all(len(r["detail"]) < 3000 for r in failing)
        assert says in failing[0]["detail"]
        assert bot.path.stat().st_size < 20_000
        assert len(bot.sinks.status_text()) < 3000
    finally:
        refusal.close()


def test_a_long_error_text_is_cut_to_2000_characters_and_says_how_much_was_cut():
    text = "e" * 10_000

    cut = cut_text(text)

    assert cut.startswith("e" * 2000)
    assert cut.endswith("[cut: 8000 more characters]")
    assert cut_text("short") == "short"


def test_the_file_sink_appends_the_lines_byte_for_byte(deploy, tmp_path):
    copy = tmp_path / "worm" / "copy.jsonl"
    copy.parent.mkdir()
    bot = deploy({"type": "file", "path": str(copy)})
    bot.events(3)
    assert bot.ship() == 3
    bot.events(2)
    assert bot.ship() == 2
    assert copy.read_bytes() == bot.path.read_bytes()


def test_a_file_sink_whose_directory_is_gone_fails_and_says_where(deploy, tmp_path):
    bot = deploy({"type": "file", "path": str(tmp_path / "unmounted" / "copy.jsonl")})
    bot.events(1)
    assert bot.ship() == 0
    assert "could not append to" in bot.sinks.status_text()


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_syslog_messages_are_rfc_5424_with_the_stored_line_as_the_message(deploy, protocol):
    listener = SyslogListener(protocol)
    try:
        bot = deploy({"type": "syslog", "address": listener.address, "protocol": protocol})
        bot.events(3)
        bot.audit.append("grant_failed", actor="bot", outcome="grant_failed")
        assert bot.ship() == 4
        eventually(lambda: len(listener.messages) == 4)
        parsed = listener.parsed()
        assert all(parsed)
        assert [m["msg"] for m in parsed] == bot.local_lines()
        assert [m["msgid"] for m in parsed] == [b"requested"] * 3 + [b"grant_failed"]
        # facility 13 (log audit): notice, and warning for a failure
        assert [int(m["pri"]) for m in parsed] == [109, 109, 109, 108]
        assert {m["app"] for m in parsed} == {b"accessbot"}
        assert parsed[0]["ts"] == b"2026-11-24T09:00:00Z"
    finally:
        listener.close()


def test_a_tcp_syslog_server_that_is_down_is_retried(deploy):
    listener = SyslogListener("tcp")
    address = listener.address
    listener.close()  # nobody listens there now
    bot = deploy({"type": "syslog", "address": address, "protocol": "tcp"})
    bot.events(1)
    assert bot.ship() == 0
    assert "FAILING" in bot.sinks.status_text()


# -- the start-up check ------------------------------------------------------------------------


def test_a_log_shorter_than_what_a_sink_acknowledged_is_told_loudly_and_audited(deploy, receiver):
    bot = deploy(http_sink(receiver.url))
    bot.events(10)
    bot.ship()
    lines = bot.path.read_bytes().splitlines(keepends=True)
    bot.path.write_bytes(b"".join(lines[:-3]))  # the newest 3 lines deleted
    restarted = deploy(http_sink(receiver.url))
    told = restarted.sinks.check_at_start()
    assert told == [
        f"POSSIBLE TAMPERING: the audit log ends at event 7, but the sink http {receiver.url} "
        "already acknowledged events up to 10: 3 event(s) it received are gone from this "
        "host's log; compare with the sink's copy: python -m accessbot audit verify "
        "--against COPY"
    ]
    assert restarted.told == told
    last = restarted.audit.query(limit=1)[0]
    assert last["event"] == "audit_tampering_suspected" and "ends at event 7" in last["detail"]


def test_deleting_the_sinks_cursor_file_with_the_logs_end_is_still_told_at_start(
    deploy, receiver, tmp_path
):
    clock = FakeClock()
    bot = deploy(http_sink(receiver.url), clock=clock)
    checkpoints = Checkpoints(bot.audit, timedelta(minutes=5), clock, bot.sinks.acknowledged)
    bot.events(10)
    bot.ship()
    checkpoints.run()
    clock.advance(minutes=5)
    assert checkpoints.run()["acked"] == {f"http {receiver.url}": 10}
    bot.events(5)
    bot.ship()
    lines = bot.path.read_bytes().splitlines(keepends=True)
    bot.path.write_bytes(b"".join(lines[:-3]))  # the newest 3 lines deleted ...
    (tmp_path / "data" / "access.sinks.json").unlink()  # ... and the sinks' cursors

    restarted = deploy(http_sink(receiver.url), clock=clock)
    told = restarted.sinks.check_at_start()

    assert len(told) == 1 and told[0].startswith("POSSIBLE TAMPERING: the checkpoint at event 11")
    assert f"the sink http {receiver.url} had acknowledged events up to 10" in told[0]
    assert "its cursor is gone" in told[0]
    last = restarted.audit.query(limit=1)[0]
    assert last["event"] == "audit_tampering_suspected"


def test_a_rewritten_line_where_the_cursor_stands_is_told_at_start(deploy, receiver):
    bot = deploy(http_sink(receiver.url))
    bot.events(4)
    bot.ship()
    bot.path.write_bytes(bot.path.read_bytes().replace(b"r00003", b"r99999"))
    told = deploy(http_sink(receiver.url)).sinks.check_at_start()
    assert len(told) == 1 and "event 4 of the audit log is not the line" in told[0]


def test_a_log_deleted_whole_is_told_at_start(deploy, receiver):
    bot = deploy(http_sink(receiver.url))
    bot.events(4)
    bot.ship()
    bot.path.unlink()
    told = deploy(http_sink(receiver.url)).sinks.check_at_start()
    assert "the audit log is empty, but the sink" in told[0]


def test_a_rewritten_log_found_while_shipping_is_told_once(deploy, receiver):
    bot = deploy(http_sink(receiver.url))
    bot.events(4)
    bot.ship()
    bot.path.unlink()  # deleted while the bot runs; it starts a new chain
    fresh = deploy(http_sink(receiver.url))
    fresh.events(6)
    fresh.sinks.check_at_start()
    fresh.told.clear()
    fresh.ship()
    assert len(fresh.told) == 1
    assert "event 5 of the audit log does not follow event 4" in fresh.told[0]


def test_an_unshippable_gap_in_the_log_stops_the_sink_there_and_says_so(deploy, receiver):
    bot = deploy(http_sink(receiver.url, batch=5))
    bot.events(10)
    assert bot.sinks.workers[0].step() == 5
    lines = bot.path.read_bytes().splitlines(keepends=True)
    bot.path.write_bytes(b"".join(lines[:6] + lines[8:]))  # events 7 and 8 cut out
    assert bot.ship() == 1
    assert "the audit log has no event 7 although it goes on to 10" in bot.sinks.status_text()


def test_the_bot_tells_the_admins_at_start_when_its_log_is_shorter_than_a_sinks_copy(
    bot_factory, policy_dir, webhook, receiver, tmp_path, caplog
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    sinks = [http_sink(receiver.url)]
    chat = bot_factory(ACCESS_AUDIT_SINKS=sinks)
    for user in ("carol", "dave", "erin"):
        chat.reply(user, "!access request prod-db 30m fix INC-7")
    plugin_sinks = chat.backend.plugin_manager.get_plugin_obj_by_name("Access").sinks
    eventually(lambda: plugin_sinks.status()[0].lag == 0 and plugin_sinks.status()[0].seq >= 3)
    bot_factory.stop_last()
    log = tmp_path / "data" / "audit.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-2]))
    with caplog.at_level(logging.WARNING):
        chat = bot_factory(ACCESS_AUDIT_SINKS=sinks)
    said = sent_at_start(chat, caplog)
    assert any("POSSIBLE TAMPERING: the audit log ends at event" in text for text in said)
    assert "audit_tampering_suspected" in chat.reply("admin", "!access audit limit=5")


# -- through the bot ------------------------------------------------------------------------------


def test_a_sink_that_hangs_never_delays_a_command_or_a_revocation(
    bot_factory, policy_dir, webhook, receiver, clock
):
    import threading

    receiver.hold = threading.Event()  # accepts, and never answers until the test ends
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_AUDIT_SINKS=[http_sink(receiver.url, timeout=2)])
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fix INC-7"))
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
    clock.advance(minutes=30)
    chat.wait_for("carol", "expired")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    status = chat.reply("admin", "!access audit status")
    assert "acknowledged up to event 0 of" in status and "behind" in status
    receiver.hold.set()


def test_audit_status_lists_each_sink_for_admins_only(bot_factory, policy_dir, webhook, receiver):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_AUDIT_SINKS=[http_sink(receiver.url, name="siem")])
    chat.reply("carol", "!access request prod-db 30m fix INC-7")
    eventually(lambda: receiver.lines())
    assert chat.reply("carol", "!access audit status") == (
        "Only bot admins (BOT_ADMINS) can see the audit sinks."
    )
    status = chat.reply("admin", "!access audit status")
    assert status.startswith("Audit sinks (shipped by this bot):\n- siem: acknowledged up to")


def test_audit_status_says_when_there_is_no_sink(chat):
    assert chat.reply("admin", "!access audit status").startswith(
        "No audit sinks are configured (ACCESS_AUDIT_SINKS)"
    )


# -- checkpoints --------------------------------------------------------------------------------------


def test_a_checkpoint_pins_the_chain_head_every_interval_when_something_happened(tmp_path):
    clock = FakeClock()
    audit = AuditLog(tmp_path / "audit.jsonl", clock)
    job = Checkpoints(audit, timedelta(minutes=5), clock)
    assert job.run() is None  # the first run only starts the clock
    audit.append("requested", actor="carol")
    clock.advance(minutes=4)
    assert job.run() is None
    clock.advance(minutes=1)
    made = job.run()
    head = [line for line in audit.stored_lines()][-2]
    assert made["event"] == "checkpoint"
    assert made["head_seq"] == head.seq == 1 and made["head_hash"] == head.hash
    clock.advance(minutes=5)
    assert job.run() is None  # nothing happened since the last checkpoint
    audit.append("approved", actor="alice")
    clock.advance(minutes=5)
    assert job.run()["head_seq"] == 3


def test_checkpoints_are_off_with_0(tmp_path):
    clock = FakeClock()
    audit = AuditLog(tmp_path / "audit.jsonl", clock)
    audit.append("requested", actor="carol")
    job = Checkpoints(
        audit, Settings.load(environ={"ACCESS_AUDIT_CHECKPOINT": "0"}).audit_checkpoint, clock
    )
    for _ in range(3):
        clock.advance(hours=1)
        assert job.run() is None


def test_the_scheduler_writes_checkpoints_on_the_bots_clock(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_AUDIT_CHECKPOINT="1m")
    chat.reply("carol", "!access request prod-db 30m fix INC-7")
    clock.advance(minutes=2)
    eventually(lambda: "checkpoint" in chat.reply("admin", "!access audit limit=1"))


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        ("[{", "ACCESS_AUDIT_SINKS must be JSON: a list like"),
        ('[{"type": "kafka"}]', "type 'kafka' is not a sink; use one of: file, http"),
        ('[{"type": "http"}]', 'ACCESS_AUDIT_SINKS[0] (http): "url" is required, e.g. {"type"'),
        ('[{"type": "http", "url": "ftp://x"}]', '"url" must be an http(s) URL'),
        ('[{"type": "http", "url": "http://x", "secret": "abc"}]', "unknown key 'secret'"),
        ('[{"type": "http", "url": "http://x", "batch": 0}]', '"batch" must be a whole number'),
        ('[{"type": "http", "url": "http://x", "secret_env": "s3cr3t!"}]', "not the secret"),
        ('[{"type": "splunk_hec", "url": "http://x"}]', '"token_env" is required'),
        ('[{"type": "syslog", "address": "siem"}]', '"address" must be host:port'),
        ('[{"type": "syslog", "address": "siem:514", "protocol": "tls"}]', '"udp" or "tcp"'),
        ('[{"type": "file", "path": "/a"}, {"type": "file", "path": "/a"}]', "already called"),
        ("7", "must be a list of sinks"),
    ],
)
def test_a_bad_sink_setting_says_what_to_write(value, message):
    with pytest.raises(SettingsError, match=__import__("re").escape(message)):
        Settings.load(environ={"ACCESS_AUDIT_SINKS": value})


def test_sinks_come_from_the_config_or_json_in_the_environment():
    class Config:
        ACCESS_AUDIT_SINKS = [{"type": "file", "path": "/mnt/worm/audit.jsonl"}]

    from_config = Settings.load(Config, environ={})
    assert [(s.type, s.name) for s in from_config.audit_sinks] == [
        ("file", "file /mnt/worm/audit.jsonl")
    ]
    env = '[{"type": "syslog", "address": "siem:514", "protocol": "tcp", "name": "siem"}]'
    settings = Settings.load(Config, environ={"ACCESS_AUDIT_SINKS": env})
    assert [(s.type, s.name, s.get("port")) for s in settings.audit_sinks] == [
        ("syslog", "siem", 514)
    ]
    url = "https://user:pw@siem.example.com/in?token=t"
    named = Settings.load(
        environ={"ACCESS_AUDIT_SINKS": json.dumps([{"type": "http", "url": url}])}
    )
    assert named.audit_sinks[0].name == "http https://siem.example.com/in"  # no credentials


def test_the_checkpoint_interval_is_a_duration():
    assert Settings.load(environ={}).audit_checkpoint == timedelta(minutes=5)
    assert Settings.load(environ={"ACCESS_AUDIT_CHECKPOINT": "1h"}).audit_checkpoint == timedelta(
        hours=1
    )
    with pytest.raises(SettingsError, match="ACCESS_AUDIT_CHECKPOINT must be a duration like 5m"):
        Settings.load(environ={"ACCESS_AUDIT_CHECKPOINT": "often"})


# -- the cursor port ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["tinydb", "postgresql"])
def test_a_sink_cursor_never_moves_backwards_in_the_store(backend, tmp_path, request):
    if backend == "tinydb":
        store = TinyDBStore(tmp_path / "access.json")
    else:  # a row of its own table
        from accessbot.postgres import Database, PostgresStore

        store = PostgresStore(Database(request.getfixturevalue("pg_url")))
    try:
        assert store.sink_cursor("siem") is None
        store.save_sink_cursor(SinkCursor("siem", 10, "h10", "2026-11-24T09:00:00Z"))
        store.save_sink_cursor(SinkCursor("siem", 7, "h7", error="late", error_at="t"))
        assert store.sink_cursor("siem") == SinkCursor(
            "siem", 10, "h10", "2026-11-24T09:00:00Z", "late", "t"
        )
    finally:
        store.close()


# -- on PostgreSQL ----------------------------------------------------------------------------------


def test_on_postgresql_the_http_sink_ships_the_table_rows_byte_for_byte(pg_url, tmp_path, receiver):
    bot = Deployment(tmp_path, FakeClock(), http_sink(receiver.url, batch=4), db_url=pg_url)
    try:
        bot.events(10)
        assert bot.ship() == 10
        assert receiver.lines() == bot.local_lines()
        assert bot.sinks.check_at_start() == []
    finally:
        bot.close()


def test_on_postgresql_a_checkpoint_pins_the_head_once_per_quiet_spell(pg_url, tmp_path):
    clock = FakeClock()
    bot = Deployment(tmp_path, clock, db_url=pg_url)
    try:
        job = Checkpoints(bot.audit, timedelta(minutes=5), clock)
        job.run()
        bot.events(2)
        clock.advance(minutes=5)
        made = job.run()
        assert (made["seq"], made["head_seq"]) == (3, 2)
        assert made["head_hash"] == made["prev"] == list(bot.audit.stored_lines())[1].hash
        clock.advance(minutes=5)
        assert job.run() is None
        assert bot.audit.verify().ok
    finally:
        bot.close()


def test_a_bot_on_postgresql_ships_its_audit_table_to_the_sink(
    pg_url, bot_factory, policy_dir, webhook, receiver
):
    from accessbot.postgres import Database, PostgresAuditLog

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_DB_URL=pg_url, ACCESS_AUDIT_SINKS=[http_sink(receiver.url)])
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fix INC-7"))
    chat.reply("alice", f"!approve {rid}")
    db = Database(pg_url, heartbeat=False)
    try:
        table = PostgresAuditLog(db, FakeClock())
        eventually(lambda: len(receiver.lines()) >= 3 and table.head()[0] == len(receiver.lines()))
        assert receiver.lines() == [line.data for line in table.stored_lines()]
    finally:
        db.close()
    assert "Audit sinks (shipped by this bot)" in chat.reply("admin", "!access audit status")
