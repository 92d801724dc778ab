"""The service's units on their own: refusals name the input they are about, the domain
makes each transition with its bookkeeping, and handlers' typed results read as texts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accessbot import messages
from accessbot.bootstrap import bootstrap
from accessbot.domain import AccessError, Status
from accessbot.integrations.pagerduty import PagerDutyNotConfigured
from accessbot.results import Cancelled, Denied, Submitted
from accessbot.settings import Settings
from tests.builders import a_request, build_service, person, two_resource_policy
from tests.conftest import START, policy_file


@pytest.fixture
def service(tmp_path, clock, webhook, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    built = build_service(tmp_path, clock, webhook.url)
    yield built
    built.store.close()


@pytest.mark.parametrize(
    ("resource", "duration", "reason", "field"),
    [
        ("prod-dbx", None, "INC-1", "resource"),
        ("prod-db", timedelta(days=30), "INC-1", "duration"),
        ("prod-db", timedelta(0), "INC-1", "duration"),
        ("prod-db", timedelta(hours=1), "   ", "reason"),
    ],
)
def test_a_refused_request_names_the_input_it_is_about(service, resource, duration, reason, field):
    with pytest.raises(AccessError) as refused:
        service.request(person("carol"), resource, duration, reason)

    assert refused.value.field == field


def test_a_refusal_about_nothing_in_particular_names_no_input(service):
    service.request(person("carol"), "prod-db", timedelta(hours=1), "INC-1")

    with pytest.raises(AccessError) as refused:
        service.request(person("carol"), "prod-db", timedelta(hours=1), "INC-2")

    assert refused.value.field is None and "already asked" in str(refused.value)


def test_the_handlers_return_typed_results_that_messages_renders(service):
    carol = person("carol")
    made = service.handlers.request(carol, "prod-db", timedelta(hours=1), "INC-1")
    assert isinstance(made, Submitted) and made.request.status is Status.PENDING

    denied = service.handlers.deny(person("bob"), made.request.id, "not now")
    assert isinstance(denied, Denied) and denied.by == "bob" and denied.reason == "not now"

    outcome = messages.outcome(denied)
    assert outcome.reply == f"Denied {made.request.id}; @carol was told."
    assert [n.audience for n in outcome.notices] == ["user", "channel"]


def test_a_cancel_is_a_typed_result_with_its_channel_notice(service):
    made = service.handlers.request(person("carol"), "prod-db", None, "INC-1")

    cancelled = service.handlers.cancel(person("carol"), made.request.id)

    assert isinstance(cancelled, Cancelled)
    outcome = messages.outcome(cancelled)
    assert outcome.reply == f"Cancelled {made.request.id}."
    assert "was cancelled by the requester" in outcome.notices[0].text


def test_a_denial_records_who_decided_and_why():
    request = a_request()

    request.deny("bob", "not now", START)

    assert request.status is Status.DENIED
    assert (request.decided_by, request.decision_note) == ("bob", "not now")
    assert request.history[-1].action == "denied"


def test_a_policy_approval_is_break_glass_and_must_be_reviewed():
    request = a_request()

    request.decide_by_policy(True, "on call", START)

    assert request.status is Status.APPROVED and request.review_required
    assert request.decided_by == "policy" and request.auto_decision == "approved: on call"


def test_a_policy_denial_needs_no_review():
    request = a_request()

    request.decide_by_policy(False, "no ticket", START)

    assert request.status is Status.DENIED and not request.review_required
    assert request.auto_decision == "denied: no ticket"


def test_nudges_come_at_doubling_intervals():
    request = a_request()
    every = timedelta(minutes=15)

    request.nudge(START, every)
    request.nudge(START, every)

    assert request.nudges == 2
    assert request.next_nudge_at == START + every * 4
    assert [e.action for e in request.history[-2:]] == ["nudge", "nudge"]


def test_a_nudge_due_now_is_postponed_but_a_later_one_is_kept():
    every = timedelta(minutes=15)
    due = a_request(next_nudge_at=START)
    later = a_request(next_nudge_at=START + timedelta(hours=1))

    due.postpone_nudge(START, every)
    later.postpone_nudge(START, every)

    assert due.next_nudge_at == START + every
    assert later.next_nudge_at == START + timedelta(hours=1)


def test_an_asked_revoke_is_recorded_as_revoked_when_it_happens():
    request = a_request(status=Status.ACTIVE, expires_at=START + timedelta(hours=1))

    request.ask_revoke("carol", START)

    assert request.ending == "revoked" and request.revoke_due_at < START
    assert request.history[-1].action == "revoke_requested"


def test_the_expiry_reminder_is_sent_once():
    request = a_request(status=Status.ACTIVE)

    request.remind_expiry(START)

    assert request.reminder_sent and request.history[-1].action == "expiry_reminder"


def test_a_finished_request_keeps_its_card():
    live, done = a_request(), a_request(status=Status.DENIED)

    assert live.place_card({"ts": "1"}) and live.card_ref == {"ts": "1"}
    assert not live.place_card({"ts": "1"})  # nothing changed
    assert not done.place_card({"ts": "2"}) and done.card_ref is None


def test_a_time_out_is_the_schedulers():
    request = a_request()

    request.time_out(START)

    assert request.status is Status.TIMED_OUT and request.history[-1].actor == "scheduler"


def test_bootstrap_opens_the_configured_store_and_takes_the_settings(tmp_path, clock, webhook):
    policy_file(tmp_path / "policies", "prod.py", two_resource_policy(webhook.url))
    settings = Settings(
        policy_dir=str(tmp_path / "policies"),
        db_path=str(tmp_path / "data" / "access.json"),
        audit_path=str(tmp_path / "data" / "audit.jsonl"),
        pending_timeout=timedelta(minutes=20),
        user_github={"carol": "carol-gh"},
    )

    service = bootstrap(settings, clock=clock, check_env=False)
    try:
        assert service.policy_error is None and service.policies.get("prod-db")
        assert service.pending_timeout == timedelta(minutes=20)
        assert service.accounts.find("github", "carol") == "carol-gh"
        assert isinstance(service.pagerduty, PagerDutyNotConfigured)  # no token set
        made = service.request(person("carol"), "prod-db", None, "INC-1").request
        assert service.store.get(made.id).status is Status.PENDING
    finally:
        service.store.close()
