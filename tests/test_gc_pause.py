"""`gc_pause.paused()`: the collector is off inside, nested and overlapping pauses (store
loads, hook time-outs on other threads) end with it as it was before the first."""

from __future__ import annotations

import gc
import threading

from accessbot import gc_pause


def test_pauses_nest_and_overlap_across_threads_and_restore_the_collector():
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other():
        with gc_pause.paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with gc_pause.paused():
        thread.start()
        assert inside.wait(5)
        with gc_pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's pause is still on
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with gc_pause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
