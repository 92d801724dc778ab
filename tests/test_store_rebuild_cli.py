"""`python -m accessbot store rebuild`: a fresh store from the audit log and what still
reads of a damaged one, the old files kept aside; tested by flipping bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accessbot.store import StoreError, TinyDBStore
from tests.conftest import accessbot, eventually, policy_file, webhook_policy
from tests.test_rebuild import flip, granted

ROOT = Path(__file__).resolve().parent.parent


def env(tmp_path, policy_dir) -> dict[str, str]:
    data = tmp_path / "data"
    return {
        "ACCESS_DB_PATH": str(data / "access.json"),
        "ACCESS_AUDIT_PATH": str(data / "audit.jsonl"),
        "ACCESS_POLICY_DIR": str(policy_dir),
        "TEST_HOOK_SECRET": "s3cret",
    }


def crash_after_a_write(data) -> None:
    """A process that writes once more and dies without closing the store (as kill -9
    would): its journal line is not folded into access.json."""
    script = (
        "import os, sys; from accessbot.store import TinyDBStore; "
        "store = TinyDBStore(sys.argv[1]); store.save(store.live()[0]); os._exit(0)"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(data / "access.json")],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    assert (data / "access.journal.jsonl").stat().st_size > 0


def history(tmp_path, clock, chat, webhook):
    """Three grants: one expired (archived), two still active; returns their ids."""
    ended = granted(chat, "erin", "15m")
    clock.advance(minutes=16)
    chat.wait_for("erin", f"request {ended}) has expired")
    return ended, granted(chat, "carol", "30m"), granted(chat, "dave", "2h")


@pytest.mark.parametrize("damaged", ["journal", "snapshot", "archive"])
def test_a_rebuilt_store_holds_the_grants_and_the_bot_revokes_them_on_time(
    damaged, bot_factory, policy_dir, webhook, clock, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    ended, carol, dave = history(tmp_path, clock, chat, webhook)
    bot_factory.stop_last()
    data = tmp_path / "data"
    if damaged == "journal":
        crash_after_a_write(data)  # a clean stop folds the journal: leave one unfolded
    flip(data / f"access.{'json' if damaged == 'snapshot' else damaged + '.jsonl'}")
    with pytest.raises(StoreError):  # the bot would not read it
        store = TinyDBStore(data / "access.json")
        try:
            store.get(ended)
        finally:
            store.close()

    code, said, err = accessbot("store", "rebuild", cwd=tmp_path, env=env(tmp_path, policy_dir))

    assert code == 0, err
    assert "rebuilt the store: 2 grant(s) holding access" in said
    aside = next(data.glob("before-rebuild-*"))
    assert f"the old store files were moved to {aside}" in said
    assert (aside / "access.json").exists() or (aside / "access.journal.jsonl").exists()
    store = TinyDBStore(data / "access.json")  # reads whole again
    assert {r.id: r.status.value for r in store.live()} == {carol: "active", dave: "active"}
    assert store.get(ended).status.value == "expired"
    store.close()

    chat = bot_factory()
    assert chat.reply("bob", "!access request prod-db 30m fixing INC-44").startswith("Request ")
    clock.advance(minutes=31)
    chat.wait_for("carol", f"request {carol}) has expired")
    assert webhook.count("revoke", carol) == 1 and webhook.count("revoke", dave) == 0


def test_store_rebuild_refuses_while_a_bot_has_the_store_open(
    bot_factory, policy_dir, webhook, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    granted(chat)

    code, _, err = accessbot("store", "rebuild", cwd=tmp_path, env=env(tmp_path, policy_dir))

    assert code == 1
    assert "a bot is running on" in err and "then rebuild" in err
    assert not list((tmp_path / "data").glob("before-rebuild-*"))


def test_store_rebuild_reads_the_audit_log_given_with_from(
    bot_factory, policy_dir, webhook, clock, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = granted(chat)
    bot_factory.stop_last()
    data = tmp_path / "data"
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes((data / "audit.jsonl").read_bytes())
    (data / "audit.jsonl").unlink()  # the bot's own log is lost too
    flip(data / "access.json")  # a clean stop folded the journal into it
    environ = env(tmp_path, policy_dir)

    code, _, err = accessbot("store", "rebuild", cwd=tmp_path, env=environ)
    assert code == 1 and "give one with --from AUDIT" in err

    code, said, err = accessbot("store", "rebuild", "--from", str(copy), cwd=tmp_path, env=environ)
    assert code == 0, err
    assert "1 grant(s) holding access" in said
    store = TinyDBStore(data / "access.json")
    assert store.get(rid).status.value == "active"
    store.close()


def test_store_rebuild_refuses_while_a_degraded_bot_runs(
    bot_factory, policy_dir, webhook, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    granted(chat)
    bot_factory.stop_last()
    flip(tmp_path / "data" / "access.json")
    chat = bot_factory()
    assert "store rebuild" in chat.reply("carol", "!access request prod-db 1h more")

    code, _, err = accessbot("store", "rebuild", cwd=tmp_path, env=env(tmp_path, policy_dir))
    assert code == 1 and "then rebuild" in err

    bot_factory.stop_last()
    code, said, err = accessbot("store", "rebuild", cwd=tmp_path, env=env(tmp_path, policy_dir))
    assert code == 0, err


def forge_expired(audit_path: Path, request_id: str, at: str) -> None:
    """What someone who can write the audit file appends: an `expired` event for a grant
    its target still holds (the hash chain does not follow: they do not bother)."""
    lines = audit_path.read_bytes().splitlines()
    granted_line = next(
        json.loads(line)
        for line in lines
        if json.loads(line).get("event") == "granted"
        and json.loads(line).get("request_id") == request_id
    )
    forged = {
        **granted_line,
        "event": "expired",
        "ts": at,
        "actor": "scheduler",
        "seq": json.loads(lines[-1])["seq"] + 1,
        "prev": "0" * 64,
    }
    with open(audit_path, "ab") as handle:
        handle.write(json.dumps(forged).encode() + b"\n")


def test_a_forged_expired_line_cannot_end_a_grant_through_store_rebuild(
    bot_factory, policy_dir, webhook, clock, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = granted(chat, "carol", "2h")
    bot_factory.stop_last()
    data = tmp_path / "data"
    forge_expired(data / "audit.jsonl", rid, "2026-11-24T09:05:00Z")
    flip(data / "access.json")  # a store to rebuild
    environ = env(tmp_path, policy_dir)

    code, said, err = accessbot("store", "rebuild", cwd=tmp_path, env=environ)
    assert code == 1
    assert "audit log BROKEN" in err and "Nothing was rebuilt" in err
    assert "--accept-broken-chain" in err
    assert not list(data.glob("before-rebuild-*"))  # nothing was written

    code, said, err = accessbot(
        "store", "rebuild", "--accept-broken-chain", cwd=tmp_path, env=environ
    )
    assert code == 1, err  # done, but the log it came from is still broken
    assert f"not trusted: event 4: expired of {rid} (not believed" in said, said
    store = TinyDBStore(data / "access.json")
    assert store.get(rid).status.value == "active"  # not ended on the forged line's word
    store.close()

    chat = bot_factory()  # its first pass revokes it again at the target (idempotent)
    eventually(
        lambda: "active" not in chat.reply("carol", f"!access show {rid}"), "the revoke at start"
    )
    assert webhook.count("revoke", rid) == 1
    assert chat.reply("bob", "!access request prod-db 30m INC-44").startswith("Request ")
