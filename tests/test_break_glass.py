"""Break-glass through the real plugin: on-call requesters are granted at once and
loudly, everyone else (and every PagerDuty failure) waits for a human, and a human
reviews every break-glass grant afterwards."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from accessbot.audit import AuditLog
from accessbot.bootstrap import bootstrap
from accessbot.domain import RequestView
from accessbot.integrations.pagerduty import OnCallChecker
from accessbot.policy import PolicyContext, load_policies, run_hook
from accessbot.service import AccessService, Actor
from accessbot.settings import Settings
from accessbot.store import TinyDBStore
from tests.conftest import ROOT, policy_file, request_id
from tests.fake_pagerduty import TOKEN

SCHEDULE = "PABC123"
CHANNEL = "#access-approvals"
EMAILS = {
    "alice": "alice@example.com",
    "bob": "bob@example.com",
    "carol": "carol@example.com",
    "dave": "dave@example.com",
}


def break_glass_policy(url: str) -> str:
    settings = {
        "description": "Root shell on production",
        "max_duration": "2h",
        "default_duration": "30m",
        "approvers": ["@alice", "@bob"],
        "channel": CHANNEL,
        "strategy": {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"},
    }
    return f"""
        RESOURCES = {{"prod-shell": {settings!r}}}

        def on_request(request, ctx):
            if ctx.pagerduty.is_on_call(request.requester_email, schedule="{SCHEDULE}"):
                return ctx.approve("break-glass: requester is on call")
        """


def routing_policy(url: str) -> str:
    settings = {
        "max_duration": "4h",
        "channel": "#oncall",
        "approvers": ["@alice"],  # used only when PagerDuty cannot say who is on call
        "strategy": {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"},
    }
    return f"""
        RESOURCES = {{"prod-k8s": {settings!r}}}

        def get_approvers(request, ctx):
            return ctx.pagerduty.on_call_users(schedule="{SCHEDULE}")
        """


@pytest.fixture
def on_call(pagerduty):
    """carol is on call for the schedule; dave is a PagerDuty user who is not."""
    pagerduty.add_user("PCAROL1", "Carol Example", "carol@example.com")
    pagerduty.add_user("PDAVE01", "Dave Example", "dave@example.com")
    pagerduty.add_user("PBOB001", "Bob Example", "bob@example.com")
    pagerduty.put_on_call("PCAROL1", schedule=SCHEDULE)
    return pagerduty


@pytest.fixture
def start(bot_factory, policy_dir, webhook, on_call):
    policy_file(policy_dir, "break_glass.py", break_glass_policy(webhook.url))

    def start_bot(**config):
        settings = {
            "ACCESS_PAGERDUTY_URL": on_call.url,
            "ACCESS_PAGERDUTY_TOKEN": TOKEN,
            "ACCESS_PAGERDUTY_TIMEOUT": 5,  # generous: a loaded machine is not PagerDuty down
            "ACCESS_USER_EMAILS": EMAILS,
        }
        settings.update(config)
        return bot_factory(**settings)

    return start_bot


def audit(tmp_path) -> list[dict]:
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def break_glass(chat, user="carol") -> str:
    said = chat.say(user, "!access request prod-shell 30m INC-7 database down")
    assert "approved by policy" in said[0], said
    return request_id(said[0])


# -- granting -----------------------------------------------------------------------


def test_on_call_requester_is_granted_at_once_and_the_channel_is_told(
    start, webhook, on_call, tmp_path
):
    chat = start()

    said = chat.say("carol", "!access request prod-shell 30m INC-7 database down")

    rid = request_id(said[0])
    assert said[0].startswith(
        f"Request {rid} approved by policy (break-glass: requester is on call)"
    )
    assert webhook.actions() == [("grant", rid)]
    alert = chat.to(CHANNEL)[-1]
    assert alert.startswith("BREAK-GLASS: @carol got prod-shell for 30m")
    for expected in ("INC-7 database down", "requester is on call", f"!access ack {rid}"):
        assert expected in alert
    approved = [e for e in audit(tmp_path) if e["event"] == "approved"]
    assert approved[-1]["actor"] == "policy"
    assert approved[-1]["detail"] == "break-glass: requester is on call"
    assert on_call.calls() == {"/oncalls": 1}  # who is on call for the schedule: one call


def test_requester_not_on_call_waits_for_a_human(start, webhook):
    chat = start()

    said = chat.say("dave", "!access request prod-shell 30m INC-7 curious")

    rid = request_id(said[0])
    assert "Waiting for an approval" in said[0]
    card = chat.to(CHANNEL)[-1]
    assert f"!approve {rid}" in card and "PagerDuty check failed" not in card
    assert webhook.actions() == []


@pytest.mark.parametrize(
    "failure, shown",
    [
        ("500", "PagerDuty answered HTTP 500"),
        ("401", "PagerDuty refused the API token (HTTP 401)"),
        ("hang", "PagerDuty did not answer within 0.25s"),
        ("garbage", "PagerDuty sent an answer that is not the JSON its API documents"),
    ],
)
def test_pagerduty_failure_waits_for_a_human_and_the_card_says_why(
    start, webhook, on_call, failure, shown, tmp_path
):
    on_call.fail_with(failure)
    chat = start(ACCESS_PAGERDUTY_TIMEOUT=0.25 if failure == "hang" else 5)

    said = chat.say("carol", "!access request prod-shell 30m INC-7 database down")

    rid = request_id(said[0])
    assert "Waiting for an approval" in said[0]
    card = chat.to(CHANNEL)[-1]
    assert f"Note: PagerDuty check failed: {shown}" in card
    assert f"!approve {rid}" in card
    assert webhook.actions() == []
    assert TOKEN not in card
    requested = [e for e in audit(tmp_path) if e["event"] == "requested"]
    assert f"PagerDuty check failed: {shown}" in requested[-1]["detail"]


def test_unknown_email_waits_for_a_human(start, webhook):
    chat = start(ACCESS_USER_EMAILS={"carol": "carol@elsewhere.example"})

    said = chat.say("carol", "!access request prod-shell 30m INC-7 database down")

    assert "Waiting for an approval" in said[0]
    card = chat.to(CHANNEL)[-1]
    assert (
        "PagerDuty check failed: no PagerDuty user has the e-mail carol@elsewhere.example" in card
    )
    assert webhook.actions() == []


def test_requester_without_an_email_waits_for_a_human(start, webhook, on_call):
    chat = start(ACCESS_USER_EMAILS={})

    chat.say("carol", "!access request prod-shell 30m INC-7 database down")

    assert "PagerDuty check failed: no e-mail address is known" in chat.to(CHANNEL)[-1]
    assert webhook.actions() == [] and on_call.count() == 0


def test_profile_email_from_the_chat_backend_wins_over_the_config(start, webhook):
    chat = start(ACCESS_USER_EMAILS={"zed": "dave@example.com"})

    said = chat.say("zed", "!access request prod-shell 1h INC-9 outage", email="carol@example.com")

    assert "approved by policy" in said[0]
    assert webhook.actions() == [("grant", request_id(said[0]))]


def test_profile_email_is_used_when_asking_in_a_channel(start, webhook):
    chat = start(ACCESS_USER_EMAILS={})

    said = chat.say(
        "carol",
        "!access request prod-shell 1h INC-9 outage",
        room=CHANNEL,
        email="carol@example.com",
    )

    assert "approved by policy" in said[0]
    assert webhook.actions() == [("grant", request_id(said[0]))]


def test_second_request_is_answered_from_the_cache(start, on_call, clock):
    chat = start()
    first = break_glass(chat)
    assert on_call.count() == 1
    chat.say("carol", f"!access revoke {first}")  # one grant per person and resource

    second = break_glass(chat)
    assert on_call.count() == 1
    chat.say("carol", f"!access revoke {second}")

    clock.advance(minutes=2)  # the on-call answer expired: asked again
    break_glass(chat)
    assert on_call.calls() == {"/oncalls": 2}


def test_without_a_pagerduty_token_nobody_breaks_glass(start, webhook):
    chat = start(ACCESS_PAGERDUTY_TOKEN="")

    said = chat.say("carol", "!access request prod-shell 30m INC-7 database down")

    assert "Waiting for an approval" in said[0]
    assert "PagerDuty check failed: PagerDuty is not configured" in chat.to(CHANNEL)[-1]
    assert webhook.actions() == []


def test_requests_are_routed_to_whoever_is_on_call(bot_factory, policy_dir, webhook, on_call):
    policy_file(policy_dir, "k8s.py", routing_policy(webhook.url))
    chat = bot_factory(
        ACCESS_PAGERDUTY_URL=on_call.url,
        ACCESS_PAGERDUTY_TOKEN=TOKEN,
        ACCESS_USER_EMAILS=EMAILS,
    )

    rid = request_id(chat.reply("dave", "!access request prod-k8s 1h deploy hotfix"))

    assert "Approvers: carol@example.com" in chat.to("#oncall")[-1]
    assert chat.reply("alice", f"!approve {rid}").startswith("Only the approvers of prod-k8s")
    assert chat.reply("carol", f"!approve {rid}").startswith(f"Approved {rid}")


def test_routing_falls_back_to_the_listed_approvers_when_pagerduty_fails(
    bot_factory, policy_dir, webhook, on_call
):
    policy_file(policy_dir, "k8s.py", routing_policy(webhook.url))
    on_call.fail_with("500")
    chat = bot_factory(
        ACCESS_PAGERDUTY_URL=on_call.url,
        ACCESS_PAGERDUTY_TOKEN=TOKEN,
        ACCESS_USER_EMAILS=EMAILS,
    )

    rid = request_id(chat.reply("dave", "!access request prod-k8s 1h deploy hotfix"))

    card = chat.to("#oncall")[-1]
    assert "Approvers: @alice" in card
    assert "PagerDuty check failed: PagerDuty answered HTTP 500" in card
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")


# -- review ---------------------------------------------------------------------------


def test_approver_acknowledges_a_break_glass_grant(start, tmp_path):
    chat = start()
    rid = break_glass(chat)

    said = chat.say("bob", f"!access ack {rid} checked the incident, fine")

    assert said[0].startswith(f"Acknowledged break-glass grant {rid}")
    assert any(f"{rid} (prod-shell for @carol) was reviewed by @bob" in t for t in chat.to(CHANNEL))
    shown = chat.reply("bob", f"!access show {rid}")
    assert "Break-glass review: acknowledged by @bob" in shown
    reviewed = [e for e in audit(tmp_path) if e["event"] == "reviewed"]
    assert reviewed[-1]["actor"] == "bob" and reviewed[-1]["detail"] == "checked the incident, fine"


def test_acknowledging_twice_is_refused(start):
    chat = start()
    rid = break_glass(chat)
    chat.say("bob", f"!access ack {rid}")

    assert chat.reply("alice", f"!access ack {rid}").startswith(
        f"{rid} was already acknowledged by @bob"
    )


def test_acknowledging_a_request_a_human_approved_is_refused(start):
    chat = start()
    rid = request_id(chat.reply("dave", "!access request prod-shell 30m curious"))
    chat.say("bob", f"!approve {rid}")

    assert chat.reply("alice", f"!access ack {rid}").startswith(
        f"{rid} was not a break-glass grant"
    )


def test_only_approvers_or_admins_acknowledge_and_never_the_requester(start):
    chat = start()
    rid = break_glass(chat)

    assert chat.reply("dave", f"!access ack {rid}").startswith("Only the approvers of prod-shell")
    assert chat.reply("carol", f"!access ack {rid}").startswith("Only the approvers")
    assert chat.reply("admin", f"!access ack {rid} seen").startswith("Acknowledged")


def test_ack_without_an_id_says_what_to_type(start):
    chat = start()

    assert "!access ack <id>" in chat.reply("bob", "!access ack")


def test_a_break_glass_grant_that_failed_has_nothing_to_acknowledge(start, webhook):
    webhook.set_status(500)
    chat = start()
    said = chat.say("carol", "!access request prod-shell 30m INC-7 database down")
    rid = request_id(said[0])
    assert "the grant failed" in said[0]

    assert "nothing was granted" in chat.reply("bob", f"!access ack {rid}")
    assert chat.reply("bob", "!access review") == "No break-glass grants are waiting for review."


def test_review_lists_unreviewed_grants_including_finished_ones(start, clock):
    chat = start()
    first = break_glass(chat)
    clock.advance(minutes=31)
    chat.wait_for("carol", "expired")
    second = break_glass(chat)

    listed = chat.reply("bob", "!access review")
    assert f"{first} prod-shell for @carol" in listed and "(expired)" in listed
    assert f"{second} prod-shell for @carol" in listed

    chat.say("bob", f"!access ack {first}")
    listed = chat.reply("alice", "!access review")
    assert first not in listed and second in listed
    chat.say("bob", f"!access ack {second}")
    assert chat.reply("alice", "!access review") == "No break-glass grants are waiting for review."


def test_review_is_for_approvers(start):
    chat = start()
    break_glass(chat)

    assert chat.reply("dave", "!access review").startswith("!access review is for approvers")


def test_unreviewed_grant_is_reminded_in_the_channel_a_day_later(start, clock, tmp_path):
    chat = start()
    rid = break_glass(chat)

    clock.advance(days=1)

    reminder = chat.wait_for(CHANNEL, "Reminder: 1 break-glass grant has not been reviewed")
    assert f"{rid} prod-shell for @carol" in reminder and "!access ack <id>" in reminder
    reminded = [e for e in audit(tmp_path) if e["event"] == "review_reminded"]
    assert [e["request_id"] for e in reminded] == [rid]


# The scheduler's timing is not observable through chat, so "no reminder" is checked
# on the service itself, tick by tick, with the same files a restarted bot would read.


@pytest.fixture
def service_factory(tmp_path, policy_dir, webhook, on_call, clock, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    policy_file(policy_dir, "break_glass.py", break_glass_policy(webhook.url))

    def build() -> AccessService:
        return bootstrap(
            Settings(policy_dir=str(policy_dir)),
            clock=clock,
            store=TinyDBStore(tmp_path / "data" / "access.json"),
            audit=AuditLog(tmp_path / "data" / "audit.jsonl", clock),
            pagerduty=OnCallChecker(TOKEN, on_call.url, clock=clock),
        )

    return build


def reminders(notices) -> list[str]:
    return [n.text for n in notices if n.text.startswith("Reminder")]


CAROL = Actor("carol", email="carol@example.com")


def test_reminder_is_sent_once_a_day_and_not_again_after_a_restart(service_factory, clock):
    service = service_factory()
    service.request(CAROL, "prod-shell", None, "INC-7 database down")
    assert reminders(service.tick()) == []

    clock.advance(days=1)
    assert len(reminders(service.tick())) == 1
    assert reminders(service.tick()) == []

    restarted = service_factory()
    assert reminders(restarted.tick()) == []
    clock.advance(hours=23, minutes=59)
    assert reminders(restarted.tick()) == []
    clock.advance(minutes=1)
    assert len(reminders(restarted.tick())) == 1


def test_acknowledged_grants_are_not_reminded(service_factory, clock):
    service = service_factory()
    rid = service.request(CAROL, "prod-shell", None, "INC-7 database down").request.id
    service.ack(Actor("bob"), rid, "seen")

    clock.advance(days=2)

    assert reminders(service.tick()) == []
    assert reminders(service_factory().tick()) == []


def test_grants_in_one_channel_are_reminded_together(service_factory, clock):
    service = service_factory()
    service.request(CAROL, "prod-shell", None, "INC-7 database down")
    clock.advance(hours=3)
    service.tick()  # the first grant expires; a second may be asked for
    service.request(CAROL, "prod-shell", None, "INC-8 disk full")

    clock.advance(days=1)
    (reminder,) = reminders(service.tick())

    assert reminder.startswith("Reminder: 2 break-glass grants have not been reviewed")
    assert "INC-7" in reminder and "INC-8" in reminder


# -- the shipped example ---------------------------------------------------------------


def shipped_decision(pagerduty, clock, email):
    resource = load_policies(ROOT / "policies").get("prod-shell")
    request = RequestView("r1", "carol", email, "prod-shell", timedelta(minutes=30), "x", clock())
    lookups = OnCallChecker(TOKEN, pagerduty.url, clock=clock).lookups()
    ctx = PolicyContext(lookups, clock(), logging.getLogger("test"))
    return run_hook(resource, "on_request", request, ctx, timeout=5)


def test_shipped_break_glass_policy_approves_whoever_is_on_call_for_its_schedule(on_call, clock):
    decision = shipped_decision(on_call, clock, "carol@example.com")

    assert decision.approve and decision.reason == "break-glass: requester is on call"
    assert on_call.requests[-1][1]["schedule_ids[]"] == ["PABC123"]


def test_shipped_break_glass_policy_leaves_everyone_else_to_the_approvers(on_call, clock):
    assert shipped_decision(on_call, clock, "dave@example.com") is None
