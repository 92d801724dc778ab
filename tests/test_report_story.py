"""The report tells the whole story: extensions, policy reloads, checkpoints and the sinks,
every grant visible on the timeline however short, and each fact in a searchable table."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from accessbot.report import MIN_BAR_FRACTION, drawn_span
from accessbot.scheduler import SoleLeader
from accessbot.settings import parse_sinks
from accessbot.sinks import AuditSinks, Checkpoints
from tests.builders import build_service, person, two_resource_policy
from tests.conftest import FakeClock, accessbot, policy_file


def test_the_report_lists_extensions_reloads_checkpoints_and_sinks_in_searchable_tables(
    tmp_path, webhook
):
    clock = FakeClock()
    service = build_service(tmp_path, clock, webhook.url)
    copy = tmp_path / "copy.jsonl"
    sink = {"type": "file", "path": str(copy), "name": "worm"}
    sinks = AuditSinks(parse_sinks([sink]), service.audit, service.store, SoleLeader(), clock)
    checkpoints = Checkpoints(service.audit, timedelta(minutes=5), clock)
    checkpoints.run()
    try:
        rid = service.request(person("carol"), "prod-db", timedelta(hours=1), "fix").request.id
        service.approve(person("alice"), rid)
        ext = service.extend(person("carol"), rid, timedelta(minutes=30), "need more").request.id
        service.approve(person("bob"), ext)
        policy_file(
            tmp_path / "policies",
            "prod.py",
            two_resource_policy(webhook.url).replace("Production PostgreSQL", "Prod DB"),
        )
        service.reload_policies("admin")
        clock.advance(minutes=5)
        assert checkpoints.run()["event"] == "checkpoint"
        sinks.workers[0].step()
    finally:
        sinks.stop()
        service.store.close()
    env = {
        "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
        "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
        "ACCESS_AUDIT_SINKS": json.dumps([sink]),
    }
    code, out, err = accessbot(
        "report", "--since", "2026-11-01", "--until", "2026-12-31T00:00Z",
        "--out", "r.html", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    end = (clock() - timedelta(minutes=5) + timedelta(hours=1, minutes=30)).strftime("%H:%M")
    assert re.search(
        rf"<td><code>{rid}</code></td><td>@carol</td><td>prod-db</td><td>bob</td>"
        rf"<td>30m</td><td>2026-11-24 {end} UTC</td><td><code>{ext}</code></td>",
        page,
    ), "the extension row: who approved, how much, the new end"
    assert "<td>admin</td><td>loaded</td><td class='reason'>" in page
    assert "changed: prod-db" in page
    assert "<h3>Checkpoints (1)</h3>" in page
    assert "<td>worm</td><td>" in page and "Acknowledged up to" in page
    assert page.count("<table>") == page.count("<input type='search'") >= 5
    assert "<b>1</b>Extensions" in page


def test_a_report_without_sinks_says_the_log_is_only_on_its_host(tmp_path, webhook):
    clock = FakeClock()
    service = build_service(tmp_path, clock, webhook.url)
    service.request(person("carol"), "prod-db", timedelta(hours=1), "fix")
    service.store.close()
    env = {"ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl")}
    code, _, _ = accessbot(
        "report", "--since", "2026-11-01", "--until", "2026-12-31T00:00Z",
        "--out", "r.html", cwd=tmp_path, env=env,
    )  # fmt: skip
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "No audit sinks are configured (ACCESS_AUDIT_SINKS)" in page


def test_a_ten_minute_grant_is_drawn_a_few_pixels_wide_in_a_thirty_day_report():
    since = datetime(2026, 10, 25, tzinfo=UTC).timestamp() / 86400
    until = since + 30
    start = since + 12.5
    left, width = drawn_span(start, start + 10 / 1440, since, until)
    assert width == 30 * MIN_BAR_FRACTION > 10 / 1440
    assert left == start
    left, width = drawn_span(until - 1 / 1440, until, since, until)  # at the very end
    assert left + width == until
    assert drawn_span(since, since + 3, since, until) == (since, 3)  # a long one as it is


def test_the_report_says_what_each_revoke_did_to_sessions_opened_before(tmp_path, webhook):
    from accessbot.report import render_html, summarize

    clock = FakeClock()
    service = build_service(tmp_path, clock, webhook.url)
    try:
        rid = service.request(person("carol"), "prod-db", timedelta(hours=1), "fix").request.id
        service.approve(person("alice"), rid)
        webhook.answer = {"sessions": "ended"}
        service.revoke(person("carol"), rid)
        events = list(service.audit.events())
        summary = summarize(
            events, clock() - timedelta(days=1), clock() + timedelta(days=1), service.audit.verify()
        )
    finally:
        service.store.close()

    page = render_html(summary, log_files=["audit.jsonl"], generated=clock())

    assert "revoked early. Sessions opened before: ended.</td>" in page
