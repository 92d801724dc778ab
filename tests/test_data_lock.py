"""One writer per data folder, with real processes (tests/lock_child.py): a second bot on
the same folder is refused, naming the first, and reads or writes nothing there; the lock
dies with its holder; and two processes appending to one audit log never write a
sequence number twice."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter

from accessbot.audit import verify_file
from tests.helpers import PLUGINS, ROOT, policy_file, webhook_policy

CHILD = str(ROOT / "tests" / "lock_child.py")


def child(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("ACCESS_")},
            "PYTHONPATH": f"{PLUGINS}{os.pathsep}{ROOT}",
            "TEST_HOOK_SECRET": "s3cret",
        },
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.stdout.close()


def test_a_second_bot_on_the_same_data_folder_is_refused_naming_the_first_until_it_dies(
    tmp_path, webhook
):
    policy_file(tmp_path / "policies", "db.py", webhook_policy(webhook.url))
    first = child("bot", str(tmp_path))
    second = third = None
    try:
        assert first.stdout.readline().strip() == "started"
        audit = tmp_path / "data" / "audit.jsonl"
        before = audit.read_bytes() if audit.exists() else b""

        second = child("bot", str(tmp_path))
        said = second.stdout.readline().strip()
        assert said.startswith("refused The access bot did not start:"), said
        assert f"in use by another process (pid {first.pid}, on host {socket.gethostname()}" in said
        assert "since " in said and "(the access bot)" in said
        assert f"Stop that process first (on that host: `kill {first.pid}`" in said
        assert "store rebuild" not in said  # not damage: nothing to rebuild
        assert (audit.read_bytes() if audit.exists() else b"") == before  # it wrote nothing
        lock = json.loads((tmp_path / "data" / "access.lock").read_text())
        assert lock["pid"] == first.pid  # the refused one did not take the file over

        os.kill(first.pid, signal.SIGKILL)  # no clean stop: the kernel lets go of the lock
        first.wait()
        third = child("bot", str(tmp_path))
        assert third.stdout.readline().strip() == "started"
    finally:
        for process in (first, second, third):
            if process is not None:
                stop(process)


def test_two_processes_appending_to_one_audit_log_never_write_a_seq_twice(tmp_path):
    path = tmp_path / "audit.jsonl"
    writers = [child("audit", str(path), "300") for _ in range(2)]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready"  # each has read the tail
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            assert writer.stdout.readline().strip() == "done"
    finally:
        for writer in writers:
            stop(writer)
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert [s for s, n in Counter(seqs).items() if n > 1] == []
    assert seqs == list(range(1, 603))
    result = verify_file(path)
    assert result.ok, str(result)


RESTORING = """
import sys
from accessbot.backup import store_closed
from accessbot.durable import ProcessLock
from accessbot.store import StoreFiles
ProcessLock.role = "python -m accessbot restore"
with store_closed(StoreFiles.of(sys.argv[1])):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_a_bot_started_while_a_restore_runs_is_refused_naming_the_restore(
    bot_factory, policy_dir, webhook, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    restore = subprocess.Popen(
        [sys.executable, "-c", RESTORING, str(tmp_path / "data" / "access.json")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{PLUGINS}{os.pathsep}{ROOT}"},
    )
    try:
        assert restore.stdout.readline() == "holding\n"
        chat = bot_factory()
        reply = chat.reply("carol", "!access mine")
    finally:
        stop(restore)
    assert reply.startswith("The access bot did not start:")
    assert f"(pid {restore.pid}, on host" in reply
    assert "(python -m accessbot restore)" in reply
    assert "store rebuild" not in reply
