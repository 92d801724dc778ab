"""What a new admin reads on the first day (issue 29): suggestions that keep what was
typed, a floor under durations, typos of a subcommand, the scope of a list, the real
wait of a time-out, when a grant ended, what a reload changed, and hints that name the
next command."""

import pytest

from tests.conftest import policy_file, request_id, webhook_policy

DEPLOY = {
    "description": "Production deploy",
    "max_duration": "1h",
    "durations": ["15m", "30m", "1h"],
    "default_duration": "30m",
    "approvers": ["@dave"],
    "fields": {"change": {"pattern": "^CHG-[0-9]+$", "required": True, "help": "CHG-42"}},
    "strategy": {"type": "none"},
}


@pytest.fixture
def chat(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    deploy = webhook_policy(webhook.url, **DEPLOY).replace("prod-db", "deploy-prod")
    policy_file(policy_dir, "deploy.py", deploy)
    return bot_factory()


def test_a_suggested_duration_keeps_every_field_the_person_typed(chat):
    reply = chat.reply("carol", "!access request deploy-prod 45m change=CHG-42 ship it")

    assert "Try !access request deploy-prod 30m change=CHG-42 ship it" in reply
    # ...and the suggestion works as typed.
    rid = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-42 ship it"))
    assert "Fields: change=CHG-42" in chat.reply("carol", f"!access show {rid}")


def test_a_duration_past_the_maximum_is_suggested_with_the_fields(bot_factory, policy_dir, webhook):
    fields = {"ticket": {"pattern": "^OPS-[0-9]+$", "required": True}}
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, fields=fields))
    chat = bot_factory()

    reply = chat.reply("carol", "!access request prod-db 9h ticket=OPS-7 fix the index")

    assert "Try !access request prod-db 4h ticket=OPS-7 fix the index" in reply


# -- item 10: typos of a subcommand ----------------------------------------------------


def test_a_misspelt_subcommand_is_answered_with_the_one_it_resembles(chat):
    reply = chat.reply("carol", "!access requst deploy-prod 30m change=CHG-42 ship it")

    assert reply.startswith("requst is not an access command; did you mean !access request?")
    assert "!access cancel" not in reply  # one line that helps, not the whole help


def test_a_word_like_no_subcommand_still_gets_the_help(chat):
    reply = chat.reply("carol", "!access frobnicate")

    assert reply.startswith("frobnicate is not an access command.")
    assert "!access request" in reply and "!access cancel" in reply


@pytest.mark.parametrize("typed, meant", [("verfy", "verify"), ("stauts", "status")])
def test_a_misspelt_audit_subcommand_is_not_read_as_a_filter(chat, typed, meant):
    reply = chat.reply("admin", f"!access audit {typed}")

    assert f"did you mean !access audit {meant}?" in reply
    assert f"user={typed}" in reply  # how to ask for a user of that name
    assert "No audit events match" not in reply


# -- item 9: the scope of !access list -------------------------------------------------


def test_list_for_an_approver_of_some_resources_says_it_shows_only_theirs(chat):
    rid = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-42 ship"))

    assert chat.reply("alice", "!access list") == (
        "No pending requests or active grants on the resources you approve (prod-db); "
        "admins see every resource."
    )
    dave = chat.reply("dave", "!access list")
    assert dave.startswith("Pending requests and active grants on the resources you approve")
    assert rid in dave
    everything = chat.reply("admin", "!access list")
    assert everything.startswith("Pending requests and active grants on every resource:")
    assert rid in everything


# -- item 11: a time-out says the real wait ---------------------------------------------


def test_a_time_out_after_a_restart_says_how_long_the_request_really_waited(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_PENDING_TIMEOUT="40s")
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    bot_factory.stop_last()

    clock.advance(minutes=13)  # the bot was away
    chat = bot_factory(ACCESS_PENDING_TIMEOUT="40s")

    # Told while the bot started: read what it sent from the TestBot's own queue.
    told = [chat.testbot.pop_message(timeout=15) for _ in range(2)]
    assert any(f"request {rid} for prod-db timed out after 13m " in t for t in told), told
    assert any(f"Request {rid} (prod-db for @carol) timed out after 13m;" in t for t in told)


# -- item 13: when a grant ended, and by how much it is overdue ------------------------


def test_show_of_a_revoked_grant_says_when_it_was_revoked(chat, clock):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    chat.say("alice", f"!approve {rid}")
    clock.advance(minutes=10)
    chat.say("carol", f"!access revoke {rid}")
    chat.wait_for("carol", "revoked")

    shown = chat.reply("carol", f"!access show {rid}")

    assert (
        "Granted: 2026-11-24 09:00:00 UTC; revoked: 2026-11-24 09:10:00 UTC "
        "(it was to end 2026-11-24 09:30:00 UTC)"
    ) in shown
    assert "ends: 2026-11-24 09:30:00" not in shown


def test_an_overdue_grant_says_by_how_much_not_0s_left(chat, clock, webhook):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    chat.say("alice", f"!approve {rid}")
    webhook.set_status(503)  # the target refuses the revoke
    clock.advance(minutes=30)
    chat.wait_for("#access-approvals", "attempt 1")
    clock.advance(minutes=1, seconds=50)

    shown = chat.reply("carol", f"!access show {rid}")
    listed = chat.reply("carol", "!access mine")

    assert "Time left: none, overdue by 1m50s" in shown
    assert "0s left" not in listed and "overdue by 1m50s" in listed


# -- item 17: doubled punctuation, hints that name the next command, wording -----------


def test_the_degraded_reason_does_not_double_its_punctuation(tmp_path):
    from accessbot.durable import StoreError
    from accessbot.rebuild import degraded_reason
    from accessbot.store import TinyDBStore
    from tests.builders import a_request
    from tests.test_rebuild import flip

    store = TinyDBStore(tmp_path / "access.json")
    store.save_many([a_request(), a_request(id="abc234")])
    store.compact()
    store.close()
    flip(tmp_path / "access.json")

    with pytest.raises(StoreError) as raised:
        TinyDBStore(tmp_path / "access.json")
    reason = degraded_reason(raised.value)

    assert "is not valid JSON" in reason
    assert ".)" not in reason and ").)" not in reason and ".." not in reason
    assert f"Nothing was done: {reason}.".count("..") == 0


def test_deny_on_an_active_grant_points_at_revoke(chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    chat.say("alice", f"!approve {rid}")

    reply = chat.reply("bob", f"!deny {rid} changed my mind")

    assert reply == (
        f"Request {rid} is already approved and active, so it cannot be denied; "
        f"to end it now: !access revoke {rid}"
    )


def test_cancel_without_an_id_withdraws_the_callers_only_pending_request(chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    request_id(chat.reply("dave", "!access request prod-db 30m other work"))  # not carol's

    assert chat.reply("carol", "!access cancel") == f"Cancelled {rid}."
    assert "pending approval" not in chat.reply("carol", "!access mine")


def test_cancel_without_an_id_asks_which_when_there_are_several(chat):
    one = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    two = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-1 ship"))

    reply = chat.reply("carol", "!access cancel")

    assert reply.startswith("You have 2 pending requests: ")
    assert f"{one} (prod-db)" in reply and f"{two} (deploy-prod)" in reply
    assert reply.rstrip(".").rsplit("say which: !access cancel ", 1)[1] in (one, two)
    assert "No pending requests" not in chat.reply("carol", "!access mine")


def test_cancel_without_an_id_and_nothing_pending_says_so(chat):
    assert chat.reply("carol", "!access cancel") == (
        "You have no pending request to withdraw; !access mine lists yours."
    )


def test_a_timed_out_request_and_the_bots_own_steps_read_plainly(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_PENDING_TIMEOUT="40m", ACCESS_APPROVAL_REMINDER="15m")
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing the index"))
    clock.advance(minutes=16)
    chat.wait_for("#access-approvals", f"Reminder: request {rid}")
    clock.advance(minutes=30)
    chat.wait_for("carol", "timed out")

    approved = chat.reply("alice", f"!approve {rid}")
    shown = chat.reply("carol", f"!access show {rid}")

    assert "is timed out" not in approved
    assert approved.startswith(f"Request {rid} timed out without a decision")
    assert "by @scheduler" not in shown
    assert "approvers reminded (by the bot)" in shown
    assert "timed out (by the bot)" in shown


def test_ask_again_after_a_time_out_keeps_the_fields_given(bot_factory, policy_dir, webhook, clock):
    deploy = webhook_policy(webhook.url, **DEPLOY).replace("prod-db", "deploy-prod")
    policy_file(policy_dir, "deploy.py", deploy)
    chat = bot_factory(ACCESS_PENDING_TIMEOUT="40m")
    rid = request_id(chat.reply("carol", "!access request deploy-prod 30m change=CHG-42 ship"))
    clock.advance(minutes=41)

    told = chat.wait_for("carol", f"request {rid} for deploy-prod timed out")

    assert "Ask again with !access request deploy-prod 30m change=CHG-42 <reason>." in told
