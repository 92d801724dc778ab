"""`ctx.history.count(...)` through the real plugin: how many requests the store holds for
a person and resource, finished (archived) ones included, also after a restart, so a
policy routes first-timers differently."""

from tests.conftest import policy_file, request_id

FIRST_TIMER = """
RESOURCES = {{
    "prod-db": {{
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {{"type": "webhook", "url": "{url}", "secret_env": "TEST_HOOK_SECRET"}},
    }},
}}


def get_approvers(request, ctx):
    if ctx.history.count(status="granted", since="90d") == 0:
        return ["@erin"]
    return ["@alice", "@bob"]


def on_request(request, ctx):
    if ctx.history.count(user="mallory", status="{mallory_status}") > 0:
        return ctx.deny("mallory's requests are under review")
"""


def start(bot_factory, policy_dir, webhook, mallory_status="denied"):
    text = FIRST_TIMER.format(url=webhook.url, mallory_status=mallory_status)
    policy_file(policy_dir, "db.py", text)
    return bot_factory()


def ask(chat, user="carol") -> str:
    return chat.reply(user, "!access request prod-db 30m fixing INC-42")


def test_first_timers_go_to_the_lead_and_archived_grants_count_across_a_restart(
    bot_factory, policy_dir, webhook, clock
):
    chat = start(bot_factory, policy_dir, webhook)
    first = ask(chat)
    assert "Waiting for an approval from @erin" in first
    chat.say("erin", f"!approve {request_id(first)}")
    clock.advance(minutes=31)
    chat.wait_for("carol", "has expired")  # finished: it is in the archive now

    second = ask(chat)
    assert "Waiting for an approval from @alice, @bob" in second
    assert "Waiting for an approval from @erin" in ask(chat, "dave")  # dave's first time
    chat.say("carol", f"!access cancel {request_id(second)}")

    bot_factory.stop_last()
    chat = bot_factory()
    assert "Waiting for an approval from @alice, @bob" in ask(chat)


def test_a_grant_older_than_since_does_not_count(bot_factory, policy_dir, webhook, clock):
    chat = start(bot_factory, policy_dir, webhook)
    chat.say("erin", f"!approve {request_id(ask(chat))}")
    clock.advance(minutes=31)
    chat.wait_for("carol", "has expired")

    clock.advance(days=91)

    assert "Waiting for an approval from @erin" in ask(chat)


def test_a_status_history_cannot_count_fails_closed_with_the_line(bot_factory, policy_dir, webhook):
    chat = start(bot_factory, policy_dir, webhook, mallory_status="approvedish")

    said = chat.reply("carol", "!access request prod-db 30m fixing INC-42")

    assert "Waiting for an approval from @erin" in said  # on_request failed: a human decides
    card = chat.to("#access-approvals")[-1]
    assert "db.py:18: on_request raised ValueError: history.count(status='approvedish')" in card
