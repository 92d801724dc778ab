from datetime import timedelta

import pytest

from accessbot.domain import (
    RETRY_CAP,
    RETRY_FIRST,
    DurationError,
    Request,
    Status,
    TransitionError,
    format_duration,
    parse_duration,
    retry_delay,
)
from tests.builders import a_request
from tests.conftest import START


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1D2H", 93600)],
)
def test_durations_parse_in_the_compact_form_people_type(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "4x", "forever", "1.5h", "-5m", "30m1h", "m", "h1"])
def test_a_bad_duration_says_how_to_write_one(text):
    with pytest.raises(DurationError, match="30m, 2h, 1h30m or 1d"):
        parse_duration(text)


def test_an_absurdly_long_duration_is_refused():
    with pytest.raises(DurationError, match="too long"):
        parse_duration("99999999999d")


@pytest.mark.parametrize(
    "seconds, text", [(5400, "1h30m"), (600, "10m"), (93600, "1d2h"), (30, "30s"), (0, "0s")]
)
def test_durations_are_shown_compactly(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text


def make_request(**overrides):
    fields = dict(
        id="abc234",
        requester="carol",
        resource="prod-db",
        duration=timedelta(minutes=30),
        reason="fix",
        created_at=START,
        channel="#access",
        approvers=["@alice", "@bob"],
    )
    fields.update(overrides)
    return Request(**fields)


def test_a_decided_request_cannot_be_decided_again():
    request = make_request()
    request.move(Status.DENIED, START, "alice")
    with pytest.raises(TransitionError, match="already denied"):
        request.add_approval("bob", START)


def test_quorum_needs_distinct_approvers():
    request = make_request(approvals_required=2)
    assert request.add_approval("alice", START) is False
    with pytest.raises(TransitionError, match="already approved"):
        request.add_approval("alice", START)
    assert request.add_approval("bob", START) is True
    assert request.status is Status.APPROVED


def test_activation_sets_the_expiry_from_the_grant_time():
    request = make_request()
    request.add_approval("alice", START)
    request.activate(START + timedelta(seconds=5))
    assert request.expires_at == START + timedelta(minutes=30, seconds=5)


def test_a_request_survives_a_round_trip_through_its_dict():
    request = make_request(requester_email="carol@example.com")
    request.add_approval("alice", START, "ok")
    request.activate(START)
    again = Request.from_dict(request.to_dict())
    assert again == request


# -- the strategy calls' transitions: each one method with its bookkeeping -----------------

HOUR = timedelta(hours=1)


def an_active_grant(account: str | None = None) -> Request:
    grant = a_request(status=Status.APPROVED)
    grant.activate(START, account)
    return grant


def test_a_grant_records_the_targets_account_and_answer_with_its_end():
    request = a_request(status=Status.APPROVED)

    request.activate(START, "u-1234", {"id": 7})

    assert request.status is Status.ACTIVE
    assert (request.granted_at, request.expires_at) == (START, START + timedelta(minutes=30))
    assert (request.account, request.grant_result) == ("u-1234", {"id": 7})
    assert request.history[-1].note == "granted until 2026-11-24 09:30 UTC"


def test_the_end_told_to_the_target_is_a_copy():
    request = a_request(status=Status.APPROVED)

    told = request.with_end(START + HOUR)

    assert told.expires_at == START + HOUR and told.id == request.id
    assert request.expires_at is None


def test_a_failed_grant_grants_nothing_and_keeps_the_error():
    request = a_request(status=Status.APPROVED)

    request.fail_grant("target said no", START)

    assert request.status is Status.GRANT_FAILED and request.last_error == "target said no"
    assert (request.history[-1].actor, request.history[-1].note) == ("bot", "target said no")
    with pytest.raises(TransitionError):
        a_request().fail_grant("pending requests are not granted", START)


def test_a_grant_taken_back_is_granted_again_under_a_new_grant_id():
    request = a_request(status=Status.APPROVED)
    assert request.grant_id == "g-k3m9qx"

    request.take_back(request.grant_round)

    assert request.grant_round == 1 and request.grant_id == "g-k3m9qx.1"
    assert request.status is Status.APPROVED  # it waits, approved, for the disk


def test_a_revoke_that_worked_ends_the_grant_as_expired_or_revoked():
    expired, revoked = an_active_grant(), an_active_grant(account="u-1")
    revoked.ask_revoke("carol", START)
    at = START + HOUR

    assert expired.end(at, "scheduler", "u-9") is Status.EXPIRED
    assert revoked.end(at, "carol", "u-9") is Status.REVOKED

    assert (expired.ended_at, expired.ending, expired.account) == (at, "expired", "u-9")
    assert revoked.account == "u-1"  # the account recorded at grant wins
    assert expired.history[-1].action == "expired" and revoked.history[-1].actor == "carol"


def test_a_revoke_that_worked_after_failures_clears_the_retry():
    grant = an_active_grant()
    grant.fail_revoke("timeout", START, "scheduler")

    grant.end(START + HOUR, "scheduler")

    assert grant.status is Status.EXPIRED
    assert (grant.last_error, grant.next_retry_at) == ("", None)
    assert grant.revoke_attempts == 1  # the count stays, for the record


def test_failed_revokes_are_retried_10s_doubling_up_to_5_minutes():
    grant = an_active_grant()
    waits = []
    for _ in range(8):
        grant.fail_revoke("HTTP 503", START, "scheduler")
        waits.append(grant.next_retry_at - START)

    assert waits[:5] == [timedelta(seconds=s) for s in (10, 20, 40, 80, 160)]
    assert waits[5:] == [RETRY_CAP] * 3 and timedelta(seconds=10) == RETRY_FIRST
    assert grant.status is Status.REVOKE_FAILED and grant.revoke_attempts == 8
    assert (grant.last_error, grant.ending) == ("HTTP 503", "expired")
    assert grant.revoke_due_at == grant.next_retry_at
    assert [retry_delay(n).total_seconds() for n in (1, 2, 6)] == [10, 20, 300]


def test_an_extension_moves_the_grants_end_and_earns_a_new_reminder():
    grant = an_active_grant()
    grant.remind_expiry(START)
    extension = a_request(
        id="x7y8z9",
        status=Status.APPROVED,
        extends=grant.id,
        decided_by="alice",
        duration=HOUR,
    )
    until = grant.expires_at + HOUR

    grant.extend(extension, until, START, "u-5")
    extension.mark_applied(grant, START)

    assert (grant.expires_at, grant.extensions, grant.reminder_sent) == (until, 1, False)
    assert grant.account == "u-5" and grant.status is Status.ACTIVE
    assert (grant.history[-1].action, grant.history[-1].actor) == ("extended", "alice")
    assert grant.history[-1].note == "+1h, now until 2026-11-24 10:30 UTC (extension x7y8z9)"
    assert extension.status is Status.EXTENDED
    assert extension.history[-1].note == "k3m9qx until 2026-11-24 10:30 UTC"


def test_a_follow_up_is_owed_once_and_settled_once_it_ran():
    grant = an_active_grant()

    grant.owe_follow_up("after_grant")
    grant.owe_follow_up("after_grant")
    assert grant.follow_ups_due == ["after_grant"]

    grant.settle_follow_up("after_grant", START, "ran")
    assert grant.follow_ups_due == []
    assert (grant.history[-1].action, grant.history[-1].note) == ("after_grant", "ran")


def test_a_targets_megabyte_error_is_cut_where_it_is_kept_and_in_the_channels_alert():
    from accessbot import messages

    grant = an_active_grant()

    grant.fail_revoke("E" * 1_000_000, START, "scheduler")

    assert len(grant.last_error) < 2100 and grant.last_error.endswith("more characters]")
    assert len(grant.history[-1].note) < 2100
    assert len(messages.revoke_failed(grant).text) < 3000


def test_handles_are_compared_after_nfkc_normalisation_and_casefolding():
    from accessbot.domain import normalize_handle

    assert normalize_handle("\u212aarl") == "karl"  # KELVIN SIGN
    assert normalize_handle("@\uff4b\uff41\uff52\uff4c") == "karl"  # fullwidth
    assert normalize_handle(" @Stra\u00dfe ") == "strasse"
