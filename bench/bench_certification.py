"""An access certification of 500 members: open, list, decide.

One resource whose webhook target lists 500 members nobody holds a grant for. The real
service, TinyDB store, certification file and audit file. Measured: opening the
certification (the listing, 500 items written and audited in one `certification_opened`
event), `!access certify list` for a reviewer (its size too), and one decision (`keep`:
the conditional write, the item, the audit event). Also the channel message's size.

    .venv/bin/python bench/bench_certification.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _common import SECRET, SECRET_ENV, header, ms, quiet_logs, strategy, table, wired

from accessbot.audit import AuditLog
from accessbot.certification import Certifications
from accessbot.certification_store import TinyDBCertifications
from accessbot.results import Actor
from accessbot.standing_sweep import StandingSweep
from accessbot.store import TinyDBStore
from tests.fakes import WebhookTarget
from tests.helpers import FakeClock

MEMBERS = 500
DECISIONS = 50


def main() -> None:
    quiet_logs()
    os.environ[SECRET_ENV] = SECRET
    tmp = Path(tempfile.mkdtemp(prefix="bench-certify-"))
    target = WebhookTarget(secret=SECRET)
    target.members = [
        {"user": f"u{n}", "user_email": f"u{n}@acme.com", "account": f"db-{n}"}
        for n in range(MEMBERS)
    ]
    resource = {
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": strategy(target.url),
        "certify": {"every": "90d", "deadline": "7d"},
    }
    (tmp / "p").mkdir()
    (tmp / "p" / "db.py").write_text(f"RESOURCES = {{'prod-db': {resource!r}}}\n")
    clock = FakeClock()
    store = TinyDBStore(tmp / "d" / "access.json")
    service = wired(store, AuditLog(tmp / "d" / "audit.jsonl", clock), tmp / "p", clock)
    certifications = Certifications(
        service, StandingSweep(service), TinyDBCertifications.beside(tmp / "d" / "access.json")
    )
    admin, alice = Actor("admin", is_admin=True), Actor("alice")
    try:
        started = time.perf_counter()
        opened = certifications.start(admin, "prod-db")
        opening = time.perf_counter() - started
        started = time.perf_counter()
        listing = certifications.listing(alice)
        listed = time.perf_counter() - started
        items = [line.split()[0] for line in listing.splitlines()[1:]]
        started = time.perf_counter()
        for item in items[:DECISIONS]:
            certifications.decide(alice, item, "keep", "still needed")
        deciding = (time.perf_counter() - started) / DECISIONS
    finally:
        target.close()
        store.close()
    header(f"access certification of {MEMBERS} members (TinyDB, webhook `list`)")
    table(
        [
            ["open (list, 500 items, audit)", ms(opening)],
            [f"`!access certify list` ({len(listing):,} characters)", ms(listed)],
            [f"one decision (mean of {DECISIONS})", ms(deciding)],
            ["the channel message", f"{len(opened.notices[0].text):,} characters"],
        ],
        ["what", "ms (or size)"],
    )


if __name__ == "__main__":
    main()
