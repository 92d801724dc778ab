"""Reading the audit log from its end: `!access audit` costs the same at any size, and
bulk appends chain like single ones."""

from __future__ import annotations

from accessbot.audit import AuditLog, chain_files, verify_chain
from tests.conftest import FakeClock


def test_the_newest_events_are_read_backwards_across_rotated_files(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock(), max_bytes=600)
    for number in range(30):
        log.append("requested", actor="carol", request_id=f"r{number}")
    assert len(chain_files(log.path)) > 3

    assert [e["request_id"] for e in log.query(limit=12)] == [f"r{n}" for n in range(18, 30)]
    assert [e["request_id"] for e in log.events_newest_first()][:3] == ["r29", "r28", "r27"]
    assert [e["request_id"] for e in log.query(request_id="r3")] == ["r3"]


def test_a_torn_last_line_is_not_an_event(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    for number in range(3):
        log.append("requested", actor="carol", request_id=f"r{number}")
    with open(log.path, "ab") as handle:
        handle.write(b'{"event":"requested","request_id":"torn"')
    assert [e["request_id"] for e in log.query()] == ["r0", "r1", "r2"]


def test_filters_match_exactly_and_names_with_accents_are_found(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    log.append("requested", actor="zoë", user="zoë", resource="prod-db", request_id="abc")
    log.append("approved", actor="bob", user="zoë", resource="prod-db", request_id="abc")
    log.append("requested", actor="zo", user="zo", resource="prod-db-2", request_id="abcd")
    log.append("requested", actor="carol", user="carol", detail='"user":"zoë"')

    assert [e["actor"] for e in log.query(user="zoë")] == ["zoë", "bob"]
    assert [e["user"] for e in log.query(resource="prod-db")] == ["zoë", "zoë"]
    assert [e["request_id"] for e in log.query(request_id="abc")] == ["abc", "abc"]
    assert log.query(user="zo", resource="prod-db") == []


def test_many_events_appended_at_once_chain_like_single_ones(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", FakeClock(), max_bytes=2000)
    log.append("requested", actor="carol", request_id="r0")
    written = log.append_many(
        ("requested", {"actor": "carol", "request_id": f"r{n}"}) for n in range(1, 40)
    )
    log.append("requested", actor="carol", request_id="r40")

    assert [e["seq"] for e in written] == list(range(2, 41))
    result = verify_chain(chain_files(log.path))
    assert result.ok and result.lines == 41 and result.files > 1
    assert [e["request_id"] for e in log.query(limit=0)] == [f"r{n}" for n in range(41)]
