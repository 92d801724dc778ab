"""`python -m accessbot test` cases for the newer hooks, run as CI runs them: fake
approvals and denials (`approve_as`, `deny_as`) through on_approve / on_deny, history
counts, PagerDuty levels and incidents; and `!access whatif` listing every hook."""

import pytest

from tests.conftest import accessbot, policy_file
from tests.test_policy_cli import write_cases

POLICY = """
RESOURCES = {
    "prod-db": {
        "max_duration": "4h",
        "approvers": ["@alice", "@bob", "@carol"],
        "channel": "#access-approvals",
        "escalation": [{"after": "30m", "approvers": ["@erin"], "channel": "#dba"}],
        "strategy": {"type": "none"},
    },
}


def get_approvers(request, ctx):
    if ctx.history.count(status="granted", since="90d") == 0:
        return ["@erin"]
    return ["@alice", "@bob", "@carol"]


def on_request(request, ctx):
    if ctx.pagerduty.has_incident(email=request.requester_email, service="PDB0001"):
        return ctx.approve("working a database incident")
    if ctx.pagerduty.is_on_call(request.requester_email, escalation_policy="PEP1", max_level=1):
        return ctx.approve("primary on call")


def on_approve(request, approval, ctx):
    if "INC-" not in approval.comment:
        return ctx.refuse("name the incident: !approve <id> INC-...")


def on_deny(request, denial, ctx):
    if denial.approver == "carol":
        return ctx.refuse("carol may not deny")


def after_grant(request, ctx):
    ctx.tell_requester("granted")


def after_revoke(request, ctx):
    ctx.tell_requester("revoked")
"""

CASES = """
defaults: {resource: prod-db, reason: INC-7}
emails: {dave: dave@example.com, erin: erin@example.com}
cases:
  - name: a first-timer goes to erin
    user: dave
    history: {prod-db: 0}
    expect: {decision: human, approvers: ["@erin"]}
  - name: a regular goes to the team
    user: dave
    history: [{resource: prod-db, status: expired, count: 3}]
    expect: {approvers: ["@alice", "@bob", "@carol"]}
  - name: an approval naming the incident counts
    user: dave
    history: {prod-db: 1}
    approve_as: bob
    comment: INC-7 checked
    expect: {approval: counted}
  - name: an approval without it is refused
    user: dave
    history: {prod-db: 1}
    approve_as: bob
    expect: {approval: refused, refusal: name the incident}
  - name: carol may not deny
    user: dave
    history: {prod-db: 1}
    deny_as: carol
    expect: {denial: refused, refusal: carol may not deny}
  - name: someone who is not an approver is refused before any hook
    user: dave
    history: {prod-db: 1}
    approve_as: mallory
    expect: {approval: refused, refusal: Only the approvers of prod-db}
  - name: an open incident breaks glass
    user: dave
    incidents: [{email: dave@example.com, service: PDB0001}]
    expect: {decision: approve, reason: database incident}
  - name: the backup on call does not
    user: dave
    on_call: {PEP1: [{email: dave@example.com, level: 2}]}
    expect: {decision: human}
  - name: the primary does
    user: dave
    on_call: {PEP1: [dave@example.com]}
    expect: {decision: approve}
"""


def test_cases_fake_approvals_denials_history_and_incidents(tmp_path, policy_dir):
    policy_file(policy_dir, "db.py", POLICY)
    path = write_cases(tmp_path, CASES)

    code, out, err = accessbot("test", "policies", path.name, cwd=tmp_path)

    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[-1] == "9 case(s): 9 passed, 0 failed"
    assert lines[3].split()[-6:] == ["prod-db:", "human,", "approve", "by", "bob", "refused"]


def test_a_case_whose_approval_is_refused_unexpectedly_fails_with_why(tmp_path, policy_dir):
    policy_file(policy_dir, "db.py", POLICY)
    path = write_cases(
        tmp_path,
        """
        cases:
          - user: dave
            resource: prod-db
            history: {prod-db: 1}
            approve_as: bob
            expect: {approval: counted}
        """,
    )

    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)

    assert code == 1
    assert (
        "policy-tests.yaml:2: case 1 (dave asks for prod-db): approval: expected counted, got "
        "refused (name the incident: !approve <id> INC-...)"
    ) in out


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("expect: {approval: counted}", "expect.approval needs approve_as: who approves or denies"),
        ("approve_as: bob\n    expect: {approval: maybe}", "approval must be counted or refused"),
        ("history: {prod-db: many}\n    expect: {decision: human}", "history must be"),
        (
            "history: [{status: nearly, count: 1}]\n    expect: {decision: human}",
            "history.count(status='nearly'): status is one of granted, any",
        ),
        ("incidents: [{service: PDB0001}]\n    expect: {decision: human}", "incidents must be"),
        (
            "on_call: {PEP1: [{email: d@x.io, level: 0}]}\n    expect: {decision: human}",
            "on_call must map each id",
        ),
    ],
)
def test_malformed_new_keys_are_refused_with_file_and_line(tmp_path, policy_dir, case, says):
    policy_file(policy_dir, "db.py", POLICY)
    path = write_cases(tmp_path, f"cases:\n  - user: dave\n    resource: prod-db\n    {case}\n")

    code, out, _ = accessbot("test", "policies", path.name, cwd=tmp_path)

    assert code == 1 and "policy-tests.yaml:" in out and says in out, out


def test_whatif_lists_every_hook_that_would_run_and_the_escalation(bot_factory, policy_dir):
    policy_file(policy_dir, "db.py", POLICY)
    chat = bot_factory(ACCESS_PENDING_TIMEOUT="1h")

    reply = chat.reply("admin", "!access whatif dave prod-db 1h")

    assert [
        line for line in reply.splitlines() if line.startswith(("Hook:", "Escalation", "Time"))
    ] == [
        "Hook: get_approvers: ran now, to choose the approvers (above)",
        "Hook: on_request: ran now (the decision above)",
        "Hook: on_approve: would run at each approval, before it counts (it may refuse it)",
        "Hook: on_deny: would run at each denial, before it counts (it may refuse it)",
        "Hook: after_grant: would run once the grant is recorded",
        "Hook: after_revoke: would run once the access has ended",
        "Escalation 1: if undecided after 30m, also ask @erin in #dba",
        "Time-out: after 1h30m without a decision",
    ]
