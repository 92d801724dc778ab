"""The webhook receiver the README shows (tests/readme_receiver.py, the same text), run
against the bot's real webhook strategy: it checks the signature, refuses a call older
than 5 minutes (a captured grant replayed after the revoke), de-duplicates on the signed
idempotency_key (a replay inside the window with a new Idempotency-Key header changes
nothing), refuses a grant for a grant_id it has revoked, answers each signed list once
and ends access at expires_at."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from accessbot.strategies import Member, StrategyError
from accessbot.strategies.webhook import WebhookStrategy
from tests import readme_receiver
from tests.fakes import serve_local, stop_local

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class Clock:
    """Unix seconds that move only when the test says so; shared by bot and receiver."""

    def __init__(self):
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs).total_seconds()


class Recording(requests.Session):
    """A session that keeps every POST it sends, as someone on the path could."""

    def __init__(self):
        super().__init__()
        self.sent: list[dict] = []

    def post(self, url, **kwargs):
        self.sent.append({"url": url, **kwargs})
        return super().post(url, **kwargs)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(readme_receiver, "SECRET", b"s3cret")
    monkeypatch.setattr(readme_receiver, "clock", clock)
    monkeypatch.setattr(readme_receiver, "answers", {})
    monkeypatch.setattr(readme_receiver, "grants", {})
    monkeypatch.setattr(readme_receiver, "revoked", set())
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    return clock


@pytest.fixture
def receiver():
    server, url = serve_local(readme_receiver.Receiver)
    yield url + "/access"
    stop_local(server)


def hook(url, clock, session=None) -> WebhookStrategy:
    return WebhookStrategy(url, "HOOK_SECRET", timeout=5, session=session, clock=clock)


def call(action: str, request_id: str = "abc234", hours: float = 1, account=None) -> dict:
    return {
        "action": action,
        "grant_id": f"g-{request_id}",
        "request_id": request_id,
        "user": "carol",
        "user_email": "carol@acme.com",
        "resource": "prod-db",
        "expires_at": (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z"),
        "reason": "deploy",
        "account": account,
    }


def replay(sent: dict) -> requests.Response:
    return requests.post(sent["url"], data=sent["data"], headers=sent["headers"], timeout=5)


def test_a_captured_grant_replayed_after_six_minutes_is_refused_and_a_fresh_one_accepted(
    receiver, clock
):
    captured = Recording()
    done = hook(receiver, clock, captured).call("grant", call("grant"))
    assert readme_receiver.holds("prod-db", "carol")
    clock.advance(minutes=1)
    hook(receiver, clock).call("revoke", call("revoke", account=done.account))
    assert not readme_receiver.holds("prod-db", "carol")

    clock.advance(minutes=5)
    replayed = replay(captured.sent[0])
    assert replayed.status_code == 401 and "older than 5 minutes" in replayed.text
    assert not readme_receiver.holds("prod-db", "carol")

    hook(receiver, clock).call("grant", call("grant", request_id="def567"))  # signed now
    assert readme_receiver.holds("prod-db", "carol")


def test_a_replay_within_five_minutes_changes_nothing_thanks_to_the_idempotency_key(
    receiver, clock
):
    captured = Recording()
    hook(receiver, clock, captured).call("grant", call("grant"))
    hook(receiver, clock).call("revoke", call("revoke"))
    clock.advance(minutes=2)
    assert replay(captured.sent[0]).status_code == 200  # the same answer as before...
    assert not readme_receiver.holds("prod-db", "carol")  # ...and no grant again


class Captured(requests.Session):
    """A session whose calls never arrive: someone on the path kept them for later."""

    def __init__(self):
        super().__init__()
        self.sent: list[dict] = []

    def post(self, url, **kwargs):
        self.sent.append({"url": url, **kwargs})
        raise requests.ConnectionError("taken off the wire")


def with_header(sent: dict, **headers) -> dict:
    return {**sent, "headers": {**sent["headers"], **headers}}


def test_the_idempotency_key_travels_signed_in_the_body_as_well_as_in_the_header(receiver, clock):
    captured = Recording()
    hook(receiver, clock, captured).call("grant", call("grant"))
    hook(receiver, clock, captured).members("prod-db")

    for sent in captured.sent:
        assert json.loads(sent["data"])["idempotency_key"] == sent["headers"]["Idempotency-Key"]
    assert json.loads(captured.sent[0]["data"])["idempotency_key"] == "g-abc234:grant"


def test_a_grant_replayed_after_the_revoke_with_a_new_header_key_grants_nothing(receiver, clock):
    captured = Recording()
    hook(receiver, clock, captured).call("grant", call("grant"))
    hook(receiver, clock).call("revoke", call("revoke"))
    clock.advance(minutes=2)

    replayed = replay(with_header(captured.sent[0], **{"Idempotency-Key": "g-abc234:grant:2"}))

    assert replayed.status_code == 200  # the signed key's first answer, nothing done again
    assert not readme_receiver.holds("prod-db", "carol")


def test_a_grant_held_back_until_after_its_revoke_is_refused(receiver, clock):
    held_back = Captured()
    with pytest.raises(StrategyError, match="unreachable"):
        hook(receiver, clock, held_back).call("grant", call("grant"))
    hook(receiver, clock).call("revoke", call("revoke"))  # the bot gave up and revoked
    clock.advance(minutes=1)

    late = replay(held_back.sent[0])

    assert late.status_code == 409 and "already revoked" in late.text
    assert not readme_receiver.holds("prod-db", "carol")


def test_an_extend_held_back_until_after_the_revoke_is_refused(receiver, clock):
    hook(receiver, clock).call("grant", call("grant"))
    held_back = Captured()
    with pytest.raises(StrategyError, match="unreachable"):
        hook(receiver, clock, held_back).call("extend", call("extend", hours=2))
    hook(receiver, clock).call("revoke", call("revoke"))

    assert replay(held_back.sent[0]).status_code == 409
    assert not readme_receiver.holds("prod-db", "carol")


def test_a_replayed_list_call_tells_nothing(receiver, clock):
    hook(receiver, clock).call("grant", call("grant"))
    captured = Recording()
    assert hook(receiver, clock, captured).members("prod-db") == [Member("carol", None, "carol")]

    for sent in (captured.sent[0], with_header(captured.sent[0], **{"Idempotency-Key": "x"})):
        replayed = replay(sent)
        assert replayed.status_code == 409 and "carol" not in replayed.text


def test_an_unsigned_or_forged_list_call_is_refused(receiver, clock):
    body = json.dumps({"action": "list", "resource": "prod-db", "idempotency_key": "k"})
    stamp = str(int(clock()))
    for headers in ({}, {"X-Access-Timestamp": stamp, "X-Access-Signature": "sha256=00"}):
        answer = requests.post(receiver, data=body, headers=headers, timeout=5)
        assert answer.status_code == 401 and "members" not in answer.text


def test_a_call_from_a_bot_with_the_wrong_secret_is_refused(receiver, clock, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "guess")
    with pytest.raises(StrategyError, match="HTTP 401"):
        hook(receiver, clock).call("grant", call("grant"))
    assert not readme_receiver.holds("prod-db", "carol")


def test_the_receiver_ends_the_access_at_expires_at_if_no_revoke_comes(receiver, clock):
    hook(receiver, clock).call("grant", call("grant", hours=0.5))
    clock.advance(minutes=29)
    assert readme_receiver.holds("prod-db", "carol")
    clock.advance(minutes=2)
    assert not readme_receiver.holds("prod-db", "carol")


def test_an_extend_moves_the_end_and_the_account_comes_back_to_the_bot(receiver, clock):
    done = hook(receiver, clock).call("grant", call("grant", hours=0.5))
    assert done.account == "carol"
    hook(receiver, clock).call("extend", call("extend", hours=1.5, account=done.account))
    clock.advance(hours=1)
    assert readme_receiver.holds("prod-db", "carol")


def test_the_receiver_lists_who_holds_the_resource_for_the_standing_sweep(receiver, clock):
    hook(receiver, clock).call("grant", call("grant", hours=0.5))
    assert hook(receiver, clock).members("prod-db") == [Member("carol", None, "carol")]
    clock.advance(hours=1)
    assert hook(receiver, clock).members("prod-db") == []  # ended at expires_at


def test_the_readme_shows_exactly_this_receiver():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    shown = [b for b in blocks if "class Receiver(BaseHTTPRequestHandler)" in b]
    assert shown == [(ROOT / "tests" / "readme_receiver.py").read_text()]


def test_the_bot_grants_extends_sweeps_removes_and_revokes_through_the_readme_receiver(
    tmp_path, monkeypatch
):
    """Issue 29 item 22: every action of the contract, sent by the bot itself (the
    service and its standing-access sweep, real signatures, real time) to the README's
    receiver, including the standing removal's revoke, whose `expires_at` is null."""
    import time

    from accessbot.audit import AuditLog
    from accessbot.standing_sweep import StandingSweep
    from accessbot.store import TinyDBStore
    from tests.builders import person, wired
    from tests.conftest import FakeClock, policy_file
    from tests.test_standing import policy

    monkeypatch.setattr(readme_receiver, "SECRET", b"s3cret")
    monkeypatch.setattr(readme_receiver, "clock", time.time)
    monkeypatch.setattr(readme_receiver, "answers", {})
    monkeypatch.setattr(readme_receiver, "revoked", set())
    # Someone added by hand at the target, with no grant: what the sweep is for.
    monkeypatch.setattr(readme_receiver, "grants", {("prod-db", "mallory"): time.time() + 86400})
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    server, url = serve_local(readme_receiver.Receiver)
    policy_file(tmp_path / "policies", "db.py", policy(url + "/access", remove_standing=True))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    store = TinyDBStore(tmp_path / "data" / "access.json")
    service = wired(
        store, AuditLog(tmp_path / "data" / "audit.jsonl", clock), tmp_path / "policies", clock
    )
    try:
        rid = service.request(person("carol"), "prod-db", timedelta(hours=1), "INC-1").request.id
        service.approve(person("alice"), rid)
        assert readme_receiver.holds("prod-db", "carol")
        ext = service.extend(person("carol"), rid, timedelta(minutes=30), "more").request.id
        assert "now ends" in service.approve(person("bob"), ext).reply
        ends = readme_receiver.grants[("prod-db", "carol")]
        assert ends == (clock() + timedelta(hours=1, minutes=30)).timestamp()

        swept = StandingSweep(service, 20, {}, timedelta(hours=1)).sweep()

        assert [f.user for f in swept.removed] == ["mallory"], swept
        assert not readme_receiver.holds("prod-db", "mallory")
        assert readme_receiver.holds("prod-db", "carol")  # explained by its grant
        assert "Revoked" in service.revoke(person("carol"), rid).reply
        assert not readme_receiver.holds("prod-db", "carol")
    finally:
        stop_local(server)
        store.close()
