"""`python -m accessbot backup` / `restore`: a consistent copy of one bot's files, taken
while requests flow, put back elsewhere, loaded and verified."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accessbot.audit import AuditLog, chain_files
from accessbot.backup import BackupError, restore_backup, take_backup
from accessbot.service import AccessService
from accessbot.store import FileLock, StoreError, StoreFiles, TinyDBStore
from tests.builders import person, two_resource_policy, wired
from tests.conftest import accessbot, policy_file, request_id, webhook_policy
from tests.fakes import WebhookTarget
from tests.test_domain import make_request

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def paths_env(data: Path) -> dict[str, str]:
    return {
        "ACCESS_DB_PATH": str(data / "access.json"),
        "ACCESS_AUDIT_PATH": str(data / "audit.jsonl"),
    }


def every_request(data: Path) -> dict[str, dict]:
    """id -> the stored version of every request, live and finished, as the bot loads them."""
    store = TinyDBStore(data / "access.json")
    try:
        return {r.id: r.to_dict() for r in [*store.live(), *store.archived()]}
    finally:
        store.close()


def audit_bytes(data: Path) -> bytes:
    return b"".join(path.read_bytes() for path in chain_files(data / "audit.jsonl"))


class Traffic:
    """Requests, approvals, revokes and denials, one after another on a thread, through
    the service, until stopped. Each operation is recorded with the version of its
    request before and after it, and the request as stored after it."""

    def __init__(self, service: AccessService):
        self.service = service
        self.ops: list[tuple[str, int, int]] = []  # (request id, version before, after)
        self.stored: dict[tuple[str, int], dict] = {}
        self.progress = threading.Condition()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _record(self, rid: str, before: int) -> None:
        request = self.service.store.get(rid)
        with self.progress:
            self.ops.append((rid, before, request.version))
            self.stored[(rid, request.version)] = request.to_dict()
            self.progress.notify_all()

    def _run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                user = f"user{n}"
                rid = self.service.request(
                    person(user), "prod-db", timedelta(hours=1), f"INC-{n}"
                ).request.id
                self._record(rid, 0)
                for step in (
                    [lambda r: self.service.approve(person("bob"), r, "ok")]
                    if n % 4 == 1
                    else [
                        lambda r: self.service.approve(person("alice"), r),
                        lambda r, u=user: self.service.revoke(person(u), r),
                    ]
                    if n % 4 == 2
                    else [lambda r: self.service.deny(person("bob"), r, "no")]
                    if n % 4 == 3
                    else []
                ):
                    before = self.service.store.get(rid).version
                    step(rid)
                    self._record(rid, before)
                    self.service.store.compact()  # a fold, as the journal grows, but often
                n += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, count: int) -> None:
        with self.progress:
            self.progress.wait_for(lambda: len(self.ops) >= count or self.error)
        assert self.error is None, self.error


def cut_of(restored: dict[str, dict], ops: list[tuple[str, int, int]]) -> str:
    """Each operation as F (in the copy), P (partly: the copy holds a version between
    its before and after), or N (not in it); one point in time reads F*P?N*."""
    marks = []
    for rid, before, after in ops:
        version = restored.get(rid, {}).get("version", 0)
        marks.append("F" if version >= after else "N" if version <= before else "P")
    return "".join(marks)


@pytest.mark.slow
def test_backups_taken_while_requests_flow_each_restore_one_point_in_time(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    target = WebhookTarget(secret="s3cret")
    policy_file(tmp_path / "policies", "prod.py", two_resource_policy(target.url))
    data = tmp_path / "data"
    # Folds and audit rotations every few operations, so that backups meet both.
    service = wired(
        TinyDBStore(data / "access.json", compact_after=3),
        AuditLog(data / "audit.jsonl", lambda: NOW, max_bytes=2500),
        tmp_path / "policies",
        lambda: NOW,
        pending_timeout=timedelta(hours=1),
    )
    traffic = Traffic(service)
    traffic.thread.start()
    backups = []
    try:
        traffic.wait_for(10)
        # One through the command line, a process of its own, as an operator runs it ...
        out = tmp_path / "cli.tar.gz"
        code, said, err = accessbot("backup", "--out", str(out), cwd=tmp_path, env=paths_env(data))
        assert code == 0, err
        assert re.match(r"backed up \d+ live and \d+ finished requests, \d+ audit events", said)
        backups.append(out)
        # ... and more from this process's main thread, each a few operations later.
        for number in range(8):
            traffic.wait_for(len(traffic.ops) + 3)
            out = tmp_path / f"b{number}.tar.gz"
            take_backup(data / "access.json", data / "audit.jsonl", out, NOW)
            backups.append(out)
        traffic.wait_for(len(traffic.ops) + 3)
    finally:
        traffic.stop.set()
        traffic.thread.join()
        target.close()
    assert traffic.error is None, traffic.error
    assert len(chain_files(data / "audit.jsonl")) > 3  # it rotated meanwhile
    original_audit = audit_bytes(data)

    for number, backup in enumerate(backups):
        restored_dir = tmp_path / f"restored{number}"
        if number == 0:  # restored and verified through the command line, as an operator does
            code, said, err = accessbot(
                "restore", str(backup), cwd=tmp_path, env=paths_env(restored_dir)
            )
            assert code == 0, err
            assert "hash chain verified" in said
            code, said, _ = accessbot("audit", "verify", cwd=tmp_path, env=paths_env(restored_dir))
            assert code == 0 and said.startswith("audit log intact")
        else:  # ... and the others through what the command line calls, in this process
            data_paths = (restored_dir / "access.json", restored_dir / "audit.jsonl")
            restored = restore_backup(backup, *data_paths, False, NOW)
            assert restored.contents.verdict.ok, restored.contents.verdict
            result = AuditLog(data_paths[1], lambda: NOW).verify()
            assert result.ok, str(result)

        restored = every_request(restored_dir)
        cut = cut_of(restored, traffic.ops)
        assert re.fullmatch(r"F+P?N*", cut), f"backup {number} is no point in time: {cut}"
        partial = {traffic.ops[i][0] for i, mark in enumerate(cut) if mark == "P"}
        assert set(restored) <= {rid for rid, _, _ in traffic.ops}
        for rid, stored in restored.items():
            if rid not in partial:  # a version recorded after an operation, exactly
                assert stored == traffic.stored[(rid, stored["version"])]
        # The audit log is the original's, cut between two lines, and already holds
        # every request the store does (each change is audited before it is stored).
        copy = audit_bytes(restored_dir)
        assert original_audit.startswith(copy) and copy.endswith(b"\n")
        audited = {json.loads(line).get("request_id") for line in copy.splitlines()}
        assert set(restored) <= audited


def test_a_backup_restores_into_a_bot_that_carries_on_where_it_was(
    bot_factory, policy_dir, webhook, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    granted = request_id(chat.reply("carol", "!access request prod-db 30m fix the index"))
    chat.say("alice", f"!approve {granted}")
    pending = request_id(chat.reply("dave", "!access request prod-db 1h migrate"))
    denied = request_id(chat.reply("erin", "!access request prod-db 1h look around"))
    chat.say("bob", f"!deny {denied} not today")

    data = tmp_path / "data"
    code, said, err = accessbot("backup", "--out", "b.tar.gz", cwd=tmp_path, env=paths_env(data))
    assert code == 0, err
    assert said.startswith("backed up 2 live and 1 finished requests, 6 audit events")
    # The bot runs: restoring over its files is refused, whatever --force says.
    code, _, err = accessbot("restore", "b.tar.gz", "--force", cwd=tmp_path, env=paths_env(data))
    assert code == 1 and f"a bot is running on {data / 'access.json'}" in err
    assert "stop it first" in err
    bot_factory.stop_last()

    elsewhere = tmp_path / "restored"
    code, said, err = accessbot("restore", "b.tar.gz", cwd=tmp_path, env=paths_env(elsewhere))
    assert code == 0, err
    assert said.startswith("restored 2 live and 1 finished requests, 6 audit events")
    chat = bot_factory(
        ACCESS_DB_PATH=str(elsewhere / "access.json"),
        ACCESS_AUDIT_PATH=str(elsewhere / "audit.jsonl"),
    )
    assert "active" in chat.reply("carol", f"!access show {granted}")
    assert "denied" in chat.reply("erin", f"!access show {denied}")
    assert chat.reply("bob", f"!approve {pending}").startswith(f"Approved {pending}")
    assert "hash chain verified" in chat.reply("admin", "!access audit verify")


@pytest.fixture
def backup_file(tmp_path):
    """A backup of a small store: one pending request and its audit events."""
    data = tmp_path / "source"
    store = TinyDBStore(data / "access.json")
    audit = AuditLog(data / "audit.jsonl", lambda: NOW)
    audit.append("requested", request_id="abc234", actor="carol")
    store.close()
    out = tmp_path / "b.tar.gz"
    take_backup(data / "access.json", data / "audit.jsonl", out, NOW)
    return out


def test_restore_refuses_a_data_directory_that_holds_a_store_unless_forced(backup_file, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "audit.jsonl").write_text('{"seq":1}\n')
    code, _, err = accessbot("restore", str(backup_file), cwd=tmp_path, env=paths_env(data))
    assert code == 1
    assert f"there is already a store or an audit log here ({data / 'audit.jsonl'})" in err
    assert "nothing was restored" in err and "add --force" in err
    assert (data / "audit.jsonl").read_text() == '{"seq":1}\n'

    code, said, err = accessbot(
        "restore", str(backup_file), "--force", cwd=tmp_path, env=paths_env(data)
    )
    assert code == 0, err
    (aside,) = data.glob("before-restore-*")  # its name has the time
    assert said.startswith(f"moved the files that were there to {aside}")
    assert (aside / "audit.jsonl").read_text() == '{"seq":1}\n'
    assert accessbot("audit", "verify", cwd=tmp_path, env=paths_env(data))[0] == 0


def test_the_bot_writes_and_folds_wait_while_a_backup_takes_its_copy(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    backup = FileLock(StoreFiles.of(tmp_path / "access.json").write_lock)
    backup.acquire(exclusive=True)  # what a backup holds while it opens and reads
    done = threading.Event()

    def write_and_fold():
        store.save(make_request(id="abc234"))
        store.compact()
        done.set()

    writer = threading.Thread(target=write_and_fold, daemon=True)
    writer.start()
    assert not done.wait(0.3)  # held off, not failed
    assert not (tmp_path / "access.journal.jsonl").exists()
    backup.close()
    assert done.wait(10)
    writer.join()
    assert store.get("abc234") is not None
    store.close()


def test_a_bot_cannot_open_the_store_while_a_restore_holds_it(tmp_path):
    files = StoreFiles.of(tmp_path / "access.json")
    restoring = FileLock(files.open_lock)
    assert restoring.acquire(exclusive=True, wait=False)
    with pytest.raises(StoreError, match="is being restored from a backup"):
        TinyDBStore(files.snapshot)
    restoring.close()
    TinyDBStore(files.snapshot).close()


def test_restore_of_a_damaged_backup_changes_nothing(backup_file, tmp_path):
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(backup_file) as source, tarfile.open(damaged, "w:gz") as copy:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "audit/audit.jsonl":
                data = data.replace(b"carol", b"mallory")
            member.size = len(data)
            copy.addfile(member, io.BytesIO(data))
    data = tmp_path / "data"
    with pytest.raises(BackupError, match="audit/audit.jsonl is damaged"):
        restore_backup(damaged, data / "access.json", data / "audit.jsonl", False, NOW)
    assert not (data / "audit.jsonl").exists()


def test_restore_of_a_file_that_is_no_backup_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = accessbot("restore", "notes.txt", cwd=tmp_path, env=paths_env(tmp_path))
    assert code == 1
    assert "notes.txt is not a backup made by `python -m accessbot backup`" in err


def test_backup_of_nothing_says_where_it_looked(tmp_path):
    code, _, err = accessbot(
        "backup", "--out", "b.tar.gz", cwd=tmp_path, env=paths_env(tmp_path / "nowhere")
    )
    assert code == 1 and "there is nothing to back up: no store at" in err
    assert not (tmp_path / "b.tar.gz").exists()


def test_backup_on_postgresql_points_to_pg_dump(tmp_path):
    code, _, err = accessbot(
        "backup",
        "--out",
        "b.tar.gz",
        cwd=tmp_path,
        env={"ACCESS_DB_URL": "postgresql://accessbot@db/accessbot"},
    )
    assert code == 2 and "pg_dump -Fc accessbot > accessbot.dump" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_a_restore_run_as_root_gives_the_files_to_the_bots_user(backup_file, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 12345, 12345)  # the directory of the bot's user
    restore_backup(backup_file, data / "access.json", data / "audit.jsonl", False, NOW)
    for path in chain_files(data / "audit.jsonl"):
        assert (path.stat().st_uid, path.stat().st_gid) == (12345, 12345)


def resealed(data: bytes) -> bytes:
    """A store file's digests made again (integrity.py): they are not keyed, so whoever
    changes the file can."""
    from accessbot import integrity

    header = re.match(rb'\{"_digest":\{"1":\{"sha256":"[0-9a-f]{64}"\}\},\n', data)
    if header:
        return integrity.seal_database(data[header.end() :].decode()).encode()
    lines = []
    for line in data.splitlines(keepends=True):
        content = re.sub(rb',"_sha256":"[0-9a-f]{64}"\}\n$', b"}", line)
        lines.append(integrity.seal_line(content.decode()).encode() + b"\n")
    return b"".join(lines)


def forged(backup: Path, out: Path, old: bytes, new: bytes, audit_too=False) -> Path:
    """The backup with `old` replaced by `new` in its store files (and its audit log, its
    hash chain made again), and the manifest's checksums made again: what someone who
    can write the backup file can do."""
    with tarfile.open(backup) as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    files = {}
    changed = []
    for member, data in members:
        if member.name.startswith("store/"):
            data = resealed(data.replace(old, new))
        elif audit_too and member.name.startswith("audit/"):
            data = rechained(data.replace(old, new))
        files[member.name] = data
        changed.append(member)
    manifest = json.loads(files["manifest.json"])
    for name in manifest["files"]:
        manifest["files"][name]["sha256"] = hashlib.sha256(files[name]).hexdigest()
        manifest["files"][name]["bytes"] = len(files[name])
    files["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out, "w:gz") as copy:
        for member in changed:
            member.size = len(files[member.name])
            copy.addfile(member, io.BytesIO(files[member.name]))
    return out


def rechained(log: bytes) -> bytes:
    """An audit log's lines with each `prev` made again: the chain verifies."""
    lines, prev = [], None
    for line in log.splitlines():
        record = json.loads(line)
        if prev is not None:
            record["prev"] = prev
        data = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
        prev = hashlib.sha256(data).hexdigest()
        lines.append(data + b"\n")
    return b"".join(lines)


def test_a_restored_grant_whose_end_differs_from_its_audited_end_is_refused_by_name(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    target = WebhookTarget(secret="s3cret")
    policy_file(tmp_path / "policies", "prod.py", two_resource_policy(target.url))
    data = tmp_path / "data"
    store, audit = TinyDBStore(data / "access.json"), AuditLog(data / "audit.jsonl", lambda: NOW)
    service = wired(store, audit, tmp_path / "policies", lambda: NOW)
    try:
        rid = request_id(
            service.request(person("carol"), "prod-db", timedelta(minutes=30), "fix").reply
        )
        service.approve(person("alice"), rid)
        grant = store.get(rid)
        assert grant.status.value == "active"
    finally:
        store.close()
        target.close()
    take_backup(data / "access.json", data / "audit.jsonl", tmp_path / "b.tar.gz", NOW)
    end = grant.expires_at.isoformat().replace("+00:00", "Z").encode()
    year = (grant.expires_at + timedelta(days=365)).isoformat().replace("+00:00", "Z").encode()
    with tarfile.open(tmp_path / "b.tar.gz") as backup:
        stored = [backup.extractfile(n).read() for n in backup.getnames() if "store/" in n]
    assert any(end in data for data in stored)  # the grant's end is in the store files
    bad = forged(tmp_path / "b.tar.gz", tmp_path / "forged.tar.gz", end, year)
    elsewhere = tmp_path / "restored"

    with pytest.raises(BackupError) as refused:
        restore_backup(bad, elsewhere / "access.json", elsewhere / "audit.jsonl", False, NOW)

    assert rid in str(refused.value) and "audit log" in str(refused.value)
    assert "nothing was restored" in str(refused.value)
    assert not (elsewhere / "access.json").exists()
    restore_backup(
        tmp_path / "b.tar.gz", elsewhere / "access.json", elsewhere / "audit.jsonl", False, NOW
    )


def test_with_access_backup_key_a_backup_changed_after_it_was_taken_is_refused(
    backup_file, tmp_path
):
    source = tmp_path / "source"
    signed = tmp_path / "signed.tar.gz"
    take_backup(source / "access.json", source / "audit.jsonl", signed, NOW, key="k3y")
    # Store and audit log rewritten together, checksums made again: the chain still
    # verifies (it is not keyed), the signature does not.
    bad = forged(signed, tmp_path / "forged.tar.gz", b"abc234", b"abc235", audit_too=True)
    data = tmp_path / "data"

    with pytest.raises(BackupError, match="does not match ACCESS_BACKUP_KEY"):
        restore_backup(bad, data / "access.json", data / "audit.jsonl", False, NOW, key="k3y")
    with pytest.raises(BackupError, match="is not signed with ACCESS_BACKUP_KEY"):
        restore_backup(
            backup_file, data / "access.json", data / "audit.jsonl", False, NOW, key="k3y"
        )
    assert not (data / "audit.jsonl").exists()

    restored = restore_backup(
        signed, data / "access.json", data / "audit.jsonl", False, NOW, key="k3y"
    )
    assert restored.signature == "signature verified with ACCESS_BACKUP_KEY"
