"""Re-checking the tickets of 1,000 active grants that end with them.

1,000 active grants of one resource whose `ticket` field is checked against Jira
(`end_with`), each on its own ticket (the worst case: one look-up each), against the
fake Jira on 127.0.0.1 (tests/fake_trackers.py, a thread per connection), optionally
answering each call after a delay like a real Jira Cloud's. The real service, TinyDB
store and audit file; `{"type": "none"}` as the strategy, so a revoke costs only its
record. Measured: the calls each pass made and the time it took, with every ticket open,
then with 100 of them moved to Done (those 100 grants revoked in that pass); and 1,000
grants sharing 10 incidents-like tickets (one call per ticket a pass).

    .venv/bin/python bench/bench_link_check.py
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import active, header, ms, quiet_logs, table, wired

from accessbot.audit import AuditLog
from accessbot.link_check import LOOKUP_WORKERS
from accessbot.store import TinyDBStore
from tests.fake_trackers import FakeJira

GRANTS = 1_000
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def policy(directory: Path, url: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    check = {"type": "jira", "url": url, "user_env": "JIRA_USER", "token_env": "JIRA_TOKEN",
             "projects": ["OPS"], "open_statuses": ["To Do", "In Progress"]}  # fmt: skip
    resources = {
        "prod-db": {
            "max_duration": "8h",
            "approvers": ["@alice"],
            "channel": "#access-approvals",
            "strategy": {"type": "none"},
            "fields": {"ticket": {"check": check, "end_with": True}},
        }
    }
    (directory / "bench.py").write_text(f"RESOURCES = {resources!r}\n")


def grants(tickets: int) -> list:
    out = active(GRANTS, "http://127.0.0.1:9", NOW, lambda n: NOW + timedelta(hours=4))
    for number, request in enumerate(out):
        key = f"OPS-{number % tickets + 1}"
        request.strategy = {"type": "none"}
        request.fields = {"ticket": key}
        request.links = {"ticket": {"key": key, "status": "In Progress", "end_with": True}}
    return out


def run(tickets: int, delay: float) -> list[list[str]]:
    jira = FakeJira()
    jira.delay = delay
    rows = []
    try:
        for number in range(tickets):
            jira.add(f"OPS-{number + 1}")
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            policy(root / "policies", jira.url)
            store = TinyDBStore(root / "access.json")
            store.save_many(grants(tickets))
            service = wired(store, AuditLog(root / "audit.jsonl", lambda: NOW), root / "policies",
                            lambda: NOW)  # fmt: skip
            for closing in (0, min(100, tickets)):
                label = f"{closing} tickets moved to Done" if closing else "all open"
                for number in range(closing):
                    jira.move(f"OPS-{number + 1}", "Done")
                before = jira.count()
                started = time.perf_counter()
                done = service.check_links()
                took = time.perf_counter() - started
                rows.append([f"{GRANTS:,} grants, {tickets:,} tickets", f"{delay * 1000:.0f} ms",
                             label, str(jira.count() - before), str(len(done.revoked)), ms(took)])  # fmt: skip
            service.close()
            store.close()
    finally:
        jira.close()
    return rows


def main() -> None:
    quiet_logs()
    os.environ.setdefault("JIRA_USER", "bot@acme.com")
    os.environ.setdefault("JIRA_TOKEN", "jira-token-123")
    header(f"Re-checking the links of {GRANTS:,} end_with grants ({LOOKUP_WORKERS} at once)")
    rows = run(GRANTS, 0.0) + run(GRANTS, 0.1) + run(10, 0.1)
    table(rows, ["grants", "Jira answers after", "pass", "calls", "revoked", "pass took"])


if __name__ == "__main__":
    main()
