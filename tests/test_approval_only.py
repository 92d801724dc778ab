"""`"strategy": {"type": "none"}` through the real plugin: an approval-only resource is
decided like any other (quorum, fields, hooks), recorded and audited, active until its
end and then expired, and no target is ever called."""

import json

import pytest

from accessbot.policy import PolicyError, load_policies
from tests.conftest import accessbot, policy_file, request_id

CHANNEL = "#deploys"

GATE = """
from tests import hook_gates

RESOURCES = {
    "deploy-prod": {
        "description": "Production deploy",
        "max_duration": "1h",
        "approvers": ["@alice", "@bob", "@dave"],
        "approvals_required": 2,
        "channel": "#deploys",
        "fields": {"change": {"pattern": "^CHG-[0-9]+$", "required": True, "help": "CHG-42"}},
        "strategy": {"type": "none"},
    },
}


def on_approve(request, approval, ctx):
    if approval.approver == "dave":
        return ctx.refuse("dave is not a release manager")


def after_grant(request, ctx):
    hook_gates.note("after_grant", request.id, request.status, request.account)
    ctx.tell_channel(f"deploy {request.fields['change']} may go ahead")


def after_revoke(request, ctx):
    ctx.tell_channel(f"deploy window {request.id} closed ({request.status})")
"""


@pytest.fixture
def chat(bot_factory, policy_dir):
    policy_file(policy_dir, "deploy.py", GATE)
    return bot_factory()


def audit(tmp_path) -> list[dict]:
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_an_approval_only_request_needs_its_quorum_and_is_active_until_its_end(
    chat, clock, tmp_path
):
    said = chat.say("carol", "!access request deploy-prod 30m change=CHG-42 release 4.2")
    rid = request_id(said[0])
    assert "Waiting for 2 approvals" in said[0]

    assert "was not counted: dave is not a release manager" in chat.reply("dave", f"!approve {rid}")
    assert "(1 of 2)" in chat.reply("alice", f"!approve {rid}")
    reply = chat.reply("bob", f"!approve {rid}")

    assert reply == (
        f"Approved {rid}: @carol has deploy-prod for 30m, until 2026-11-24 09:30:00 UTC."
    )
    chat.wait_for("carol", f"Your request {rid} was approved by @alice")
    chat.wait_for(CHANNEL, "deploy CHG-42 may go ahead")
    shown = chat.reply("carol", f"!access show {rid}")
    assert shown.startswith(f"Request {rid}: active") and "Fields: change=CHG-42" in shown

    clock.advance(minutes=30, seconds=1)
    chat.wait_for("carol", "has expired")
    chat.wait_for(CHANNEL, f"deploy window {rid} closed (expired)")
    assert chat.reply("carol", f"!access show {rid}").startswith(f"Request {rid}: expired")

    events = [
        (e["event"], e.get("detail", "")) for e in audit(tmp_path) if e.get("request_id") == rid
    ]
    assert [name for name, _ in events] == [
        "requested",
        "approval_refused",
        "approval",
        "approved",
        "granted",
        "after_grant",
        "expired",
        "after_revoke",
    ]
    assert "approval only: no target to grant" in dict(events)["granted"]


def test_an_approval_only_request_can_be_ended_early_and_denied(chat):
    rid = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-1 hotfix"))
    assert "Denied" in chat.reply("dave", f"!deny {rid} not now")  # on_deny: none, so it counts
    again = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-2 hotfix"))
    chat.say("alice", f"!approve {again}")
    chat.say("bob", f"!approve {again}")
    chat.wait_for(CHANNEL, "deploy CHG-2 may go ahead")  # after_grant has spoken

    assert chat.reply("carol", f"!access revoke {again}") == (
        f"Revoked {again}: @carol no longer has deploy-prod."
    )


def test_resources_and_the_report_show_an_approval_only_resource(chat, tmp_path):
    listing = chat.reply("carol", "!access resources")
    assert "grants via approval only (no target is called)" in listing
    rid = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-7 go"))
    chat.say("alice", f"!approve {rid}")
    chat.say("bob", f"!approve {rid}")

    code, out, _ = accessbot(
        "report",
        "--out",
        "report.html",
        cwd=tmp_path,
        env={
            "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
            "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
        },
    )
    assert code == 0, out
    page = (tmp_path / "report.html").read_text()
    assert "deploy-prod" in page and "hash chain verified" in page


def test_the_none_strategy_takes_no_settings(policy_dir):
    policy_file(
        policy_dir,
        "deploy.py",
        GATE.replace('{"type": "none"}', '{"type": "none", "url": "https://x"}'),
    )
    with pytest.raises(PolicyError) as failed:
        load_policies(policy_dir)
    assert (
        "deploy-prod.strategy.url: is not a setting of the none strategy (it takes: type)"
        in str(failed.value)
    )
