"""What only the TinyDB store's files can get wrong (the behaviour every store shares is
in test_store_contract.py)."""

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
from tinydb import TinyDB

from accessbot.domain import Status
from accessbot.store import StoreError, TinyDBStore
from accessbot.tinydb_journal import AtomicJSONStorage, JournalMiddleware
from tests.conftest import PLUGINS, START, accessbot
from tests.test_domain import make_request


def active(request_id="abc234", minutes=30, **overrides):
    request = make_request(id=request_id, duration=timedelta(minutes=minutes), **overrides)
    request.add_approval("alice", START)
    request.activate(START)
    return request


def test_a_corrupt_store_refuses_to_open_and_names_the_file(tmp_path):
    path = tmp_path / "access.json"
    path.write_text('{"requests": {"abc": ')
    with pytest.raises(StoreError, match=r"access.json is not valid JSON .*restore the file"):
        TinyDBStore(path)


def test_a_crash_between_archive_and_delete_leaves_one_copy(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    request = active()
    store.save(request)
    request.move(Status.REVOKED, START, "alice")
    line = json.dumps(request.to_dict()) + "\n"
    (tmp_path / "access.archive.jsonl").write_text(line)  # archived, live copy not yet removed
    reopened = TinyDBStore(tmp_path / "access.json")
    assert reopened.live() == []
    assert reopened.get("abc234").status is Status.REVOKED


def test_a_torn_archive_tail_is_cut_so_the_next_record_is_whole(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    first = active("first2")
    first.move(Status.REVOKED, START, "alice")
    store.save(first)
    with open(tmp_path / "access.archive.jsonl", "a") as handle:
        handle.write('{"id": "torn')
    reopened = TinyDBStore(tmp_path / "access.json")
    second = active("secnd2")
    second.move(Status.REVOKED, START, "alice")
    reopened.save(second)
    assert [r.id for r in TinyDBStore(tmp_path / "access.json").archived()] == ["first2", "secnd2"]


def test_an_unwritable_store_raises_and_keeps_the_old_state(tmp_path):
    store = TinyDBStore(tmp_path / "db" / "access.json")
    store.save(make_request(id="keep22"))
    # The tests run as root, so permissions would not stop the write: take the directory
    # away instead, as an unmounted volume would.
    (tmp_path / "db").rename(tmp_path / "db-away")
    (tmp_path / "db").write_text("not a directory")
    try:
        with pytest.raises(StoreError, match="could not write"):
            store.save(make_request(id="lost22"))
    finally:
        (tmp_path / "db").unlink()
        (tmp_path / "db-away").rename(tmp_path / "db")
    assert [r.id for r in store.live()] == ["keep22"]
    assert [r.id for r in TinyDBStore(tmp_path / "db" / "access.json").live()] == ["keep22"]
    store.save(make_request(id="lost22", requester="dave"))  # the disk is back: it goes in
    store.close()
    documents = TinyDB(tmp_path / "db" / "access.json").all()
    assert sorted(doc["id"] for doc in documents) == ["keep22", "lost22"]


# -- the TinyDB file as TinyDB itself reads it ------------------------------------------


def test_after_a_clean_close_plain_tinydb_lists_every_live_request(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save_many([active("first2"), make_request(id="pend22", requester="dave")])
    done = active("done22", requester="erin")
    store.save(done)
    done.move(Status.EXPIRED, START, "scheduler")
    store.save(done)
    store.close()

    documents = TinyDB(tmp_path / "access.json").all()
    assert sorted(doc["id"] for doc in documents) == ["first2", "pend22"]
    assert all(isinstance(doc.doc_id, int) for doc in documents)
    assert not (tmp_path / "access.journal.jsonl").read_bytes()  # folded at close


def test_the_db_file_is_a_whole_tinydb_database_between_folds(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("first2"))
    store.compact()
    store.save(make_request(id="pend22", requester="dave"))  # in the journal only
    assert [doc["id"] for doc in TinyDB(tmp_path / "access.json").all()] == ["first2"]
    store.close()


def test_a_start_folds_a_journal_left_by_a_crash(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("first2"))
    assert (tmp_path / "access.journal.jsonl").read_bytes()
    shutil.copy(tmp_path / "access.json", tmp_path / "crashed.json")
    shutil.copy(tmp_path / "access.journal.jsonl", tmp_path / "crashed.journal.jsonl")
    store.close()

    TinyDBStore(tmp_path / "crashed.json").close()  # as a bot killed before its close
    assert [doc["id"] for doc in TinyDB(tmp_path / "crashed.json").all()] == ["first2"]


def test_a_data_directory_of_the_old_layout_is_upgraded_with_its_journal(tmp_path):
    """Snapshot keyed by request id, and a journal of whole requests written after it."""
    kept, changed, done = active("kept22"), active("chng22", requester="dave"), active("done22")
    old = {"requests": {r.id: r.to_dict() for r in (kept, changed, done)}}
    (tmp_path / "access.json").write_text(
        '{"requests":{\n'
        + ",\n".join(f'"{k}":{json.dumps(v)}' for k, v in old["requests"].items())
        + "\n}}"
    )
    changed.record(START, "note", "bot", "changed after the snapshot")
    pending = make_request(id="newp22", requester="erin")
    journal = [changed.to_dict(), pending.to_dict()]
    (tmp_path / "access.journal.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in journal) + '{"id":"torn'
    )
    done.move(Status.EXPIRED, START, "scheduler")
    (tmp_path / "access.archive.jsonl").write_text(json.dumps(done.to_dict()) + "\n")

    store = TinyDBStore(tmp_path / "access.json")
    assert sorted(r.id for r in store.live()) == ["chng22", "kept22", "newp22"]
    assert store.get("chng22").history[-1].note == "changed after the snapshot"
    assert store.get("done22").status is Status.EXPIRED
    store.save(active("more22", requester="frank"))
    store.close()
    documents = TinyDB(tmp_path / "access.json").all()
    assert sorted(doc["id"] for doc in documents) == ["chng22", "kept22", "more22", "newp22"]
    assert len({doc.doc_id for doc in documents}) == 4


# -- one process at a time: the lock file names its holder -------------------------------

HOLD = """
import sys
from accessbot.store import TinyDBStore
store = TinyDBStore(sys.argv[1])
print("open", flush=True)
sys.stdin.readline()
store.close()
"""


def holder(path):
    """A real second process that opens the store and holds it until told to stop."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PLUGINS)},
    )
    assert child.stdout.readline() == "open\n"
    return child


def let_go(child):
    child.stdin.write("\n")
    child.stdin.close()
    assert child.wait(timeout=30) == 0
    child.stdout.close()


def test_a_second_process_is_refused_with_the_holders_pid_until_it_closes(tmp_path):
    path = tmp_path / "data" / "access.json"
    child = holder(path)
    try:
        with pytest.raises(StoreError, match=rf"in use by another process \(pid {child.pid},"):
            TinyDBStore(path)
        named = json.loads((tmp_path / "data" / "access.lock").read_text())
        assert named["pid"] == child.pid and named["host"] and named["since"]
    finally:
        let_go(child)
    TinyDBStore(path).close()  # free again once it closed


def test_the_cli_is_refused_while_a_bot_process_holds_the_store(tmp_path, pg_url):
    path = tmp_path / "data" / "access.json"
    child = holder(path)
    try:
        code, _, err = accessbot(
            "migrate", "--to", pg_url, cwd=tmp_path, env={"ACCESS_DB_PATH": str(path)}
        )
    finally:
        let_go(child)
    assert code == 1 and f"in use by another process (pid {child.pid}" in err


def test_a_process_holding_the_store_keeps_out_a_second_one(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    done = subprocess.run(
        [sys.executable, "-c", HOLD, str(tmp_path / "access.json")],
        input="\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PLUGINS)},
        timeout=60,
    )
    store.close()
    assert done.returncode == 1
    assert f"in use by another process (pid {os.getpid()}" in done.stderr


def test_the_journal_middleware_serves_plain_tinydb_too(tmp_path):
    """Writes it is not told about (TinyDB's own table class) are folded at once."""
    path = tmp_path / "plain.json"
    db = TinyDB(path, storage=JournalMiddleware(AtomicJSONStorage))
    first = db.insert({"name": "first"})
    db.insert({"name": "second"})
    db.remove(doc_ids=[first])
    assert [doc["name"] for doc in TinyDB(path).all()] == ["second"]  # already on disk
    db.close()
    assert [doc["name"] for doc in TinyDB(path, storage=JournalMiddleware()).all()] == ["second"]
