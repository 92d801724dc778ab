"""`!access whatif` through the real plugin: which file and resource match, who would
be asked where, whether a hook would decide and why; nothing is created, no strategy
is called, and PagerDuty lookups are real and labelled so."""

import json

import pytest

from tests.conftest import policy_file
from tests.fake_pagerduty import TOKEN

CHANNEL = "#access-approvals"
SCHEDULE = "PABC123"


def policies(url: str) -> dict[str, str]:
    strategy = {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"}
    shell = {
        "description": "Root shell on production",
        "max_duration": "2h",
        "default_duration": "30m",
        "approvers": ["group:sre"],
        "channel": CHANNEL,
        "strategy": strategy,
    }
    db = {
        "max_duration": "4h",
        "approvers": ["@alice", f"pagerduty:{SCHEDULE}"],
        "approvals_required": 2,
        "channel": "#db-access",
        "fields": {"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key"}},
        "strategy": strategy,
    }
    return {
        "break_glass.py": f"""
            GROUPS = {{"sre": ["@alice", "@bob"]}}
            RESOURCES = {{"prod-shell": {shell!r}}}

            def on_request(request, ctx):
                if "forbidden" in request.reason:
                    return ctx.deny("nobody touches that")
                if ctx.pagerduty.is_on_call(request.requester_email, schedule="{SCHEDULE}"):
                    return ctx.approve("break-glass: requester is on call")
            """,
        "databases.py": f"RESOURCES = {{'prod-db': {db!r}}}\n",
    }


@pytest.fixture
def chat(bot_factory, policy_dir, webhook, pagerduty):
    for name, text in policies(webhook.url).items():
        policy_file(policy_dir, name, text)
    pagerduty.add_user("PCAROL1", "Carol Example", "carol@example.com")
    pagerduty.add_user("PDAVE01", "Dave Example", "dave@example.com")
    pagerduty.put_on_call("PCAROL1", schedule=SCHEDULE)
    return bot_factory(
        ACCESS_PAGERDUTY_URL=pagerduty.url,
        ACCESS_PAGERDUTY_TOKEN=TOKEN,
        ACCESS_PAGERDUTY_TIMEOUT=5,
        ACCESS_USER_EMAILS={"carol": "carol@example.com", "dave": "dave@example.com"},
    )


def audit_events(tmp_path) -> list[str]:
    path = tmp_path / "data" / "audit.jsonl"
    return (
        [json.loads(line)["event"] for line in path.read_text().splitlines()]
        if path.exists()
        else []
    )


def test_an_admin_sees_what_a_break_glass_request_would_do_and_nothing_happens(
    chat, webhook, tmp_path
):
    before = audit_events(tmp_path)

    reply = chat.reply("admin", "!access whatif carol prod-shell 1h")

    assert reply.splitlines() == [
        "What if @carol asked for prod-shell for 1h? (a dry run: nothing was created, no "
        "strategy was called)",
        "Policy: break_glass.py, resource prod-shell (max 2h, default 30m; hooks: on_request)",
        "Approvers: group:sre (@alice, @bob)",
        f"Channel: {CHANNEL}",
        "Decision: would be APPROVED at once by on_request (break-glass, reviewed afterwards): "
        "break-glass: requester is on call",
        "Hook: on_request: ran now (the decision above)",
        f"Lookup: is carol@example.com on call for schedule {SCHEDULE}? yes (live PagerDuty lookup)",
    ]
    assert webhook.calls == []
    assert audit_events(tmp_path) == before
    assert "No pending requests" in chat.reply("admin", "!access list")
    assert chat.to(CHANNEL) == []


def test_someone_not_on_call_would_wait_for_the_group(chat):
    reply = chat.reply("alice", "!access whatif dave prod-shell")
    assert "for 30m?" in reply
    assert "Decision: would wait for the approvers: on_request returned None" in reply
    assert "is dave@example.com on call for schedule PABC123? no (live PagerDuty lookup)" in reply


def test_a_deny_by_the_hook_and_its_reason_are_shown(chat):
    reply = chat.reply("admin", "!access whatif dave prod-shell 30m forbidden things")
    assert "Decision: would be DENIED at once by on_request: nobody touches that" in reply


def test_pagerduty_approvers_fields_and_quorum_are_shown(chat):
    reply = chat.reply("admin", "!access whatif dave prod-db 2h ticket=OPS-12")
    assert "Approvers: @alice, pagerduty:PABC123 (carol@example.com); 2 approvals needed" in reply
    assert "Channel: #db-access" in reply and "Fields: ticket=OPS-12" in reply
    assert "Decision: would wait for the approvers: no on_request hook" in reply
    assert "who is on call for schedule PABC123? carol@example.com (live PagerDuty lookup)" in reply


def test_a_request_the_bot_would_refuse_says_why(chat):
    reply = chat.reply("admin", "!access whatif dave prod-db 5h")
    assert "Decision: would be REFUSED: prod-db allows at most 4h" in reply
    reply = chat.reply("admin", "!access whatif dave prod-db 1h")
    assert "would be REFUSED: prod-db needs ticket=... (Jira key)" in reply


def test_a_failing_pagerduty_is_labelled_and_counted_as_not_on_call(chat, pagerduty):
    pagerduty.fail_with("500")
    reply = chat.reply("admin", "!access whatif carol prod-shell")
    assert "Decision: would wait for the approvers" in reply
    assert "failed (PagerDuty answered HTTP 500), counted as no (live PagerDuty lookup)" in reply
    assert "Note: PagerDuty check failed: PagerDuty answered HTTP 500" in reply


def test_an_existing_request_is_mentioned(chat):
    chat.say("dave", "!access request prod-shell 30m curious")
    reply = chat.reply("admin", "!access whatif dave prod-shell")
    assert "Note: as things stand it would be refused: You already asked for prod-shell" in reply


def test_only_admins_and_the_resources_approvers_may_ask(chat):
    assert chat.reply("bob", "!access whatif carol prod-shell").startswith("What if @carol")
    reply = chat.reply("mallory", "!access whatif carol prod-shell")
    assert reply == "!access whatif is for admins and the approvers of prod-shell (group:sre)."
    assert "is for admins" in chat.reply("bob", "!access whatif carol prod-db ticket=A-1")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("!access whatif carol", "Whose request, for what? !access whatif <user> <resource>"),
        (
            "!access whatif carol nope",
            "Unknown resource nope. You can request: prod-db, prod-shell",
        ),
        ("!access whatif carol prod-shell 5x", '"5x" is not a duration'),
    ],
)
def test_bad_whatif_input_says_what_to_type(chat, text, says):
    assert says in chat.reply("admin", text)
