"""Quorum and separation of duties through the real plugin: `approvals_required: 2`
needs two people other than the requester, whatever the approver list or
allow_self_approval say; one deny ends the request."""

import pytest

from tests.conftest import policy_file, request_id, webhook_policy

CHANNEL = "#access-approvals"


def start(bot_factory, policy_dir, webhook, **settings):
    settings.setdefault("approvals_required", 2)
    settings.setdefault("approvers", ["@alice", "@bob", "@dave"])
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, **settings))
    return bot_factory()


def ask(chat, user="carol") -> str:
    return request_id(chat.reply(user, "!access request prod-db 30m fixing INC-42"))


def test_two_distinct_approvers_are_needed_and_the_card_counts_them(
    bot_factory, policy_dir, webhook
):
    chat = start(bot_factory, policy_dir, webhook)
    said = chat.say("carol", "!access request prod-db 30m fixing INC-42")
    rid = request_id(said[0])
    assert "Waiting for 2 approvals from @alice, @bob, @dave" in said[0]
    assert "Approvals: 0 of 2" in chat.to(CHANNEL)[-1]

    said = chat.say("alice", f"!approve {rid}")
    assert said[0] == f"Your approval of {rid} is recorded (1 of 2); it needs 1 more."
    assert "Approvals: 1 of 2 (@alice)" in chat.to(CHANNEL)[-1]
    assert webhook.calls == []

    assert "You already approved" in chat.reply("alice", f"!approve {rid}")
    assert webhook.calls == []

    assert chat.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}")
    assert webhook.actions() == [("grant", rid)]
    assert any(f"Your request {rid} was approved by @alice, @bob:" in t for t in chat.to("carol"))


def test_one_deny_ends_the_request_even_after_an_approval(bot_factory, policy_dir, webhook):
    chat = start(bot_factory, policy_dir, webhook)
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")

    assert (
        chat.reply("bob", f"!deny {rid} not during the freeze") == f"Denied {rid}; @carol was told."
    )

    assert "already denied" in chat.reply("dave", f"!approve {rid}")
    assert webhook.calls == []
    assert "denied" in chat.reply("carol", f"!access show {rid}")


def test_the_requester_never_counts_toward_a_quorum_even_when_self_approval_is_allowed(
    bot_factory, policy_dir, webhook
):
    chat = start(
        bot_factory,
        policy_dir,
        webhook,
        approvers=["@alice", "@bob", "@carol"],
        allow_self_approval=True,
    )
    rid = ask(chat, user="carol")

    reply = chat.reply("carol", f"!approve {rid}")

    assert reply == (
        f"You cannot approve your own request {rid}: it needs 2 approvals from people other "
        "than you (@alice, @bob)."
    )
    shown = chat.reply("carol", f"!access show {rid}")
    assert "pending approval" in shown and "approval by" not in shown
    chat.say("alice", f"!approve {rid}")
    assert webhook.calls == []
    chat.say("bob", f"!approve {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_with_a_quorum_of_one_self_approval_still_works_when_allowed(
    bot_factory, policy_dir, webhook
):
    chat = start(
        bot_factory,
        policy_dir,
        webhook,
        approvals_required=1,
        approvers=["@alice", "@carol"],
        allow_self_approval=True,
    )
    rid = ask(chat, user="carol")
    assert chat.reply("carol", f"!approve {rid}").startswith(f"Approved {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_the_card_warns_when_the_quorum_cannot_be_reached_without_the_requester(
    bot_factory, policy_dir, webhook
):
    chat = start(bot_factory, policy_dir, webhook, approvers=["@alice", "@carol"])
    rid = ask(chat, user="carol")
    card = chat.to(CHANNEL)[-1]
    assert rid in card
    assert (
        "Note: needs 2 approvals but only 1 approver(s) other than the requester can decide "
        "(@alice)"
    ) in card


@pytest.mark.parametrize("handle", ["bob", "@bob"])
def test_one_person_under_two_spellings_counts_once(bot_factory, policy_dir, webhook, handle):
    chat = start(bot_factory, policy_dir, webhook)
    rid = ask(chat)
    chat.say("bob", f"!approve {rid}")
    assert "You already approved" in chat.reply(handle, f"!approve {rid}")
    assert webhook.calls == []


def test_the_domain_itself_never_counts_the_requester_toward_a_quorum():
    from datetime import timedelta

    from accessbot.domain import Request, TransitionError
    from tests.conftest import START

    request = Request(
        "abc234",
        "carol",
        "prod-db",
        timedelta(hours=1),
        "x",
        START,
        CHANNEL,
        ["@carol", "@alice", "@bob"],
        approvals_required=2,
        allow_self_approval=True,
    )
    with pytest.raises(TransitionError, match="needs 2 approvals from people other than you"):
        request.add_approval("carol", START)
    assert request.approvals == []
