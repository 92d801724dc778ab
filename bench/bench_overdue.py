"""The overdue alarm's delay after a grant's end, with a target that trickles its answer.

A webhook target on 127.0.0.1 grants at once but answers every revoke one byte a second,
for ever. The real service, store and Scheduler run on the wall clock as the plugin wires
them (revocation tick every ACCESS_TICK_SECONDS=1, the "overdue grants" job at the same
cadence), with the resource's `timeout` at 2 s and ACCESS_OVERDUE_GRACE at GRACE. Each
run grants once, lets the grant end half a second later, and measures (after the end):
when the first revoke attempt was recorded as failed (the whole call's deadline), and
when the admins' OVERDUE alert was made. The alert is due at end + grace + at most one
cadence; with the default grace of 2 minutes that is 120 s + the same overshoot.

    .venv/bin/python bench/bench_overdue.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import SECRET, SECRET_ENV, header, median, quiet_logs, table, wired, write_resources

from accessbot.audit import AuditLog
from accessbot.domain import Status
from accessbot.scheduler import Periodic, Scheduler
from accessbot.service import Actor
from accessbot.store import TinyDBStore

TICK = 1.0
GRACE = 5.0  # seconds; the default is 120
RUNS = 5


class Trickle(BaseHTTPRequestHandler):
    stop = threading.Event()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if b'"action":"revoke"' not in body:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.flush()
        while not Trickle.stop.wait(1.0):
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, *args):
        pass


class WallClock:
    """The wall clock, moved forward by `offset` (so a 30-minute grant ends soon)."""

    def __init__(self):
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def one_run(url: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        write_resources(
            data / "policies",
            {
                "prod-db": {
                    "type": "webhook",
                    "url": url,
                    "secret_env": SECRET_ENV,
                    "timeout": "2s",
                }
            },
        )
        clock = WallClock()
        store = TinyDBStore(data / "access.json")
        service = wired(
            store,
            AuditLog(data / "audit.jsonl", clock),
            data / "policies",
            clock,
            overdue_grace=timedelta(seconds=GRACE),
        )
        rid = service.request(
            Actor("carol", address="@carol"), "prod-db", timedelta(minutes=30), "bench"
        ).request.id
        service.approve(Actor("alice", address="@alice"), rid)
        end = store.get(rid).expires_at
        alarmed: list[datetime] = []

        def overdue() -> None:
            if service.check_overdue() and not alarmed:
                alarmed.append(clock())

        scheduler = Scheduler(
            service.revocation_tick,
            TICK,
            next_due=service.next_revocation_at,
            clock=clock,
            periodic=[Periodic("overdue grants", TICK, overdue)],
        )
        clock.offset = end - datetime.now(UTC) - timedelta(seconds=0.5)  # ends in 0.5 s
        scheduler.start()
        failed_at = None
        while not alarmed:
            if failed_at is None and store.get(rid).status is Status.REVOKE_FAILED:
                failed_at = clock()
            time.sleep(0.01)
        scheduler.stop(5)
        service.close(1)
        store.close()
        return (failed_at - end).total_seconds(), (alarmed[0] - end).total_seconds()


def main() -> None:
    import os

    quiet_logs()
    os.environ[SECRET_ENV] = SECRET
    runs = 2 if "--quick" in sys.argv else RUNS
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/access"
    header(
        f"Overdue alarm: trickling target (1 byte/s), timeout 2s, grace {GRACE:g}s, "
        f"tick {TICK:g}s, {runs} runs"
    )
    results = [one_run(url) for _ in range(runs)]
    Trickle.stop.set()
    server.shutdown()
    failed = [f for f, _ in results]
    alarm = [a for _, a in results]
    table(
        [
            ["first revoke failed (s after end)", f"{median(failed):.2f}", f"{max(failed):.2f}"],
            ["OVERDUE alert (s after end)", f"{median(alarm):.2f}", f"{max(alarm):.2f}"],
            [
                "alert minus grace (s)",
                f"{median(alarm) - GRACE:.2f}",
                f"{max(alarm) - GRACE:.2f}",
            ],
        ],
        ["", "median", "max"],
    )


if __name__ == "__main__":
    main()
