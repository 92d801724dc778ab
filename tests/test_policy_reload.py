"""Hot reload, safely: `!access reload` and the file watcher are all-or-nothing, tell
the admins what changed, and never touch grants already active."""

import logging
import threading

from accessbot.watcher import PolicyWatcher
from tests.conftest import policy_file, request_id, sent_at_start, webhook_policy

CHANNEL = "#access-approvals"


def second_resource(url: str) -> str:
    return webhook_policy(url).replace("'prod-db'", "'staging-db'")


def test_reload_names_what_was_added_removed_and_changed(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    policy_file(policy_dir, "old.py", second_resource(webhook.url))
    chat = bot_factory()

    (policy_dir / "old.py").unlink()
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_duration="2h"))
    policy_file(
        policy_dir, "new.py", webhook_policy(webhook.url).replace("'prod-db'", "'prod-k8s'")
    )

    reply = chat.reply("admin", "!access reload")
    assert reply == (
        "Reloaded 2 policy file(s), 2 resource(s) (added: prod-k8s; removed: staging-db; "
        "changed: prod-db). Requests already made keep the rules they were made under."
    )


def test_a_removed_resources_active_grant_still_expires_and_is_revoked_by_its_strategy(
    chat, policy_dir, webhook, clock
):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    chat.say("alice", f"!approve {rid}")
    assert webhook.actions() == [("grant", rid)]

    policy_file(policy_dir, "db.py", second_resource("http://127.0.0.1:9/nothing-listens"))
    assert "removed: prod-db" in chat.reply("admin", "!access reload")
    assert "Unknown resource" in chat.reply("dave", "!access request prod-db 30m x")

    clock.advance(minutes=30, seconds=1)
    chat.wait_for("carol", "has expired and was removed")
    assert webhook.actions() == [("grant", rid), ("revoke", rid)]


def test_a_broken_reload_keeps_the_running_policies(chat, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_duration="forever"))
    reply = chat.reply("admin", "!access reload")
    assert reply.startswith("Reload failed, nothing changed (the 1 resource(s) already loaded")
    assert 'db.py:1: prod-db.max_duration: "forever" is not a duration' in reply
    assert "prod-db: Production PostgreSQL. Max 4h" in chat.reply("carol", "!access resources")


# -- the watcher through the plugin --------------------------------------------------------


def watching_bot(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    return bot_factory(ACCESS_POLICY_WATCH=True, ACCESS_POLICY_WATCH_SECONDS=0.05)


def test_the_watcher_reloads_a_changed_file_and_tells_the_admins(bot_factory, policy_dir, webhook):
    chat = watching_bot(bot_factory, policy_dir, webhook)

    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_duration="2h"))

    told = chat.wait_for("admin", "Policy files changed on disk and were reloaded")
    assert "(added: none; removed: none; changed: prod-db)" in told
    assert "Max 2h" in chat.reply("carol", "!access resources")


def test_the_watcher_does_not_load_a_broken_file_and_says_why(bot_factory, policy_dir, webhook):
    chat = watching_bot(bot_factory, policy_dir, webhook)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))

    policy_file(policy_dir, "db.py", "RESOURCES = {\n")

    told = chat.wait_for("admin", "did NOT load")
    assert "- db.py:1: syntax error" in told
    assert "Max 4h" in chat.reply("carol", "!access resources")
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


def test_deactivating_the_plugin_stops_the_watcher(bot_factory, policy_dir, webhook):
    watching_bot(bot_factory, policy_dir, webhook)
    assert "accessbot-policy-watch" in {t.name for t in threading.enumerate()}
    bot_factory.stop_last()
    assert "accessbot-policy-watch" not in {t.name for t in threading.enumerate() if t.is_alive()}


def test_without_the_setting_nothing_watches(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    bot_factory()
    assert "accessbot-policy-watch" not in {t.name for t in threading.enumerate()}


# -- the watcher on its own, with a hand-moved clock ----------------------------------------


class Ticks:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def watcher(policy_dir):
    calls = []
    clock = Ticks()
    return PolicyWatcher(policy_dir, lambda: calls.append(clock.now), 1.0, 2.0, clock), calls, clock


def test_a_burst_of_changes_is_one_reload_after_the_files_settle(policy_dir):
    policy_file(policy_dir, "a.py", "A = 1\n")
    watch, calls, clock = watcher(policy_dir)
    for second in range(3):  # an editor saving, then a git pull touching more files
        clock.now = float(second)
        policy_file(policy_dir, f"b{second}.py", "B = 1\n")
        assert watch.poll() is False
    clock.now = 3.5
    assert watch.poll() is False  # settled for only 1.5 s
    clock.now = 4.0
    assert watch.poll() is True
    clock.now = 10.0
    assert watch.poll() is False
    assert calls == [4.0]


def test_unchanged_files_and_a_change_undone_cause_no_reload(policy_dir):
    policy_file(policy_dir, "a.py", "A = 1\n")
    watch, calls, clock = watcher(policy_dir)
    clock.now = 5.0
    assert watch.poll() is False
    policy_file(policy_dir, "a.py", "A = 2\n")
    clock.now = 6.0
    watch.poll()
    policy_file(policy_dir, "a.py", "A = 1\n")
    clock.now = 7.0
    watch.poll()
    clock.now = 20.0
    watch.poll()
    assert calls == []


def test_files_the_loader_ignores_do_not_trigger_a_reload(policy_dir):
    watch, calls, clock = watcher(policy_dir)
    policy_file(policy_dir, "_helpers.py", "X = 1\n")
    policy_file(policy_dir, "tests.yaml", "cases: []\n")
    for second in (1.0, 5.0):
        clock.now = second
        watch.poll()
    assert calls == []


def test_a_failing_reload_does_not_stop_the_watching(policy_dir):
    clock = Ticks()
    attempts = []

    def explode():
        attempts.append(clock.now)
        raise RuntimeError("boom")

    watch = PolicyWatcher(policy_dir, explode, 1.0, 1.0, clock)
    for change, second in (("A = 1\n", 1.0), ("A = 2\n", 5.0)):
        clock.now = second
        policy_file(policy_dir, "a.py", change)
        watch.poll()
        clock.now = second + 2
        assert watch.poll() is True
    assert attempts == [3.0, 7.0]


def test_admins_are_told_at_start_when_the_policies_do_not_load(bot_factory, policy_dir, caplog):
    policy_file(policy_dir, "db.py", "RESOURCES = {\n")
    with caplog.at_level(logging.WARNING):
        chat = bot_factory()
    sent = sent_at_start(chat, caplog)
    assert any(
        "the policy files did not load" in m and "- db.py:1: syntax error" in m for m in sent
    )


def test_an_approver_a_reload_removed_no_longer_decides_a_request_made_before(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, approvers=["@alice", "@bob"]))
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m INC-1"))
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, approvers=["@alice"]))
    assert chat.reply("admin", "!access reload").startswith("Reloaded")

    for verb in ("approve", "deny"):
        assert chat.reply("bob", f"!{verb} {rid}") == (
            f"You are no longer an approver of prod-db (the policy changed since {rid} was "
            f"made), so you cannot {verb} it; its approvers now: @alice."
        )
    assert "pending approval" in chat.reply("carol", f"!access show {rid}")
    assert webhook.calls == []
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


def test_an_approver_whose_group_a_reload_left_them_out_of_no_longer_decides(
    bot_factory, policy_dir, webhook
):
    groups = "\nGROUPS = {'dba': ['@alice', '@bob']}\n"
    policy = webhook_policy(webhook.url, approvers=["group:dba"])
    policy_file(policy_dir, "db.py", policy + groups)
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-db 30m INC-1"))
    policy_file(policy_dir, "db.py", policy + groups.replace(", '@bob'", ""))
    assert chat.reply("admin", "!access reload").startswith("Reloaded")

    assert "no longer an approver of prod-db" in chat.reply("bob", f"!approve {rid}")
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
