"""The pass at start waits for no target call (issue 26 item 4, issue 27 item 4): a bot
restarted with 10 grants due on a hanging target and one on a healthy target answers
commands as soon as its state is loaded, and revokes the healthy one at once, while the
hanging calls are still held at their target."""

from __future__ import annotations

import pytest

from accessbot.domain import Status
from tests.conftest import access_plugin, policy_file, request_id
from tests.fakes import WebhookTarget
from tests.helpers import eventually
from tests.test_isolated_targets import two_targets_policy


@pytest.fixture
def hanging():
    target = WebhookTarget(secret="s3cret")
    yield target
    target.release()
    target.close()


def test_a_start_with_a_hanging_target_answers_commands_and_revokes_the_others_at_once(
    bot_factory, policy_dir, webhook, hanging, clock
):
    policy_file(policy_dir, "dbs.py", two_targets_policy(webhook.url, hanging.url))
    chat = bot_factory()
    stuck = []
    for n in range(10):
        rid = request_id(chat.reply(f"user{n}", "!access request legacy-db 30m INC-1"))
        chat.say("alice", f"!approve {rid}")
        stuck.append(rid)
    fine = request_id(chat.reply("carol", "!access request prod-db 30m INC-2"))
    chat.say("alice", f"!approve {fine}")
    assert hanging.count_all("grant") == 10 and webhook.count("grant", fine) == 1
    bot_factory.stop_last()

    hanging.hang("revoke")  # it takes every revoke and never answers (until released)
    clock.advance(minutes=31)  # all eleven ended while no bot ran
    chat = bot_factory()  # returns once the plugin says it has started

    plugin = access_plugin(chat.backend)
    assert plugin.ready and not plugin.startup_error
    # Ready while the hanging calls are still held at their target: nothing waited for them.
    eventually(lambda: hanging.held, "the hanging revokes reaching their target")
    assert "active" in chat.reply("user0", f"!access show {stuck[0]}")  # answered at once
    eventually(
        lambda: plugin.service.store.get(fine).status is Status.EXPIRED,
        "the healthy target's grant revoked while the others hang",
    )
    assert webhook.count("revoke", fine) == 1
    assert "expired" in chat.reply("carol", f"!access show {fine}")
    assert hanging.held  # still hanging: the command and the other revoke came first

    hanging.release()
    eventually(
        lambda: all(plugin.service.store.get(rid).status is Status.EXPIRED for rid in stuck),
        "the legacy-db grants revoked once their target answers",
    )
