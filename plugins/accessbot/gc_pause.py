"""The cyclic garbage collector paused for a while, safely from several threads.

Two users: loading the store (hundreds of thousands of objects and no cycles: the
collector would walk them again and again), and `sys._current_frames()` on CPython 3.11,
which holds the interpreter's thread-list lock while it builds its dict: a collection
started there can run a finalizer that waits on a thread waiting for that same lock, and
the process hangs for good (CPython gh-106883, fixed in 3.12). Pauses nest and overlap:
the collector runs again when the last one ends, if it ran before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
