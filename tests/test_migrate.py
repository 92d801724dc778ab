"""`python -m accessbot migrate --to postgresql://...`, and the audit commands reading the
audit table, run as real subprocesses against a real PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from accessbot.audit import chain_files
from accessbot.domain import Status
from accessbot.postgres import Database, PostgresAuditLog, PostgresStore
from accessbot.store import TinyDBStore
from tests.builders import build_service, month_of_activity, person
from tests.conftest import FakeClock
from tests.test_cli import accessbot, deployed


@pytest.fixture
def deployment(tmp_path, webhook, monkeypatch):
    """A month of traffic on TinyDB, the audit rotated over several files."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=31))
    service = build_service(tmp_path, clock, webhook.url, audit_max_bytes=16384)
    ids = month_of_activity(service, clock, webhook)
    service.store.close()  # the bot stopped: the store's lock file keeps out other processes
    return tmp_path, ids, clock


def test_migrate_copies_live_records_archive_and_audit_and_checks_them(deployment, pg_url):
    root, ids, _ = deployment
    files = chain_files(root / "data" / "audit.jsonl")
    assert len(files) > 1  # rotated: the chain spans files

    code, out, err = deployed("migrate", "--to", pg_url, cwd=root)
    assert code == 0, err
    source = TinyDBStore(root / "data" / "access.json")  # after migrate let go of it
    assert f"copied {len(source.live())} live and {len(list(source.archived()))} archived" in out
    assert "counts checked; audit log intact" in out
    assert "Now set ACCESS_DB_URL=" in out

    db = Database(pg_url, heartbeat=False)
    try:
        store, audit = PostgresStore(db), PostgresAuditLog(db, FakeClock())
        assert [r.id for r in store.live()] == [r.id for r in source.live()]
        assert [r.id for r in store.archived()] == [r.id for r in source.archived()]
        for name in ("denied", "revoked", "holding", "failing"):
            assert store.get(ids[name]).to_dict() == {
                **source.get(ids[name]).to_dict(),
                "version": store.get(ids[name]).version,
            }
        file_lines = [line for f in files for line in f.read_text().splitlines()]
        assert list(audit.lines()) == file_lines  # byte for byte: the same chain
    finally:
        db.close()
        source.close()


def test_the_bots_continue_the_migrated_chain(deployment, pg_url, webhook):
    root, ids, clock = deployment
    assert deployed("migrate", "--to", pg_url, cwd=root)[0] == 0
    service = build_service(root, clock, webhook.url, db_url=pg_url)
    try:
        service.revoke(person("dave"), ids["holding"])
        assert service.store.get(ids["holding"]).status is Status.REVOKED
        result = service.audit.verify()
        assert result.ok, str(result)
    finally:
        service.store.close()
    code, out, _ = accessbot("audit", "verify", pg_url, cwd=root)
    assert code == 0 and out.startswith("audit log intact: ")


def test_migrate_refuses_a_database_that_is_not_empty(deployment, pg_url):
    root, _, _ = deployment
    assert deployed("migrate", "--to", pg_url, cwd=root)[0] == 0
    code, _, err = deployed("migrate", "--to", pg_url, cwd=root)
    assert code == 1
    assert "already holds" in err and "only writes into an empty database" in err


def test_migrate_refuses_a_broken_audit_log_and_copies_nothing(deployment, pg_url):
    root, _, _ = deployment
    live = root / "data" / "audit.jsonl"
    lines = live.read_text().splitlines(keepends=True)
    live.write_text("".join(lines[:1] + lines[2:]))  # a line removed
    code, _, err = deployed("migrate", "--to", pg_url, cwd=root)
    assert code == 1 and "does not verify" in err and "nothing was copied" in err
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'requests'")
        assert tables.fetchone()[0] == 0  # not even the schema was made


def test_migrate_needs_a_postgresql_url(tmp_path):
    code, _, err = accessbot("migrate", "--to", "data/other.json", cwd=tmp_path)
    assert code == 2 and "must be a PostgreSQL URL like postgresql://" in err


def test_audit_export_and_verify_read_the_table_when_access_db_url_is_set(deployment, pg_url):
    root, _, _ = deployment
    from_files = deployed("audit", "export", "--format", "jsonl", cwd=root)
    assert deployed("migrate", "--to", pg_url, cwd=root)[0] == 0
    env = {"ACCESS_DB_URL": pg_url}
    code, out, err = accessbot("audit", "export", "--format", "jsonl", cwd=root, env=env)
    assert code == 0 and "hash chain verified" in err
    assert [json.loads(x) for x in out.splitlines()] == [
        json.loads(x) for x in from_files[1].splitlines()
    ]
    code, out, _ = accessbot("audit", "verify", cwd=root, env=env)
    assert code == 0 and "audit table at postgresql://" not in out and "intact" in out
    code, out, _ = accessbot("report", "--out", str(root / "r.html"), cwd=root, env=env)
    assert code == 0 and os.path.getsize(root / "r.html") > 1000
