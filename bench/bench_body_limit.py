"""Issue 15, item 8: the bot's memory while an unauthenticated client POSTs 200 MB.

A real errbot on the SlackV3 backend code in HTTP mode (tests/slack_harness.py, the fake
Slack on 127.0.0.1) with the real plugin. A client in its own process streams 200 MB to
`/slack/interactive`, to `/slack/events` and to errbot's own `/echo` (issue 26, item 9),
once with a Content-Length and once chunked; this process (the bot) prints its resident
memory before and after each, and its peak (VmHWM) before and after.

    .venv/bin/python bench/bench_body_limit.py
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

from _common import ROOT, SECRET, SECRET_ENV, header, quiet_logs, table, write_policy

SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024


def memory() -> dict[str, float]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # MB
    return found


class Zeros:
    """SIZE bytes made as they are sent, with a length (so: a Content-Length header)."""

    def __init__(self):
        self.left = SIZE

    def __len__(self) -> int:
        return SIZE

    def read(self, amount: int = -1) -> bytes:
        amount = min(CHUNK, self.left if amount is None or amount < 0 else amount, self.left)
        self.left -= amount
        return b"0" * amount


def chunks():
    for _ in range(SIZE // CHUNK):
        yield b"0" * CHUNK


def post(url: str, chunked: bool, answer) -> None:
    import requests

    body = chunks() if chunked else Zeros()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    answer.put(requests.post(url, data=body, headers=headers, timeout=120).status_code)


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.slack_fakes import FakeSlack
    from tests.slack_harness import SlackBot

    quiet_logs()
    os.environ[SECRET_ENV] = SECRET
    header("a 200 MB unauthenticated POST to the listener's URLs (HTTP mode)")
    fake = FakeSlack(users={"UCAROL": ("carol", "carol@acme.com")}, channels={})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_policy(tmp / "policies", "http://127.0.0.1:9/never-called")
        bot = SlackBot(
            fake,
            "http",
            {
                "ACCESS_POLICY_DIR": str(tmp / "policies"),
                "ACCESS_DB_PATH": str(tmp / "data" / "access.json"),
                "ACCESS_AUDIT_PATH": str(tmp / "data" / "audit.jsonl"),
            },
        )
        rows = []
        try:
            for path in ("/slack/interactive", "/slack/events", "/echo"):
                for chunked in (False, True):
                    before = memory()
                    answer = multiprocessing.Queue()
                    client = multiprocessing.Process(
                        target=post, args=(bot.url(path), chunked, answer)
                    )
                    client.start()
                    status = answer.get(timeout=180)
                    client.join()
                    after = memory()
                    rows.append(
                        [
                            path,
                            "chunked" if chunked else "Content-Length",
                            str(status),
                            f"{before['VmRSS']:.0f}",
                            f"{after['VmRSS']:.0f}",
                            f"{before['VmHWM']:.0f}",
                            f"{after['VmHWM']:.0f}",
                        ]
                    )
        finally:
            bot.stop()
            fake.close()
    table(
        rows,
        ["URL", "body", "status", "RSS MB before", "RSS MB after", "peak before", "peak after"],
    )


if __name__ == "__main__":
    main()
