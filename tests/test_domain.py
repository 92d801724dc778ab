from datetime import timedelta

import pytest

from accessbot.domain import (
    DurationError,
    Request,
    Status,
    TransitionError,
    format_duration,
    parse_duration,
)
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
