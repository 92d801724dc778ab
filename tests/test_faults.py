"""Fail-safe behaviour under faults, through the real plugin: a target that errors or
hangs, a disk that is full or gone, a damaged DB file, a clock that jumps."""

import json
import re
import shutil
from datetime import datetime

import pytest

from accessbot.audit import verify_chain
from accessbot.store import StoreError, TinyDBStore
from tests.conftest import access_plugin, eventually, policy_file, request_id, webhook_policy

APPROVALS = "#access-approvals"


def granted(chat, webhook, who="carol", duration="30m"):
    rid = request_id(chat.reply(who, f"!access request prod-db {duration} fixing INC-42"))
    assert chat.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}:")
    return rid


def audit_events(tmp_path):
    path = tmp_path / "data" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def audit_ok(tmp_path):
    return verify_chain([tmp_path / "data" / "audit.jsonl"]).ok


# -- the target fails -----------------------------------------------------------


def test_a_grant_the_target_answers_with_5xx_is_final_grant_failed(
    bot_factory, policy_dir, webhook
):
    webhook.set_status(503)
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))

    reply = chat.reply("bob", f"!approve {rid}")

    assert reply.startswith(f"Approved {rid}, but the grant failed")
    assert "HTTP 503" in reply
    assert any(f"GRANT FAILED for request {rid}" in t for t in chat.to(APPROVALS))
    assert any("Nothing was granted" in t for t in chat.to("carol"))
    assert "grant failed" in chat.reply("admin", f"!access show {rid}")
    assert webhook.actions() == []


def test_a_grant_that_times_out_is_grant_failed(bot_factory, policy_dir, webhook):
    webhook.delay = 1.5
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy(
            webhook.url,
            strategy={
                "type": "webhook",
                "url": webhook.url,
                "secret_env": "TEST_HOOK_SECRET",
                "timeout": "1s",
            },
        ),
    )
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))

    reply = chat.reply("bob", f"!approve {rid}")

    assert "grant failed" in reply and "timed out after 1s" in reply
    assert "grant failed" in chat.reply("carol", f"!access show {rid}")


def test_a_failed_grant_is_not_retried_and_retry_says_to_ask_again(
    bot_factory, policy_dir, webhook, clock
):
    webhook.set_status(500)
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    chat.say("bob", f"!approve {rid}")
    webhook.set_status(200)
    clock.advance(minutes=5)

    reply = chat.reply("admin", f"!access retry {rid}")

    assert "failed and that is final" in reply
    assert "!access request prod-db 30m <reason>" in reply
    assert webhook.actions() == []


def retry_times(chat, rid, attempts):
    """Wait for each REVOKE FAILED announcement; return its `Retrying at` time."""
    text = chat.wait_for(APPROVALS, f"{rid} (prod-db for @carol), attempt {attempts}:")
    stamp = re.search(r"Retrying at (\S+ \S+) UTC", text).group(1)
    return datetime.fromisoformat(stamp + "+00:00")


def test_a_failing_revoke_is_retried_with_doubling_backoff_capped_at_5_minutes(
    chat, webhook, clock, tmp_path
):
    rid = granted(chat, webhook)
    webhook.set_status(502)
    expiry = clock.advance(minutes=30)

    delays = []
    previous = expiry
    for attempt in range(1, 8):
        at = retry_times(chat, rid, attempt)
        delays.append((at - previous).total_seconds())
        previous = at
        clock.advance(seconds=(at - clock()).total_seconds())

    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert "revoke failed, retrying" in chat.reply("carol", "!access mine")
    webhook.set_status(200)
    clock.advance(minutes=5)
    chat.wait_for("carol", "has expired and was removed")
    assert webhook.count("revoke", rid) == 1
    assert audit_ok(tmp_path)


def test_an_admin_retries_a_failed_revoke_at_once(chat, webhook, clock):
    rid = granted(chat, webhook)
    webhook.set_status(500)
    reply = chat.reply("carol", f"!access revoke {rid}")
    assert f"The revoke of {rid} failed" in reply and "retried automatically" in reply
    assert any(f"REVOKE FAILED for request {rid}" in t for t in chat.to(APPROVALS))

    assert "failed again (attempt 2)" in chat.reply("admin", f"!access retry {rid}")
    webhook.set_status(200)
    assert "Only bot admins" in chat.reply("carol", f"!access retry {rid}")
    reply = chat.reply("admin", f"!access retry {rid}")

    assert reply == f"Retried {rid}: the revoke worked; @carol no longer has prod-db."
    assert "revoked" in chat.reply("admin", f"!access show {rid}")
    assert webhook.count("revoke", rid) == 1
    assert "has no failed revoke to retry (revoked)" in chat.reply("admin", f"!access retry {rid}")


# -- the disk fails -------------------------------------------------------------


def test_an_unwritable_db_refuses_the_command_and_keeps_nothing(
    bot_factory, policy_dir, webhook, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    db_dir = tmp_path / "db"
    chat = bot_factory(ACCESS_DB_PATH=str(db_dir / "access.json"))
    rid = request_id(chat.reply("carol", "!access request prod-db 30m first one"))
    shutil.rmtree(db_dir)
    db_dir.write_text("not a directory any more")  # every write below it now fails

    reply = chat.reply("dave", "!access request prod-db 30m second one")
    assert reply.startswith("Nothing was changed: could not write")
    assert str(db_dir / "access.json") in reply and "Tell an admin" in reply
    reply = chat.reply("bob", f"!approve {rid}")
    assert reply.startswith("Nothing was changed")
    assert webhook.actions() == []

    db_dir.unlink()
    db_dir.mkdir()
    assert TinyDBStore(db_dir / "access.json").live() == []  # no half-request on disk
    assert "no pending requests" in chat.reply("dave", "!access mine")
    assert "pending approval" in chat.reply("carol", "!access mine")  # nothing half-approved
    failed = [e for e in audit_events(tmp_path) if e["event"] == "store_write_failed"]
    assert len(failed) == 2 and "requested was not saved" in failed[0]["detail"]
    assert audit_ok(tmp_path)


def test_a_full_disk_under_the_audit_log_refuses_the_command(chat, webhook, tmp_path):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m first one"))
    audit = tmp_path / "data" / "audit.jsonl"
    audit.rename(tmp_path / "audit.saved")
    audit.symlink_to("/dev/full")  # every write: ENOSPC

    reply = chat.reply("bob", f"!approve {rid}")
    assert reply.startswith("Nothing was changed: could not write the audit log")
    assert "No space left on device" in reply
    assert webhook.actions() == []

    audit.unlink()
    (tmp_path / "audit.saved").rename(audit)
    assert "pending approval" in chat.reply("carol", "!access mine")
    assert chat.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}:")
    assert audit_ok(tmp_path)


def test_a_grant_that_cannot_be_recorded_is_taken_back_at_the_target(
    bot_factory, policy_dir, webhook, tmp_path, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    db_dir = tmp_path / "db"
    chat = bot_factory(ACCESS_DB_PATH=str(db_dir / "access.json"), ACCESS_TICK_SECONDS=3600)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))

    def break_the_disk(call):
        if call["action"] == "grant":
            shutil.rmtree(db_dir)
            db_dir.write_text("gone")

    webhook.on_call = break_the_disk
    reply = chat.reply("bob", f"!approve {rid}")

    assert reply.startswith(f"Your approval of {rid} is recorded: it is approved.")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]  # no unrecorded access
    webhook.on_call = None
    db_dir.unlink()
    db_dir.mkdir()


def test_a_grant_the_audit_log_cannot_record_is_taken_back_once_and_waits_for_the_disk(
    bot_factory, policy_dir, webhook, tmp_path, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_TICK_SECONDS=3600)  # the test drives the ticks itself
    plugin = access_plugin(chat.backend)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    audit = tmp_path / "data" / "audit.jsonl"

    def fill_the_disk(call):
        if call["action"] == "grant" and not audit.is_symlink():
            audit.rename(tmp_path / "audit.saved")
            audit.symlink_to("/dev/full")  # every audit write from now on: ENOSPC

    webhook.on_call = fill_the_disk
    reply = chat.reply("bob", f"!approve {rid}")

    # The approver learns exactly where the request stands: approved, not granted.
    assert reply.startswith(f"Your approval of {rid} is recorded: it is approved.")
    assert "took the access back" in reply
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    for _ in range(12):  # six minutes of ticks with the disk still full: no grant loop
        clock.advance(seconds=30)
        plugin.run_tick()
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    told = [t for t in chat.to(APPROVALS) if "could not record the grant" in t]
    assert len(told) == 1  # announced once
    assert "approved" in chat.reply("carol", f"!access show {rid}")

    webhook.on_call = None
    audit.unlink()
    (tmp_path / "audit.saved").rename(audit)
    clock.advance(minutes=5)
    plugin.run_tick()

    assert webhook.actions() == [("grant", rid), ("revoke", rid), ("grant", rid)]
    # A new grant id: an idempotent target must not answer with the taken-back grant.
    assert [c["grant_id"] for c in webhook.calls] == [f"g-{rid}", f"g-{rid}", f"g-{rid}.1"]
    chat.wait_for("carol", f"Your request {rid} was approved")  # told by the delivery workers
    assert "active" in chat.reply("carol", f"!access show {rid}")
    events = [e["event"] for e in audit_events(tmp_path)]
    assert events.count("granted") == 1 and "grant_retry" in events
    assert audit_ok(tmp_path)


def test_a_corrupt_db_file_runs_the_bot_degraded_naming_the_path_and_the_fix(
    bot_factory, policy_dir, webhook, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    db = tmp_path / "data" / "access.json"
    db.parent.mkdir()
    db.write_text('{"requests": {"abc234": {"id": "abc234", "status": "act')

    chat = bot_factory()

    assert chat.reply("carol", "!access mine").startswith("You have no pending requests")
    reply = chat.reply("carol", "!access request prod-db 30m fixing INC-42")
    assert reply.startswith(f"Nothing was done: the store cannot be read ({db} is not valid JSON")
    assert "python -m accessbot store rebuild" in reply
    assert db.read_text().startswith('{"requests": {"abc234"')  # left for the admin to rescue
    with pytest.raises(StoreError, match="will not start on a damaged store"):
        TinyDBStore(db)


# -- the clock jumps ------------------------------------------------------------


def test_a_clock_jump_revokes_every_overdue_grant_at_once(chat, webhook, clock):
    short = granted(chat, webhook, "carol", "15m")
    long = granted(chat, webhook, "dave", "4h")
    pending = request_id(chat.reply("erin", "!access request prod-db 1h please"))

    clock.advance(days=3)

    chat.wait_for("carol", f"request {short}) has expired")
    chat.wait_for("dave", f"request {long}) has expired")
    chat.wait_for("erin", f"Your request {pending} for prod-db timed out")
    assert webhook.count("revoke", short) == webhook.count("revoke", long) == 1


def test_grants_that_expired_while_the_bot_was_down_are_revoked_at_start(
    chat, bot_factory, webhook, clock
):
    rid = granted(chat, webhook)
    bot_factory.stop_last()
    clock.advance(hours=6)

    chat = bot_factory(ACCESS_TICK_SECONDS=3600)  # only the start-up pass can revoke it

    # The pass hands the revoke to the pool and waits for no call: it is recorded at once.
    eventually(
        lambda: "expired" in chat.reply("carol", f"!access show {rid}"), "the revoke at start"
    )
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]


def test_time_moves_back_and_forth_without_early_revokes(chat, webhook, clock):
    rid = granted(chat, webhook)
    clock.advance(minutes=-120)  # NTP steps the clock back
    clock.advance(minutes=10)
    assert "active" in chat.reply("carol", f"!access show {rid}")
    assert webhook.count("revoke", rid) == 0


# -- the audit trail in chat ----------------------------------------------------


def test_admins_verify_the_audit_chain_in_chat_and_see_the_broken_line(chat, webhook, tmp_path):
    granted(chat, webhook)
    assert "Only bot admins" in chat.reply("carol", "!access audit verify")
    assert chat.reply("admin", "!access audit verify") == (
        "audit log intact: 3 events, hash chain verified"
    )

    path = tmp_path / "data" / "audit.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], lines[1].replace("bob", "eve"), *lines[2:]]))
    reply = chat.reply("admin", "!access audit verify")
    assert reply == (
        f"audit log BROKEN at {path} line 3: hash chain broken: this line does not follow "
        "the line before it (a line was changed, removed or inserted)"
    )

    path.write_text("".join(lines[:2]))
    assert "the last 1 line(s) were removed" in chat.reply("admin", "!access audit verify")
