"""The webhook and command strategies against a real local HTTP server and real programs."""

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


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    body = b'{"a":1}'
    assert sign(body, "k") == "sha256=" + (__import__("hmac").new(b"k", body, "sha256").hexdigest())


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


def test_the_demo_script_records_and_removes_grants(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path))
    strategy = build_strategy({"type": "command", "argv": ["scripts/grant.py"]})
    strategy.call("grant", PAYLOAD)
    assert (tmp_path / "grants" / "prod-db" / "carol.json").exists()
    strategy.call("revoke", {**PAYLOAD, "action": "revoke"})
    strategy.call("revoke", {**PAYLOAD, "action": "revoke"})  # revoking what is gone: fine
    assert not (tmp_path / "grants" / "prod-db" / "carol.json").exists()
