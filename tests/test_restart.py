"""Restarts: grants and pending requests survive, and what expired meanwhile is revoked first."""

import pytest

from tests.conftest import eventually, policy_file, request_id, webhook_policy


@pytest.mark.slow
def test_a_grant_that_expired_while_the_bot_was_down_is_revoked_at_start(
    chat, bot_factory, webhook, clock
):
    granted = request_id(chat.reply("carol", "!access request prod-db 30m fix"))
    pending = request_id(chat.reply("dave", "!access request prod-db 1h later"))
    chat.say("alice", f"!approve {granted}")
    bot_factory.stop_last()

    clock.advance(minutes=45)  # the grant ends while no bot runs
    chat = bot_factory()
    # The first pass hands the revoke out at start and waits for no call: it comes at once.
    eventually(lambda: ("revoke", granted) in webhook.actions(), "the revoke at start")
    assert webhook.actions() == [("grant", granted), ("revoke", granted)]
    eventually(
        lambda: "expired" in chat.reply("carol", f"!access show {granted}"), "recorded expired"
    )
    assert "pending approval" in chat.reply("dave", f"!access show {pending}")
    assert chat.reply("bob", f"!approve {pending}").startswith(f"Approved {pending}")


@pytest.mark.slow
def test_a_grant_still_running_at_restart_is_revoked_on_time_later(
    chat, bot_factory, webhook, clock
):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fix"))
    chat.say("alice", f"!approve {rid}")
    bot_factory.stop_last()

    chat = bot_factory()
    assert "active" in chat.reply("carol", "!access mine")
    clock.advance(minutes=30)
    chat.wait_for("carol", "expired")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]


def test_stopping_the_plugin_stops_its_scheduler(bot_factory, policy_dir, webhook):
    import threading

    def schedulers() -> set:
        return {t for t in threading.enumerate() if t.name == "accessbot-scheduler"}

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    others = schedulers()  # bots of other tests still winding down, under load
    bot_factory()
    ours = schedulers() - others
    assert len(ours) == 1
    bot_factory.stop_last()
    assert not ours & schedulers()
