"""The flip scan: every single-byte change of a store's files, and what a bot would do on it.

A store with pending, active and finished requests (some in the snapshot, some only in the
journal, the finished in the archive) is made once, through the service. Then, for each
byte of `access.json`, `access.journal.jsonl` and `access.archive.jsonl`, a copy of the
data folder with that byte changed (XOR 0x01, a bit flipped) is opened the way the
plugin's start opens it (`open_backend`; on StoreError or a difference from the audit
log, the degraded backend filled from the audit log), and judged:

- unaffected: not degraded, and the store answers exactly as the undamaged one (every
  request as `get` gives it, what is live, what is due when);
- degraded: started on the audit log's grants, and each grant is due for revocation at
  its audited end, not before, with its audited account;
- silent: not degraded, but the store answers differently (or degraded and a grant is
  not due at its end): the failure the scan looks for;
- refused: opening raised something other than StoreError (the bot would not start).

tests/test_store_integrity.py runs a sample of offsets; bench/flip_scan.py all of them.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from accessbot.backends import open_backend
from accessbot.domain import HOLDS_ACCESS, Status
from accessbot.policy import load_policies
from accessbot.rebuild import (
    checked_against_audit,
    degraded_reason,
    open_degraded_backend,
    strategy_of,
)
from accessbot.settings import Settings
from accessbot.store import StoreError, StoreFiles
from tests.builders import build_service, person
from tests.helpers import FakeClock

FILES = ("access.json", "access.journal.jsonl", "access.archive.jsonl")
VERDICTS = ("silent", "refused", "degraded", "unaffected")


@dataclass
class Fixture:
    root: Path  # policies/ and the pristine data/
    files: dict[str, bytes]  # the store's files and the audit log, as left
    ids: list[str]
    grants: dict[str, tuple[str | None, object]]  # holding id -> (account, end)
    clock: FakeClock
    baseline: dict = field(default_factory=dict)
    failures: list[tuple[str, int, str]] = field(default_factory=list)  # file, offset, verdict


def build(root: Path, url: str) -> Fixture:
    """Pending, active and finished requests; the store left as a killed bot leaves it
    (journal lines not folded), its files' bytes kept."""
    os.environ.setdefault("TEST_HOOK_SECRET", "s3cret")
    clock = FakeClock()
    service = build_service(root, clock, url)
    ids = []

    def ask(who, minutes, reason="INC-42"):
        outcome = service.request(person(who), "prod-db", timedelta(minutes=minutes), reason)
        ids.append(outcome.request.id)
        return outcome.request.id

    finished = ask("frank", 10)
    service.approve(person("bob"), finished)
    service.deny(person("bob"), ask("gina", 30), "no")
    revoked = ask("harry", 60)
    service.approve(person("alice"), revoked)
    service.revoke(person("harry"), revoked)
    service.approve(person("bob"), ask("carol", 30))
    ask("dave", 60, "pending in the snapshot")
    clock.advance(minutes=11)
    service.tick()  # frank's grant ends
    service.store.compact()  # all of the above in access.json
    service.approve(person("alice"), ask("erin", 120, "granted after the last fold"))
    ask("ivan", 45, "pending in the journal")
    files = {name: (root / "data" / name).read_bytes() for name in FILES}
    files["audit.jsonl"] = (root / "data" / "audit.jsonl").read_bytes()
    grants = {
        r.id: (r.account, r.expires_at) for r in service.store.live() if r.status in HOLDS_ACCESS
    }
    service.close()
    service.store.close()
    fixture = Fixture(root, files, ids, grants, clock)
    verdict, view = trial(fixture, root / "baseline", None)
    assert verdict == "unaffected" and view is not None, verdict
    fixture.baseline = view
    return fixture


def behaviour(store, ids: list[str], clock: FakeClock) -> dict:
    """What the scheduler and the commands would see of this store."""
    now = clock()
    return {
        "requests": {rid: _shown(store.get(rid)) for rid in ids},
        "live": sorted(r.id for r in store.live()),
        "due": {
            str(m): [
                (r.id, r.account) for r in store.due_for_revocation(now + timedelta(minutes=m))
            ]
            for m in (0, 29, 30, 60, 119, 120, 24 * 60)
        },
        "pending": sorted(r.id for r in store.live_in({Status.PENDING})),
        "review": sorted(r.id for r in store.awaiting_review()),
    }


def _shown(request):
    if request is None:
        return None
    shown = request.to_dict()
    shown.pop("version", None)  # a store's own counter, not what anyone sees
    return shown


def trial(fixture: Fixture, work: Path, flip: tuple[str, int] | None) -> tuple[str, dict | None]:
    """Open a copy of the data folder with byte `flip` = (file, offset) changed, as the
    plugin's start would; the verdict and what the store answers."""
    data = work / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    for name, content in fixture.files.items():
        if flip is not None and name == flip[0]:
            changed = bytearray(content)
            changed[flip[1]] ^= 0x01
            content = bytes(changed)
        (data / name).write_bytes(content)
    settings = Settings(
        policy_dir=str(fixture.root / "policies"),
        db_path=str(data / "access.json"),
        audit_path=str(data / "audit.jsonl"),
    )
    clock = fixture.clock
    backend = None
    try:
        degraded = None
        try:
            backend = open_backend(settings, clock)
        except StoreError as exc:
            degraded = degraded_reason(exc)
            backend = open_degraded_backend(settings, clock)
        if not degraded:
            backend, degraded = checked_against_audit(backend, settings, clock)
        if degraded:
            policies = load_policies(settings.policy_dir, settings.groups)
            backend.store.fill(
                StoreFiles.of(settings.db_path), backend.audit.events(), strategy_of(policies)
            )
            return ("degraded" if _revokes_on_time(backend.store, fixture) else "silent"), None
        view = behaviour(backend.store, fixture.ids, clock)
        if fixture.baseline and view != fixture.baseline:
            return "silent", view
        return "unaffected", view
    except Exception:  # noqa: BLE001 - what the plugin's start would not survive
        return "refused", None
    finally:
        if backend is not None:
            backend.close()


def _revokes_on_time(store, fixture: Fixture) -> bool:
    for rid, (account, end) in fixture.grants.items():
        before = {r.id for r in store.due_for_revocation(end - timedelta(seconds=1))}
        at = {r.id: r for r in store.due_for_revocation(end)}
        if rid in before or rid not in at or at[rid].account != account:
            return False
    return True


def offsets(size: int, sample: int | None) -> list[int]:
    """Every offset, or `sample` of them spread evenly over the file (deterministic)."""
    if sample is None or sample >= size:
        return list(range(size))
    return sorted({round(i * (size - 1) / (sample - 1)) for i in range(sample)})


def scan(fixture: Fixture, work: Path, sample: int | None = None) -> dict[str, Counter]:
    """{file: Counter(verdict)} over the offsets of each store file."""
    found: dict[str, Counter] = {}
    fixture.failures.clear()
    for name in FILES:
        counts = found[name] = Counter()
        for offset in offsets(len(fixture.files[name]), sample):
            verdict, _ = trial(fixture, work, (name, offset))
            counts[verdict] += 1
            if verdict in ("silent", "refused"):
                fixture.failures.append((name, offset, verdict))
    return found
