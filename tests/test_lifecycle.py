"""Grants people can live with: extend in place, reminders, nudges, no duplicates."""

import pytest

from tests.conftest import accessbot, policy_file, request_id, webhook_policy


def granted(chat, text="!access request prod-db 1h deploy", user="carol") -> str:
    rid = request_id(chat.reply(user, text))
    assert chat.reply("alice", f"!approve {rid}").startswith("Approved")
    return rid


def extension_id(text: str) -> str:
    import re

    match = re.search(r"Extension request (\w+) ", text)
    assert match, text
    return match.group(1)


def test_an_approved_extension_moves_the_end_and_the_revoke(chat, webhook, clock):
    rid = granted(chat)
    clock.advance(minutes=40)
    said = chat.say("carol", f"!access extend {rid} 30m still migrating")
    ext = extension_id(said[0])
    card = chat.to("#access-approvals")[-1]
    assert f"Extension request {ext}: 30m more on {rid}" in card
    assert "has 20m left" in card and f"!approve {ext}" in card

    reply = chat.reply("bob", f"!approve {ext}")
    assert f"grant {rid} on prod-db now ends 2026-11-24 10:30:00 UTC" in reply
    assert any("now ends 2026-11-24 10:30:00 UTC" in t for t in chat.to("carol"))
    extend_call = webhook.calls[-1]
    assert (
        extend_call["action"] == "extend"
        and extend_call["grant_id"] == webhook.calls[0]["grant_id"]
    )
    assert extend_call["expires_at"].startswith("2026-11-24T10:30:00")

    clock.advance(minutes=21)  # past the old end: still active
    assert "active" in chat.reply("carol", f"!access show {rid}")
    clock.advance(minutes=30)
    chat.wait_for("carol", "expired")
    assert [a for a, _ in webhook.actions()] == ["grant", "extend", "revoke"]
    assert len({c["grant_id"] for c in webhook.calls}) == 1


def test_an_extension_defaults_to_the_original_duration(chat):
    rid = granted(chat)
    ext = extension_id(chat.reply("carol", f"!access extend {rid}"))
    assert "Duration: 1h" in chat.reply("carol", f"!access show {ext}")


def test_only_the_requester_extends_and_only_an_active_grant(chat):
    rid = granted(chat)
    assert "Only @carol can extend" in chat.reply("dave", f"!access extend {rid} 10m")
    pending = request_id(chat.reply("dave", "!access request prod-db 1h x"))
    assert "is not an active grant" in chat.reply("dave", f"!access extend {pending} 10m")


def test_an_extension_longer_than_the_maximum_is_refused(chat):
    rid = granted(chat)
    assert "prod-db allows at most 4h; you asked for 5h" in chat.reply(
        "carol", f"!access extend {rid} 5h"
    )


def test_max_extensions_limits_and_zero_turns_them_off(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_extensions=1))
    chat = bot_factory()
    rid = granted(chat)
    chat.say("alice", f"!approve {extension_id(chat.reply('carol', f'!access extend {rid} 10m'))}")
    reply = chat.reply("carol", f"!access extend {rid} 10m")
    assert "already extended 1 time(s); prod-db allows 1 (max_extensions)" in reply
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_extensions=0))
    chat.say("admin", "!access reload")
    assert "Extensions are turned off for prod-db (max_extensions: 0)" in chat.reply(
        "carol", f"!access extend {rid} 10m"
    )


def test_a_second_pending_extension_is_refused_with_the_first_id(chat):
    rid = granted(chat)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 10m"))
    assert f"already waiting: {ext}" in chat.reply("carol", f"!access extend {rid} 10m")


def test_an_extension_of_a_grant_that_ended_cannot_be_approved(chat, clock):
    rid = granted(chat)
    # Asked 10 minutes in, so the grant ends (at 1h) well before the extension's own
    # pending time-out (1h after it was asked): the two never race.
    clock.advance(minutes=10)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 30m"))
    clock.advance(minutes=50)
    chat.wait_for("#access-approvals", f"{ext} is void")
    reply = chat.reply("bob", f"!approve {ext}")
    assert f"{ext} was withdrawn: grant {rid} expired" in reply


def test_a_break_glass_policy_can_auto_approve_an_extension(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy(webhook.url)
        + "\ndef on_request(request, ctx):\n"
        + "    if request.extends:\n        return ctx.approve('on call, extension')\n",
    )
    chat = bot_factory()
    rid = granted(chat)
    reply = chat.reply("carol", f"!access extend {rid} 30m")
    assert "approved by policy" in reply and "10:30:00" in reply
    assert chat.to("#access-approvals")[-1].startswith("BREAK-GLASS EXTENSION")


def test_the_requester_is_reminded_once_before_the_end(chat, clock):
    rid = granted(chat)
    clock.advance(minutes=49)
    assert not any("ends in" in t for t in chat.to("carol"))
    clock.advance(minutes=1)
    reminder = chat.wait_for("carol", "ends in 10m")
    assert f"!access extend {rid} 1h" in reminder and f"!access revoke {rid}" in reminder
    clock.advance(minutes=5)
    chat.say("carol", "!access mine")  # let a few ticks pass
    assert sum("ends in" in t for t in chat.to("carol")) == 1


def test_a_short_grant_gets_no_reminder(chat, clock):
    granted(chat, "!access request prod-db 15m quick look")
    clock.advance(minutes=6)
    chat.say("carol", "!access mine")
    clock.advance(minutes=10)
    chat.wait_for("carol", "expired")
    assert not any("ends in" in t for t in chat.to("carol"))


@pytest.mark.slow
def test_a_reminder_is_not_sent_again_after_a_restart(chat, bot_factory, clock):
    granted(chat)
    clock.advance(minutes=51)
    chat.wait_for("carol", "ends in")
    bot_factory.stop_last()
    chat = bot_factory()
    chat.say("carol", "!access mine")
    assert not any("ends in" in t for t in chat.to("carol"))


@pytest.mark.slow
def test_an_extended_grant_is_revoked_at_the_new_time_after_a_restart(
    chat, bot_factory, webhook, clock
):
    rid = granted(chat)
    chat.say("bob", f"!approve {extension_id(chat.reply('carol', f'!access extend {rid} 1h'))}")
    bot_factory.stop_last()
    clock.advance(hours=1, minutes=30)
    chat = bot_factory()
    assert "active" in chat.reply("carol", f"!access show {rid}")
    clock.advance(minutes=30)
    chat.wait_for("carol", "expired")
    assert [a for a, _ in webhook.actions()] == ["grant", "extend", "revoke"]


def test_approvers_are_nudged_at_doubling_intervals(chat, clock):
    rid = request_id(chat.reply("carol", "!access request prod-db 1h x"))
    clock.advance(minutes=15)
    chat.wait_for("#access-approvals", "has waited 15m")
    clock.advance(minutes=29)
    chat.say("carol", "!access mine")
    assert not any("has waited 44m" in t for t in chat.to("#access-approvals"))
    clock.advance(minutes=1)
    nudge = chat.wait_for("#access-approvals", "has waited 45m")
    assert f"!approve {rid}" in nudge


def test_a_timed_out_request_tells_the_requester_its_id(chat, clock):
    rid = request_id(chat.reply("carol", "!access request prod-db 1h x"))
    clock.advance(hours=1)
    assert rid in chat.wait_for("carol", "timed out")


def test_a_second_request_while_one_is_pending_is_refused_with_its_id(chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 1h x"))
    reply = chat.reply("carol", "!access request prod-db 2h y")
    assert f"request {rid} is waiting for approval" in reply


def test_a_request_while_holding_the_grant_points_to_extend(chat, clock):
    rid = granted(chat)
    clock.advance(minutes=20)
    reply = chat.reply("carol", "!access request prod-db 1h more")
    assert f"grant {rid}, 40m left" in reply and f"!access extend {rid} 1h" in reply


def test_a_bad_extension_duration_says_how_to_write_one(chat):
    rid = granted(chat)
    reply = chat.reply("carol", f"!access extend {rid} 4x more")
    assert '"4x" is not a duration' in reply and f"!access extend {rid} 30m" in reply


def test_a_revoked_grant_withdraws_its_pending_extension(chat, clock):
    """Issue 29 item 8: once the grant is revoked its waiting extension is withdrawn, with
    a notice to the requester and the channel; `show` no longer counts the grant's time
    left, and approving it says it was withdrawn."""
    rid = granted(chat)
    clock.advance(minutes=10)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 30m"))
    assert "has 50m left" in chat.reply("carol", f"!access show {ext}")
    chat.say("alice", f"!access revoke {rid}")
    chat.wait_for("#access-approvals", f"{ext} is void")
    assert any(f"{ext}" in t and "withdrawn" in t for t in chat.to("#access-approvals"))
    told = [t for t in chat.to("carol") if ext in t]
    assert told and "withdrawn" in told[-1] and f"grant {rid}" in told[-1], told
    shown = chat.reply("carol", f"!access show {ext}")
    assert " left" not in shown and "withdrawn" in shown, shown
    reply = chat.reply("bob", f"!approve {ext}")
    assert "withdrawn" in reply and f"grant {rid}" in reply, reply


def test_a_failed_revoke_withdraws_the_pending_extension_too(
    bot_factory, policy_dir, webhook, tmp_path
):
    """The grant is ending even when its revoke failed (it is retried): its extension can
    never be applied, so it is withdrawn, not left approvable ("Approved ..., but it was
    not applied")."""
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()
    rid = granted(chat)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 30m"))
    webhook.statuses = [500]
    chat.say("alice", f"!access revoke {rid}")
    chat.wait_for("#access-approvals", f"{ext} is void")
    reply = chat.reply("bob", f"!approve {ext}")
    assert "not applied" not in reply and "withdrawn" in reply, reply
    assert "is being revoked" in reply
    env = {
        "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
        "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
    }
    code, _, err = accessbot(
        "report", "--since", "2026-11-01", "--until", "2026-12-31T00:00Z",
        "--out", "r.html", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    row = next(line for line in page.splitlines() if f"<code>{ext}</code>" in line)
    assert f"withdrawn: grant {rid} is being revoked" in row, row
