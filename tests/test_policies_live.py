"""Policy hooks and hot reload, through the real plugin."""

from tests.conftest import policy_file, request_id, webhook_policy

HOOKED = """
RESOURCES = {{
    "prod-shell": {{
        "max_duration": "2h",
        "default_duration": "30m",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "strategy": {{"type": "webhook", "url": "{url}", "secret_env": "TEST_HOOK_SECRET"}},
    }},
}}

def on_request(request, ctx):
{body}
"""


def hooked(url, body):
    return HOOKED.format(url=url, body=body)


def test_a_hook_that_approves_grants_at_once_and_tells_the_channel_loudly(
    bot_factory, policy_dir, webhook
):
    policy_file(
        policy_dir,
        "shell.py",
        hooked(
            webhook.url,
            "    if request.requester == 'carol':\n        return ctx.approve('on call')",
        ),
    )
    chat = bot_factory()
    said = chat.say("carol", "!access request prod-shell 15m db on fire")
    assert "approved by policy (on call)" in said[0]
    rid = request_id(said[0])
    assert webhook.actions() == [("grant", rid)]
    alert = chat.to("#access-approvals")[-1]
    assert alert.startswith("BREAK-GLASS: @carol got prod-shell for 15m")
    assert "db on fire" in alert and "on call" in alert


def test_a_hook_that_denies_refuses_at_once(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir, "shell.py", hooked(webhook.url, "    return ctx.deny('frozen for the audit')")
    )
    chat = bot_factory()
    assert "denied by policy: frozen for the audit" in chat.reply(
        "carol", "!access request prod-shell 15m x"
    )
    assert webhook.calls == []


def test_a_hook_that_raises_never_approves(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir,
        "shell.py",
        hooked(
            webhook.url, "    raise RuntimeError('pagerduty exploded')\n    return ctx.approve('x')"
        ),
    )
    chat = bot_factory()
    reply = chat.reply("carol", "!access request prod-shell 15m x")
    assert "Waiting for an approval from @alice" in reply
    assert webhook.calls == []
    card = chat.to("#access-approvals")[-1]
    assert "policy check failed" in card and "RuntimeError: pagerduty exploded" in card


def test_ctx_pagerduty_answers_not_on_call_until_configured(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir,
        "shell.py",
        hooked(
            webhook.url,
            "    if ctx.pagerduty.is_on_call(request.requester_email, schedule='P1'):\n"
            "        return ctx.approve('on call')",
        ),
    )
    chat = bot_factory()
    assert "Waiting for an approval" in chat.reply("carol", "!access request prod-shell 15m x")
    assert webhook.calls == []


def test_get_approvers_routes_the_request(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir,
        "shell.py",
        hooked(
            webhook.url, "    return None\n\ndef get_approvers(request, ctx):\n    return ['@dave']"
        ),
    )
    chat = bot_factory()
    rid = request_id(chat.reply("carol", "!access request prod-shell 15m x"))
    assert "Only the approvers of prod-shell (@dave)" in chat.reply("alice", f"!approve {rid}")
    assert chat.reply("dave", f"!approve {rid}").startswith("Approved")


def test_reload_picks_up_a_new_resource(chat, policy_dir, webhook):
    policy_file(policy_dir, "shell.py", hooked(webhook.url, "    return None"))
    reply = chat.reply("admin", "!access reload")
    assert "Reloaded 2 policy file(s), 2 resource(s) (added: prod-shell" in reply
    assert "prod-shell" in chat.reply("carol", "!access resources")


def test_a_broken_reload_keeps_the_running_policies(chat, policy_dir, webhook):
    policy_file(policy_dir, "shell.py", "RESOURCES = {\n  'x': {'max_duration': 'forever'},\n}\n")
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, max_duration="1h"))
    reply = chat.reply("admin", "!access reload")
    assert reply.startswith("Reload failed, nothing changed (the 1 resource(s) already loaded")
    assert 'shell.py:2: x.max_duration: "forever" is not a duration' in reply
    # The old prod-db (4h max) is still the one in force.
    assert "Max 4h" in chat.reply("carol", "!access resources")


def test_only_admins_reload(chat):
    assert "Only bot admins (BOT_ADMINS) can reload" in chat.reply("carol", "!access reload")


def test_a_bot_started_with_broken_policies_says_so_and_recovers_on_reload(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", "RESOURCES = {")
    chat = bot_factory()
    reply = chat.reply("carol", "!access request prod-db 1h x")
    assert "No policies are loaded" in reply and "db.py:1: syntax error" in reply
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    assert chat.reply("admin", "!access reload").startswith("Reloaded")
    assert "Request" in chat.reply("carol", "!access request prod-db 1h x")


def test_a_pending_request_keeps_the_rules_it_was_made_under(chat, policy_dir, webhook):
    rid = request_id(chat.reply("carol", "!access request prod-db 1h x"))
    # A new approver and a shorter maximum: the 1h asked under the old rules stands, and an
    # approver the policy still names decides. (An approver the reload removes loses their
    # power at once: test_policy_reload.)
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy(webhook.url, approvers=["@alice", "@zed"], max_duration="30m"),
    )
    chat.say("admin", "!access reload")
    assert chat.reply("alice", f"!approve {rid}").startswith("Approved")
