"""The TinyDB store: atomic, archived, and refusing to start on a damaged file."""

import json
from datetime import timedelta

import pytest

from accessbot.domain import Status
from accessbot.store import StoreError, TinyDBStore
from tests.conftest import START
from tests.test_domain import make_request


def active(request_id="abc234", minutes=30):
    request = make_request(id=request_id, duration=timedelta(minutes=minutes))
    request.add_approval("alice", START)
    request.activate(START)
    return request


def test_saved_requests_are_there_after_reopening(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(make_request(id="pend22"))
    store.save(active("actv22"))
    again = TinyDBStore(tmp_path / "access.json")
    assert {r.id for r in again.live()} == {"pend22", "actv22"}
    assert again.get("actv22").status is Status.ACTIVE


def test_finished_requests_move_to_the_archive_and_are_still_found(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    request = active()
    store.save(request)
    request.move(Status.EXPIRED, START + timedelta(minutes=30), "scheduler")
    store.save(request)
    assert store.live() == []
    store.compact()
    hot = json.loads((tmp_path / "access.json").read_text())
    assert hot["requests"] == {}
    reopened = TinyDBStore(tmp_path / "access.json")
    assert reopened.get("abc234").status is Status.EXPIRED
    assert [r.id for r in reopened.archived()] == ["abc234"]


def test_due_for_expiry_finds_only_grants_past_their_end(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("short2", minutes=5))
    store.save(active("long22", minutes=60))
    store.save(make_request(id="pend22"))
    assert store.due_for_expiry(START + timedelta(minutes=4)) == []
    assert [r.id for r in store.due_for_expiry(START + timedelta(minutes=5))] == ["short2"]


def test_a_failed_revoke_is_due_again_only_at_its_retry_time(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    request = active()
    request.move(Status.REVOKE_FAILED, START + timedelta(minutes=30), "scheduler", "500")
    request.next_retry_at = START + timedelta(minutes=31)
    store.save(request)
    assert store.due_for_expiry(START + timedelta(minutes=30, seconds=30)) == []
    assert len(store.due_for_expiry(START + timedelta(minutes=31))) == 1


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
