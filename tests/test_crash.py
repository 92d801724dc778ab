"""SIGKILL a process in the middle of writing requests, many times: the DB loads every
time, no acknowledged write is lost, and the audit chain still verifies."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections import Counter

import pytest

from accessbot.audit import AuditLog, verify_file
from accessbot.store import TinyDBStore
from tests import crash_child
from tests.conftest import FakeClock

KILLS = 25
ORDER = {"pending": 0, "approved": 1, "active": 2, "revoke_failed": 2, "denied": 3, "revoked": 3}


@pytest.mark.slow
def test_killed_mid_write_many_times_the_db_loads_and_keeps_every_acknowledged_write(
    tmp_path, webhook
):
    rng = random.Random(20261124)
    # Each victim is forked from a server that has imported it once: a process of its own,
    # killed with SIGKILL like one started from scratch, without 25 interpreter starts.
    processes = multiprocessing.get_context("forkserver")
    processes.set_forkserver_preload(["tests.crash_child"])
    acked: dict[str, str] = {}
    loads = 0
    for _ in range(KILLS):
        lines, pipe = processes.Pipe(duplex=False)
        child = processes.Process(target=crash_child.run, args=(str(tmp_path), webhook.url, pipe))
        child.start()
        pipe.close()  # the child holds the writing end
        assert lines.recv() == "ready"
        for _ in range(rng.randint(1, 40)):
            _, rid, status = lines.recv().split()
            acked[rid] = status
        os.kill(child.pid, signal.SIGKILL)  # mid-way through the next write
        child.join()
        lines.close()

        store = TinyDBStore(tmp_path / "data" / "access.json")  # raises if damaged
        loads += 1
        for rid, status in acked.items():
            stored = store.get(rid)
            assert stored is not None, f"acknowledged request {rid} was lost"
            assert ORDER[stored.status.value] >= ORDER[status], (rid, status, stored.status)
        store.close()  # the next child opens it: one process at a time

    audit = AuditLog(tmp_path / "data" / "audit.jsonl", FakeClock())
    audit.append("check", actor="test")  # cuts a torn tail left by the last kill, if any
    result = verify_file(audit.path)
    assert result.ok, str(result)
    events = Counter(e["event"] for e in audit.events())
    statuses = Counter(store.get(rid).status.value for rid in acked)
    print(
        f"\n{KILLS} SIGKILLs, {loads} clean loads, {len(acked)} acknowledged requests kept "
        f"{dict(statuses)}; {events['audit_repaired']} torn audit tails cut; "
        f"{webhook.count_all('grant')} grants / {webhook.count_all('revoke')} revokes at "
        f"the target; {result}"
    )
