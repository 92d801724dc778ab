"""The standing-access sweep over 1,000 members and 100 active grants, per target.

Three resources, each with 1,000 members at its target of whom 100 hold an active grant
recorded by the bot (by account id): an Okta group (the fake Okta on 127.0.0.1, 200 a
page as the strategy asks), a GitHub team (the fake GitHub, 100 a page) and a webhook
receiver answering `list` in one response. The real service, TinyDB store and audit
file. The first sweep finds the 900 others (one audit event each, one channel message
per resource); the second finds nothing new. Measured: the HTTP calls each sweep made
to each target, and the time each sweep took; also the pure comparison alone.

    .venv/bin/python bench/bench_standing.py
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import SECRET, SECRET_ENV, active, header, ms, quiet_logs, table, wired

from accessbot.audit import AuditLog
from accessbot.standing import Explainer, Holder, compare
from accessbot.standing_sweep import StandingSweep
from accessbot.store import TinyDBStore
from accessbot.strategies import Member
from tests.fake_targets import FakeGitHub, FakeOkta
from tests.fakes import WebhookTarget

MEMBERS = 1_000
GRANTED = 100
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SETTINGS = {"max_duration": "8h", "approvers": ["@alice"], "channel": "#access-approvals"}


def arrange(okta: FakeOkta, github: FakeGitHub, hook: WebhookTarget) -> dict[str, list[str]]:
    """1,000 members at each target; returns each resource's member accounts."""
    okta.groups["00gadmins"] = set()
    okta.page_size = 200  # Okta's most for a group's members
    github.teams[("acme", "sre")] = {}
    hook.members = []
    accounts: dict[str, list[str]] = {"okta-admins": [], "gh-sre": [], "prod-db": []}
    for n in range(MEMBERS):
        okta_id = f"00u{n:06d}"
        okta.add_user(f"user{n}@acme.com", okta_id)
        okta.groups["00gadmins"].add(okta_id)
        github.add_user(f"user{n}", 10_000 + n, org_member=True)
        github.teams[("acme", "sre")][10_000 + n] = "active"
        hook.members.append({"user": f"user{n}", "account": f"db-{n}"})
        accounts["okta-admins"].append(okta_id)
        accounts["gh-sre"].append(str(10_000 + n))
        accounts["prod-db"].append(f"db-{n}")
    return accounts


def policy(okta: FakeOkta, github: FakeGitHub, hook: WebhookTarget) -> str:
    resources = {
        "okta-admins": {
            **SETTINGS,
            "strategy": {
                "type": "okta_group",
                "org_url": okta.url,
                "group_id": "00gadmins",
                "token_env": "BENCH_OKTA_TOKEN",
            },
        },
        "gh-sre": {
            **SETTINGS,
            "strategy": {
                "type": "github_team",
                "org": "acme",
                "team": "sre",
                "token_env": "BENCH_GITHUB_TOKEN",
                "api_url": github.url,
            },
        },
        "prod-db": {
            **SETTINGS,
            "strategy": {"type": "webhook", "url": hook.url, "secret_env": SECRET_ENV},
        },
    }
    return f"RESOURCES = {resources!r}\n"


def grants(url: str, accounts: dict[str, list[str]]):
    """100 active grants per resource, each with the account the grant recorded."""
    out = []
    for resource, ids in accounts.items():
        batch = active(GRANTED, url, NOW, lambda n: NOW + timedelta(hours=4), prefix=resource[:2])
        for request, account in zip(batch, ids[:GRANTED]):
            request.resource, request.account = resource, account
        out += batch
    return out


def calls(okta: FakeOkta, github: FakeGitHub, hook: WebhookTarget) -> dict[str, int]:
    return {"okta-admins": len(okta.calls), "gh-sre": len(github.calls), "prod-db": len(hook.lists)}


def main() -> None:
    quiet_logs()
    os.environ.setdefault(SECRET_ENV, SECRET)
    os.environ["BENCH_OKTA_TOKEN"], os.environ["BENCH_GITHUB_TOKEN"] = "okta-t0ken", "gh-t0ken"
    okta, github, hook = FakeOkta("okta-t0ken"), FakeGitHub("gh-t0ken"), WebhookTarget(SECRET)
    try:
        accounts = arrange(okta, github, hook)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "policies").mkdir()
            (root / "policies" / "targets.py").write_text(policy(okta, github, hook))
            store = TinyDBStore(root / "data" / "access.json")
            store.save_many(grants(hook.url, accounts))
            audit = AuditLog(root / "data" / "audit.jsonl", lambda: NOW)
            service = wired(store, audit, root / "policies", lambda: NOW)
            assert service.policy_error is None, service.policy_error
            sweep = StandingSweep(service)

            rows = []
            for label in ("first sweep (900 new per target)", "next sweep (nothing new)"):
                before = calls(okta, github, hook)
                started = time.perf_counter()
                result = sweep.sweep()
                took = time.perf_counter() - started
                after = calls(okta, github, hook)
                made = {r: after[r] - before[r] for r in after}
                found = {r: len(fs) for r, fs in result.findings.items()}
                assert all(n == MEMBERS - GRANTED for n in found.values()), found
                rows.append(
                    [
                        label,
                        f"{made['okta-admins']} / {made['gh-sre']} / {made['prod-db']}",
                        str(len(result.found)),
                        f"{took:.2f}",
                    ]
                )
            store.close()

        members = [Member(f"user{n}", None, f"db-{n}") for n in range(MEMBERS)]
        holders = [Holder(f"r{n}", f"db-{n}", frozenset({f"user{n}"})) for n in range(GRANTED)]
        started = time.perf_counter()
        compared = compare("prod-db", members, Explainer(holders, []), [], NOW)
        pure = time.perf_counter() - started
        assert len(compared.found) == MEMBERS - GRANTED
    finally:
        for fake in (okta, github, hook):
            fake.close()

    header(
        f"standing-access sweep: {MEMBERS:,} members and {GRANTED} active grants at each of "
        "3 targets (Okta, GitHub team, webhook)"
    )
    table(rows, ["sweep", "HTTP calls (okta / github / webhook)", "new findings", "seconds"])
    print(f"   the comparison alone (1,000 members, 100 grants): {ms(pure)} ms")


if __name__ == "__main__":
    main()
