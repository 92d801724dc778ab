"""The core flow through the real plugin: request, approve, grant, expire."""

from tests.conftest import policy_file, request_id, webhook_policy


def test_request_is_approved_granted_and_revoked_at_expiry(bot_factory, policy_dir, webhook, clock):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    chat = bot_factory()

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

    clock.advance(minutes=30, seconds=1)
    chat.wait_for("carol", "expired")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]
