"""One bot without chat, for tests/test_failover.py: the service and its scheduler on
PostgreSQL, wired as the plugin wires them (open_backend, Scheduler with the lease).

Prints `ready <bot id>`, then reads commands from stdin, one a line, and runs them on
8 threads: `approve <who> <id>`, `revoke <who> <id>`; each prints one line,
`ok <verb> <id> <status>` or `refused <verb> <id> <message>`. Runs until killed or
until stdin closes (then it stops cleanly and hands its lease back).
"""

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from accessbot.backends import open_backend
from accessbot.bootstrap import bootstrap
from accessbot.domain import AccessError
from accessbot.scheduler import Scheduler
from accessbot.settings import Settings
from tests.builders import person


def utcnow() -> datetime:
    return datetime.now(UTC)


def main(db_url: str, root: str, tick: str, lease: str) -> None:
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    settings = Settings.load(
        environ={
            "ACCESS_DB_URL": db_url,
            "ACCESS_POLICY_DIR": str(Path(root) / "policies"),
            "ACCESS_TICK_SECONDS": tick,
            "ACCESS_LEASE_SECONDS": lease,
        }
    )
    backend = open_backend(settings, utcnow)
    service = bootstrap(settings, clock=utcnow, store=backend.store, audit=backend.audit)
    scheduler = Scheduler(service.tick, settings.tick_seconds, backend.leadership)
    scheduler.run_once()
    scheduler.start()
    printing = threading.Lock()

    def say(text: str) -> None:
        with printing:
            print(text, flush=True)

    def run(line: str) -> None:
        verb, who, request_id = line.split()
        try:
            call = service.approve if verb == "approve" else service.revoke
            outcome = call(person(who), request_id)
            say(f"ok {verb} {request_id} {outcome.request.status.value}")
        except AccessError as exc:
            say(f"refused {verb} {request_id} {' '.join(str(exc).split())}")

    say(f"ready {backend.store.db.bot_id}")
    with ThreadPoolExecutor(8) as pool:
        for line in sys.stdin:
            if line.strip():
                pool.submit(run, line)
    scheduler.stop()
    backend.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
