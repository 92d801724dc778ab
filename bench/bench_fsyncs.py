"""Deterministic costs of one `!access request` through errbot's real TestBot: fsyncs
before the reply and in all (counted by wrapping `os.fsync`), the outbox claims and
worker wake-ups per notice, and the request serialisations (`Request.to_dict` calls).
Counts, not times: they do not move with the load of a shared machine.

    .venv/bin/python bench/bench_fsyncs.py [--reps N]
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import Bot, header, median, quiet_logs, table, write_history, write_policy
from _common import finished as finished_requests

TARGET_URL = "http://127.0.0.1:9/never-called"


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def get(self, name: str) -> int:
        with self.lock:
            return self.counts.get(name, 0)


def wrap(owner, name: str, counter: Counter, label: str) -> None:
    inner = getattr(owner, name)

    def counted(*args, **kwargs):
        counter.add(label)
        return inner(*args, **kwargs)

    setattr(owner, name, counted)


def wrap_worker_waits(cond, counter: Counter) -> None:
    inner = cond.wait

    def counted(*args, **kwargs):
        woke = inner(*args, **kwargs)
        if threading.current_thread().name.startswith("accessbot-delivery"):
            counter.add("wake")
        return woke

    cond.wait = counted


def settle(plugin, counter: Counter) -> None:
    """Until the delivery workers are idle and no fsync happened for a while."""
    plugin.deliveries.wait_idle(10)
    last = -1
    while counter.get("fsync") != last:
        last = counter.get("fsync")
        time.sleep(0.3)
        plugin.deliveries.wait_idle(10)


def run(reps: int) -> dict:
    from accessbot.domain import Request

    counter = Counter()
    wrap(os, "fsync", counter, "fsync")
    wrap(Request, "to_dict", counter, "to_dict")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_policy(tmp / "policies", TARGET_URL)
        write_history(tmp / "data", finished_requests(100, TARGET_URL, datetime.now(UTC)))
        bot = Bot(tmp / "data", tmp / "policies")
        bot.start()
        plugin = bot.testbot.bot.plugin_manager.get_plugin_obj_by_name("Access")
        wrap(plugin.outbox, "claim", counter, "claim")
        wrap(plugin.outbox, "put", counter, "put")
        for cond in (plugin.deliveries._cond, getattr(plugin.deliveries, "_bell", None)):
            if cond is not None:  # a worker's return from a wait is a wake-up
                wrap_worker_waits(cond, counter)
        try:
            for number in range(5):
                bot.say(f"warm{number}", "!access request prod-db 30m warming up", 2)
            settle(plugin, counter)
            rows = {"before reply": [], "fsync all": [], "claims": [], "wakes": []}
            rows["to_dict"] = []
            for number in range(reps):
                before = dict(counter.counts)
                backend = bot.testbot.bot
                backend.sender = backend.build_identifier(f"user{number}")
                bot.testbot.push_message("!access request prod-db 30m INC-42 bench")
                bot.testbot.pop_message(timeout=30)  # the reply
                at_reply = counter.get("fsync")
                to_dict_at_reply = counter.get("to_dict")
                bot.testbot.pop_message(timeout=30)  # the card
                settle(plugin, counter)
                pending = plugin.outbox.depth().pending
                assert pending == 0, pending
                rows["before reply"].append(at_reply - before.get("fsync", 0))
                rows["fsync all"].append(counter.get("fsync") - before.get("fsync", 0))
                rows["claims"].append(counter.get("claim") - before.get("claim", 0))
                rows["wakes"].append(counter.get("wake") - before.get("wake", 0))
                rows["to_dict"].append(to_dict_at_reply - before.get("to_dict", 0))
        finally:
            bot.stop()
    return rows


def main() -> None:
    quiet_logs()
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 20
    header("Deterministic costs of one `!access request` (counts, medians of runs)")
    rows = run(reps)
    table(
        [
            [name, str(median(values)), str(min(values)), str(max(values))]
            for name, values in rows.items()
            if values
        ],
        ["measure", "median", "min", "max"],
    )


if __name__ == "__main__":
    main()
