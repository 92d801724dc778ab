"""A finished request leaves the live store for the archive, and is still found by
`!access show`, `!access audit` and the auditors' export, also after a restart."""

from __future__ import annotations

import csv
import io

from tests.conftest import request_id
from tests.test_cli import accessbot


def test_an_expired_request_is_archived_and_still_shown_audited_and_exported(
    chat, bot_factory, clock, tmp_path
):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    chat.reply("bob", f"!approve {rid}")
    clock.advance(minutes=31)
    chat.wait_for("carol", f"request {rid}) has expired")
    bot_factory.stop_last()

    chat = bot_factory()  # a restart: the archive index is rebuilt from the file

    archive = (tmp_path / "data" / "access.archive.jsonl").read_text()
    assert f'"id":"{rid}"' in archive
    assert "no pending requests" in chat.reply("carol", "!access mine")  # not live any more
    shown = chat.reply("carol", f"!access show {rid}")
    assert "expired" in shown and "approved" in shown and "fixing INC-42" in shown
    audited = chat.reply("admin", f"!access audit id={rid}")
    assert "expired" in audited and "granted" in audited
    code, out, _ = accessbot(
        "audit", "export", "--log", str(tmp_path / "data" / "audit.jsonl"), cwd=tmp_path
    )
    assert code == 0
    events = [row["event"] for row in csv.DictReader(io.StringIO(out)) if row["request_id"] == rid]
    assert events == ["requested", "approved", "granted", "expired"]
