"""The audit report's "Standing access" section, from the events real sweeps wrote."""

from __future__ import annotations

from datetime import timedelta

from accessbot.audit import AuditLog
from accessbot.report import render_html, summarize
from accessbot.standing_sweep import StandingSweep
from accessbot.store import TinyDBStore
from tests.builders import wired
from tests.conftest import START, policy_file, webhook_policy


def test_the_report_lists_findings_removed_cleared_and_still_present(tmp_path, clock, webhook):
    policy_file(tmp_path / "policies", "db.py", webhook_policy(webhook.url))
    audit = AuditLog(tmp_path / "audit.jsonl", clock)
    service = wired(TinyDBStore(tmp_path / "access.json"), audit, tmp_path / "policies", clock)
    sweep = StandingSweep(service)
    webhook.members = [{"user": "old-timer"}]
    sweep.sweep()  # before the period: found, still there at its start
    clock.advance(days=2)
    webhook.members = [
        {"user": "old-timer"},
        {"user": "mallory"},
        {"user": "eve", "account": "e-1"},
    ]
    sweep.sweep()
    clock.advance(hours=1)
    webhook.members = [{"user": "old-timer"}, {"user": "eve", "account": "e-1"}]
    sweep.sweep()  # mallory gone: cleared
    clock.advance(hours=1)
    sweep.sweep(remove=True)  # both removed
    webhook.members = [{"user": "trent"}]
    clock.advance(hours=1)
    sweep.sweep()  # found at the end of the period

    until = clock()
    summary = summarize(audit.events(), START + timedelta(days=1), until, audit.verify())
    standing = summary.standing

    assert [s.user for s in standing.found()] == ["mallory", "eve", "trent"]
    assert sorted(s.user for s in standing.ended("removed")) == ["eve", "old-timer"]
    assert [(s.user, s.why) for s in standing.ended("cleared")] == [
        ("mallory", "no longer holds it")
    ]
    assert [s.user for s in standing.present()] == ["trent"]

    page = render_html(summary, log_files=["audit.jsonl"], generated=until)
    section = page.split("<h2>Standing access</h2>")[1].split("<h2>")[0]
    assert "3 found in the period, 2 removed, 1 cleared, 1 still present" in section
    assert "<td>trent</td><td><code></code></td>" in section
    assert "still present" in section and "cleared 2026-11-26" in section


def test_a_period_without_findings_says_so(tmp_path, clock):
    audit = AuditLog(tmp_path / "audit.jsonl", clock)
    audit.append("policy_reloaded", actor="admin")
    summary = summarize(audit.events(), START - timedelta(days=1), START, audit.verify())
    page = render_html(summary, log_files=["audit.jsonl"], generated=START)
    assert "Nobody was found holding access at a target without a grant" in page
