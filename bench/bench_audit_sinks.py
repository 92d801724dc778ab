"""Audit sinks: how fast one http sink ships the log, and that a sink that is down does
not slow a request.

1. Throughput: events appended one by one (each fsynced, as the bot does) while one http
   sink (batches of 100) ships them to a receiver in another process; how long until the
   receiver has acknowledged every line, and how fast a backlog drains.
2. `!access request` through errbot's real TestBot with no sink, with a sink whose port
   refuses connections, and with one that accepts and never answers: p50 and p99.

    .venv/bin/python bench/bench_audit_sinks.py [--quick]
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import Bot, header, median, ms, percentile, quiet_logs, table, write_policy

from accessbot.audit import AuditLog
from accessbot.scheduler import SoleLeader
from accessbot.settings import parse_sinks
from accessbot.sinks import AuditSinks
from accessbot.store import TinyDBStore

SINK_SECRET_ENV = "BENCH_SINK_SECRET"
TARGET_URL = "http://127.0.0.1:9/never-called"  # requests wait for approval: no calls


def _receive(port_queue) -> None:
    """A collector in its own process: counts the lines of every batch, answers 200."""
    lines = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                lines[0] += body.count(b"\n")
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        def do_GET(self):
            with lock:
                data = str(lines[0]).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever(poll_interval=0.05)


class Receiver:
    def __init__(self):
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.process = context.Process(target=_receive, args=(ports,), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ports.get(timeout=30)}/audit"

    def count(self) -> int:
        import requests

        return int(requests.get(self.url, timeout=10).text)

    def close(self) -> None:
        self.process.terminate()
        self.process.join(5)


def sinks_on(data: Path, audit: AuditLog, url: str) -> tuple[AuditSinks, TinyDBStore]:
    store = TinyDBStore(data / "access.json")
    config = parse_sinks([{"type": "http", "url": url, "secret_env": SINK_SECRET_ENV}])
    sinks = AuditSinks(config, audit, store, SoleLeader(), lambda: datetime.now(UTC))
    return sinks, store


def wait_for(count: int, receiver: Receiver, limit: float = 600) -> float:
    """Seconds until the receiver has `count` lines (polled every 10 ms)."""
    start = time.perf_counter()
    pause = threading.Event()
    while receiver.count() < count:
        if time.perf_counter() - start > limit:
            raise SystemExit(f"the sink did not deliver {count} lines in {limit}s")
        pause.wait(0.01)
    return time.perf_counter() - start


FSYNCS = [0]  # os.fsync calls in this process (counted: main wraps os.fsync)


def counting_fsyncs() -> None:
    inner = os.fsync

    def fsync(fd):
        FSYNCS[0] += 1
        return inner(fd)

    os.fsync = fsync


def throughput(events: int) -> list[list[str]]:
    rows = []
    receiver = Receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            audit = AuditLog(data / "alone.jsonl", lambda: datetime.now(UTC), None)
            start, synced = time.perf_counter(), FSYNCS[0]
            for number in range(events):
                audit.append("requested", actor="carol", request_id=f"r{number}", reason="bench")
            alone = time.perf_counter() - start
            alone_fsyncs = (FSYNCS[0] - synced) / events

            audit = AuditLog(data / "audit.jsonl", lambda: datetime.now(UTC), None)
            sinks, store = sinks_on(data, audit, receiver.url)
            sinks.start()
            start, synced = time.perf_counter(), FSYNCS[0]
            for number in range(events):
                audit.append("requested", actor="carol", request_id=f"r{number}", reason="bench")
            appended = time.perf_counter() - start
            behind = wait_for(events, receiver)
            sinks.stop()
            sink_fsyncs = (FSYNCS[0] - synced) / events
            store.close()
            rows.append(
                [
                    f"{events:,}",
                    f"{events / alone:,.0f}/s",
                    f"{events / appended:,.0f}/s",
                    f"{alone / appended:.2f}x",
                    f"{alone_fsyncs:.2f} / {sink_fsyncs:.2f}",
                    f"{(appended + behind):.2f} s",
                    f"{behind * 1000:.0f} ms",
                ]
            )

            # A backlog: the same sink, new name, from event 0 of an existing log.
            backlog = receiver.count()
            config = parse_sinks(
                [{"type": "http", "url": receiver.url, "secret_env": SINK_SECRET_ENV, "name": "b"}]
            )
            store = TinyDBStore(data / "access.json")
            sinks = AuditSinks(config, audit, store, SoleLeader(), lambda: datetime.now(UTC))
            start = time.perf_counter()
            sinks.start()
            drained = wait_for(backlog + events, receiver)
            sinks.stop()
            store.close()
            rows.append([f"{events:,} (backlog)", "-", "-", "-", "-", f"{drained:.2f} s", "-"])
            rows[-1][2] = f"drains {events / drained:,.0f}/s"
    finally:
        receiver.close()
    return rows


def hanging_port() -> tuple[socket.socket, str]:
    """A port that accepts connections and never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/audit"


def latency(reps: int) -> list[list[str]]:
    silent, silent_url = hanging_port()
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_url = f"http://127.0.0.1:{refused.getsockname()[1]}/audit"  # bound, not listening
    cases = [
        ("no sink", []),
        ("sink refusing connections", [{"type": "http", "url": refused_url}]),
        ("sink that never answers", [{"type": "http", "url": silent_url, "timeout": 30}]),
    ]
    rows = []
    try:
        for label, sinks in cases:
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                write_policy(tmp / "policies", TARGET_URL)
                bot = Bot(tmp / "data", tmp / "policies", ACCESS_AUDIT_SINKS=sinks)
                bot.start()
                try:
                    for number in range(20):
                        bot.say(f"warm{number}", "!access request prod-db 30m warming up", 2)
                    samples = []
                    for number in range(reps):
                        start = time.perf_counter()
                        bot.say(f"user{number}", "!access request prod-db 30m INC-42 bench", 2)
                        samples.append(time.perf_counter() - start)
                finally:
                    bot.stop()
            rows.append([label, str(reps), ms(median(samples)), ms(percentile(samples, 99))])
    finally:
        silent.close()
        refused.close()
    return rows


def main() -> None:
    quiet_logs()
    counting_fsyncs()
    os.environ.setdefault(SINK_SECRET_ENV, "bench-sink-secret")
    quick = "--quick" in sys.argv
    header("Audit sinks: throughput with one http sink (batches of 100, fsynced appends)")
    table(
        throughput(2_000 if quick else 20_000),
        [
            "events",
            "appends, no sink",
            "appends, with sink",
            "with / without (>=0.9x)",
            "fsyncs per append, no sink / with",
            "all acknowledged",
            "after last",
        ],
    )
    print()
    header("Audit sinks: `!access request` latency (ms) with a sink that is down")
    table(latency(60 if quick else 300), ["sink", "runs", "request p50", "request p99"])


if __name__ == "__main__":
    main()
