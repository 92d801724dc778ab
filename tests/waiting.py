"""The one polling helper of the suite: wait for another thread (the bot's scheduler, a
follow-up pool, a fake's handler) to make something true. Tests move clocks instead of
sleeping; this only waits for work that is already due to happen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PAUSE = 0.02  # between two looks


def eventually(
    check: Callable[[], T],
    what: str = "the condition",
    timeout: float = 15.0,
    explain: Callable[[], object] | None = None,
) -> T:
    """Call `check()` until its value is truthy and return that value; after `timeout`
    seconds fail naming `what` (and `explain()`, when given, for the state seen)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"{what} never happened within {timeout:g}s{seen}")
        pause.wait(PAUSE)
