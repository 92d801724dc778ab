"""Gates and a log for policy hooks under test. The bot runs in the test's own process,
so a hook in a test's policy file (or a policy file itself, while the bot starts) can
`import tests.hook_gates` to wait until the test opens a gate, and to write down that it
ran; the test reads the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_gates: dict[str, threading.Event] = {}
_log: list[tuple] = []


def gate(name: str) -> threading.Event:
    """The gate called `name` (closed until the test sets it)."""
    with _lock:
        return _gates.setdefault(name, threading.Event())


@contextmanager
def held(name: str) -> Iterator[threading.Event]:
    """The gate called `name`, closed inside the block and opened after it, so that no
    hook is left waiting."""
    opened = gate(name)
    opened.clear()
    try:
        yield opened
    finally:
        opened.set()


def note(*entry) -> None:
    with _lock:
        _log.append(entry)


def notes() -> list[tuple]:
    with _lock:
        return list(_log)


def reset() -> None:
    """Open every gate (a hook still waiting finishes) and start a fresh log."""
    with _lock:
        for event in _gates.values():
            event.set()
        _gates.clear()
        _log.clear()
