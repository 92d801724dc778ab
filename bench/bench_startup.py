"""Target 3: start-up and memory with 100,000 finished and 10,000 active requests.

Each run starts the real plugin under errbot's TestBot in a fresh Python process, on a
copy of the same data: 100,000 finished requests in the archive (and an audit event
each), 10,000 active grants of which 100 expired a minute ago, and a webhook target on
127.0.0.1 (its own process) taking 20 ms per call. Measured: opening the store alone,
the time from creating the bot to its first answer (errbot's own start included; the
plugin hands the overdue revokes to its pool and serves without waiting for them), when
the last overdue revoke reached the target, and the process's memory once serving. A bot with no data gives
errbot's own share.

    .venv/bin/python bench/bench_startup.py [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import (
    ROOT,
    SECRET,
    SECRET_ENV,
    SlowTarget,
    active,
    finished,
    header,
    median,
    quiet_logs,
    table,
    write_history,
    write_policy,
)

FINISHED = 100_000
ACTIVE = 10_000
OVERDUE = 100


def memory() -> dict:
    status = Path("/proc/self/status").read_text()
    found = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # MB
    return found


def child(mode: str, data: str, policies: str) -> None:
    """One start in this fresh process; prints its numbers as JSON. `store`: open the
    store alone; `bot`: start the bot with the plugin and answer one command."""
    from _common import Bot, quiet_logs

    quiet_logs()
    if mode == "store":
        from accessbot.store import TinyDBStore

        begin = time.perf_counter()
        store = TinyDBStore(Path(data) / "access.json")
        print(json.dumps({"store_open": time.perf_counter() - begin, "live": len(store.live())}))
        return
    begin_wall, begin = time.time(), time.perf_counter()
    bot = Bot(Path(data), Path(policies))
    bot.start()
    serving = time.perf_counter() - begin
    bot.say("carol", "!access mine")
    mem = memory()
    bot.stop()
    print(json.dumps({"serving": serving, "begin_wall": begin_wall, **mem}))


def build(base: Path, url: str, journal_full: bool) -> None:
    now = datetime.now(UTC)
    write_policy(base / "policies", url)
    requests = finished(FINISHED, url, now - timedelta(days=1))
    write_history(base / "data", requests)
    del requests

    def ends(number: int) -> datetime:
        if number < OVERDUE:
            return now - timedelta(minutes=1)
        return now + timedelta(hours=2, seconds=2 * number)

    grants = active(ACTIVE, url, now, ends)
    write_history(base / "data", grants)
    if journal_full:  # every live grant saved again since the last fold: the worst case
        from accessbot.store import TinyDBStore

        TinyDBStore(base / "data" / "access.json").save_many(grants)


def one_run(base: Path, target: SlowTarget, empty: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if empty:
            write_policy(tmp / "policies", target.url)
            (tmp / "data").mkdir()
        else:
            shutil.copytree(base / "data", tmp / "data")
            shutil.copytree(base / "policies", tmp / "policies")
        target.arrivals()  # forget earlier calls
        env = {**os.environ, SECRET_ENV: SECRET}

        def start(mode: str) -> dict:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    str(tmp / "data"),
                    str(tmp / "policies"),
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=300,
            )
            if done.returncode:
                raise SystemExit(f"the start-up child failed:\n{done.stderr}")
            return json.loads(done.stdout.strip().splitlines()[-1])

        result = {"store_open": 0.0} if empty else start("store")
        result.update(start("bot"))
        revokes = [at for action, _, at in target.arrivals() if action == "revoke"]
        result["revokes"] = len(revokes)
        result["last_revoke"] = (max(revokes) - result["begin_wall"]) if revokes else None
        return result


def main() -> None:
    quiet_logs()
    quick = "--quick" in sys.argv
    header(
        f"Target 3: start-up with {FINISHED:,} finished and {ACTIVE:,} active requests "
        f"({OVERDUE} overdue), webhook 20 ms per call"
    )
    target = SlowTarget(0.020)
    runs = 1 if quick else 3
    rows = []
    try:
        cases = [("no data (errbot alone)", None), ("journal folded", False)]
        if not quick:
            cases.append(("journal full (worst case)", True))
        for label, journal_full in cases:
            with tempfile.TemporaryDirectory() as tmp:
                base = Path(tmp)
                if journal_full is not None:
                    build(base, target.url, journal_full)
                results = [one_run(base, target, journal_full is None) for _ in range(runs)]
            last = [r["last_revoke"] for r in results if r["last_revoke"] is not None]
            rows.append(
                [
                    label,
                    str(runs),
                    f"{median([r['store_open'] for r in results]):.2f}",
                    f"{median([r['serving'] for r in results]):.2f}",
                    f"{median(last):.2f}" if last else "-",
                    f"{results[0]['revokes']}",
                    f"{median([r['VmRSS'] for r in results]):.0f}",
                    f"{median([r['VmHWM'] for r in results]):.0f}",
                ]
            )
    finally:
        target.close()
    table(
        rows,
        [
            "data",
            "runs",
            "store open s",
            "to serving s (<2)",
            "overdue revoked by s",
            "revokes",
            "RSS MB (<200)",
            "peak RSS MB",
        ],
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])  # mode, data, policies
    else:
        main()
