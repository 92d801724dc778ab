"""The store's files carry a digest of their content, and the store is checked against
the audit log at start: a change that leaves valid JSON is caught, the bot starts
degraded on the audit log's grants and revokes them on time; it never starts on a
silently changed store, and never refuses to start (issue 26, item 2)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from accessbot.backends import open_backend
from accessbot.domain import Status
from accessbot.policy import load_policies
from accessbot.rebuild import checked_against_audit, strategy_of
from accessbot.settings import Settings
from accessbot.store import StoreError, StoreFiles, TinyDBStore
from tests import flip_scan
from tests.conftest import eventually, policy_file, request_id, sent_at_start, webhook_policy

DIGEST_LINE = re.compile(rb'\{"_digest":\{"1":\{"sha256":"[0-9a-f]{64}"\}\},\n')
LINE_DIGEST = re.compile(rb',"_sha256":"[0-9a-f]{64}"\}\n')


@pytest.fixture
def fixture(tmp_path, webhook):
    return flip_scan.build(tmp_path, webhook.url)


def data_of(fixture, tmp_path, **changed: bytes):
    """The fixture's data folder in tmp_path/copy, with some files replaced; its settings."""
    data = tmp_path / "copy" / "data"
    data.mkdir(parents=True)
    for name, content in fixture.files.items():
        (data / name).write_bytes(changed.get(name.replace(".", "_"), content))
    return Settings(
        policy_dir=str(fixture.root / "policies"),
        db_path=str(data / "access.json"),
        audit_path=str(data / "audit.jsonl"),
    )


def test_a_sample_of_single_byte_changes_in_each_store_file_is_never_silent_nor_refused(
    fixture, tmp_path
):
    found = flip_scan.scan(fixture, tmp_path / "work", sample=45)

    for name in flip_scan.FILES:
        counts = found[name]
        assert sum(counts.values()) == 45, name
        assert counts["degraded"] > 30, (name, counts)  # damage is seen, not guessed around
    assert fixture.failures == []


@pytest.mark.parametrize(
    "name, old, new",
    [
        ("access.json", b"pending in the snapshot", b"pending in the snapshoT"),
        ("access.journal.jsonl", b"pending in the journal", b"pending in the journaL"),
        ("access.archive.jsonl", b'"requester":"gina"', b'"requester":"gino"'),
    ],
)
def test_a_change_that_leaves_valid_json_is_caught_by_the_file_s_digest(
    fixture, tmp_path, name, old, new
):
    content = fixture.files[name]
    assert content.count(old) >= 1
    settings = data_of(fixture, tmp_path, **{name.replace(".", "_"): content.replace(old, new)})

    with pytest.raises(StoreError, match="does not match its digest"):
        open_backend(settings, fixture.clock)


def unsealed(content: bytes) -> bytes:
    """A file as a version before the digests wrote it."""
    return LINE_DIGEST.sub(b"}\n", DIGEST_LINE.sub(b"{", content))


def test_a_store_written_before_digests_loads_and_gets_them_as_it_is_written(
    fixture, tmp_path, caplog
):
    old = {name.replace(".", "_"): unsealed(fixture.files[name]) for name in flip_scan.FILES}
    assert b"sha256" not in b"".join(old.values())
    settings = data_of(fixture, tmp_path, **old)

    with caplog.at_level(logging.WARNING):
        store = TinyDBStore(settings.db_path)
    assert flip_scan.behaviour(store, fixture.ids, fixture.clock) == fixture.baseline
    assert "has no digest of its content (an older version wrote it)" in caplog.text
    assert "without a digest (an older version wrote them)" in caplog.text
    (request,) = store.live_in({Status.PENDING})[:1]
    store.save(request)
    store.close()  # folds the journal into access.json

    files = StoreFiles.of(settings.db_path)
    assert DIGEST_LINE.match(files.snapshot.read_bytes())
    TinyDBStore(settings.db_path).close()  # and it reads back


def test_a_record_that_parses_but_is_no_request_is_damage_not_a_crash(fixture, tmp_path):
    old = unsealed(fixture.files["access.json"])  # no digest to catch it first
    settings = data_of(fixture, tmp_path, access_json=old.replace(b'"pending"', b'"pendinf"', 1))

    with pytest.raises(StoreError, match="holds a record that is not a request"):
        open_backend(settings, fixture.clock)


def test_a_grant_made_longer_in_a_store_without_its_digest_starts_degraded_on_the_audited_end(
    fixture, tmp_path
):
    snapshot = unsealed(fixture.files["access.json"])  # what an attacker would strip
    (grant_id, (_, end)) = next(iter(fixture.grants.items()))
    audited = end.isoformat().replace("+00:00", "Z").encode()
    assert snapshot.count(audited) == 1
    longer = (end + timedelta(days=365)).isoformat().replace("+00:00", "Z").encode()
    settings = data_of(fixture, tmp_path, access_json=snapshot.replace(audited, longer))

    backend, degraded = checked_against_audit(
        open_backend(settings, fixture.clock), settings, fixture.clock
    )
    try:
        assert degraded.startswith("the store does not match the audit log (1 difference(s)")
        assert f"grant of {grant_id} (prod-db)" in degraded
        assert "python -m accessbot store rebuild" in degraded
        backend.store.fill(
            StoreFiles.of(settings.db_path),
            backend.audit.events(),
            strategy_of(load_policies(settings.policy_dir)),
        )
        assert grant_id not in [
            r.id for r in backend.store.due_for_revocation(end - timedelta(seconds=1))
        ]
        assert grant_id in [r.id for r in backend.store.due_for_revocation(end)]
    finally:
        backend.close()


def test_a_store_that_agrees_with_its_audit_log_starts_normally(fixture, tmp_path):
    settings = data_of(fixture, tmp_path)

    backend, degraded = checked_against_audit(
        open_backend(settings, fixture.clock), settings, fixture.clock
    )
    try:
        assert degraded is None
        assert flip_scan.behaviour(backend.store, fixture.ids, fixture.clock) == fixture.baseline
    finally:
        backend.close()


def test_a_grant_s_end_changed_in_access_json_starts_the_bot_degraded_and_it_revokes_on_time(
    bot_factory, policy_dir, webhook, clock, tmp_path, caplog
):
    """Through the real bot: one digit of a grant's end changed (valid JSON, 10 hours
    later) in access.json; the bot starts degraded, says so once, and revokes at the end
    the audit log holds."""
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    assert chat.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}:")
    bot_factory.stop_last()  # a clean stop: everything is in access.json
    path = tmp_path / "data" / "access.json"
    text = path.read_bytes()
    assert text.count(b'"expires_at":"2026-11-24T09:30') == 1
    path.write_bytes(text.replace(b"2026-11-24T09:30", b"2026-11-24T19:30", 1))

    with caplog.at_level(logging.WARNING):
        chat = bot_factory()
        said = sent_at_start(chat, caplog)
    told = [t for t in said if "the store cannot be read" in t]
    assert len(told) == 1, said
    assert "does not match its digest" in told[0] and "store rebuild" in told[0]
    clock.advance(minutes=29)
    assert webhook.count("revoke", rid) == 0
    clock.advance(minutes=2)
    chat.wait_for("carol", f"request {rid}) has expired")
    assert webhook.count("revoke", rid) == 1


def test_a_degraded_start_does_not_end_a_grant_on_a_forged_line_after_the_chain_broke(
    bot_factory, policy_dir, webhook, clock, tmp_path, caplog
):
    from tests.test_rebuild import flip
    from tests.test_store_rebuild_cli import forge_expired

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 2h fixing INC-42"))
    assert chat.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}:")
    bot_factory.stop_last()
    forge_expired(tmp_path / "data" / "audit.jsonl", rid, "2026-11-24T09:05:00Z")
    flip(tmp_path / "data" / "access.json")

    with caplog.at_level(logging.WARNING):
        chat = bot_factory()
        said = sent_at_start(chat, caplog)
    told = [t for t in said if "the store cannot be read" in t]
    assert len(told) == 1, said
    # Where the chain is said to break depends on how verify names an edit (the forged line
    # copies the granted one's fields): whatever else is listed, the forged end is not believed.
    assert "Not trusted:\n- event " in told[0]
    assert f"- event 4: expired of {rid} (not believed" in told[0]
    eventually(lambda: webhook.count("revoke", rid) == 1, "revoked again at once, at its target")


def test_the_archive_index_file_is_used_only_while_its_digest_and_the_archive_s_match(
    tmp_path, caplog
):
    from tests.test_store_indexes import answers, archive_with_index

    expected = answers(archive_with_index(tmp_path))
    index = tmp_path / "access.archive.index.json"
    archive = tmp_path / "access.archive.jsonl"
    good_index, good_archive = index.read_bytes(), archive.read_bytes()
    assert TinyDBStore(tmp_path / "access.json")._archive_indexed_to > 0

    # A request's offset changed (valid JSON): the whole archive is read.
    found = re.search(rb'"old001":(\d+)', good_index)
    moved = str(int(found.group(1)) + 1).encode()
    index.write_bytes(good_index[: found.start(1)] + moved + good_index[found.end(1) :])
    assert index.read_bytes() != good_index
    store = TinyDBStore(tmp_path / "access.json")
    assert store._archive_indexed_to == 0 and "its digest does not match" in caplog.text
    assert answers(store) == expected

    # A line the index covers changed (valid JSON): caught, not trusted on the index's word.
    index.write_bytes(good_index)
    archive.write_bytes(good_archive.replace(b'"requester":"dave"', b'"requester":"davf"', 1))
    with pytest.raises(StoreError, match="does not match its digest"):
        TinyDBStore(tmp_path / "access.json")


def test_the_check_at_start_parses_only_the_events_that_move_a_grant(tmp_path):
    from accessbot.audit import AuditLog
    from accessbot.rebuild import grant_events
    from tests.helpers import FakeClock

    audit = AuditLog(tmp_path / "audit.jsonl", FakeClock())
    audit.append("requested", request_id="abc234", reason='"event":"expired" in a reason')
    audit.append("granted", request_id="abc234", expires_at="2026-11-24T09:30:00Z")
    audit.append("expiry_reminder", request_id="abc234")
    audit.append("expired", request_id="abc234")
    with open(audit.path, "ab") as handle:  # another writer's spacing: still read
        handle.write(b'{"event": "revoked", "request_id": "def567"}\n')

    found = list(grant_events(audit))

    assert [e["event"] for e in found] == [found[0]["event"], "granted", "expired", "revoked"]
    assert "seed" in found[0]  # the first line: the log starts where its chain does
    assert found[1]["expires_at"] == "2026-11-24T09:30:00Z"  # parsed whole
    assert found[2:] == [  # an end: whose is all it takes
        {"event": "expired", "request_id": "abc234"},
        {"event": "revoked", "request_id": "def567"},
    ]
