"""`check --strict` refuses what would call or ship unsigned (issue 29 item 23): a
webhook strategy or an http audit sink without `secret_env` passed, with only a log
line saying its calls are not signed."""

import json

from tests.conftest import accessbot, policy_file
from tests.test_policy_cli import GOOD

UNSIGNED = GOOD.replace(', "secret_env": "TEST_HOOK_SECRET"', "")
SINKS = json.dumps([{"type": "http", "url": "https://siem.example.com/in", "name": "siem"}])
PROBLEM = (
    "prod-shell.strategy.secret_env: not set, so the webhook's calls are not signed and its "
    'target cannot tell them from anyone\'s; add "secret_env": "PROD_SHELL_HOOK_SECRET" '
    "and set that variable where the bot runs"
)


def test_an_unsigned_webhook_is_a_warning_and_with_strict_an_error(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", UNSIGNED)

    code, out, _ = accessbot("check", "policies", cwd=tmp_path)
    assert code == 0
    assert f"policies/shell.py:10: warning: {PROBLEM}" in out.splitlines()

    code, out, _ = accessbot("check", "--strict", "policies", cwd=tmp_path)
    assert code == 1
    assert out.splitlines()[0] == f"policies/shell.py:10: {PROBLEM}"
    assert out.splitlines()[-1] == "policies: 1 problem(s); --strict refuses them"


def test_an_unsigned_http_audit_sink_fails_strict(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD)
    env = {"ACCESS_AUDIT_SINKS": SINKS, "TEST_HOOK_SECRET": "s"}

    code, out, _ = accessbot("check", "--strict", "policies", cwd=tmp_path, env=env)

    assert code == 1
    assert out.splitlines()[0] == (
        "ACCESS_AUDIT_SINKS: siem: no secret_env, so its batches are not signed; add "
        '"secret_env": "AUDIT_SINK_SECRET" and set that variable where the bot runs'
    )


def test_signed_webhooks_and_sinks_pass_strict(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD)
    signed = json.dumps([{**json.loads(SINKS)[0], "secret_env": "AUDIT_SINK_SECRET"}])
    env = {"ACCESS_AUDIT_SINKS": signed, "TEST_HOOK_SECRET": "s", "AUDIT_SINK_SECRET": "s"}

    code, out, err = accessbot("check", "--strict", "policies", cwd=tmp_path, env=env)

    assert code == 0, out + err
