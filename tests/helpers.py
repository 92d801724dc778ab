"""The suite's shared helpers that need neither errbot nor pytest: paths, the movable
clock, policy files, the CLI runner, reply readers and the one polling helper. Child
processes (tests/crash_child.py, tests/ha_child.py) import only this, so they start
without loading errbot; tests/conftest.py re-exports every name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
START = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand; thread-safe, since the scheduler reads it too."""

    def __init__(self, now: datetime = START):
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **kwargs) -> datetime:
        with self._lock:
            self._now += timedelta(**kwargs)
            return self._now


def policy_file(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def webhook_policy(url: str, **overrides) -> str:
    """One resource, prod-db, granted through a webhook at `url`."""
    settings = {
        "description": "Production PostgreSQL",
        "max_duration": "4h",
        "default_duration": "1h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"},
    }
    settings.update(overrides)
    return f"RESOURCES = {{'prod-db': {settings!r}}}\n"


def accessbot(*args, cwd, env=None):
    """Run the CLI as an operator or CI would; returns (exit code, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ACCESS_")}
    environ["PYTHONPATH"] = str(PLUGINS)
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "accessbot", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def plain(body: str) -> str:
    """Markdown as a person reads it: no backticks or bold markers."""
    return body.replace("`", "").replace("**", "")


def request_id(text: str) -> str:
    match = re.search(r"Request (\w+) ", text)
    assert match, f"no request id in {text!r}"
    return match.group(1)


# -- waiting for another thread ---------------------------------------------------------
# Tests move clocks instead of sleeping; this only waits for work already due to happen
# on another thread (the bot's scheduler, a follow-up pool, a fake's handler).

PAUSE = 0.02  # between two looks


def eventually(
    check: Callable[[], T],
    what: str = "the condition",
    timeout: float = 15.0,
    explain: Callable[[], object] | None = None,
) -> T:
    """Call `check()` until its value is truthy and return that value. Give up, naming
    `what` (and `explain()`, when given, for the state seen), only once `timeout` seconds
    have passed and `timeout / PAUSE` looks were taken: a loaded machine that runs the
    looks slowly gets more time, never less."""
    deadline = time.monotonic() + timeout
    looks = int(timeout / PAUSE)
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        looks -= 1
        if looks <= 0 and time.monotonic() >= deadline:
            seen = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"{what} never happened within {timeout:g}s{seen}")
        pause.wait(PAUSE)


def stop_test_bot(testbot) -> None:
    """Stop an errbot TestBot. errbot 6.2.1's `TestBot.stop()` closes the bot's async
    thread pool, which a bot with BOT_ASYNC False (ours: commands answer in order) never
    made; it gets an idle one to close (closed here too: 6.2.0 leaves it)."""
    from multiprocessing.pool import ThreadPool

    lent = None
    if getattr(testbot.bot, "thread_pool", None) is None:
        lent = testbot.bot.thread_pool = ThreadPool(1)
    try:
        testbot.stop()
    finally:
        if lent is not None:
            lent.close()
            lent.join()
