"""Checked justification in policy files: a field's `check` and `end_with`, a resource's
`require_one_of`; each mistake a load error naming file, line and key, and a check's
unset variable a warning (an error where the bot runs, as for strategies)."""

import pytest

from accessbot.policy import PolicyError, load_policies
from tests.conftest import accessbot, policy_file, webhook_policy

JIRA = {
    "type": "jira",
    "url": "https://acme.atlassian.net",
    "user_env": "JIRA_USER",
    "token_env": "JIRA_TOKEN",
    "projects": ["OPS"],
    "open_statuses": ["To Do", "In Progress"],
}
ENV = {"TEST_HOOK_SECRET": "s", "JIRA_USER": "bot@acme.com", "JIRA_TOKEN": "t0ken"}


def ticket(**check):
    return {"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "check": {**JIRA, **check}, "end_with": True}}


def errors_of(policy_dir, text, environ=ENV, strict=True):
    policy_file(policy_dir, "db.py", text)
    with pytest.raises(PolicyError) as raised:
        load_policies(policy_dir, environ=environ, unset_env_is_error=strict)
    return raised.value.errors


def test_a_checked_field_loads_with_its_settings(policy_dir):
    policy_file(policy_dir, "db.py", webhook_policy("http://127.0.0.1:1/x", fields=ticket()))
    spec = load_policies(policy_dir, environ=ENV).get("prod-db").fields["ticket"]
    assert spec.check["type"] == "jira" and spec.end_with is True


def test_an_unknown_tracker_names_its_file_line_and_key(policy_dir):
    text = "# the database\n" + webhook_policy(
        "http://127.0.0.1:1/x", fields={"ticket": {"check": {"type": "trello"}}}
    )
    [error] = errors_of(policy_dir, text)
    assert error.startswith("db.py:2: prod-db.fields.ticket.check.type: 'trello' is not a tracker")
    assert "jira, pagerduty, github_issue" in error


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"url": None}, "check.url", "is required: the Jira site"),
        ({"api_version": 4}, "check.api_version", "must be 3 (Jira Cloud) or 2 (Data Center)"),
        ({"projects": "OPS"}, "check.projects", "must be a non-empty list of strings"),
        ({"when_unreachable": "allow"}, "check.when_unreachable", "refuse, ask_approvers"),
        ({"colour": "red"}, "check.colour", "unknown key for jira"),
    ],
)
def test_a_bad_jira_setting_is_a_load_error_naming_its_key(policy_dir, change, key, words):
    check = {**JIRA, **change}
    check = {k: v for k, v in check.items() if v is not None}
    text = webhook_policy("http://127.0.0.1:1/x", fields={"ticket": {"check": check}})
    [error] = errors_of(policy_dir, text)
    assert f"prod-db.fields.ticket.{key}: " in error and words in error


def test_end_with_needs_a_check(policy_dir):
    text = webhook_policy("http://127.0.0.1:1/x", fields={"ticket": {"end_with": True}})
    [error] = errors_of(policy_dir, text)
    assert "prod-db.fields.ticket.end_with: needs a check" in error


def test_a_github_issue_check_needs_its_repository(policy_dir):
    fields = {"issue": {"check": {"type": "github_issue", "repo": "not a repo"}}}
    [error] = errors_of(policy_dir, webhook_policy("http://127.0.0.1:1/x", fields=fields))
    assert "prod-db.fields.issue.check.repo: is required" in error


def test_require_one_of_names_fields_of_the_resource(policy_dir):
    fields = {**ticket(), "incident": {"check": {"type": "pagerduty", "services": ["PSVC1"]}}}
    text = webhook_policy(
        "http://127.0.0.1:1/x", fields=fields, require_one_of=["ticket", "incidnet"]
    )
    [error] = errors_of(policy_dir, text)
    assert "prod-db.require_one_of: 'incidnet' is not one of the resource's fields" in error
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy(
            "http://127.0.0.1:1/x", fields=fields, require_one_of=["ticket", "incident"]
        ),
    )
    loaded = load_policies(policy_dir, environ=ENV)
    assert loaded.get("prod-db").require_one_of == ("ticket", "incident")


def test_an_unset_token_is_a_warning_in_check_and_an_error_with_strict(policy_dir):
    environ = {"TEST_HOOK_SECRET": "s", "JIRA_USER": "bot@acme.com"}
    text = webhook_policy("http://127.0.0.1:1/x", fields=ticket())
    [error] = errors_of(policy_dir, text, environ=environ, strict=True)
    assert "prod-db.fields.ticket.check.token_env: the environment variable JIRA_TOKEN" in error
    loaded = load_policies(policy_dir, environ=environ, unset_env_is_error=False)
    assert any("JIRA_TOKEN is not set" in w for w in loaded.warnings)


# -- policy tests and whatif take the trackers' answers as data ----------------------------

CHECKED = """
RESOURCES = {
    "prod-db": {
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {"type": "none"},
        "fields": {
            "ticket": {
                "pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key like OPS-12",
                "check": {"type": "jira", "url": "https://acme.atlassian.net",
                          "user_env": "JIRA_USER", "token_env": "JIRA_TOKEN", "projects": ["OPS"],
                          "open_statuses": ["To Do", "In Progress"]},
                "end_with": True,
            },
        },
    },
}


def on_request(request, ctx):
    link = request.links.get("ticket")
    if link and link["assignee"] == request.requester_email:
        return ctx.approve("the requester is the ticket's assignee")
"""

TICKET_CASES = """
emails: {carol: carol@example.com, dave: dave@example.com}
defaults:
  resource: prod-db
  fields: {ticket: OPS-12}
  tickets: {OPS-12: {status: In Progress, title: Rotate, assignee: carol@example.com}}
cases:
  - name: the ticket's assignee is let in
    user: carol
    expect: {decision: approve, reason: assignee}
  - name: someone else waits for the approvers
    user: dave
    expect: {decision: human}
  - name: a done ticket is refused
    user: carol
    tickets: {OPS-12: {status: Done}}
    expect: {decision: refused, reason: OPS-12 is Done}
  - name: an unknown ticket is refused
    user: carol
    fields: {ticket: OPS-99}
    expect: {decision: refused, reason: OPS-99 is not in the test file's tickets}
  - name: Jira down refuses
    user: carol
    tickets: down
    expect: {decision: refused, reason: could not be checked}
"""


def test_policy_tests_take_the_trackers_answers_from_the_file(tmp_path, policy_dir):
    policy_file(policy_dir, "db.py", CHECKED)
    cases = tmp_path / "tests.yaml"
    cases.write_text(TICKET_CASES)
    code, out, err = accessbot("test", "policies", cases.name, cwd=tmp_path)
    assert code == 0, out + err
    assert out.splitlines()[-1] == "5 case(s): 5 passed, 0 failed"


def test_a_bad_tickets_entry_is_a_test_file_error(tmp_path, policy_dir):
    policy_file(policy_dir, "db.py", CHECKED)
    cases = tmp_path / "tests.yaml"
    cases.write_text(TICKET_CASES.replace("{status: Done}", "{state: Done}"))
    code, out, err = accessbot("test", "policies", cases.name, cwd=tmp_path)
    assert code != 0
    assert "tickets must be" in out + err


def test_the_readme_example_loads_and_its_setting_is_in_the_table(tmp_path):
    from tests.test_readme import configuration_table, python_blocks

    (example,) = python_blocks("### Checked justification: tickets and incidents")
    policy_file(tmp_path, "checked.py", example)
    resource = load_policies(tmp_path, environ=ENV).get("prod-db")
    assert resource.fields["ticket"].check["type"] == "jira"
    assert resource.fields["incident"].check["when_unreachable"] == "ask_approvers"
    assert resource.require_one_of == ("ticket", "incident")
    assert configuration_table()["ACCESS_LINK_CHECK"] == "`1m`"
