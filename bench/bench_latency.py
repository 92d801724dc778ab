"""Target 1: command latency through errbot's real TestBot, against history size.

The round trip of `!access request` (its reply and the approval card) with 0, 10,000
and 100,000 finished requests in history, as a ratio to errbot's built-in `!echo`
measured in the same run, interleaved. Also `!access show` of an archived request and
`!access audit` (the newest 20 events, and a filter that matches nothing, which reads
the whole log) for scale. Then the same request with 100, 1,000 and 10,000 live requests
(active grants) in the store and no history (`--live-only` runs just that table).

    .venv/bin/python bench/bench_latency.py [--quick] [--live-only]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import (
    Bot,
    header,
    median,
    ms,
    percentile,
    quiet_logs,
    table,
    write_history,
    write_policy,
)
from _common import active as active_grants
from _common import finished as finished_requests

SIZES = (0, 10_000, 100_000)
LIVE_SIZES = (100, 1_000, 10_000)
TARGET_URL = "http://127.0.0.1:9/never-called"  # requests wait for approval: no calls


def timed(bot: Bot, user: str, text: str, replies: int) -> float:
    start = time.perf_counter()
    bot.say(user, text, replies)
    return time.perf_counter() - start


def run(size: int, reps: int, live: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_policy(tmp / "policies", TARGET_URL)
        now = datetime.now(UTC)
        history = finished_requests(size, TARGET_URL, now)
        # Active grants that end tomorrow: live, and nothing for the scheduler to do.
        history += active_grants(live, TARGET_URL, now, lambda n: now + timedelta(days=1))
        built = time.perf_counter()
        write_history(tmp / "data", history)
        built = time.perf_counter() - built
        archived_id = history[size // 2].id if size else None
        del history
        bot = Bot(tmp / "data", tmp / "policies")
        bot.start()
        try:
            for number in range(20):  # warm up both paths
                bot.say("carol", "!echo warm")
                bot.say(f"warm{number}", "!access request prod-db 30m warming up", 2)
            echo, request = [], []
            for number in range(reps):
                echo.append(timed(bot, "carol", "!echo hello there", 1))
                request.append(
                    timed(bot, f"user{number}", "!access request prod-db 30m INC-42 bench", 2)
                )
            extra = {}
            if archived_id:
                extra["show"] = [
                    timed(bot, "admin", f"!access show {archived_id}", 1) for _ in range(30)
                ]
            extra["audit"] = [timed(bot, "admin", "!access audit", 1) for _ in range(30)]
            extra["audit_scan"] = [
                timed(bot, "admin", "!access audit user=nobody", 1) for _ in range(5)
            ]
        finally:
            bot.stop()
    return {"echo": echo, "request": request, "built": built, **extra}


def request_row(label: str, reps: int, result: dict) -> list[str]:
    echo, request = result["echo"], result["request"]
    return [
        label,
        str(reps),
        ms(median(echo)),
        ms(percentile(echo, 99)),
        ms(median(request)),
        ms(percentile(request, 99)),
        f"{median(request) / median(echo):.2f}x",
        f"{percentile(request, 99) / percentile(echo, 99):.2f}x",
        f"{percentile(request, 99) / median(echo):.2f}x",
    ]


RATIOS = ["p50 ratio (<=2x)", "p99 ratio (<=4x)", "p99 / echo p50"]
LATENCY = ["runs", "echo p50", "echo p99", "request p50", "request p99", *RATIOS]


def live_table(quick: bool) -> None:
    header("`!access request` vs live requests in the store, no history (ms)")
    rows = []
    for live in LIVE_SIZES:
        reps = 60 if quick else 300
        rows.append(request_row(f"{live:,}", reps, run(0, reps, live=live)))
    table(rows, ["live", *LATENCY])


def main() -> None:
    quiet_logs()
    quick = "--quick" in sys.argv
    if "--live-only" in sys.argv:
        live_table(quick)
        return
    header("Target 1: command latency through TestBot vs history size (ms)")
    rows, extras = [], []
    for size in SIZES:
        reps = 60 if quick else (300 if size < 100_000 else 200)
        result = run(size, reps)
        rows.append(request_row(f"{size:,}", reps, result))
        extras.append(
            [
                f"{size:,}",
                f"{result['built']:.1f} s",
                ms(median(result["show"])) if "show" in result else "-",
                ms(median(result["audit"])),
                ms(median(result["audit_scan"])),
            ]
        )
    table(rows, ["finished", *LATENCY])
    print()
    table(
        extras,
        [
            "finished",
            "history built in",
            "show archived p50",
            "audit (newest 20) p50",
            "audit scan-all p50",
        ],
    )
    print()
    live_table(quick)


if __name__ == "__main__":
    main()
