"""Checked justification through the real plugin on the Text backend: a ticket looked up
in a local Jira at request time (refused when unknown, closed, of another project or
unreachable, with what to type), shown on the card, in `!access show` and the audit log,
seen by hooks; and, with end_with, the grant revoked when the ticket moves to Done."""

import json

import pytest

from tests.conftest import eventually, policy_file, request_id, webhook_policy
from tests.fake_trackers import FakeJira

CHANNEL = "#access-approvals"
HOOK = """
def on_request(request, ctx):
    link = request.links.get("ticket")
    if link and link["assignee"] and link["assignee"] == request.requester_email:
        return ctx.approve("the requester is the ticket's assignee: " + link["key"])
"""


@pytest.fixture
def jira():
    fake = FakeJira()
    yield fake
    fake.close()


def ticket_field(jira, **check):
    return {
        "ticket": {
            "pattern": "^[A-Z][A-Z0-9]+-[0-9]+$",
            "required": True,
            "help": "Jira key like OPS-12",
            "check": {
                "type": "jira",
                "url": jira.url,
                "user_env": "JIRA_USER",
                "token_env": "JIRA_TOKEN",
                "projects": ["OPS"],
                "open_statuses": ["To Do", "In Progress"],
                "timeout": 2,
                **check,
            },
            "end_with": True,
        }
    }


@pytest.fixture
def start(bot_factory, policy_dir, webhook, jira, monkeypatch):
    monkeypatch.setenv("JIRA_USER", "bot@acme.com")
    monkeypatch.setenv("JIRA_TOKEN", "jira-token-123")

    def started(hook: str = "", **check):
        text = webhook_policy(webhook.url, fields=ticket_field(jira, **check)) + hook
        policy_file(policy_dir, "db.py", text)
        return bot_factory(ACCESS_USER_EMAILS={"carol": "carol@acme.com"})

    return started


def test_an_unknown_ticket_is_refused_naming_it_and_what_to_type(start, jira):
    chat = start()
    reply = chat.reply("carol", "!access request prod-db 30m ticket=OPS-99 fixing the index")
    assert reply == (
        "OPS-99 is not a Jira issue the bot can see; give an open ticket, e.g. !access "
        "request prod-db 30m ticket=<Jira key like OPS-12> <reason>."
    )
    assert chat.to(CHANNEL) == []


def test_a_closed_ticket_or_one_of_another_project_is_refused(start, jira):
    jira.add("OPS-12", "Done")
    jira.add("SEC-4", "In Progress")
    chat = start()
    reply = chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 fixing")
    assert reply.startswith("OPS-12 is Done; give an open ticket")
    calls = jira.count()
    reply = chat.reply("carol", "!access request prod-db 30m ticket=SEC-4 fixing")
    assert reply.startswith("SEC-4 is in project SEC, not OPS; give an open ticket")
    assert jira.count() == calls  # another project's key is not even looked up
    assert "no pending requests" in chat.reply("carol", "!access mine")


def test_a_tracker_that_is_down_refuses_by_default(start, jira):
    jira.add("OPS-12")
    chat = start()
    jira.failure = 503
    reply = chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 fixing")
    assert reply.startswith("ticket=OPS-12 could not be checked (Jira at http://127.0.0.1:")
    assert "answered HTTP 503), so nothing was asked; try again in a few minutes" in reply
    assert chat.to(CHANNEL) == []


def test_ask_approvers_lets_it_through_marked_not_checked_on_the_card(start, jira):
    chat = start(when_unreachable="ask_approvers")
    jira.failure = 503
    rid = request_id(chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 fixing"))
    card = chat.to(CHANNEL)[-1]
    assert "ticket: OPS-12 (not checked: the tracker could not be reached)" in card
    assert "Note: ticket not checked: Jira at http://127.0.0.1:" in card
    assert rid in card


def test_the_card_show_and_audit_carry_the_ticket_as_the_tracker_told_it(start, jira, tmp_path):
    jira.add("OPS-12", "In Progress", "Rotate the <!channel> password")
    chat = start()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 fixing"))
    card = chat.to(CHANNEL)[-1]
    assert 'ticket: OPS-12 "Rotate the <' in card and 'password" (In Progress at request)' in card
    assert "<!channel>" not in card  # tracker text is escaped like any user text
    shown = chat.reply("carol", f"!access show {rid}")
    assert "Link: ticket OPS-12 " in shown and f"{jira.url}/browse/OPS-12" in shown
    requested = [
        json.loads(line)
        for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
        if '"requested"' in line
    ]
    assert requested[-1]["links"]["ticket"]["status"] == "In Progress"
    assert requested[-1]["links"]["ticket"]["key"] == "OPS-12"


def test_a_hook_sees_the_link_and_approves_the_tickets_assignee(start, jira, webhook):
    jira.add("OPS-12", "In Progress", "Rotate", assignee="carol@acme.com")
    chat = start(hook=HOOK)
    said = chat.say("carol", "!access request prod-db 30m ticket=OPS-12 fixing")
    assert "the requester is the ticket's assignee: OPS-12" in chat.reply(
        "carol", f"!access show {request_id(said[0])}"
    )


def test_a_grant_that_ends_with_its_ticket_is_revoked_when_it_moves_to_done(
    start, jira, webhook, clock, tmp_path
):
    jira.add("OPS-12", "In Progress", "Rotate the DB password")
    chat = start()
    rid = request_id(chat.reply("carol", "!access request prod-db 2h ticket=OPS-12 rotating"))
    chat.say("alice", f"!approve {rid}")
    dm = chat.wait_for("carol", f"Your request {rid} was approved by @alice", timeout=30)
    assert 'It ends sooner if OPS-12 "Rotate the DB password" (In Progress at request) closes' in dm
    eventually(lambda: webhook.count("grant", rid) == 1, "the grant", timeout=30)

    clock.advance(minutes=1)  # a pass while the ticket is open changes nothing
    eventually(lambda: jira.count() >= 2, "a re-check", timeout=30)
    assert webhook.count("revoke", rid) == 0

    jira.move("OPS-12", "Done")
    clock.advance(minutes=1)
    told = chat.wait_for("carol", f"request {rid}) was revoked: OPS-12 moved to Done", timeout=30)
    assert "this grant ends with it" in told
    chat.wait_for(
        CHANNEL, f"Request {rid}: @carol's access to prod-db was revoked: OPS-12", timeout=30
    )
    assert webhook.count("revoke", rid) == 1
    shown = chat.reply("carol", f"!access show {rid}")
    assert "revoked" in shown.splitlines()[0]
    assert "link closed by @link-check: OPS-12 moved to Done" in shown
    events = [
        json.loads(line)
        for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
        if f'"{rid}"' in line
    ]
    closed = [e for e in events if e["event"] == "link_closed"]
    assert closed and closed[0]["detail"] == "OPS-12 moved to Done"
    assert events[-1]["event"] == "revoked" and events[-1]["actor"] == "link-check"


def test_an_unreachable_tracker_leaves_the_grant_and_tells_the_admins_once(
    start, jira, webhook, clock
):
    jira.add("OPS-12", "In Progress")
    chat = start()
    rid = request_id(chat.reply("carol", "!access request prod-db 2h ticket=OPS-12 rotating"))
    chat.say("alice", f"!approve {rid}")
    eventually(lambda: webhook.count("grant", rid) == 1, "the grant", timeout=30)
    jira.failure = 503
    clock.advance(minutes=1)
    chat.wait_for("admin", "could not re-check jira links", timeout=30)
    before = jira.count()
    clock.advance(minutes=1)
    eventually(lambda: jira.count() > before, "a second re-check", timeout=30)
    chat.delivered()
    assert sum("could not re-check" in m for m in chat.to("admin")) == 1
    assert webhook.count("revoke", rid) == 0
    assert "active" in chat.reply("carol", f"!access show {rid}").splitlines()[0]


def test_an_extension_is_refused_once_the_ticket_is_closed(start, jira, webhook):
    jira.add("OPS-12", "In Progress")
    chat = start(when_unreachable="refuse")
    rid = request_id(chat.reply("carol", "!access request prod-db 1h ticket=OPS-12 rotating"))
    chat.say("alice", f"!approve {rid}")
    eventually(lambda: webhook.count("grant", rid) == 1, "the grant", timeout=30)
    jira.move("OPS-12", "Done")
    reply = chat.reply("carol", f"!access extend {rid} 30m more")
    assert reply.startswith(f"{rid} cannot be extended: OPS-12 is Done.")
    assert "ask afresh with an open ticket" in reply


def test_whatif_shows_what_the_check_says(start, jira):
    jira.add("OPS-12", "Done", "Rotate")
    chat = start()
    reply = chat.reply("admin", "!access whatif carol prod-db 30m ticket=OPS-12 rotating")
    assert "Lookup: ticket=OPS-12: OPS-12 is Done (live tracker lookup)" in reply
    assert "OPS-12 is Done; give an open ticket" in reply
    jira.move("OPS-12", "In Progress")
    reply = chat.reply("admin", "!access whatif carol prod-db 30m ticket=OPS-12 rotating")
    assert (
        'Lookup: ticket=OPS-12: OPS-12 "Rotate" (In Progress at request), ends the grant '
        "when it closes (live tracker lookup)" in reply
    )


def test_resources_says_which_field_is_looked_up_and_ends_access(start):
    chat = start()
    assert (
        "give ticket=... (required: Jira key like OPS-12; looked up in Jira, ends access "
        "when it closes)" in chat.reply("carol", "!access resources")
    )


def test_a_github_issue_is_checked_the_same_way(bot_factory, policy_dir, webhook, monkeypatch):
    from tests.fake_trackers import FakeGitHubIssues

    github = FakeGitHubIssues()
    try:
        monkeypatch.setenv("GH_ISSUES_TOKEN", "ghp_issues_token")
        check = {"type": "github_issue", "repo": "acme/ops", "api_url": github.url,
                 "token_env": "GH_ISSUES_TOKEN"}  # fmt: skip
        fields = {"issue": {"required": True, "help": "#123", "check": check, "end_with": True}}
        policy_file(policy_dir, "db.py", webhook_policy(webhook.url, fields=fields))
        github.add("acme/ops", 123, title="Prod DB slow")
        github.add("acme/ops", 124, state="closed")
        chat = bot_factory()
        reply = chat.reply("carol", "!access request prod-db 30m issue=#124 looking")
        assert reply.startswith("acme/ops#124 is closed; give an open issue")
        rid = request_id(chat.reply("carol", "!access request prod-db 30m issue=#123 looking"))
        card = chat.to(CHANNEL)[-1]
        assert rid in card and 'issue: acme/ops#123 "Prod DB slow" (open at request)' in card
        assert github.calls[-1] == ("/repos/acme/ops/issues/123", "Bearer ghp_issues_token")
    finally:
        github.close()
