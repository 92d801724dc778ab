"""Every target call has a deadline for the whole call (issue 26 item 3): a target that
trickles its answer, one byte a second, never trips a read timeout, yet its revoke fails
at the resource's `timeout` and is retried with backoff as any failed revoke is.

Time on the bot's side is the injected clock; the deadline is real time, so the tests
wait (with `eventually`) for the outcome, never for a length of time."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from accessbot.domain import Status
from accessbot.strategies import StrategyError
from accessbot.strategies.deadline import MAX_LATE, call_within, deadline_of
from accessbot.strategies.rest import RestClient
from accessbot.strategies.webhook import WebhookStrategy
from tests.builders import build_service, person
from tests.fake_trickle import TricklingTarget
from tests.fakes import FakeHandler, serve_local, stop_local
from tests.helpers import FakeClock, eventually


def trickle_policy(url: str, timeout: str = "2s") -> str:
    resource = {
        "description": "a database behind a slow receiver",
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "webhook",
            "url": url,
            "secret_env": "TEST_HOOK_SECRET",
            "timeout": timeout,
        },
    }
    return f"RESOURCES = {{'prod-db': {resource!r}}}\n"


@pytest.fixture(params=["body", "headers"])
def trickling(request):
    target = TricklingTarget(mode=request.param)
    yield target
    target.close()


def test_a_revoke_whose_answer_trickles_fails_at_its_deadline_and_is_retried(tmp_path, trickling):
    clock = FakeClock()
    service = build_service(tmp_path, clock, trickling.url, policy=trickle_policy(trickling.url))
    rid = service.request(person("carol"), "prod-db", timedelta(minutes=30), "INC-7").request.id
    service.approve(person("alice"), rid)
    assert service.store.get(rid).status is Status.ACTIVE
    clock.advance(minutes=30)

    service.revocation_tick()

    failed = eventually(
        lambda: (r := service.store.get(rid)).status is Status.REVOKE_FAILED and r,
        "the trickled revoke failing at its deadline",
        explain=lambda: service.store.get(rid).status,
    )
    assert failed.revoke_attempts == 1
    assert "did not finish within 2s" in failed.last_error
    assert service.drain(5)  # recorded, and its claim let go: the retry can take it
    assert rid not in service._inflight
    assert service.metrics.target_errors.labels("webhook", "revoke")._value.get() == 1

    trickling.recover()
    clock.advance(seconds=10)  # the first retry's backoff
    service.revocation_tick()
    eventually(
        lambda: service.store.get(rid).status is Status.EXPIRED,
        "the retried revoke succeeding once the target recovered",
    )
    assert trickling.count() == 2
    service.close()


class Huge(FakeHandler):
    """Answers every call with 3 MB of JSON-looking bytes."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.respond(200, b'{"account": "' + b"x" * (3 * 1024 * 1024) + b'"}', "application/json")

    do_GET = do_POST


@pytest.fixture
def huge():
    server, url = serve_local(Huge)
    yield url
    stop_local(server)


def test_a_target_answer_is_read_up_to_a_cap(huge):
    payload = {"grant_id": "g-1", "request_id": "r-1", "user": "carol", "expires_at": None}
    hook = WebhookStrategy(huge + "/access", None, timeout=10)
    done = hook.call("grant", payload)  # a 2xx is done; an answer too long to keep is not kept
    assert done.answer is None and done.account is None

    okta = RestClient("Okta", huge, {}, timeout=10)
    with pytest.raises(StrategyError, match="more than 1 MB"):
        okta.call("GET", "/api/v1/groups")


def test_calls_given_up_at_their_deadline_are_not_left_behind_without_end():
    """A target that holds every call (trickled headers, say) gets at most MAX_LATE
    threads left running; further calls fail at once until those end."""
    held = threading.Event()
    target = "webhook (http://held.example/access)"
    for _ in range(MAX_LATE):
        with pytest.raises(StrategyError, match="did not finish within 0.05s"):
            call_within(0.05, "the revoke call", lambda: held.wait(30), target)
    with pytest.raises(StrategyError, match=f"{MAX_LATE} earlier calls to this target"):
        call_within(0.05, "the revoke call", lambda: "never made", target)
    assert call_within(5, "another target's call", lambda: "made", "command") == "made"

    def made() -> bool:
        try:
            return call_within(5, "the revoke call", lambda: "made", target) == "made"
        except StrategyError:
            return False

    held.set()  # the held calls end: calls to the target are made again
    eventually(made, "calls to the target made again")


def test_the_deadline_is_the_resources_timeout_or_30_seconds():
    assert deadline_of({"type": "webhook", "url": "https://x", "timeout": "5s"}) == 5
    assert deadline_of({"type": "webhook", "url": "https://x"}) == 30
    assert deadline_of({"type": "command", "argv": ["x"], "timeout": "2m"}) == 120
    # aws_sso polls Identity Center for up to its `wait` after its calls: both count.
    assert deadline_of({"type": "aws_sso", "timeout": "10s", "wait": "2m"}) == 130
    # with end_sessions a revoke also waits for the permission set's provisioning
    assert (
        deadline_of({"type": "aws_sso", "timeout": "10s", "wait": "2m", "end_sessions": True})
        == 250
    )
    assert deadline_of({"type": "aws_sso"}) == 90


def test_an_approval_whose_grant_trickles_is_answered_at_the_deadline(tmp_path):
    """The grant an approver waits for runs on their command's thread: it fails at the
    deadline too, and the approver is told, instead of waiting for the trickle."""
    target = TricklingTarget(mode="body", trickled=("grant",))
    try:
        clock = FakeClock()
        service = build_service(tmp_path, clock, target.url, policy=trickle_policy(target.url))
        rid = service.request(person("carol"), "prod-db", timedelta(minutes=30), "INC-8")
        answered = []
        approver = threading.Thread(
            target=lambda: answered.append(service.approve(person("alice"), rid.request.id)),
            daemon=True,
        )
        approver.start()
        eventually(lambda: answered, "the approval answered")
        request = service.store.get(rid.request.id)
        assert request.status is Status.GRANT_FAILED
        assert "did not finish within 2s" in request.last_error
    finally:
        target.close()
