"""Messages that must not mislead (issue 19, items 8 to 12), through the real plugin: a dry
run shows the whole picture, the requester is never someone they wait for, refusals
suggest what the person can do, durations and typos are asked about, and a slow policy
check is acknowledged at once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from accessbot import messages
from accessbot.domain import Event, Request, Status
from tests import hook_gates
from tests.builders import a_request
from tests.conftest import START, policy_file, request_id, webhook_policy
from tests.fake_pagerduty import TOKEN
from tests.slack_fixtures import CHANNEL
from tests.test_lifecycle import extension_id, granted

ROOM = "#access-approvals"


def line_of(text: str, needle: str) -> int:
    """The line number of `needle` in a policy file's text, as written to disk."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return next(n for n, line in enumerate(lines, 1) if line.startswith(needle))


# -- 8. a dry run shows the whole picture ------------------------------------------------

PAYROLL = """
RESOURCES = {
    "payroll": {
        "max_duration": "2h",
        "approvers": ["@alice", "@bob"],
        "channel": "#payroll-approvals",
        "fields": {"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key"}},
        "strategy": {"type": "command", "argv": ["true"]},
    },
}

def on_request(request, ctx):
    return None
"""


def test_a_dry_run_missing_a_required_field_still_shows_approvers_channel_and_hooks(
    bot_factory, policy_dir
):
    policy_file(policy_dir, "payroll.py", PAYROLL)
    chat = bot_factory()

    reply = chat.reply("admin", "!access whatif dave payroll 10m")

    assert reply.splitlines() == [
        "What if @dave asked for payroll for 10m? (a dry run: nothing was created, no "
        "strategy was called)",
        "Policy: payroll.py, resource payroll (max 2h, default 1h; hooks: on_request)",
        "Approvers: @alice, @bob",
        "Channel: #payroll-approvals",
        "Decision: would be REFUSED: payroll needs ticket=... (Jira key). Try !access request "
        "payroll 10m ticket=<Jira key> <reason>.",
        "Once that is fixed: would wait for the approvers: on_request returned None: the "
        "approvers decide",
        "Hook: on_request: ran now (the decision above)",
    ]
    assert chat.to("#payroll-approvals") == []


def test_a_dry_run_asking_too_long_still_shows_who_would_decide(bot_factory, policy_dir):
    policy_file(policy_dir, "payroll.py", PAYROLL)
    chat = bot_factory()

    reply = chat.reply("admin", "!access whatif dave payroll 5h ticket=PAY-1")

    assert "Decision: would be REFUSED: payroll allows at most 2h" in reply
    assert "Approvers: @alice, @bob" in reply and "Channel: #payroll-approvals" in reply
    assert "Once that is fixed: would wait for the approvers: on_request returned None" in reply


# -- 9. the requester is never someone they wait for -------------------------------------


def test_the_requester_is_not_among_the_approvers_they_wait_for(bot_factory, policy_dir, webhook):
    approvers = ["@alice", "@bob", "@carol"]
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, approvers=approvers))
    chat = bot_factory()

    reply = chat.reply("carol", "!access request prod-db 30m checking a slow query")

    assert f"Waiting for an approval from @alice, @bob in {ROOM}." in reply
    (card,) = chat.to(ROOM)
    assert (
        "Approvers: @alice, @bob; not @carol, who cannot approve their own request"
        in card.splitlines()
    )
    dry_run = chat.reply("admin", "!access whatif carol prod-db 30m")
    assert (
        "Approvers: @alice, @bob; not @carol, who cannot approve their own request"
        in dry_run.splitlines()
    )
    # Someone else's request lists everyone.
    dry_run = chat.reply("admin", "!access whatif dave prod-db 30m")
    assert "Approvers: @alice, @bob, @carol" in dry_run.splitlines()


def test_a_requester_inside_a_group_is_left_out_of_it(bot_factory, policy_dir, webhook):
    policy_file(
        policy_dir,
        "db.py",
        'GROUPS = {"sre": ["@alice", "@carol"]}\n'
        + webhook_policy(webhook.url, approvers=["group:sre", "@bob"]),
    )
    chat = bot_factory()

    reply = chat.reply("carol", "!access request prod-db 30m checking a slow query")

    assert "Waiting for an approval from @alice, @bob in" in reply
    assert (
        "Approvers: group:sre (@alice), @bob; not @carol, who cannot approve their own request"
        in chat.to(ROOM)[0]
    )


def test_a_dry_run_for_the_one_on_call_says_they_cannot_approve_their_own_request(
    bot_factory, policy_dir, webhook, pagerduty
):
    policy_file(
        policy_dir,
        "db.py",
        'GROUPS = {"sre": ["@alice", "@bob"]}\n'
        + webhook_policy(webhook.url, approvers=["group:sre", "pagerduty:PABC123"]),
    )
    pagerduty.add_user("PCAROL1", "Carol Example", "carol@example.com")
    pagerduty.put_on_call("PCAROL1", schedule="PABC123")
    chat = bot_factory(
        ACCESS_PAGERDUTY_URL=pagerduty.url,
        ACCESS_PAGERDUTY_TOKEN=TOKEN,
        ACCESS_PAGERDUTY_TIMEOUT=5,
        ACCESS_USER_EMAILS={"carol": "carol@example.com"},
    )

    reply = chat.reply("admin", "!access whatif carol prod-db 1h")

    assert (
        "Approvers: group:sre (@alice, @bob), pagerduty:PABC123 (only the requester); not "
        "carol@example.com, who cannot approve their own request"
    ) in reply.splitlines()


def test_with_self_approval_allowed_the_requester_is_one_of_the_approvers(
    bot_factory, policy_dir, webhook
):
    policy = webhook_policy(webhook.url, approvers=["@alice", "@carol"], allow_self_approval=True)
    policy_file(policy_dir, "db.py", policy)
    chat = bot_factory()

    reply = chat.reply("carol", "!access request prod-db 30m checking a slow query")

    assert "Waiting for an approval from @alice, @carol in" in reply
    assert "Approvers: @alice, @carol" in chat.to(ROOM)[0].splitlines()


def test_on_slack_the_requester_named_by_email_is_recognised_by_user_id(start_bot, fake):
    bot = start_bot("socket", approvers=["@alice", "carol@acme.com"])
    before = len(fake.posted(CHANNEL))

    bot.type("UCAROL", CHANNEL, "!access request prod-db 30m fixing INC-42")

    answer = fake.wait(
        lambda: [m["text"] for m in fake.posted(CHANNEL)[before:] if not m["blocks"]],
        "the answer to carol",
    )[0]
    assert "Waiting for an approval from @alice in" in answer
    card = fake.wait(lambda: fake.cards(CHANNEL), "the card")[0]
    approvers = next(
        f["text"] for b in card["blocks"] for f in b.get("fields") or [] if "Approvers" in f["text"]
    )
    assert (
        approvers == "*Approvers*\n@alice; not carol@acme.com, who cannot approve their own request"
    )


# -- 10. refusals and listings that fit the state ------------------------------------------


def test_a_stranger_cancelling_an_active_grant_is_not_told_to_deny(chat):
    rid = granted(chat)

    reply = chat.reply("mallory", f"!access cancel {rid}")

    assert "!deny" not in reply
    assert reply == (
        f"Only the requester, @carol, can cancel {rid}; it is an active grant, which only "
        "@carol, the approvers of prod-db or an admin can end."
    )


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_an_approver_or_admin_cancelling_an_active_grant_is_told_to_revoke(chat, who):
    rid = granted(chat)

    reply = chat.reply(who, f"!access cancel {rid}")

    assert reply == (
        f"{rid} is an active grant, not a pending request; end it with !access revoke {rid}."
    )


def test_cancelling_someone_elses_pending_request_suggests_deny_only_to_approvers(chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 1h deploy"))

    assert chat.reply("alice", f"!access cancel {rid}") == (
        f"Only the requester, @carol, can cancel {rid}; as an approver you can deny it: "
        f"!deny {rid} <reason>."
    )
    assert chat.reply("mallory", f"!access cancel {rid}") == (
        f"Only the requester, @carol, can cancel {rid}."
    )


def test_mine_shows_a_grants_length_and_end_after_an_extension(chat):
    rid = granted(chat)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 30m still migrating"))
    assert chat.reply("bob", f"!approve {ext}").startswith("Approved")

    mine = chat.reply("carol", "!access mine").splitlines()

    assert mine[1:] == [
        f"- {rid} prod-db for @carol, 1h30m (1h, extended by 30m): active, 1h30m left "
        "(until 2026-11-24 10:30:00 UTC)"
    ]
    assert "Duration: 1h30m (1h, extended by 30m)" in chat.reply("carol", f"!access show {rid}")


def test_a_denied_extension_says_so_and_that_the_grant_stays(chat, clock):
    rid = granted(chat)
    clock.advance(minutes=40)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 30m still migrating"))

    said = chat.say("bob", f"!deny {ext} not now")

    ends = "2026-11-24 10:00:00 UTC"
    assert said[0] == (
        f"Denied extension {ext}; @carol was told. Grant {rid} stays active until {ends}."
    )
    assert chat.to("carol")[-1] == (
        f"Your extension request {ext} (30m more on grant {rid}, prod-db) was denied by @bob: "
        f"not now. Grant {rid} stays active until {ends}."
    )
    assert chat.to(ROOM)[-1] == (
        f"Extension request {ext} (30m more on grant {rid}, prod-db for @carol) denied by "
        f"@bob: not now. Grant {rid} stays active until {ends}."
    )


def test_show_history_has_readable_times_and_says_what_an_extension_did(chat, clock):
    clock.advance(seconds=33, microseconds=880690)
    rid = granted(chat)
    clock.advance(minutes=40)
    ext = extension_id(chat.reply("carol", f"!access extend {rid} 30m still migrating"))
    chat.say("bob", f"!approve {ext}")

    shown = chat.reply("carol", f"!access show {rid}")
    history = shown.split("History:\n")[1].splitlines()

    assert ".880690" not in shown and "T09:" not in shown
    assert history == [
        "- 2026-11-24 09:00 UTC requested by @carol: deploy",
        "- 2026-11-24 09:00 UTC approved by @alice",
        "- 2026-11-24 09:00 UTC active (by the bot): granted until 2026-11-24 10:00 UTC",
        f"- 2026-11-24 09:40 UTC extended by @bob: +30m, now until 2026-11-24 10:30 UTC "
        f"(extension {ext})",
    ]


def test_history_written_before_shows_its_timestamps_readably():
    at = datetime(2026, 11, 27, 16, 51, 33, 880690, tzinfo=UTC)
    request = Request("k3m9qx", "carol", "prod-db", timedelta(hours=1), "x", at, ROOM, [])
    request.history.append(Event(at, "active", "bot", "granted until 2026-11-27T17:51:33.880690Z"))

    shown = messages.show(request, at)

    assert "- 2026-11-27 16:51 UTC active (by the bot): granted until 2026-11-27 17:51 UTC" in shown


# -- 11. what was typed is asked about, not guessed -------------------------------------------


def test_a_duration_inside_the_reason_is_asked_about_and_nothing_is_created(chat, tmp_path):
    reply = chat.reply("carol", "!access request prod-db fixing index for 30m")

    assert reply == (
        "Did you mean 30m? The duration comes right after the resource: "
        "!access request prod-db 30m fixing index for (to keep 30m in the reason, give a "
        "duration first: !access request prod-db <duration> fixing index for 30m). "
        "Nothing was requested."
    )
    assert chat.reply("carol", "!access mine").startswith("You have no pending requests")
    assert chat.to(ROOM) == []


def test_a_duration_in_its_place_and_a_reason_without_one_go_through(chat):
    assert "created: prod-db for 30m" in chat.reply("carol", "!access request prod-db 30m fix")
    assert "created: prod-db for 1h" in chat.reply("bob", "!access request prod-db fix INC-42")


@pytest.mark.parametrize("typed", ["PROD-DB", "Prod-Db", "prod-bd", "prdo-db", "prod_db"])
def test_a_resource_name_off_by_case_or_a_typo_suggests_the_right_one(chat, typed):
    reply = chat.reply("carol", f"!access request {typed} 30m fix")

    assert reply.startswith(f"Unknown resource {typed}: did you mean prod-db? You can request:")
    assert chat.to(ROOM) == []


def test_a_resource_name_like_none_suggests_nothing(chat):
    reply = chat.reply("carol", "!access request payroll 30m fix")
    assert reply == (
        "Unknown resource payroll. You can request: prod-db. Details: !access resources."
    )


# -- 12. audit words, hook mistakes, slow hooks --------------------------------------------


def test_audit_words_that_are_no_filter_are_answered_with_the_filters(chat):
    reply = chat.reply("admin", "!access audit nonsense words here")

    assert "second user" not in reply
    assert reply == (
        "!access audit did not understand words here: a bare word is a resource (prod-db), "
        "a request id, a duration like 2h, or one user (nonsense was taken as the user). "
        "The filters are user=alice, resource=prod-db, id=k3m9qx, since=2h and limit=20; "
        "!access audit verify checks the log. E.g. !access audit user=alice "
        "resource=prod-db since=2h."
    )


WRONG_TYPES = """
RESOURCES = {
    "odd": {
        "max_duration": "1h",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "strategy": {"type": "command", "argv": ["true"]},
    },
}

def get_approvers(request, ctx):
    if request.reason == "never":
        return None
    return "@bob"

def on_request(request, ctx):
    if request.reason == "never":
        return None
    return "yes"
"""


def test_a_hook_returning_the_wrong_type_is_noted_with_its_file_and_line(bot_factory, policy_dir):
    policy_file(policy_dir, "odd.py", WRONG_TYPES)
    chat = bot_factory()

    reply = chat.reply("carol", "!access request odd 10m test")

    assert "Waiting for an approval from @alice" in reply
    card = chat.to(ROOM)[0]
    routing = line_of(WRONG_TYPES, 'return "@bob"')
    deciding = line_of(WRONG_TYPES, 'return "yes"')
    assert (
        f"Note: get_approvers failed (odd.py:{routing}: get_approvers returned '@bob', not a "
        "list of approvers like ['@alice', 'group:sre']); routed to the listed approvers"
    ) in card.splitlines()
    assert (
        f"Note: policy check failed, needs a human: odd.py:{deciding}: on_request returned "
        "'yes'; it must return ctx.approve(reason), ctx.deny(reason) or None"
    ) in card.splitlines()


SLOW = """
from tests import hook_gates

RESOURCES = {
    "prod-db": {
        "max_duration": "1h",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "strategy": {"type": "command", "argv": ["true"]},
    },
}

def on_request(request, ctx):
    hook_gates.gate("slow check").wait(30)  # opened once carol has been answered
    return None
"""


@pytest.fixture
def gate():
    with hook_gates.held("slow check") as opened:
        yield opened


def test_a_slow_policy_check_is_acknowledged_at_once_and_answered_when_done(
    bot_factory, policy_dir, gate
):
    policy_file(policy_dir, "slow.py", SLOW)
    chat = bot_factory(ACCESS_ACK_SECONDS=0)
    chat.backend.sender = chat.backend.build_identifier("carol")

    chat.testbot.push_message("!access request prod-db 30m slow check")

    # The hook is still waiting at the gate: carol has her answer before the policy's.
    assert chat.testbot.pop_message(timeout=15) == "Checking the policy for prod-db..."
    gate.set()
    assert chat.testbot.pop_message(timeout=15).startswith("Request ")


def test_a_quick_policy_check_is_answered_without_an_acknowledgement(bot_factory, policy_dir, gate):
    gate.set()
    policy_file(policy_dir, "slow.py", SLOW)
    chat = bot_factory(ACCESS_ACK_SECONDS=30)

    said = chat.say("carol", "!access request prod-db 30m quick check")

    assert said[0].startswith("Request ") and "Checking the policy" not in " ".join(said)


# -- the strategy calls' notices, word for word (they were the provisioner's) ---------------


def _grant(**fields) -> Request:
    grant = a_request(status=Status.APPROVED, decided_by="alice, bob", **fields)
    grant.activate(START)
    return grant


def _said(notices) -> list[tuple[str, str, str, str]]:
    return [(n.audience, n.to, n.kind, n.text) for n in notices]


def test_a_grant_and_a_failed_grant_read_as_before():
    grant = _grant(requester_address="U0CAROL")
    failed = a_request(status=Status.APPROVED, decided_by="policy")
    failed.fail_grant("HTTP 500 from @here", START)

    assert _said(messages.granted(grant)) == [
        (
            "user",
            "U0CAROL",
            "text",
            "Your request k3m9qx was approved by @alice, @bob: you have prod-db for 30m, "
            "until 2026-11-24 09:30:00 UTC. End it early with `!access revoke k3m9qx`.",
        ),
        (
            "channel",
            "#access-approvals",
            "text",
            "Request k3m9qx approved by @alice, @bob: @carol has prod-db until "
            "2026-11-24 09:30:00 UTC.",
        ),
    ]
    assert [n.text for n in messages.grant_failed(failed, "`again`")] == [
        "Your request k3m9qx for prod-db was approved, but the grant failed: HTTP 500 from "
        "@\u200bhere. Nothing was granted. Ask again with `again` once the approvers have "
        "looked at it.",
        "GRANT FAILED for request k3m9qx (prod-db for @carol): HTTP 500 from @\u200bhere. "
        "Nothing was granted.",
    ]
    assert messages.grant_failed(failed, "x")[1].kind == "alert"


def test_a_grant_taken_back_and_the_end_of_a_grant_read_as_before():
    grant = _grant()
    taken = messages.taken_back(grant, "disk full")
    expired = _grant()
    expired.end(START, "scheduler")
    revoked = _grant()
    revoked.ask_revoke("alice", START)
    revoked.end(START, "alice")
    failed = _grant()
    failed.fail_revoke("timeout", START, "scheduler")

    assert [n.kind for n in taken] == ["alert", "text"] and taken[0].text == taken[1].text
    assert taken[0].text == (
        "Request k3m9qx (prod-db for @carol) is approved, but the bot could not record the "
        "grant (disk full), so it took it back at once. It grants it again as soon as the "
        "audit log and the store can be written; an admin must check the bot's disk."
    )
    assert [n.text for n in messages.grant_ended(expired, "scheduler")] == [
        "Your access to prod-db (request k3m9qx) has expired and was removed. Need more? "
        "`!access request prod-db <duration> <reason>`.",
        "Request k3m9qx: @carol's access to prod-db expired and was revoked.",
    ]
    assert [n.text for n in messages.grant_ended(revoked, "alice")] == [
        "Your access to prod-db (request k3m9qx) was revoked by @alice.",
        "Request k3m9qx: @carol's access to prod-db was revoked by @alice.",
    ]
    assert messages.grant_ended(revoked, "carol")[0].text.endswith("(request k3m9qx) was revoked.")
    assert messages.revoke_failed(failed).text == (
        "REVOKE FAILED for request k3m9qx (prod-db for @carol), attempt 1: timeout. Retrying "
        "at 2026-11-24 09:00:10 UTC; the access is still in place until a revoke succeeds."
    )


def test_extension_notices_read_as_before():
    grant = _grant()
    grant.channel = "#moved-by-escalation"
    extension = a_request(
        id="x7y8z9", extends=grant.id, status=Status.APPROVED, duration=timedelta(hours=1)
    )
    grant.extend(extension, START + timedelta(hours=2), START)
    refused = a_request(id="r2s3t4", extends=grant.id, status=Status.APPROVED)
    refused.fail_grant(messages.extension_not_applicable(refused, ended=True), START)

    assert _said(messages.extension_applied(grant, extension)) == [
        (
            "user",
            "carol",
            "text",
            "Your grant k3m9qx on prod-db was extended by 1h (extension x7y8z9): it now ends "
            "2026-11-24 11:00:00 UTC.",
        ),
        (
            "channel",
            "#moved-by-escalation",
            "text",
            "Extension x7y8z9 approved: @carol's grant k3m9qx on prod-db now ends "
            "2026-11-24 11:00:00 UTC.",
        ),
    ]
    extension.fail_grant("quota", START)
    assert [n.text for n in messages.extension_failed(grant, extension)] == [
        "Your extension x7y8z9 was approved, but the target refused it: quota. Your grant "
        "still ends 2026-11-24 11:00:00 UTC.",
        "EXTENSION FAILED for x7y8z9 (grant k3m9qx): quota.",
    ]
    assert messages.extension_refused(refused).text == (
        "Your extension r2s3t4 was not applied: grant k3m9qx had already ended; ask afresh "
        "with `!access request prod-db 30m <reason>`."
    )
    assert messages.extension_not_applicable(refused, ended=False) == (
        "grant k3m9qx is being revoked right now"
    )
    gone = _grant()
    gone.status = Status.EXPIRED
    assert [n.text for n in messages.extension_void(refused, gone)] == [
        "Extension request r2s3t4 is void and withdrawn: grant k3m9qx expired. Nothing to approve.",
        "Your extension request r2s3t4 (30m more on prod-db) was withdrawn: grant k3m9qx "
        "expired. Still needed? Ask afresh: `!access request prod-db 30m <reason>`.",
    ]


def test_a_follow_up_hooks_messages_are_inert_and_a_failure_goes_to_the_admins():
    grant = _grant(requester_address="U0CAROL")

    notices = messages.follow_up_notices(
        grant, [("user", "done @here"), ("channel", "ok")], "after_grant", "boom"
    )

    assert [(n.audience, n.to) for n in notices] == [
        ("user", "U0CAROL"),
        ("channel", "#access-approvals"),
        ("admins", ""),
    ]
    assert notices[0].text == "done @\u200bhere"
    assert notices[2].text == messages.follow_up_failed(grant, "after_grant", "boom")
    assert len(messages.follow_up_notices(grant, [], "after_revoke", None)) == 0


# -- links in what people typed are shown as text (issue 26, item 12) ---------------------

DISGUISED = "[INC-42 runbook](https://evil.example/login) and <https://evil.example|INC-43>"


def links_in(text: str) -> list[str]:
    """The links errbot's Slack backend would make of `text` (its markdown converter)."""
    from slackv3.markdown import slack_markdown_converter

    converted = slack_markdown_converter().convert(text)
    return re.findall(r"<[^<>]*\|[^<>]*>", converted.replace("&lt;", "<").replace("&gt;", ">"))


def test_a_link_in_a_reason_is_shown_as_text_in_show_and_the_denial_dm(chat):
    rid = request_id(chat.reply("carol", f"!access request prod-db 30m {DISGUISED}"))
    chat.say("bob", f"!deny {rid} see [the policy](https://evil.example/p)")

    shown, told = chat.reply("carol", f"!access show {rid}"), chat.to("carol")[-1]

    for text in (shown, told, chat.to(ROOM)[-1]):
        assert "INC-42 runbook" in text or "the policy" in text
        assert "](" not in text and "<https://evil.example|" not in text
        assert links_in(text) == [], text


def test_inert_keeps_the_words_of_a_link_and_drops_its_power():
    shown = messages.inert("[docs](https://x.example) <https://y.example|INC-1> <#C123>")

    assert shown.replace(messages.ZWSP, "") == (
        "[docs](https://x.example) <https://y.example\u00a6INC-1> <#C123>"
    )
    assert "](" not in shown and "<h" not in shown and "<#" not in shown
    assert links_in(shown) == []


def test_a_decided_or_withdrawn_extension_no_longer_counts_its_grant_s_time_left():
    """The note "which has 50m left" was true while the extension waited; once it was
    withdrawn (or decided), show, the card and the Slack card name only the grant."""
    from accessbot.integrations import slack

    note = "extends grant k3m9qx, which has 50m left (ends 2026-11-24 10:00:00 UTC)"
    waiting = a_request(id="r2s3t4", extends="k3m9qx", notes=[note])
    assert "which has 50m left" in messages.card_body(waiting)
    withdrawn = a_request(id="r2s3t4", extends="k3m9qx", notes=[note])
    withdrawn.cancel("bot", START, "withdrawn: grant k3m9qx was revoked by @alice")
    for text in (
        messages.show(withdrawn, START),
        messages.card_body(withdrawn),
        json_of(slack.approval_card(withdrawn)),
    ):
        assert " left" not in text and "extends grant k3m9qx" in text, text


def json_of(blocks) -> str:
    import json

    return json.dumps([b.to_dict() if hasattr(b, "to_dict") else b for b in blocks])
