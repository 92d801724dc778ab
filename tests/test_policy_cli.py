"""`python -m accessbot check` and `test`, run as a real subprocess the way a policy
repository's CI runs them: exit codes, `file:line: message` lines, the pass/fail table."""

import textwrap

import pytest

from tests.conftest import ROOT, accessbot, policy_file

GOOD = """
GROUPS = {"sre": ["@alice", "@bob"]}

RESOURCES = {
    "prod-shell": {
        "max_duration": "2h",
        "default_duration": "30m",
        "approvers": ["group:sre"],
        "channel": "#access-approvals",
        "fields": {"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "help": "Jira key"}},
        "strategy": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "TEST_HOOK_SECRET"},
    },
}


def on_request(request, ctx):
    if request.fields.get("ticket", "").startswith("SEC-"):
        return ctx.deny("security work needs the security team")
    if ctx.pagerduty.is_on_call(request.requester_email, schedule="PABC123"):
        return ctx.approve("break-glass: requester is on call")
"""


def write_cases(tmp_path, text: str):
    path = tmp_path / "policy-tests.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# -- check ------------------------------------------------------------------------------


def test_check_passes_on_good_policies_and_names_them(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD)
    code, out, _ = accessbot("check", "policies", cwd=tmp_path)
    assert code == 0
    assert out == "policies: ok, 1 file(s), 1 resource(s): prod-shell\n"


def test_check_prints_file_line_message_for_every_problem_and_exits_1(tmp_path, policy_dir):
    policy_file(
        policy_dir, "shell.py", GOOD.replace('"30m"', '"soon"').replace("group:sre", "group:ops")
    )
    policy_file(policy_dir, "broken.py", "RESOURCES = {\n    'x': 1 +,\n}\n")

    code, out, _ = accessbot("check", "policies", cwd=tmp_path)

    assert code == 1
    assert out.splitlines() == [
        "policies/broken.py:2: syntax error: invalid syntax",
        'policies/shell.py:6: prod-shell.default_duration: "soon" is not a duration (try "4h", '
        '"30m" or "1h30m")',
        'policies/shell.py:7: prod-shell.approvers: unknown group "ops" (groups: sre); define it '
        "in a policy file's GROUPS or in ACCESS_GROUPS",
        "policies: 3 problem(s); the bot would not load these policies",
    ]


def test_check_reads_the_directory_and_access_groups_from_the_config(tmp_path, policy_dir):
    policy_file(
        policy_dir,
        "shell.py",
        GOOD.replace("GROUPS = ", "UNUSED = ").replace("group:sre", "group:ops"),
    )
    config = tmp_path / "config.py"
    config.write_text(
        f"ACCESS_POLICY_DIR = {str(policy_dir)!r}\nACCESS_GROUPS = {{'ops': ['@dave']}}\n"
    )
    code, out, _ = accessbot("check", "--config", str(config), cwd=tmp_path)
    assert code == 0, out
    code, out, _ = accessbot(
        "check", str(policy_dir), cwd=tmp_path, env={"ACCESS_GROUPS": '{"ops": []}'}
    )
    assert code == 1
    assert "ACCESS_GROUPS: ops: must be a non-empty list" in out


def test_check_of_a_missing_directory_says_so(tmp_path):
    code, out, _ = accessbot("check", "nowhere", cwd=tmp_path)
    assert code == 1 and "nowhere: the policy directory does not exist" in out


def test_the_shipped_policies_pass_check_and_their_tests():
    code, out, _ = accessbot("check", "policies", cwd=ROOT)
    assert code == 0, out
    code, out, _ = accessbot("test", "policies", "policies/tests.yaml", cwd=ROOT)
    assert code == 0, out
    assert out.splitlines()[-1].endswith("passed, 0 failed")


FIVE_MISTAKES = """
RESOURCES = {
    "prod-shell": {
        "max_duration": "2h",
        "default_duration": "3h",
        "approvers": ["@alice", "pagerduty:oncall"],
        "channel": "access-approvals",
        "aproval_count": 2,
        "strategy": {"type": "webhook", "url": "http://127.0.0.1:9/x", "timeout": "soon"},
    },
}
"""


def test_check_reports_five_mistakes_in_one_file_as_five_lines_in_one_run(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", FIVE_MISTAKES)

    code, out, _ = accessbot("check", "policies", cwd=tmp_path)

    assert code == 1
    lines = out.splitlines()
    assert [line.split(": ")[:2] for line in lines[:-1]] == [
        ["policies/shell.py:7", "prod-shell.aproval_count"],
        ["policies/shell.py:4", "prod-shell.default_duration"],
        ["policies/shell.py:5", "prod-shell.approvers"],
        ["policies/shell.py:6", "prod-shell.channel"],
        ["policies/shell.py:8", "prod-shell.strategy.timeout"],
    ]
    assert lines[-1] == "policies: 5 problem(s); the bot would not load these policies"


def test_check_warns_about_an_unset_secret_and_strict_makes_it_an_error(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD.replace("TEST_HOOK_SECRET", "SHELL_HOOK_SECRET"))
    warning = (
        "policies/shell.py:10: warning: prod-shell.strategy.secret_env: the environment "
        "variable SHELL_HOOK_SECRET is not set; the webhook strategy reads it at every grant "
        "and revoke: set SHELL_HOOK_SECRET where the bot runs"
    )

    code, out, _ = accessbot("check", "policies", cwd=tmp_path)
    assert code == 0
    assert out.splitlines() == [
        warning,
        "policies: ok, 1 file(s), 1 resource(s): prod-shell; 1 warning(s): the bot refuses "
        "these policies where those variables are not set",
    ]

    code, out, _ = accessbot("check", "--strict", "policies", cwd=tmp_path)
    assert code == 1
    assert out.splitlines()[0] == warning.replace(": warning:", ":")

    env = {"SHELL_HOOK_SECRET": "s3cret"}
    assert accessbot("check", "--strict", "policies", cwd=tmp_path, env=env)[0] == 0


def test_check_shows_the_warnings_beside_the_errors(tmp_path, policy_dir):
    policy_file(
        policy_dir,
        "shell.py",
        GOOD.replace("TEST_HOOK_SECRET", "SHELL_HOOK_SECRET").replace('"2h"', '"forever"'),
    )
    code, out, _ = accessbot("check", "policies", cwd=tmp_path)
    assert code == 1
    assert [line.split(": ")[:3] for line in out.splitlines()] == [
        [
            "policies/shell.py:5",
            "prod-shell.max_duration",
            '"forever" is not a duration (try "4h", "30m" or "1h30m")',
        ],
        ["policies/shell.py:10", "warning", "prod-shell.strategy.secret_env"],
        ["policies", "1 problem(s); the bot would not load these policies"],
    ]


# -- test -------------------------------------------------------------------------------

CASES = """
defaults:
  duration: 30m
emails:
  carol: carol@example.com
cases:
  - name: on-call breaks glass
    user: carol
    resource: prod-shell
    on_call: {PABC123: [carol@example.com]}
    expect: {decision: approve, reason: break-glass}
  - name: security tickets are denied
    user: carol
    resource: prod-shell
    fields: {ticket: SEC-1}
    expect: {decision: deny, reason: security team}
  - name: others wait for the sre group
    user: dave
    email: dave@example.com
    resource: prod-shell
    on_call: {PABC123: [carol@example.com]}
    expect: {decision: human, approvers: [alice, "@bob"], channel: "#access-approvals"}
  - name: a bad ticket is refused
    user: dave
    resource: prod-shell
    fields: {ticket: nope}
    expect: {decision: refused, reason: Jira key}
  - name: PagerDuty down falls back to people
    user: carol
    resource: prod-shell
    pagerduty: down
    expect: {decision: human, note: PagerDuty check failed}
"""


def test_passing_cases_print_a_table_and_exit_0(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD)
    path = write_cases(tmp_path, CASES)
    code, out, err = accessbot("test", "policies", path.name, cwd=tmp_path)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split() == [
        "PASS",
        "1",
        "on-call",
        "breaks",
        "glass",
        "carol",
        "->",
        "prod-shell:",
        "approve",
    ]
    assert [line.split()[0] for line in lines[:5]] == ["PASS"] * 5
    assert lines[-1] == "5 case(s): 5 passed, 0 failed"
    assert err == ""


def test_a_policy_change_that_breaks_a_case_fails_with_file_and_line(tmp_path, policy_dir):
    policy_file(
        policy_dir, "shell.py", GOOD.replace('return ctx.approve("break-glass', 'return None  # ("')
    )
    path = write_cases(tmp_path, CASES)

    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)

    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL    1  on-call breaks glass")
    assert lines[1] == (
        "policy-tests.yaml:6: case 1 (on-call breaks glass): decision: expected approve, got "
        "human (on_request returned None: the approvers decide)"
    )
    assert "reason: expected it to contain 'break-glass'" in lines[2]
    assert lines[-1] == "5 case(s): 4 passed, 1 failed"


def test_wrong_approvers_and_channel_are_reported(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD)
    path = write_cases(
        tmp_path,
        """
        - user: dave
          resource: prod-shell
          expect: {approvers: ["@alice"], channel: "#elsewhere"}
        """,
    )
    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)
    assert code == 1
    assert "approvers: expected alice, got alice, bob" in out
    assert "channel: expected #elsewhere, got #access-approvals" in out


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cases: [\n", "policy-tests.yaml:2: not valid YAML"),
        ("cases: []\n", "policy-tests.yaml:1: policy-tests.yaml needs a non-empty list of cases"),
        (
            "cases:\n  - user: carol\n    resource: prod-shell\n    expct: {decision: human}\n",
            "policy-tests.yaml:4: case 1: unknown key 'expct'",
        ),
        (
            "cases:\n  - user: carol\n    resource: prod-shell\n    expect: {decision: maybe}\n",
            "policy-tests.yaml:4: case 1: decision must be one of approve, deny, human, refused",
        ),
        (
            "cases:\n  - name: x\n    resource: prod-shell\n    expect: {decision: human}\n",
            "policy-tests.yaml:2: case 1 (x): user is required",
        ),
        (
            "cases:\n  - user: a\n    resource: prod-shell\n    duration: forever\n    expect: {decision: human}\n",
            'policy-tests.yaml:4: case 1: "forever" is not a duration',
        ),
        (
            "cases:\n  - user: a\n    resource: prod-shell\n    on_call: {PABC123: carol}\n    expect: {decision: human}\n",
            "policy-tests.yaml:4: case 1: on_call must map each id to a list of e-mails (level 1) "
            "or {email: ..., level: 2}",
        ),
    ],
)
def test_a_malformed_tests_file_is_refused_with_file_and_line(tmp_path, policy_dir, text, says):
    policy_file(policy_dir, "shell.py", GOOD)
    path = tmp_path / "policy-tests.yaml"
    path.write_text(text)
    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)
    assert code == 1
    assert says in out, out
    assert out.splitlines()[-1].endswith("no case was run")


def test_broken_policies_stop_the_tests_with_the_load_errors(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD.replace('"2h"', '"forever"'))
    path = write_cases(tmp_path, CASES)
    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)
    assert code == 1
    assert 'policies/shell.py:5: prod-shell.max_duration: "forever" is not a duration' in out
    assert out.splitlines()[-1] == "policies: the policies do not load; no case was run"


def test_a_slack_channel_id_is_expected_as_the_policy_writes_it(tmp_path, policy_dir):
    policy_file(policy_dir, "shell.py", GOOD.replace('"#access-approvals"', '"C024BE91L"'))
    path = write_cases(
        tmp_path, "- {user: dave, resource: prod-shell, expect: {channel: C024BE91L}}\n"
    )
    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)
    assert code == 0, out


def test_hooks_see_the_time_the_case_gives(tmp_path, policy_dir):
    hours = (
        GOOD
        + "\n\ndef get_approvers(request, ctx):\n    return ['@night'] if ctx.now.hour < 6 else ['@day']\n"
    )
    policy_file(policy_dir, "shell.py", hours)
    path = write_cases(
        tmp_path,
        """
        - {user: dave, resource: prod-shell, now: "2026-11-24T03:00:00Z", expect: {approvers: [night]}}
        - {user: dave, resource: prod-shell, now: "2026-11-24T13:00:00Z", expect: {approvers: [day]}}
        """,
    )
    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)
    assert code == 0, out


def test_check_shows_urls_in_its_messages_as_they_are_written(tmp_path):
    """A path joined onto a message squeezed `https://` into `https:/`."""
    policy_file(
        tmp_path / "policies",
        "okta.py",
        """
        RESOURCES = {
            "prod-okta": {
                "max_duration": "1h",
                "approvers": ["@alice"],
                "channel": "#access",
                "strategy": {"type": "okta_group", "org_url": "ftp://acme.okta.com",
                             "group_id": "00g1abcd2EFGH3ijk4x7", "token_env": "OKTA_API_TOKEN"},
            },
        }
        """,
    )
    code, out, err = accessbot("check", "policies", cwd=tmp_path)
    assert code == 1
    assert "'ftp://acme.okta.com' is not an http(s) URL like 'https://acme.okta.com'" in out + err
    assert "https:/a" not in out + err
