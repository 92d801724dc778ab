"""The webhook and command strategies against a real local HTTP server and real programs."""

import hashlib
import hmac
import json
import sys

import pytest

from accessbot.strategies import SettingsError, StrategyError, build_strategy
from accessbot.strategies.webhook import WebhookStrategy, sign
from tests.fakes import WebhookTarget

PAYLOAD = {
    "action": "grant",
    "grant_id": "g-abc234",
    "request_id": "abc234",
    "user": "carol",
    "user_email": "carol@example.com",
    "resource": "prod-db",
    "expires_at": "2026-11-24T09:30:00Z",
    "reason": "fix",
}


def webhook(url, **extra):
    return build_strategy({"type": "webhook", "url": url, "secret_env": "HOOK_SECRET", **extra})


def test_the_webhook_posts_the_signed_payload(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook(webhook_target.url).call("grant", PAYLOAD)
    assert webhook_target.calls == [PAYLOAD]
    assert webhook_target.rejected == []


def test_a_wrong_secret_is_rejected_by_the_target(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "not-the-secret")
    with pytest.raises(StrategyError, match="HTTP 401"):
        webhook(webhook_target.url).call("grant", PAYLOAD)
    assert webhook_target.calls == []


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_exact_body():
    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(body, "k", 1700000000) == "sha256=" + expected


def test_each_call_carries_its_timestamp_from_the_injected_clock_and_is_signed_with_it(
    webhook_target, monkeypatch
):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    now = int(__import__("time").time())
    strategy = WebhookStrategy.from_settings(
        {"type": "webhook", "url": webhook_target.url, "secret_env": "HOOK_SECRET"},
        clock=lambda: now + 0.7,
    )
    strategy.call("grant", PAYLOAD)
    sent = webhook_target.headers_seen[0]
    assert sent["X-Access-Timestamp"] == str(now)
    signed = {**PAYLOAD, "idempotency_key": "g-abc234:grant"}
    body = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    assert sent["X-Access-Signature"] == sign(body, "s3cret", now)


def test_a_call_signed_more_than_five_minutes_ago_is_refused_by_the_target(
    webhook_target, monkeypatch
):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    stale = WebhookStrategy.from_settings(
        {"type": "webhook", "url": webhook_target.url, "secret_env": "HOOK_SECRET"},
        clock=lambda: __import__("time").time() - 301,
    )
    with pytest.raises(StrategyError, match="HTTP 401"):
        stale.call("grant", PAYLOAD)
    assert webhook_target.calls == []


def test_the_idempotency_key_is_the_same_for_every_try_of_one_call(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    hook = webhook(webhook_target.url)
    hook.call("grant", PAYLOAD)
    hook.call("grant", {**PAYLOAD, "expires_at": "2026-11-24T09:31:07Z"})  # granted again later
    hook.call("revoke", {**PAYLOAD, "action": "revoke"})
    hook.call("revoke", {**PAYLOAD, "action": "revoke"})
    hook.call("extend", {**PAYLOAD, "action": "extend", "expires_at": "2026-11-24T10:30:00Z"})
    hook.call("extend", {**PAYLOAD, "action": "extend", "expires_at": "2026-11-24T11:30:00Z"})
    keys = [h["Idempotency-Key"] for h in webhook_target.headers_seen]
    assert keys == [
        "g-abc234:grant",
        "g-abc234:grant",
        "g-abc234:revoke",
        "g-abc234:revoke",
        "g-abc234:extend:2026-11-24T10:30:00Z",  # each extension is its own call
        "g-abc234:extend:2026-11-24T11:30:00Z",
    ]


def test_a_redirect_is_not_followed_and_is_a_failure(webhook_target, monkeypatch):
    """An SSO proxy whose session lapsed answers 302 to its login page, which answers
    200: that must not count as done."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.set_status(302)
    webhook_target.location = webhook_target.base + "/login?next=%2Faccess"
    with pytest.raises(
        StrategyError, match=r"HTTP 302, a redirect to http://127\.0\.0\.1:\d+/login:"
    ):
        webhook(webhook_target.url).call("revoke", {**PAYLOAD, "action": "revoke"})
    assert webhook_target.logins == 0  # the login page was never asked


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_every_redirect_status_is_a_failure(webhook_target, monkeypatch, status):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.set_status(status)
    webhook_target.location = webhook_target.base + "/login"
    with pytest.raises(StrategyError, match=f"HTTP {status}, a redirect"):
        webhook(webhook_target.url).call("revoke", {**PAYLOAD, "action": "revoke"})
    assert webhook_target.logins == 0


def test_a_grant_answer_naming_the_account_is_returned_to_be_recorded(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.answer = {"account": "u-4711", "granted": True}
    done = webhook(webhook_target.url).call("grant", PAYLOAD)
    assert done.account == "u-4711"
    assert done.answer == {"account": "u-4711", "granted": True}


def test_a_plain_text_answer_is_a_success_without_an_account(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    done = webhook(webhook_target.url).call("grant", PAYLOAD)
    assert done.account is None and done.answer is None and done.note == "webhook HTTP 200"


def test_a_webhook_url_with_credentials_never_shows_them(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    hook = webhook("http://bob:hunter2@127.0.0.1:9/hook?token=T0PSECRET#frag")
    with pytest.raises(StrategyError) as caught:
        hook.call("grant", PAYLOAD)
    assert str(caught.value) == "webhook http://127.0.0.1:9/hook unreachable: ConnectionError"
    assert hook.describe() == "webhook (http://127.0.0.1:9/hook)"


def test_a_500_is_a_failure_with_the_targets_words(webhook_target, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    webhook_target.set_status(500)
    with pytest.raises(StrategyError, match="HTTP 500: target exploded"):
        webhook(webhook_target.url).call("grant", PAYLOAD)


def test_a_slow_target_times_out(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    slow = WebhookTarget(secret="s3cret", delay=1.0)
    try:
        with pytest.raises(StrategyError, match="timed out after 0.2s"):
            WebhookStrategy(slow.url, "HOOK_SECRET", timeout=0.2).call("grant", PAYLOAD)
    finally:
        slow.close()


def test_a_missing_secret_variable_fails_without_calling(webhook_target, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    with pytest.raises(StrategyError, match="HOOK_SECRET .* is not set"):
        webhook(webhook_target.url).call("grant", PAYLOAD)
    assert webhook_target.calls == []


def test_an_unreachable_target_is_a_failure():
    with pytest.raises(StrategyError, match="unreachable"):
        build_strategy({"type": "webhook", "url": "http://127.0.0.1:9/x"}).call("grant", PAYLOAD)


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"type": "webhook"}, "strategy.url"),
        ({"type": "webhook", "url": "ftp://x"}, "strategy.url"),
        ({"type": "webhook", "url": "http://x", "timeout": "soon"}, "strategy.timeout"),
        ({"type": "webhook", "url": "http://x", "colour": "red"}, "strategy.colour"),
        ({"type": "command"}, "strategy.argv"),
        ({"type": "command", "argv": "grant.sh"}, "strategy.argv"),
        ({"type": "teleport"}, "strategy.type"),
    ],
)
def test_bad_strategy_settings_name_the_key(settings, key):
    with pytest.raises(SettingsError) as info:
        build_strategy(settings)
    assert info.value.key == key


def test_the_command_gets_the_payload_on_stdin(tmp_path):
    out = tmp_path / "got.json"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())"
    build_strategy({"type": "command", "argv": [sys.executable, "-c", script]}).call(
        "grant", PAYLOAD
    )
    assert json.loads(out.read_text()) == PAYLOAD


def test_a_failing_command_reports_its_stderr():
    script = "import sys; sys.stderr.write('vault says no'); sys.exit(3)"
    with pytest.raises(StrategyError, match="exited with 3: vault says no"):
        build_strategy({"type": "command", "argv": [sys.executable, "-c", script]}).call(
            "grant", PAYLOAD
        )


def test_a_command_that_hangs_is_stopped_at_its_timeout():
    script = "import time; time.sleep(10)"
    strategy = build_strategy(
        {"type": "command", "argv": [sys.executable, "-c", script], "timeout": "1s"}
    )
    with pytest.raises(StrategyError, match="did not finish within 1s"):
        strategy.call("grant", PAYLOAD)


def test_a_command_printing_a_json_account_has_it_recorded_and_gets_it_back(tmp_path):
    out = tmp_path / "got.json"
    script = (
        "import json, pathlib, sys; call = json.load(sys.stdin); "
        f"pathlib.Path({str(out)!r}).write_text(json.dumps(call)); "
        "print(json.dumps({'account': 'vault-entity-9'}))"
    )
    strategy = build_strategy({"type": "command", "argv": [sys.executable, "-c", script]})
    done = strategy.call("grant", PAYLOAD)
    assert done.account == "vault-entity-9"
    strategy.call("revoke", {**PAYLOAD, "action": "revoke", "account": done.account})
    assert json.loads(out.read_text())["account"] == "vault-entity-9"


def test_a_command_printing_plain_text_succeeds_without_an_account():
    script = "print('granted, have fun')"
    done = build_strategy({"type": "command", "argv": [sys.executable, "-c", script]}).call(
        "grant", PAYLOAD
    )
    assert done.account is None and "exit 0" in done.note


def test_the_demo_script_records_and_removes_grants(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path))
    strategy = build_strategy({"type": "command", "argv": ["scripts/grant.py"]})
    strategy.call("grant", PAYLOAD)
    assert (tmp_path / "grants" / "prod-db" / "carol.json").exists()
    strategy.call("revoke", {**PAYLOAD, "action": "revoke"})
    strategy.call("revoke", {**PAYLOAD, "action": "revoke"})  # revoking what is gone: fine
    assert not (tmp_path / "grants" / "prod-db" / "carol.json").exists()
