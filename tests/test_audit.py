"""The audit log: hash chain, tamper evidence, rotation, torn tails."""

import json

import pytest

from accessbot.audit import AuditLog, chain_files, rotated_files, verify_chain, verify_file
from accessbot.settings import Settings, SettingsError, parse_size
from tests.conftest import FakeClock


def write_events(log: AuditLog, count: int, **fields) -> None:
    for number in range(count):
        log.append("requested", actor="carol", request_id=f"r{number}", **fields)


def lines_of(path):
    return path.read_bytes().splitlines(keepends=True)


def test_a_fresh_log_starts_from_a_recorded_seed_and_verifies(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    write_events(log, 3)
    first = json.loads(lines_of(log.path)[0])
    assert len(first["seed"]) == 32 and first["seq"] == 1
    result = log.verify()
    assert result.ok and result.lines == 3
    assert str(result) == "audit log intact: 3 events, hash chain verified"


def test_an_edited_line_is_named(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    write_events(log, 5)
    lines = lines_of(log.path)
    lines[2] = lines[2].replace(b"carol", b"mallory")
    log.path.write_bytes(b"".join(lines))
    result = verify_file(log.path)
    assert not result.ok and result.bad_line == 4  # line 3 changed, so line 4 no longer follows


def test_a_removed_line_is_reported_as_missing(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    write_events(log, 5)
    lines = lines_of(log.path)
    del lines[1]
    log.path.write_bytes(b"".join(lines))
    result = verify_file(log.path)
    assert not result.ok and result.bad_line == 2
    assert "event 3 follows event 1 (1 event(s) missing before it)" in result.reason


def test_an_edited_seed_breaks_the_first_line(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    write_events(log, 2)
    lines = lines_of(log.path)
    record = json.loads(lines[0])
    record["seed"] = "0" * 32
    lines[0] = json.dumps(record).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))
    assert verify_file(log.path).bad_line == 1


def test_removing_the_last_lines_is_noticed_by_the_bot_that_wrote_them(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    write_events(log, 4)
    log.path.write_bytes(b"".join(lines_of(log.path)[:2]))
    result = log.verify()
    assert not result.ok
    assert (
        "written up to event 4" in result.reason and "last 2 line(s) were removed" in result.reason
    )


def test_rotation_starts_a_new_file_that_continues_the_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock(), max_bytes=600)
    write_events(log, 20)
    files = chain_files(log.path)
    assert len(files) > 3 and files[-1] == log.path
    assert [p.name for p in rotated_files(log.path)][:2] == ["audit.jsonl.1", "audit.jsonl.2"]
    for older, newer in zip(files, files[1:]):
        last = lines_of(older)[-1][:-1]
        first = json.loads(lines_of(newer)[0])
        assert "seed" not in first
        assert first["continues"] == first["prev"]
        import hashlib

        assert first["continues"] == hashlib.sha256(last).hexdigest()
    assert all(p.stat().st_size <= 600 for p in files)
    result = log.verify()
    assert result.ok and result.lines == 20 and result.files == len(files)
    assert [e["request_id"] for e in log.events()] == [f"r{n}" for n in range(20)]
    assert len(log.query(limit=0)) == 20


def test_a_missing_rotated_file_breaks_the_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock(), max_bytes=600)
    write_events(log, 20)
    (tmp_path / "audit.jsonl.2").unlink()
    result = verify_chain(chain_files(log.path))
    assert not result.ok and result.file.endswith("audit.jsonl.3") and result.bad_line == 1
    assert "does not continue audit.jsonl.1" in result.reason


def test_a_missing_first_file_is_reported(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock(), max_bytes=600)
    write_events(log, 20)
    (tmp_path / "audit.jsonl.1").unlink()
    result = verify_chain(chain_files(log.path))
    assert not result.ok and "continues an earlier audit file that is missing" in result.reason


def test_a_rotated_file_verifies_on_its_own_from_its_continues(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock(), max_bytes=600)
    write_events(log, 20)
    assert verify_file(tmp_path / "audit.jsonl.2").ok


def test_a_restarted_log_continues_the_chain_even_after_a_crash_mid_rotation(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_events(AuditLog(path, FakeClock(), max_bytes=600), 7)
    # The crash came after the rename and before the new file's first line.
    path.rename(path.with_name(f"audit.jsonl.{len(rotated_files(path)) + 1}"))
    restarted = AuditLog(path, FakeClock(), max_bytes=600)
    write_events(restarted, 2)
    assert json.loads(lines_of(path)[0])["seq"] == 8
    assert restarted.verify().ok


def test_a_torn_tail_from_a_crash_is_cut_and_the_cut_is_recorded(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_events(AuditLog(path, FakeClock()), 3)
    with open(path, "ab") as handle:
        handle.write(b'{"seq":4,"event":"appr')  # the crash: no newline, never acknowledged
    assert not verify_file(path).ok
    restarted = AuditLog(path, FakeClock())
    restarted.append("approved", actor="bob")
    events = list(restarted.events())
    assert [e["event"] for e in events] == ["requested"] * 3 + ["audit_repaired", "approved"]
    assert "torn, unacknowledged last line of 22 bytes" in events[3]["detail"]
    assert restarted.verify().ok


def test_an_unwritable_audit_log_raises_and_the_next_write_still_chains(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, FakeClock())
    write_events(log, 2)
    path.rename(tmp_path / "moved")
    path.mkdir()  # opening a directory for append fails, even for root
    from accessbot.audit import AuditError

    with pytest.raises(AuditError, match="could not write the audit log"):
        log.append("requested", actor="carol")
    path.rmdir()
    (tmp_path / "moved").rename(path)
    log.append("requested", actor="carol")
    assert log.verify().ok and log.verify().lines == 3


def test_query_filters_by_user_resource_and_time(tmp_path):
    clock = FakeClock()
    log = AuditLog(tmp_path / "audit.jsonl", clock)
    log.append("requested", actor="carol", user="carol", resource="prod-db")
    clock.advance(days=2)
    log.append("requested", actor="dave", user="dave", resource="prod-db")
    log.append("requested", actor="carol", user="carol", resource="staging-db")
    assert len(log.query(user="carol", limit=0)) == 2
    assert len(log.query(resource="prod-db", limit=0)) == 2
    assert [
        e["user"] for e in log.query(since=clock() - __import__("datetime").timedelta(days=1))
    ] == [
        "dave",
        "carol",
    ]


@pytest.mark.parametrize(
    ("text", "size"), [("52428800", 52428800), ("50MB", 50 << 20), ("512k", 512 << 10), ("0", 0)]
)
def test_audit_max_bytes_takes_plain_sizes(text, size):
    assert parse_size(text) == size
    assert Settings.load(environ={"ACCESS_AUDIT_MAX_BYTES": text}).audit_max_bytes == size


def test_a_bad_audit_max_bytes_says_what_to_write():
    with pytest.raises(SettingsError, match="like 50MB"):
        Settings.load(environ={"ACCESS_AUDIT_MAX_BYTES": "lots"})


def test_a_targets_megabyte_error_is_cut_in_the_audit_event_that_records_it(tmp_path):
    from accessbot.memory_store import MemoryStore
    from accessbot.unit_of_work import UnitOfWork
    from tests.test_domain import make_request

    audit = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    request = make_request(id="k3m9qx")
    uow = UnitOfWork(MemoryStore(), audit)

    uow.commit(request, "revoke_failed", "bot", outcome="revoke_failed", detail="E" * 1_000_000)

    line = (tmp_path / "audit.jsonl").read_text()
    assert len(line) < 3000
    assert json.loads(line)["detail"].endswith("[cut: 998000 more characters]")
