"""The README's policy examples, as a newcomer copies them: into a policy file, then into
a running bot."""

from __future__ import annotations

import json
import re

from accessbot.policy import load_policies
from tests.conftest import ROOT, policy_file, request_id


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of one README section, in order."""
    text = (ROOT / "README.md").read_text()
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n")
    end = text.find(f"\n{level} ", start + 1)
    section = text[start : end if end >= 0 else None]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_first_policy_example_grants_and_revokes_offline_as_copied(
    bot_factory, policy_dir, tmp_path, monkeypatch, clock
):
    first = python_blocks("## Writing a policy")[0]
    assert '"type": "command"' in first
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path / "data"))  # where grant.py records
    policy_file(policy_dir, "example.py", first)
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m copied from the README"))
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
    holding = tmp_path / "data" / "grants" / "prod-db" / "carol.json"
    assert json.loads(holding.read_text())["request_id"] == rid
    clock.advance(minutes=30)
    chat.wait_for("carol", "expired")
    assert not holding.exists()


def test_the_webhook_comes_second_and_fits_into_the_first_example():
    first, second = python_blocks("## Writing a policy")[:2]
    assert second.lstrip().startswith('"strategy": {') and '"type": "webhook"' in second
    start = first.index('        "strategy": {')
    end = first.index("        },\n", start) + len("        },\n")
    swapped = first[:start] + second + first[end:]
    assert '"secret_env": "PROD_DB_HOOK_SECRET"' in swapped
    compile(swapped, "example.py", "exec")


def test_the_fields_example_is_a_whole_resource_that_loads(tmp_path):
    (example,) = python_blocks("### Prompt fields")
    policy_file(tmp_path, "fields.py", example)
    resource = load_policies(tmp_path).get("prod-db")
    assert set(resource.fields) == {"ticket", "env"}
    assert resource.fields["ticket"].required


def test_the_newer_hook_and_key_examples_load(tmp_path):
    (gate,) = python_blocks("### Approval hooks: `on_approve`, `on_deny`")
    (after,) = python_blocks("### After the fact: `after_grant`, `after_revoke`")
    (escalating,) = python_blocks("### Escalation")
    (history,) = python_blocks("### History: `ctx.history`")
    policy_file(tmp_path, "gate.py", gate + after)
    policy_file(tmp_path, "admin.py", escalating + history)

    policies = load_policies(tmp_path)

    assert set(policies.get("deploy-prod").hooks) == {
        "on_approve",
        "on_deny",
        "after_grant",
        "after_revoke",
    }
    admin = policies.get("prod-db-admin")
    assert [level.channel for level in admin.escalation] == ["#dba", "#incidents"]
    assert "get_approvers" in admin.hooks


def test_the_audit_sinks_example_is_valid_config():
    from accessbot.settings import parse_sinks

    (example,) = python_blocks("### Setting up audit sinks")
    config: dict = {}
    exec(compile(example, "config.py", "exec"), config)
    sinks = parse_sinks(config["ACCESS_AUDIT_SINKS"])
    assert [s.type for s in sinks] == ["http", "splunk_hec", "file", "syslog"]
    assert parse_sinks(json.dumps(config["ACCESS_AUDIT_SINKS"])) == sinks  # the env form


def configuration_table() -> dict[str, str]:
    """The README's Configuration table: each ACCESS_* key -> its default column."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Configuration\n")
    section = text[start : text.index("\n## ", start + 1)]
    keys = {}
    for row in re.findall(r"^\| (`ACCESS_.*?) \| (.*?) \|", section, re.M):
        for key in re.findall(r"`(ACCESS_[A-Z_]+)`", row[0]):
            keys[key] = row[1]
    return keys


def test_every_key_the_settings_read_is_in_the_configuration_table():
    source = (ROOT / "plugins" / "accessbot" / "settings.py").read_text()
    read = set(re.findall(r'get\(\s*"(ACCESS_[A-Z_]+)"', source))
    read |= set(re.findall(r'duration\("(ACCESS_[A-Z_]+)"', source))
    read |= set(re.findall(r'seconds\("(ACCESS_[A-Z_]+)"', source))
    read |= set(re.findall(r'_handle_map\(get, "(ACCESS_[A-Z_]+)"', source))
    assert {"ACCESS_ACK_SECONDS", "ACCESS_USER_EMAILS", "ACCESS_TICK_SECONDS"} <= read
    assert sorted(read - set(configuration_table())) == []


def test_the_configuration_table_gives_the_design_defaults():
    table = configuration_table()
    for key, default in {
        "ACCESS_POLICY_DIR": "`policies`",
        "ACCESS_DB_PATH": "`data/access.json`",
        "ACCESS_AUDIT_PATH": "`data/audit.jsonl`",
        "ACCESS_TICK_SECONDS": "`1`",
        "ACCESS_PENDING_TIMEOUT": "`1h`",
        "ACCESS_PAGERDUTY_URL": "`https://api.pagerduty.com`",
        "ACCESS_AUDIT_CHECKPOINT": "`5m`",
        "ACCESS_STANDING_SWEEP": "`1h`",
        "ACCESS_STANDING_MAX_REMOVALS": "`20`",
        "ACCESS_ACK_SECONDS": "`2`",
    }.items():
        assert table[key] == default, key


def test_the_command_line_section_names_every_subcommand_the_design_and_cli_have():
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## The command line\n")
    section = text[start : text.index("\n## ", start + 1)]
    listed = set(re.findall(r"`(\w+)`", section.split(")")[0]))
    for command in ("check", "test", "audit", "report", "standing", "migrate", "backup", "restore"):
        assert command in listed, command


def test_the_command_table_lists_every_command_the_plugin_answers():
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Commands\n")
    table = text[start : text.index("\n## ", start + 1)]
    plugin = (ROOT / "plugins" / "access" / "access.py").read_text()
    commands = re.findall(r"@botcmd\n    def (\w+)\(self", plugin)
    assert len(commands) > 10
    for name in commands:
        typed = "!" + name.replace("_", " ")
        if typed != "!access":  # `!access` alone answers with the help
            assert f"`{typed}" in table or f"{typed} " in table, typed
    for design in (
        "!access request <resource> [<duration>] <reason...>",
        "!access extend <id> [<duration>] [reason...]",
        "!approve <id> [comment]",
        "!deny <id> [reason]",
        "!access standing [resource]",
        "!access audit status",
    ):
        assert design in table, design
