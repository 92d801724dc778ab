"""Nothing readable by others: the files the core makes are 0600 whatever the umask (a
library user too), the bot says so when its data folder is open to others, /metrics
wants ACCESS_METRICS_TOKEN when it is set, and no sink URL's path reaches a label."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from accessbot.backends import exposed_folders
from accessbot.backup import restore_backup, take_backup
from accessbot.metrics import bearer_allows, sink_label
from accessbot.notices import Notice
from accessbot.outbox import FileOutbox
from accessbot.settings import Settings
from tests.builders import build_service, person
from tests.conftest import sent_at_start
from tests.helpers import FakeClock, policy_file, webhook_policy
from tests.test_metrics import scrape


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # what a library user's process typically has
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def data_files(folder: Path) -> dict[str, int]:
    """The mode of every file the core made there (the lock files hold only a pid)."""
    return {
        str(p.relative_to(folder)): mode(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_every_file_of_the_store_audit_outbox_backup_and_restore_is_0600_under_umask_022(
    tmp_path, webhook, umask_022
):
    clock = FakeClock()
    service = build_service(tmp_path, clock, webhook.url)
    rid = service.request(person("carol"), "prod-db", timedelta(hours=1), "INC-1").request.id
    service.approve(person("bob"), rid)
    service.revoke(person("carol"), rid)  # a finished request: the archive
    service.request(person("dave"), "prod-db", timedelta(hours=1), "INC-2")  # the journal
    service.store.close()
    data = tmp_path / "data"
    outbox = FileOutbox(data / "access.outbox.jsonl")
    outbox.put([Notice("admins", "", "hello")], datetime.now(UTC))
    made = data_files(data)
    assert {"access.json", "access.archive.jsonl", "audit.jsonl", "access.outbox.jsonl"} <= set(
        made
    )
    assert made == dict.fromkeys(made, 0o600)
    assert mode(data) == 0o700

    backup = tmp_path / "backup.tar.gz"
    take_backup(data / "access.json", data / "audit.jsonl", backup, datetime.now(UTC))
    assert mode(backup) == 0o600
    restored = tmp_path / "restored"
    restore_backup(
        backup, restored / "access.json", restored / "audit.jsonl", False, datetime.now(UTC)
    )
    put_back = data_files(restored)
    assert {"access.json", "audit.jsonl"} <= set(put_back)
    assert put_back == dict.fromkeys(put_back, 0o600)


def test_a_data_folder_open_to_others_is_told_at_start(bot_factory, policy_dir, webhook, caplog):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    # Under /tmp itself (pytest's tmp_path sits in a folder only its owner may enter).
    root = Path(tempfile.mkdtemp(prefix="accessbot-open-"))
    try:
        os.chmod(root, 0o755)
        (root / "data").mkdir()
        os.chmod(root / "data", 0o755)
        settings = Settings.load(
            environ={
                "ACCESS_DB_PATH": str(root / "data" / "access.json"),
                "ACCESS_AUDIT_PATH": str(root / "data" / "audit.jsonl"),
            }
        )
        [warning] = exposed_folders(settings)
        assert "is open to other users (mode 0755)" in warning
        assert f"chmod 700 {root / 'data'}" in warning

        with caplog.at_level(logging.WARNING):
            chat = bot_factory(
                ACCESS_DB_PATH=str(root / "data" / "access.json"),
                ACCESS_AUDIT_PATH=str(root / "data" / "audit.jsonl"),
            )
            [told] = [t for t in sent_at_start(chat, caplog) if "open to other users" in t]
        assert "(mode 0755)" in told
        assert not chat.reply("carol", "!access mine").startswith("The access bot did not")
        bot_factory.stop_last()

        os.chmod(root / "data", 0o700)
        assert exposed_folders(settings) == []
    finally:
        shutil.rmtree(root)


def test_a_data_folder_inside_a_private_one_is_out_of_others_reach(tmp_path):
    outer = tmp_path / "home"
    (outer / "data").mkdir(parents=True)
    os.chmod(outer, 0o700)
    os.chmod(outer / "data", 0o755)
    settings = Settings.load(environ={"ACCESS_DB_PATH": str(outer / "data" / "access.json")})
    assert [w for w in exposed_folders(settings) if str(outer) in w] == []


def test_metrics_want_the_bearer_token_when_one_is_set_and_health_stays_open(
    start_bot, fake, monkeypatch
):
    token = "metrics-t0ken-8f3a"
    monkeypatch.setenv("ACCESS_METRICS_TOKEN", token)
    bot = start_bot("http")
    url = bot.url("/metrics")
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert token not in wrong.text
    basic = requests.get(url, headers={"Authorization": f"Basic {token}"}, timeout=10)
    assert basic.status_code == 401
    right = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert right.status_code == 200 and "accessbot_requests" in right.text
    fake.wait(lambda: requests.get(bot.url("/health"), timeout=10).status_code == 200, "health")
    assert repr(bot.plugin.settings).count(token) == 0  # never in a repr or a log line


def test_bearer_allows_only_the_exact_token():
    assert bearer_allows(None, None) and bearer_allows("anything", "")
    assert bearer_allows("Bearer s3cret", "s3cret") and bearer_allows("bearer  s3cret", "s3cret")
    assert not bearer_allows(None, "s3cret")
    assert not bearer_allows("Bearer s3cre", "s3cret")
    assert not bearer_allows("Bearer s3cret-and-more", "s3cret")
    assert not bearer_allows("s3cret", "s3cret")


def test_a_token_in_a_sink_urls_path_never_becomes_a_metric_label(start_bot, fake, monkeypatch):
    secret_path = "services/T0KEN-IN-PATH/audit"
    sinks = [
        {"type": "http", "url": f"http://127.0.0.1:9/{secret_path}?key=Q-SECRET"},
        {"type": "http", "url": "http://127.0.0.1:9/other/SECOND-TOKEN"},
    ]
    bot = start_bot("http", config={"ACCESS_AUDIT_SINKS": sinks})
    samples = scrape(bot)
    labels = [dict(labels) for name, labels in samples if name.startswith("accessbot_audit_sink")]
    shown = {label["sink"] for label in labels}
    assert shown == {"http http://127.0.0.1:9", "http http://127.0.0.1:9 #2"}
    text = requests.get(bot.url("/metrics"), timeout=10).text
    for secret in ("T0KEN-IN-PATH", "Q-SECRET", "SECOND-TOKEN", "services/"):
        assert secret not in text


def test_sink_label_keeps_only_scheme_and_host_of_each_url():
    assert sink_label("http https://u:pw@siem.example.com:8443/x/TOKEN?t=1") == (
        "http https://siem.example.com:8443"
    )
    assert sink_label("file /var/log/accessbot/audit.jsonl") == (
        "file /var/log/accessbot/audit.jsonl"
    )
    assert sink_label("my-siem") == "my-siem"
