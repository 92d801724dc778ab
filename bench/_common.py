"""Shared by the bench scripts: the machine line, percentiles, fast history building,
a webhook target in its own process, and a real errbot TestBot (no pytest fixtures).

History is written with the store's and the audit log's own bulk methods
(`save_many`, `append_many`), not through chat, so 100,000 finished requests take
seconds to build.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from accessbot.audit import AuditLog  # noqa: E402
from accessbot.bootstrap import bootstrap  # noqa: E402
from accessbot.domain import HOLDS_ACCESS, Request, Status  # noqa: E402
from accessbot.rebuild import grant_fields  # noqa: E402
from accessbot.settings import Settings  # noqa: E402
from accessbot.store import TinyDBStore  # noqa: E402

SECRET_ENV = "BENCH_HOOK_SECRET"
SECRET = "bench-secret"
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def wired(store, audit, policy_dir: Path, clock, pagerduty=None, notify=None, **settings):
    """The service as the bot wires it (`bootstrap`), on this store and audit log;
    `settings` are Settings fields (strategy_workers, ...)."""
    return bootstrap(
        Settings(policy_dir=str(policy_dir), **settings),
        clock=clock,
        store=store,
        audit=audit,
        pagerduty=pagerduty,
        notify=notify,
    )


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def header(title: str) -> None:
    print(f"\n== {title}\n   machine: {machine()}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; fine for the sample sizes here."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def table(rows: list[list[str]], head: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print("   " + "  ".join(str(h).ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("   " + "  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


def bench_id(number: int, prefix: str = "") -> str:
    """Short ids like the bot's own, distinct for every number (no random collisions)."""
    digits = ""
    for _ in range(6 - len(prefix)):
        number, rest = divmod(number, len(_ALPHABET))
        digits += _ALPHABET[rest]
    return prefix + digits


def strategy(url: str, timeout: str = "10s") -> dict:
    return {"type": "webhook", "url": url, "secret_env": SECRET_ENV, "timeout": timeout}


def write_policy(directory: Path, url: str) -> None:
    write_resources(
        directory, {name: strategy(url) for name in ("prod-db", "prod-shell", "staging-db")}
    )


def write_resources(directory: Path, strategies: dict[str, dict]) -> None:
    """A policy file with one resource per name, each with its own strategy settings."""
    directory.mkdir(parents=True, exist_ok=True)
    resources = {
        name: {
            "description": f"bench {name}",
            "max_duration": "8h",
            "default_duration": "1h",
            "approvers": ["@alice", "@bob"],
            "channel": "#access-approvals",
            "strategy": settings,
        }
        for name, settings in strategies.items()
    }
    (directory / "bench.py").write_text(f"RESOURCES = {resources!r}\n")


def _template(url: str, at: datetime) -> Request:
    request = Request(
        id="templ8",
        requester="user",
        resource="prod-db",
        duration=timedelta(hours=1),
        reason="INC-4242 looking at slow queries on the orders table",
        created_at=at,
        channel="#access-approvals",
        approvers=["@alice", "@bob"],
        strategy=strategy(url),
        requester_address="@user",
        requester_email="user@example.com",
        policy_file="bench.py",
    )
    request.record(at, "requested", "user", request.reason)
    request.add_approval("alice", at + timedelta(minutes=2), "ok")
    request.activate(at + timedelta(minutes=2))
    return request


def finished(count: int, url: str, end: datetime) -> list[Request]:
    """`count` expired grants, one every few minutes back from `end`."""
    out = []
    template = _template(url, end)
    for number in range(count):
        at = end - timedelta(minutes=3 * (count - number)) - timedelta(hours=2)
        request = template.copy()
        request.id = bench_id(number, "h")
        request.requester = f"user{number % 500}"
        request.requester_address = f"@{request.requester}"
        request.resource = ("prod-db", "prod-shell", "staging-db")[number % 3]
        request.created_at = at
        request.granted_at = at + timedelta(minutes=2)
        request.expires_at = request.granted_at + request.duration
        request.ended_at = request.expires_at
        request.move(Status.EXPIRED, request.expires_at, "scheduler")
        out.append(request)
    return out


def active(count: int, url: str, now: datetime, ends, prefix: str = "a") -> list[Request]:
    """`count` active grants; `ends(number)` gives each one's expiry."""
    out = []
    template = _template(url, now - timedelta(minutes=30))
    for number in range(count):
        request = template.copy()
        request.id = bench_id(number, prefix)
        request.requester = f"{prefix}user{number}"
        request.requester_address = f"@{request.requester}"
        request.expires_at = ends(number)
        request.granted_at = request.expires_at - request.duration
        request.created_at = request.granted_at - timedelta(minutes=2)
        request.reminder_sent = True  # reminded already: the ticks measured do no reminding
        out.append(request)
    return out


def write_history(data: Path, requests: list[Request], audit_clock=None) -> None:
    """Save requests through the store's bulk write, and one audit event for each."""
    data.mkdir(parents=True, exist_ok=True)
    store = TinyDBStore(data / "access.json")
    for start in range(0, len(requests), 5000):
        store.save_many(requests[start : start + 5000])
    store.compact()
    clock = audit_clock or (lambda: datetime.now(UTC))
    audit = AuditLog(data / "audit.jsonl", clock, max_bytes=None)
    # A grant that holds access has its `granted` event, with what a revoke needs, as the
    # bot writes it: the store is checked against it at start.
    events = (
        (
            "granted" if r.status in HOLDS_ACCESS else r.status.value,
            {
                "actor": "scheduler" if r.is_final else "alice",
                "request_id": r.id,
                "user": r.requester,
                "resource": r.resource,
                "outcome": r.status.value,
                **(grant_fields(r) if r.status in HOLDS_ACCESS else {}),
            },
        )
        for r in requests
    )
    audit.append_many(events)


# -- a webhook target in its own process -----------------------------------------------


def _serve(port_queue, results, delay: float) -> None:
    arrivals: list[tuple[str, str, float]] = []
    busy = [0, 0]  # calls in flight now, the most at once
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/report":
                with lock:
                    results.put(list(arrivals))
                    arrivals.clear()
                self._answer()
                return
            if self.path == "/in-flight":
                with lock:
                    results.put(tuple(busy))
                self._answer()
                return
            payload = json.loads(body)
            arrived = time.time()
            with lock:
                busy[0] += 1
                busy[1] = max(busy)
            time.sleep(delay)
            with lock:
                busy[0] -= 1
                arrivals.append((payload["action"], payload["request_id"], arrived))
            self._answer()

        def _answer(self):
            # One write: headers and body in separate small writes meet Nagle's algorithm
            # and a delayed ACK, and every call would take 40 ms more than `delay`.
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever(poll_interval=0.05)


class SlowTarget:
    """A webhook target on 127.0.0.1, in another process, taking `delay` per call; it
    records when each call arrived."""

    def __init__(self, delay: float):
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.results = context.Queue()
        self.process = context.Process(
            target=_serve, args=(ports, self.results, delay), daemon=True
        )
        self.process.start()
        self.port = ports.get(timeout=30)
        self.url = f"http://127.0.0.1:{self.port}/access"

    def arrivals(self) -> list[tuple[str, str, float]]:
        """(action, request_id, unix time it arrived) of every call since the last ask."""
        import requests

        requests.post(f"http://127.0.0.1:{self.port}/report", data=b"{}", timeout=30)
        return self.results.get(timeout=30)

    def in_flight(self) -> tuple[int, int]:
        """(calls in flight now, the most ever in flight at once)."""
        import requests

        requests.post(f"http://127.0.0.1:{self.port}/in-flight", data=b"{}", timeout=30)
        return self.results.get(timeout=30)

    def close(self) -> None:
        self.process.terminate()
        self.process.join(5)


# -- errbot's real TestBot -------------------------------------------------------------


class Bot:
    """A real errbot TestBot with the access plugin, on the given data directory."""

    def __init__(self, data: Path, policies: Path, **config):
        from errbot.backends.test import TestBot

        os.environ.setdefault(SECRET_ENV, SECRET)
        extra = {
            "BOT_ADMINS": ("admin",),
            "BOT_ASYNC": False,
            "ACCESS_POLICY_DIR": str(policies),
            "ACCESS_DB_PATH": str(data / "access.json"),
            "ACCESS_AUDIT_PATH": str(data / "audit.jsonl"),
            "ACCESS_AUDIT_MAX_BYTES": 0,
            "ACCESS_TICK_SECONDS": 1,
            "ACCESS_STANDING_SWEEP": 0,  # no listing of the targets during a measurement
        }
        extra.update(config)
        self.testbot = TestBot(
            extra_plugin_dir=str(ROOT / "plugins"), loglevel=logging.ERROR, extra_config=extra
        )
        logging.getLogger().setLevel(logging.ERROR)

    def start(self) -> None:
        self.testbot.start(timeout=30)
        # The plugin finishes starting on its own thread.
        self.testbot.bot.plugin_manager.get_plugin_obj_by_name("Access").started.wait(60)

    def stop(self) -> None:
        self.testbot.stop()

    def say(self, user: str, text: str, replies: int = 1) -> list[str]:
        """`user` types `text`; returns the first `replies` messages the bot sends."""
        backend = self.testbot.bot
        backend.sender = backend.build_identifier(user)
        self.testbot.push_message(text)
        return [self.testbot.pop_message(timeout=30) for _ in range(replies)]


def quiet_logs() -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("errbot", "accessbot", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip()
