"""on_approve and on_deny through the real plugin (and a Slack click): a hook runs before
an approval or denial counts; `ctx.refuse(why)` discards it, tells the person why, audits
the refusal and leaves the request as it was. A hook that fails (raises, overruns, returns
something else) fails closed both ways: a failing on_approve leaves the approval uncounted,
a failing on_deny leaves the denial standing, audited with the hook's error."""

import json

import pytest

from accessbot.integrations import slack
from tests.conftest import policy_file, request_id, webhook_policy
from tests.slack_fakes import click_payload
from tests.slack_fixtures import current, has_buttons, request_card, shown

CHANNEL = "#access-approvals"

ALLOW_LIST = """

def on_approve(request, approval, ctx):
    if approval.approver != "alice":
        return ctx.refuse(f"only @alice approves prod-db, not @{approval.approver}")
    return None


def on_deny(request, denial, ctx):
    if not denial.comment:
        return ctx.refuse("say why you deny it: !deny <id> <reason>")
    return None
"""

RAISES = """

def on_approve(request, approval, ctx):
    return {"alice": None}[approval.approver]


def on_deny(request, denial, ctx):
    raise RuntimeError("the HR system is down")
"""

SLOW = """
import threading


def on_approve(request, approval, ctx):
    threading.Event().wait(5)


def on_deny(request, denial, ctx):
    threading.Event().wait(5)
"""

SEES = """

def on_approve(request, approval, ctx):
    seen = (approval.approver, approval.approver_email, approval.comment, request.requester)
    if seen != ("bob", "bob@example.com", "checked INC-42", "carol"):
        return ctx.refuse(f"saw {seen}")
    return None
"""

EMAILS = {"carol": "carol@example.com", "alice": "alice@example.com", "bob": "bob@example.com"}


def start(bot_factory, policy_dir, webhook, hooks, **settings):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, **settings) + hooks)
    return bot_factory(ACCESS_USER_EMAILS=EMAILS, ACCESS_HOOK_TIMEOUT=0.5)


def ask(chat) -> str:
    return request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))


def audit(tmp_path) -> list[dict]:
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_an_approval_on_approve_lets_through_counts_and_grants(bot_factory, policy_dir, webhook):
    chat = start(bot_factory, policy_dir, webhook, ALLOW_LIST)
    rid = ask(chat)

    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_a_refused_approval_is_discarded_told_why_and_audited(
    bot_factory, policy_dir, webhook, tmp_path
):
    chat = start(bot_factory, policy_dir, webhook, ALLOW_LIST)
    rid = ask(chat)
    before = chat.reply("carol", f"!access show {rid}")

    reply = chat.reply("bob", f"!approve {rid} looks fine")

    assert reply == (
        f"Your approval of {rid} was not counted: only @alice approves prod-db, not @bob. "
        f"The request is unchanged; see !access show {rid}."
    )
    assert chat.reply("carol", f"!access show {rid}") == before  # pending, no approval
    assert webhook.calls == []
    refused = [e for e in audit(tmp_path) if e["event"] == "approval_refused"]
    assert [(e["actor"], e["request_id"], e["detail"]) for e in refused] == [
        ("bob", rid, "only @alice approves prod-db, not @bob")
    ]
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_refused_approval_does_not_count_toward_a_quorum(bot_factory, policy_dir, webhook):
    chat = start(
        bot_factory,
        policy_dir,
        webhook,
        ALLOW_LIST.replace('!= "alice"', 'not in ("alice", "dave")'),
        approvers=["@alice", "@bob", "@dave"],
        approvals_required=2,
    )
    rid = ask(chat)

    assert "not counted" in chat.reply("bob", f"!approve {rid}")
    assert "(1 of 2)" in chat.reply("alice", f"!approve {rid}")
    assert webhook.calls == []
    assert chat.reply("dave", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_refused_denial_leaves_the_request_pending(bot_factory, policy_dir, webhook, tmp_path):
    chat = start(bot_factory, policy_dir, webhook, ALLOW_LIST)
    rid = ask(chat)

    reply = chat.reply("bob", f"!deny {rid}")

    assert reply.startswith(f"Your denial of {rid} was not counted: say why you deny it")
    assert "pending approval" in chat.reply("carol", f"!access show {rid}")
    assert "denial_refused" in [e["event"] for e in audit(tmp_path)]
    assert chat.reply("bob", f"!deny {rid} not during the freeze") == (
        f"Denied {rid}; @carol was told."
    )


def test_on_approve_sees_who_approves_their_email_and_comment(bot_factory, policy_dir, webhook):
    chat = start(bot_factory, policy_dir, webhook, SEES)
    rid = ask(chat)

    assert chat.reply("bob", f"!approve {rid} checked INC-42").startswith(f"Approved {rid}")


def test_an_on_approve_that_raises_refuses_and_says_so(bot_factory, policy_dir, webhook):
    chat = start(bot_factory, policy_dir, webhook, RAISES)
    rid = ask(chat)

    reply = chat.reply("bob", f"!approve {rid} because")

    assert "was not counted: the policy check failed, so it refuses (fail closed)" in reply
    assert "db.py:5: on_approve raised KeyError: 'bob'" in reply
    assert "pending approval" in chat.reply("carol", f"!access show {rid}")
    assert webhook.calls == []


def test_an_on_approve_that_overruns_refuses(bot_factory, policy_dir, webhook):
    chat = start(bot_factory, policy_dir, webhook, SLOW)
    rid = ask(chat)

    reply = chat.reply("alice", f"!approve {rid} because")

    assert "on_approve took longer than 0.5s (ACCESS_HOOK_TIMEOUT)" in reply
    assert "fail closed" in reply
    assert "pending approval" in chat.reply("carol", f"!access show {rid}")
    assert webhook.calls == []


GARBAGE_DENY = "\n\ndef on_deny(request, denial, ctx):\n    return 'fine by me'\n"


@pytest.mark.parametrize(
    ("hooks", "says"),
    [
        (RAISES, "db.py:9: on_deny raised RuntimeError: the HR system is down"),
        (SLOW, "on_deny took longer than 0.5s (ACCESS_HOOK_TIMEOUT)"),
        (GARBAGE_DENY, "db.py:5: on_deny returned 'fine by me'"),
    ],
    ids=["raises", "overruns", "returns-garbage"],
)
def test_a_failing_on_deny_leaves_the_denial_standing_and_the_next_approval_refused(
    bot_factory, policy_dir, webhook, tmp_path, hooks, says
):
    chat = start(bot_factory, policy_dir, webhook, hooks)
    rid = ask(chat)

    reply = chat.reply("bob", f"!deny {rid} not during the freeze")

    assert reply.startswith(f"Denied {rid}; @carol was told.")
    assert says in reply and "the denial stands" in reply
    assert "denied" in chat.reply("carol", f"!access show {rid}")
    assert "Approved" not in chat.reply("alice", f"!approve {rid}")
    assert webhook.calls == []
    (denied,) = [e for e in audit(tmp_path) if e["event"] == "denied"]
    assert (denied["actor"], denied["detail"]) == ("bob", "not during the freeze")
    assert says in denied["hook_error"]
    assert "denial_refused" not in [e["event"] for e in audit(tmp_path)]


def test_a_hook_that_returns_something_else_refuses(bot_factory, policy_dir, webhook):
    hook = "\n\ndef on_approve(request, approval, ctx):\n    return ctx.approve('yes')\n"
    chat = start(bot_factory, policy_dir, webhook, hook)
    rid = ask(chat)

    reply = chat.reply("alice", f"!approve {rid}")

    assert "db.py:5: on_approve returned Decision(" in reply
    assert "it must return ctx.refuse(reason) or None" in reply and "fail closed" in reply
    assert webhook.calls == []


def test_a_stranger_is_refused_before_any_hook_runs(bot_factory, policy_dir, webhook, tmp_path):
    chat = start(bot_factory, policy_dir, webhook, RAISES)
    rid = ask(chat)

    assert "Only the approvers of prod-db" in chat.reply("mallory", f"!approve {rid}")
    assert "approval_refused" not in [e["event"] for e in audit(tmp_path)]


def test_a_click_refused_by_on_approve_is_answered_privately_and_changes_nothing(
    start_bot, fake, webhook, policy_dir, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url) + ALLOW_LIST)
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))

    (answer,) = fake.wait(lambda: fake.ephemeral_to("UBOB"), "bob's answer")
    assert answer.startswith(f"Your approval of {rid} was not counted: only @alice approves")
    assert has_buttons(current(fake, card)) and fake.updates == []
    assert webhook.actions() == []
    assert "approval_refused" in [e["event"] for e in audit(tmp_path)]

    bot.interact(click_payload(slack.APPROVE, rid, "UALICE", card))
    fake.wait(lambda: "*Approved* by @alice" in shown(current(fake, card)), "the approval")


def test_a_huge_on_deny_error_is_cut_before_it_is_audited(
    bot_factory, policy_dir, webhook, tmp_path
):
    hook = "\n\ndef on_deny(request, denial, ctx):\n    raise RuntimeError('x' * 5_000_000)\n"
    chat = start(bot_factory, policy_dir, webhook, hook)
    rid = ask(chat)

    assert chat.reply("bob", f"!deny {rid} no").startswith(f"Denied {rid}")

    (denied,) = [e for e in audit(tmp_path) if e["event"] == "denied"]
    assert len(denied["hook_error"]) < 2100 and denied["hook_error"].endswith("more characters]")
