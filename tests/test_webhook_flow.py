"""The webhook contract end to end through the real plugin (README: "Strategies", the webhook contract): the
target's `account` is recorded at grant and sent back on revoke and extend, a redirect
is a failed revoke that is retried, and credentials in the URL are shown nowhere."""

import csv
import io
import json

from tests.conftest import accessbot, policy_file, request_id, webhook_policy


def granted(chat, user="carol") -> str:
    rid = request_id(chat.reply(user, "!access request prod-db 1h deploy"))
    assert chat.reply("alice", f"!approve {rid}").startswith("Approved")
    return rid


def test_the_account_the_target_names_at_grant_is_sent_back_on_revoke(chat, webhook):
    webhook.answer = {"account": "db-user-4711"}
    rid = granted(chat)
    assert webhook.calls[0]["account"] is None  # nothing is known before the grant

    webhook.answer = None
    chat.say("carol", f"!access revoke {rid}")
    revoke = webhook.calls[-1]
    assert revoke["action"] == "revoke" and revoke["account"] == "db-user-4711"


def test_an_extension_carries_the_account_and_records_one_learnt_late(chat, webhook, clock):
    rid = granted(chat)  # the target names no account at grant
    webhook.answer = {"account": "db-user-4711"}  # ...but does on the extend
    extension = chat.reply("carol", f"!access extend {rid} 30m more")
    ext = extension.split("Extension request ")[1].split()[0]
    chat.say("bob", f"!approve {ext}")
    assert webhook.calls[-1]["action"] == "extend" and webhook.calls[-1]["account"] is None

    webhook.answer = None
    clock.advance(hours=1, minutes=31)
    chat.wait_for("carol", "expired")
    assert webhook.calls[-1]["action"] == "revoke"
    assert webhook.calls[-1]["account"] == "db-user-4711"


def test_a_revoke_answered_with_a_redirect_to_a_login_page_fails_and_is_retried(
    chat, webhook, clock
):
    rid = granted(chat)
    webhook.set_status(302)  # an SSO proxy whose session lapsed
    webhook.location = webhook.base + "/login"

    said = chat.say("carol", f"!access revoke {rid}")
    assert "HTTP 302, a redirect" in said[0]
    assert any("REVOKE FAILED" in t and "HTTP 302" in t for t in chat.to("#access-approvals"))
    assert webhook.logins == 0
    assert "revoke failed" in chat.reply("carol", f"!access show {rid}")

    webhook.set_status(200)
    clock.advance(seconds=11)
    chat.wait_for("carol", "was revoked")
    assert webhook.count("revoke", rid) == 1


def test_credentials_in_a_webhook_url_appear_in_no_reply_alert_audit_report_or_export(
    bot_factory, policy_dir, webhook, tmp_path
):
    secret_url = webhook.url.replace("http://", "http://hookuser:hunter2@") + "?token=T0PSECRET"
    policy_file(policy_dir, "db.py", webhook_policy(secret_url))
    chat = bot_factory()
    webhook.set_status(500)

    rid = request_id(chat.reply("carol", "!access request prod-db 1h deploy"))
    reply = chat.say("alice", f"!approve {rid}")
    shown = {
        "approver's reply": " ".join(reply),
        "channel alert": " ".join(chat.to("#access-approvals")),
        "requester's DM": " ".join(chat.to("carol")),
        "resources": chat.reply("carol", "!access resources"),
        "show": chat.reply("carol", f"!access show {rid}"),
    }
    assert "GRANT FAILED" in shown["channel alert"]
    assert f"webhook {webhook.url} answered HTTP 500" in shown["approver's reply"]

    audit = tmp_path / "data" / "audit.jsonl"
    shown["audit file"] = audit.read_text()
    assert f"{webhook.url} answered HTTP 500" in shown["audit file"]
    period = ("--since", "2026-11-01", "--until", "2026-12-01")
    report = tmp_path / "report.html"
    code, _, err = accessbot(
        "report", *period, "--log", str(audit), "--out", str(report), cwd=tmp_path
    )
    assert code == 0, err
    shown["report"] = report.read_text()
    assert "answered HTTP 500" in shown["report"]
    for form in ("csv", "jsonl"):
        code, out, err = accessbot(
            "audit", "export", *period, "--format", form, "--log", str(audit), cwd=tmp_path
        )
        assert code == 0, err
        shown[f"{form} export"] = out
    assert "answered HTTP 500" in shown["csv export"]

    for where, text in shown.items():
        for secret in ("hunter2", "hookuser", "T0PSECRET", "token="):
            assert secret not in text, f"{secret} shown in the {where}"


def test_an_old_audit_record_with_a_url_secret_is_exported_and_reported_without_it(tmp_path):
    """Records written before URLs were redacted keep their words, not their secrets."""
    from datetime import UTC, datetime

    from accessbot.audit import AuditLog

    audit = tmp_path / "audit.jsonl"
    log = AuditLog(audit, clock=lambda: datetime(2026, 11, 24, 9, tzinfo=UTC))
    log.append(
        "grant_failed",
        actor="bot",
        request_id="abc234",
        user="carol",
        resource="prod-db",
        outcome="grant_failed",
        detail="webhook http://u:hunter2@hooks.acme.com/x?token=T0PSECRET answered HTTP 500",
    )
    period = ("--since", "2026-11-01", "--until", "2026-12-01")
    code, out, _ = accessbot("audit", "export", *period, "--log", str(audit), cwd=tmp_path)
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["detail"] == "webhook http://hooks.acme.com/x answered HTTP 500"
    code, out, _ = accessbot(
        "audit", "export", *period, "--format", "jsonl", "--log", str(audit), cwd=tmp_path
    )
    assert json.loads(out)["detail"] == "webhook http://hooks.acme.com/x answered HTTP 500"
    report = tmp_path / "report.html"
    accessbot("report", *period, "--log", str(audit), "--out", str(report), cwd=tmp_path)
    assert "http://hooks.acme.com/x answered HTTP 500" in report.read_text()
    assert "hunter2" not in report.read_text() and "T0PSECRET" not in report.read_text()


def test_a_revoke_answer_saying_sessions_were_ended_is_told_to_requester_and_channel(chat, webhook):
    rid = granted(chat)
    webhook.answer = {"sessions": "ended"}

    said = chat.say("carol", f"!access revoke {rid}")

    dm = next(
        t for t in said if t.startswith(f"Your access to prod-db (request {rid}) was revoked")
    )
    assert dm.endswith("Sessions opened before: ended.")
    line = chat.wait_for(
        "#access-approvals", f"Request {rid}: @carol's access to prod-db was revoked"
    )
    assert line.endswith("Sessions opened before: ended.")


def test_a_revoke_answer_naming_a_time_says_sessions_may_last_until_then(chat, webhook, clock):
    granted(chat)
    webhook.answer = {"sessions": "2026-11-24T11:30:00Z"}

    clock.advance(hours=1, seconds=1)

    told = chat.wait_for("carol", "has expired and was removed")
    assert told.endswith("Sessions opened before: may last until 2026-11-24 11:30:00 UTC.")


def test_a_revoke_answer_saying_nothing_of_sessions_says_their_fate_is_unknown(chat, webhook):
    rid = granted(chat)
    said = chat.say("carol", f"!access revoke {rid}")
    dm = next(
        t for t in said if t.startswith(f"Your access to prod-db (request {rid}) was revoked")
    )
    assert dm.endswith(
        "Sessions opened before: unknown (the bot cannot end them or tell how long they last)."
    )
