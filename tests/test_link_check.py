"""The re-check pass on the service (no chat): grants that end with a PagerDuty incident,
several sharing one, looked up once a pass through the real pdpyras client against a
local PagerDuty; revoked together when it is resolved; `require_one_of` at request."""

from datetime import timedelta

import pytest

from accessbot.audit import AuditLog
from accessbot.domain import AccessError, Status
from accessbot.integrations.pagerduty import OnCallChecker
from accessbot.store import TinyDBStore
from tests.builders import person, wired
from tests.fake_pagerduty import TOKEN
from tests.helpers import FakeClock, accessbot, policy_file

POLICY = """
RESOURCES = {
    "deploy": {
        "max_duration": "4h",
        "approvers": ["@alice"],
        "channel": "#deploys",
        "strategy": {"type": "none"},
        "fields": {
            "ticket": {"pattern": "^[A-Z]+-[0-9]+$", "help": "Jira key"},
            "incident": {
                "help": "PagerDuty incident id or link",
                "check": {"type": "pagerduty", "services": ["PSVC123"]},
                "end_with": True,
            },
        },
        "require_one_of": ["ticket", "incident"],
    }
}
"""


@pytest.fixture
def service(tmp_path, pagerduty):
    clock = FakeClock()
    policy_file(tmp_path / "policies", "deploy.py", POLICY)
    built = wired(
        TinyDBStore(tmp_path / "access.json"),
        AuditLog(tmp_path / "audit.jsonl", clock),
        tmp_path / "policies",
        clock,
    )
    built.pagerduty = OnCallChecker(TOKEN, pagerduty.url, clock=clock, timeout=2)
    yield built
    built.close()


def granted(service, who: str, **fields) -> str:
    outcome = service.request(person(who), "deploy", timedelta(hours=1), "incident work", fields)
    rid = outcome.reply.split("Request ", 1)[1].split(" ", 1)[0]
    service.approve(person("alice"), rid)
    assert service.store.get(rid).status is Status.ACTIVE
    return rid


def test_neither_of_the_fields_is_refused_naming_both(service):
    with pytest.raises(AccessError, match=r"deploy needs one of `ticket=...` or `incident=...`"):
        service.request(person("carol"), "deploy", timedelta(hours=1), "work", {})


def test_grants_sharing_an_incident_ask_once_a_pass_and_end_when_it_is_resolved(service, pagerduty):
    pagerduty.add_incident("Q1ABC2D", "PSVC123", [], status="acknowledged")
    rids = [granted(service, who, incident="Q1ABC2D") for who in ("carol", "dave", "erin")]
    other = granted(service, "frank", ticket="OPS-7")  # no checked link: never looked at
    before = pagerduty.count("/incidents/Q1ABC2D")
    first = service.check_links()
    assert first.looked_up == 1 and first.revoked == []
    assert pagerduty.count("/incidents/Q1ABC2D") == before + 1
    counted = service.metrics.registry.get_sample_value
    assert counted("accessbot_link_checks_total", {"type": "pagerduty", "outcome": "open"}) == 3

    pagerduty.set_status("Q1ABC2D", "resolved")
    second = service.check_links()
    assert sorted(second.revoked) == sorted(rids)
    for rid in rids:
        ended = service.store.get(rid)
        assert ended.status is Status.REVOKED
        assert ended.links["incident"]["closed"] == "resolved"
    assert service.store.get(other).status is Status.ACTIVE
    told = [n.text for n in second.notices if n.audience == "user"]
    assert len(told) == 3 and all("Q1ABC2D moved to resolved" in t for t in told)
    assert service.check_links().looked_up == 0  # nothing left to look at


def test_an_incident_on_another_service_is_refused(service, pagerduty):
    pagerduty.add_incident("Q9OTHER", "POTHER1", [])
    with pytest.raises(AccessError, match="Q9OTHER is on service POTHER1, not PSVC123"):
        service.request(person("carol"), "deploy", timedelta(hours=1), "x", {"incident": "Q9OTHER"})


def test_the_report_shows_the_incident_and_why_the_grant_ended(service, pagerduty, tmp_path):
    pagerduty.add_incident("Q1ABC2D", "PSVC123", [], status="triggered")
    rid = granted(service, "carol", incident="Q1ABC2D")
    pagerduty.set_status("Q1ABC2D", "resolved")
    assert service.check_links().revoked == [rid]
    service.store.close()
    env = {
        "ACCESS_AUDIT_PATH": str(tmp_path / "audit.jsonl"),
        "ACCESS_DB_PATH": str(tmp_path / "access.json"),
    }
    code, _, err = accessbot(
        "report", "--since", "2026-11-01", "--until", "2026-12-31T00:00Z",
        "--out", "r.html", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert "revoked early: Q1ABC2D moved to resolved" in page
    assert "<br>incident: Q1ABC2D &quot;database down&quot; (triggered at request" in page


def test_a_checked_field_without_end_with_is_looked_up_once_and_never_ends_the_grant(
    tmp_path, monkeypatch
):
    from tests.fake_trackers import FakeJira

    jira = FakeJira()
    monkeypatch.setenv("JIRA_USER", "bot@acme.com")
    monkeypatch.setenv("JIRA_TOKEN", "jira-token-123")
    clock = FakeClock()
    check = {"type": "jira", "url": jira.url, "user_env": "JIRA_USER", "token_env": "JIRA_TOKEN"}
    policy = POLICY.replace('"require_one_of": ["ticket", "incident"],', "").replace(
        '"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "help": "Jira key"}',
        f'"ticket": {{"check": {check!r}}}',
    )
    policy_file(tmp_path / "policies", "deploy.py", policy)
    service = wired(
        TinyDBStore(tmp_path / "access.json"),
        AuditLog(tmp_path / "audit.jsonl", clock),
        tmp_path / "policies",
        clock,
    )
    try:
        jira.add("OPS-7", "In Progress")
        rid = granted(service, "carol", ticket="OPS-7")
        assert jira.count() == 1
        jira.move("OPS-7", "Done")
        assert service.check_links().looked_up == 0
        assert jira.count() == 1 and service.store.get(rid).status is Status.ACTIVE
    finally:
        service.close()
        jira.close()
