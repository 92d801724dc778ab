"""The core flow through the real plugin on errbot's TestBot, as several people."""

import json
from pathlib import Path

import pytest

from tests.conftest import policy_file, request_id, webhook_policy


def ask(chat, text="!access request prod-db 30m fixing INC-42", user="carol") -> str:
    return request_id(chat.reply(user, text))


def test_request_is_approved_granted_and_revoked_at_expiry(chat, webhook, clock):
    said = chat.say("carol", "!access request prod-db 30m fixing INC-42")
    rid = request_id(said[0])
    assert "30m" in said[0] and "#access-approvals" in said[0]
    card = chat.to("#access-approvals")[-1]
    for expected in ("carol", "prod-db", "30m", "fixing INC-42", f"!approve {rid}", f"!deny {rid}"):
        assert expected in card

    said = chat.say("bob", f"!approve {rid} looks fine")
    assert said[0].startswith(f"Approved {rid}")
    assert any("approved by @bob" in t for t in chat.to("carol"))
    assert webhook.actions() == [("grant", rid)]
    grant = webhook.calls[0]
    assert grant["user"] == "carol" and grant["resource"] == "prod-db"
    assert grant["grant_id"] and grant["expires_at"].startswith("2026-11-24T09:30")

    clock.advance(minutes=30, seconds=1)
    chat.wait_for("carol", "expired")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    assert "expired" in chat.reply("carol", f"!access show {rid}")


def test_without_a_duration_the_default_applies(chat):
    rid = ask(chat, "!access request prod-db need to look at a slow query")
    assert "Duration: 1h" in chat.reply("carol", f"!access show {rid}")


def test_approving_from_the_channel_works(chat, webhook):
    rid = ask(chat)
    said = chat.say("alice", f"!approve {rid}", room="#access-approvals")
    assert said[0].startswith(f"Approved {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_handles_match_with_or_without_the_at_sign(chat, webhook):
    rid = ask(chat)
    assert chat.reply("@bob", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_denied_request_tells_the_requester_and_grants_nothing(chat, webhook):
    rid = ask(chat)
    said = chat.say("alice", f"!deny {rid} use the replica")
    assert said[0] == f"Denied {rid}; @carol was told."
    assert any("denied by @alice: use the replica" in t for t in chat.to("carol"))
    assert webhook.calls == []


def test_a_stranger_cannot_approve(chat, webhook):
    rid = ask(chat)
    reply = chat.reply("mallory", f"!approve {rid}")
    assert "Only the approvers of prod-db (@alice, @bob) can approve" in reply
    assert webhook.calls == []
    assert "pending approval" in chat.reply("carol", f"!access show {rid}")


def test_a_stranger_cannot_deny(chat):
    rid = ask(chat)
    assert "Only the approvers of prod-db" in chat.reply("mallory", f"!deny {rid}")


def test_nobody_approves_their_own_request(chat, webhook):
    rid = ask(chat, user="alice")
    reply = chat.reply("alice", f"!approve {rid}")
    assert "You cannot approve your own request" in reply and "@bob" in reply
    assert webhook.calls == []


def test_self_approval_works_when_the_resource_allows_it(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, allow_self_approval=True))
    chat = bot_factory()
    rid = ask(chat, user="alice")
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


def test_a_decided_request_cannot_be_decided_again(chat, webhook):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    assert "already approved" in chat.reply("bob", f"!approve {rid}")
    assert "already approved" in chat.reply("bob", f"!deny {rid}")
    assert webhook.actions() == [("grant", rid)]


def test_a_cancelled_request_cannot_be_approved(chat, webhook):
    rid = ask(chat)
    assert chat.reply("carol", f"!access cancel {rid}") == f"Cancelled {rid}."
    assert "cancelled" in chat.reply("alice", f"!approve {rid}")
    assert webhook.calls == []


def test_only_the_requester_can_cancel(chat):
    rid = ask(chat)
    assert "Only the requester, @carol, can cancel" in chat.reply("alice", f"!access cancel {rid}")


def test_an_expired_grant_cannot_be_approved_or_revoked(chat, clock):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    clock.advance(minutes=31)
    chat.wait_for("carol", "expired")
    assert "already expired" in chat.reply("bob", f"!approve {rid}")
    assert "holds no access" in chat.reply("carol", f"!access revoke {rid}")


def test_the_requester_can_revoke_early(chat, webhook):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    said = chat.say("carol", f"!access revoke {rid}")
    assert said[0] == f"Revoked {rid}: @carol no longer has prod-db."
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
    assert "revoked" in chat.reply("carol", f"!access show {rid}")


def test_an_approver_and_an_admin_can_revoke_but_a_stranger_cannot(chat, webhook):
    first, second = ask(chat), ask(chat, user="dave")
    chat.say("alice", f"!approve {first}")
    chat.say("alice", f"!approve {second}")
    assert "Only @carol, the approvers" in chat.reply("mallory", f"!access revoke {first}")
    assert chat.reply("bob", f"!access revoke {first}").startswith("Revoked")
    assert chat.reply("admin", f"!access revoke {second}").startswith("Revoked")


def test_a_pending_request_is_cancelled_not_revoked(chat):
    rid = ask(chat)
    assert f"!access cancel {rid}" in chat.reply("carol", f"!access revoke {rid}")


@pytest.mark.parametrize(
    "command, expected",
    [
        ("!access request prod-db 5h fix", "prod-db allows at most 4h; you asked for 5h"),
        ("!access request prod-db 0m fix", "must be longer than 0s"),
        ("!access request prod-db 4x fix", '"4x" is not a duration'),
        ("!access request prod-db 30m", "Say why you need it"),
        ("!access request", "Tell me what you need"),
        ("!access request nope 30m fix", "Unknown resource nope. You can request: prod-db"),
        ("!approve", "Which request?"),
        ("!approve zzzzzz", "No request with id zzzzzz"),
        ("!approve a;drop", "is not a request id"),
        ("!access show nothere", "No request with id nothere"),
        ("!access frobnicate", "frobnicate is not an access command"),
    ],
)
def test_bad_input_gets_a_message_that_says_what_to_type(chat, command, expected):
    assert expected in chat.reply("carol", command)


@pytest.mark.parametrize("duration", ["367d", "99999d", "1" * 40 + "d"])
def test_a_duration_past_any_limit_is_refused_with_the_resources_own_maximum(chat, duration):
    assert chat.reply("carol", f"!access request prod-db {duration} fix INC-42") == (
        "prod-db allows at most 4h; you asked for more than 366d. Try "
        "!access request prod-db 4h fix INC-42"
    )
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    assert chat.reply("carol", f"!access extend {rid} {duration}").startswith(
        "prod-db allows at most 4h; you asked for more than 366d. Try !access extend"
    )
    assert "REFUSED: prod-db allows at most 4h; you asked for more than 366d" in chat.reply(
        "admin", f"!access whatif dave prod-db {duration}"
    )


def test_bad_input_never_stores_anything(chat, tmp_path):
    for command in ("!access request prod-db 5h fix", "!access request nope 1h x"):
        chat.say("carol", command)
    assert "no pending requests" in chat.reply("carol", "!access mine")


def test_mine_lists_own_pending_and_active_requests(chat):
    active = ask(chat, "!access request prod-db 2h deploy")
    chat.say("alice", f"!approve {active}")
    pending = ask(chat, user="dave")
    mine = chat.reply("carol", "!access mine")
    assert active in mine and "active, 2h left" in mine
    assert pending not in mine and "dave" not in mine
    assert pending in chat.reply("dave", "!access mine")


def test_list_is_for_approvers_and_admins(chat):
    rid = ask(chat)
    assert rid in chat.reply("alice", "!access list")
    assert rid in chat.reply("admin", "!access list")
    assert "for approvers and admins" in chat.reply("carol", "!access list")


def test_show_is_for_people_involved(chat):
    rid = ask(chat)
    shown = chat.reply("alice", f"!access show {rid}")
    assert "History:" in shown and "requested by @carol" in shown
    assert "Only the requester" in chat.reply("mallory", f"!access show {rid}")


def test_resources_lists_limits_and_approvers(chat):
    listing = chat.reply("carol", "!access resources")
    assert "prod-db: Production PostgreSQL. Max 4h, default 1h; approvers: @alice, @bob" in listing


def test_a_failed_grant_is_reported_and_nothing_is_active(chat, webhook):
    webhook.set_status(500)
    rid = ask(chat)
    said = chat.say("alice", f"!approve {rid}")
    assert "the grant failed: webhook" in said[0] and "HTTP 500" in said[0]
    assert any("GRANT FAILED" in t for t in chat.to("#access-approvals"))
    assert any("grant failed" in t for t in chat.to("carol"))
    assert "grant failed" in chat.reply("carol", f"!access show {rid}")


def test_a_failed_revoke_is_announced_and_retried_until_it_succeeds(chat, webhook, clock):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    webhook.set_status(503, 503, 200)
    clock.advance(minutes=30)
    chat.wait_for("#access-approvals", "attempt 1")
    clock.advance(seconds=10)
    chat.wait_for("#access-approvals", "attempt 2")
    clock.advance(seconds=19)
    assert "attempt 3" not in " ".join(chat.to("#access-approvals"))  # backoff doubled: 20s
    clock.advance(seconds=1)
    chat.wait_for("carol", "expired")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]


def test_a_pending_request_times_out(bot_factory, policy_dir, webhook, clock):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_PENDING_TIMEOUT="10m")
    rid = ask(chat)
    clock.advance(minutes=10)
    chat.wait_for("carol", "timed out")
    assert "timed out" in chat.reply("alice", f"!approve {rid}")


def test_every_step_is_in_the_audit_log_before_the_reply(chat, tmp_path, clock):
    rid = ask(chat)
    chat.say("alice", f"!approve {rid}")
    events = [
        json.loads(line) for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    ]
    mine = [e for e in events if e.get("request_id") == rid]
    assert [e["event"] for e in mine] == ["requested", "approved", "granted"]
    assert mine[1]["actor"] == "alice" and mine[1]["user"] == "carol"
    assert all(e["resource"] == "prod-db" for e in mine)


def test_admins_read_the_audit_log_filtered(chat):
    first = ask(chat)
    ask(chat, user="dave")
    chat.say("alice", f"!deny {first} no")
    log = chat.reply("admin", "!access audit user=carol")
    assert first in log and "dave" not in log
    assert "denied" in chat.reply("admin", f"!access audit id={first} since=1h")
    assert "Only bot admins" in chat.reply("carol", "!access audit")
    assert "not a filter" in chat.reply("admin", "!access audit colour=red")
    assert "hash chain verified" in chat.reply("admin", "!access audit verify")


def test_an_unexpected_error_never_shows_a_trace(chat, policy_dir):
    # A hook that returns nonsense is a policy bug, shown as a note, never a trace.
    policy_file(
        policy_dir,
        "odd.py",
        """
        RESOURCES = {"odd": {"max_duration": "1h", "approvers": ["@alice"],
                   "channel": "#access-approvals",
                   "strategy": {"type": "command", "argv": ["true"]}}}
        def on_request(request, ctx):
            return 42
        """,
    )
    chat.say("admin", "!access reload")
    reply = chat.reply("carol", "!access request odd 10m test")
    assert "Request" in reply and "Traceback" not in reply
    assert any("on_request returned 42" in t for t in chat.to("#access-approvals"))


def test_a_bot_configured_without_paths_keeps_its_files_in_its_own_data_dir(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory(ACCESS_DB_PATH=None, ACCESS_AUDIT_PATH=None)
    ask(chat)
    data_dir = chat.backend.bot_config.BOT_DATA_DIR
    # A live write goes to the journal beside access.json (folded into it as it grows).
    assert (Path(data_dir) / "access.journal.jsonl").exists()
    assert (Path(data_dir) / "audit.jsonl").exists()


def test_audit_filters_can_be_typed_as_bare_words(chat):
    first = ask(chat)
    second = ask(chat, user="dave")
    chat.say("alice", f"!deny {first} no")
    by_resource = chat.reply("admin", "!access audit prod-db 2h")
    assert first in by_resource and second in by_resource
    by_user = chat.reply("admin", "!access audit @dave")
    assert second in by_user and first not in by_user
    by_id = chat.reply("admin", f"!access audit {first}")
    assert first in by_id and second not in by_id
    assert "dave" in chat.reply("admin", "!access audit dave")
