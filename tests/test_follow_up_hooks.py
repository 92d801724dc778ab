"""after_grant and after_revoke through the real plugin: they run once the grant or revoke
is recorded, on a pool of their own (never holding the decision lock, never delaying a
revoke), once per grant and revoke even across a restart; what they tell reaches the
requester and the channel; a failure is logged, told to the admins and audited, and
undoes nothing."""

import json
import logging

import pytest

from accessbot.domain import iso
from tests import hook_gates
from tests.conftest import policy_file, request_id, sent_at_start, webhook_policy
from tests.helpers import eventually

CHANNEL = "#access-approvals"

TELLING = """
from tests import hook_gates


def after_grant(request, ctx):
    hook_gates.note("after_grant", request.id, request.status, request.account)
    ctx.tell_requester(
        f"Your credential is {request.grant_result['credential']} (account {request.account})"
    )
    ctx.tell_channel(f"{request.id}: ticket opened for {request.requester}")


def after_revoke(request, ctx):
    hook_gates.note("after_revoke", request.id, request.status)
    ctx.tell_channel(f"{request.id}: ticket closed ({request.status})")
"""

WAITING = """
from tests import hook_gates


def {hook}(request, ctx):
    hook_gates.note("started", request.id)
    hook_gates.gate("hook").wait(20)
    hook_gates.note("finished", request.id)
    ctx.tell_channel(f"{hook} done for {{request.id}}")
"""

QUICK = """
from tests import hook_gates


def after_grant(request, ctx):
    hook_gates.note("ran", request.id)
    ctx.tell_channel(f"after_grant ran for {request.id}")
"""

RAISES = """

def after_grant(request, ctx):
    ctx.tell_requester("about to fail")
    raise RuntimeError("the ticket system said no")
"""


@pytest.fixture(autouse=True)
def gates():
    hook_gates.reset()
    yield
    hook_gates.reset()  # a hook still waiting finishes


def start(bot_factory, policy_dir, webhook, hooks, **config):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url) + hooks)
    return bot_factory(**config)


def said(chat, user: str, text: str, starts: str) -> str:
    """What the bot answered `user` (a follow-up hook may speak in between)."""
    answers = chat.say(user, text)
    return next(a for a in answers if a.startswith(starts))


def granted(chat, user="carol", duration="30m") -> str:
    rid = request_id(said(chat, user, f"!access request prod-db {duration} x", "Request "))
    said(chat, "alice", f"!approve {rid}", f"Approved {rid}")
    return rid


def events(tmp_path, name: str) -> list[dict]:
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


def mine(request_id: str) -> list[tuple]:
    """What hooks noted about one request (a hook of an earlier test may still note)."""
    return [n for n in hook_gates.notes() if n[1] == request_id]


def wait_for_note(*entry):
    """Wait until a hook has noted `entry` (it runs on the bot's follow-up thread)."""
    eventually(lambda: entry in hook_gates.notes(), f"{entry} noted", explain=hook_gates.notes)


def told_at_start(chat, caplog, needle: str) -> None:
    """Wait for `needle` from a bot that may have said it while it started."""
    seen: list[str] = []

    def said() -> bool:
        seen.extend(sent_at_start(chat, caplog) + chat.to(CHANNEL))
        return any(needle in text for text in seen)

    eventually(said, f"{needle!r} said", explain=lambda: seen)


def test_after_grant_runs_once_with_the_account_and_answer_and_tells_requester_and_channel(
    bot_factory, policy_dir, webhook, tmp_path
):
    webhook.answer = {"account": "u-123", "credential": "cred-42"}
    chat = start(bot_factory, policy_dir, webhook, TELLING)

    rid = granted(chat)

    chat.wait_for("carol", "Your credential is cred-42 (account u-123)")
    chat.wait_for(CHANNEL, f"{rid}: ticket opened for carol")
    assert mine(rid) == [("after_grant", rid, "active", "u-123")]
    (event,) = events(tmp_path, "after_grant")
    assert (event["request_id"], event["outcome"], event["actor"]) == (rid, "ran", "bot")
    assert "after grant (by the bot): ran: told 2 message(s)" in chat.reply(
        "carol", f"!access show {rid}"
    )


def test_after_revoke_runs_once_after_a_revoke_and_after_an_expiry(
    bot_factory, policy_dir, webhook, clock, tmp_path
):
    webhook.answer = {"account": "u-123", "credential": "cred-42"}
    chat = start(bot_factory, policy_dir, webhook, TELLING)
    revoked = granted(chat)
    expiring = granted(chat, user="dave")

    chat.say("carol", f"!access revoke {revoked}")
    chat.wait_for(CHANNEL, f"{revoked}: ticket closed (revoked)")
    clock.advance(minutes=30, seconds=1)
    chat.wait_for(CHANNEL, f"{expiring}: ticket closed (expired)")

    assert sorted(n for n in hook_gates.notes() if n[0] == "after_revoke") == sorted(
        [("after_revoke", revoked, "revoked"), ("after_revoke", expiring, "expired")]
    )
    assert sorted(e["request_id"] for e in events(tmp_path, "after_revoke")) == sorted(
        [revoked, expiring]
    )


def test_a_slow_after_revoke_never_delays_a_due_revoke_nor_holds_the_decision_lock(
    bot_factory, policy_dir, webhook, clock, tmp_path
):
    chat = start(
        bot_factory,
        policy_dir,
        webhook,
        WAITING.format(hook="after_revoke"),
        ACCESS_HOOK_TIMEOUT=30,
    )
    first = granted(chat)
    second = granted(chat, user="dave", duration="1h")
    chat.say("carol", f"!access revoke {first}")
    wait_for_note("started", first)  # and it waits for the gate

    due = clock.advance(hours=1, seconds=1)  # the second grant is due now
    chat.wait_for(CHANNEL, f"Request {second}: @dave's access to prod-db expired and was revoked")

    # Revoked while the first revoke's hook was still running, at the clock's due time.
    assert ("finished", first) not in hook_gates.notes()
    assert webhook.count("revoke", second) == 1
    (expired,) = [e for e in events(tmp_path, "expired") if e["request_id"] == second]
    assert expired["ts"] == iso(due) and expired["actor"] == "scheduler"
    # Nothing waits for the hook: new requests and decisions go through meanwhile.
    third = request_id(chat.reply("erin", "!access request prod-db 30m other work"))
    assert chat.reply("bob", f"!approve {third}").startswith(f"Approved {third}")

    hook_gates.gate("hook").set()
    chat.wait_for(CHANNEL, f"after_revoke done for {first}")
    chat.wait_for(CHANNEL, f"after_revoke done for {second}")
    assert sorted(e["request_id"] for e in events(tmp_path, "after_revoke")) == sorted(
        [first, second]
    )


def test_a_hook_that_ran_does_not_run_again_after_a_restart(
    bot_factory, policy_dir, webhook, tmp_path
):
    chat = start(bot_factory, policy_dir, webhook, QUICK)
    rid = granted(chat)
    chat.wait_for(CHANNEL, f"after_grant ran for {rid}")

    bot_factory.stop_last()
    again = bot_factory()
    assert "active" in again.reply("carol", f"!access show {rid}")

    assert mine(rid) == [("ran", rid)]
    assert len(events(tmp_path, "after_grant")) == 1


def test_a_hook_cut_off_by_a_stop_runs_once_at_the_next_start(
    bot_factory, policy_dir, webhook, tmp_path, caplog
):
    chat = start(
        bot_factory,
        policy_dir,
        webhook,
        WAITING.format(hook="after_grant"),
        ACCESS_HOOK_TIMEOUT=30,
    )
    rid = granted(chat)
    wait_for_note("started", rid)

    bot_factory.stop_last()  # the hook is still waiting: it is given up on, not recorded
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url) + QUICK)
    with caplog.at_level(logging.WARNING):
        again = bot_factory()  # its first tick, before it serves, finds the hook owed
    wait_for_note("ran", rid)
    told_at_start(again, caplog, f"after_grant ran for {rid}")
    hook_gates.gate("hook").set()  # the first bot's hook finishes; it records nothing
    wait_for_note("finished", rid)

    bot_factory.stop_last()
    third = bot_factory()
    assert "active" in third.reply("carol", f"!access show {rid}")
    assert [n for n in mine(rid) if n[0] == "ran"] == [("ran", rid)]
    assert [e["outcome"] for e in events(tmp_path, "after_grant")] == ["ran"]


def test_a_failing_hook_is_audited_told_to_the_admins_and_undoes_nothing(
    bot_factory, policy_dir, webhook, tmp_path
):
    chat = start(bot_factory, policy_dir, webhook, RAISES)

    rid = granted(chat)

    told = chat.wait_for("admin", f"the after_grant hook for request {rid}")
    assert "db.py:6: after_grant raised RuntimeError: the ticket system said no" in told
    assert "Nothing was undone (the grant stands)" in told
    (event,) = events(tmp_path, "after_grant")
    assert event["outcome"] == "failed" and "the ticket system said no" in event["detail"]
    chat.wait_for("carol", "about to fail")  # what it told before failing still arrives
    assert "active" in chat.reply("carol", f"!access show {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_an_overrunning_hook_fails_and_what_it_tells_later_is_dropped(
    bot_factory, policy_dir, webhook, tmp_path
):
    chat = start(
        bot_factory,
        policy_dir,
        webhook,
        WAITING.format(hook="after_grant"),
        ACCESS_HOOK_TIMEOUT=0.3,
    )
    rid = granted(chat)

    told = chat.wait_for("admin", f"the after_grant hook for request {rid}")
    assert "after_grant took longer than 0.3s (ACCESS_HOOK_TIMEOUT)" in told
    hook_gates.gate("hook").set()
    wait_for_note("finished", rid)
    assert "active" in chat.reply("carol", f"!access show {rid}")
    assert f"after_grant done for {rid}" not in " ".join(chat.to(CHANNEL))
    assert [e["outcome"] for e in events(tmp_path, "after_grant")] == ["failed"]
    assert "active" in chat.reply("carol", f"!access show {rid}")
