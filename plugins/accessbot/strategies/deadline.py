"""The deadline of a whole strategy call, and HTTP answers read up to it and up to a cap.

A target that answers one byte a second never trips a read timeout (each read gets its
byte in time), so a timeout per read is no bound on a call. Two bounds make one:

- `call_within` runs a call on a thread of its own and waits at most the resource's
  `timeout` (30 s when the policy sets none): past it the call is a failure, whatever
  the target still sends, and the caller (the provisioner) records it on time. Python
  cannot kill a thread stuck in a socket read, so the thread is left to end on its own;
- `exchange` (the webhook, Okta and GitHub calls) reads an HTTP answer in chunks and
  stops at that same deadline and at `ANSWER_CAP` bytes, so the thread left behind ends
  too, shortly after the deadline, instead of reading a trickle for hours or a huge
  answer into memory. (A target that trickles its status line and headers holds that
  thread until its own read timeout or the target stops: the caller never waits for it,
  and while MAX_LATE such calls to one target still run, the next fails at once.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

import requests
import urllib3.exceptions

from ..domain import DurationError, parse_duration
from .base import StrategyError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_DEADLINE = 30.0  # seconds, for a resource whose strategy sets no `timeout`
ANSWER_CAP = 1024 * 1024  # bytes of a target's answer read; the rest is never read
CHUNK = 16 * 1024
# The call's own errors (a deadline seen between two chunks) come a moment before the
# waiting caller gives up, so they are what the caller reports when they can be.
GRACE = 0.2

# Calls given up at their deadline that still run, at most this many per target: past
# it, a new call to that target fails at once instead of leaving one more thread behind
# (a target trickling its headers holds each for hours). Retried with backoff as usual.
MAX_LATE = 4

# time.monotonic() by which the strategy call under way on this thread must be over.
_DEADLINE: ContextVar[float | None] = ContextVar("accessbot_call_deadline", default=None)
_late: Counter[str] = Counter()  # target -> its calls given up at their deadline, still running
_late_lock = threading.Lock()


# Strategies whose call also waits on purpose, and for how long by default: aws_sso polls
# Identity Center for up to its `wait` (1m) after its API calls (twice with `end_sessions`:
# the assignment's deletion, then the permission set's provisioning).
WAITS = {"aws_sso": "1m"}


def _seconds(value, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = parse_duration(value).total_seconds()
    except (DurationError, TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def deadline_of(settings) -> float:
    """Seconds a whole call to this resource's target may take: its strategy's `timeout`,
    or 30 s (plus its `wait` for a strategy that polls, aws_sso). Policy loading has
    refused a bad setting already."""
    if not isinstance(settings, dict):
        return DEFAULT_DEADLINE
    seconds = _seconds(settings.get("timeout"), DEFAULT_DEADLINE)
    kind = settings.get("type")
    if kind in WAITS:
        waits = 2 if settings.get("end_sessions") is True else 1  # aws_sso: + provisioning
        seconds += waits * _seconds(settings.get("wait", WAITS[kind]), 0.0)
    return seconds


def call_within(seconds: float, what: str, call: Callable[[], T], target: str = "") -> T:
    """`call()` on a thread of its own, waited for at most `seconds`: its value, or what
    it raised; past the deadline a StrategyError naming `what`, the call left running.
    While MAX_LATE calls to `target` given up this way still run, a StrategyError at once."""
    with _late_lock:
        if target and _late[target] >= MAX_LATE:
            raise StrategyError(
                f"{what} was not made: {_late[target]} earlier calls to this target, given "
                "up at their deadline, are still running"
            )
    outcome: dict = {}
    finished = threading.Event()
    end = time.monotonic() + seconds

    def run() -> None:
        _DEADLINE.set(end)  # a fresh thread: this context is the call's own
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            outcome["error"] = exc
        finally:
            with _late_lock:
                finished.set()
                if outcome.get("late"):
                    _late[target] -= 1
                    if _late[target] <= 0:
                        del _late[target]

    threading.Thread(target=run, name="accessbot-target-call", daemon=True).start()
    if not finished.wait(seconds + GRACE):
        with _late_lock:
            late = not finished.is_set()
            if late and target:
                outcome["late"] = True
                _late[target] += 1
        if late:
            log.warning("%s did not finish within %gs; counted as failed", what, seconds)
            raise StrategyError(
                f"{what} did not finish within {seconds:g}s (the whole call's deadline, the "
                "resource's timeout); nothing is known to be done"
            )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def time_left(timeout: float) -> float:
    """Seconds the next read may wait: `timeout`, or less when the call's deadline is
    nearer (never 0, which would make the socket non-blocking)."""
    end = _DEADLINE.get()
    if end is None:
        return timeout
    return max(0.05, min(timeout, end - time.monotonic()))


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    timeout: float,
    where: str,
    cap: int = ANSWER_CAP,
    **kwargs,
) -> requests.Response:
    """One HTTP request whose answer is read in full by the call's deadline (or within
    `timeout` from now, when that is sooner) and up to `cap` bytes: `response.content`
    holds it, `response.cut` says whether the cap stopped it. Network failures raise
    requests' own exceptions, as `session.request` does; the deadline passing while the
    answer still comes raises StrategyError naming `where`."""
    end = time.monotonic() + timeout
    call_end = _DEADLINE.get()
    if call_end is not None:
        if call_end <= time.monotonic():  # a call given up (say after a rate limit's wait)
            raise StrategyError(f"{where}: not sent, the call's deadline has passed")
        end = min(end, call_end)
    send = getattr(session, method.lower())  # session.post, .get, ...: what callers wrap
    response = send(url, stream=True, timeout=time_left(timeout), **kwargs)
    whole = False
    try:
        response._content, response.cut = _read(response, end, cap, where, timeout)
        whole = not response.cut
    finally:
        if whole:
            response.raw.release_conn()  # read to its end: kept alive for the next call
        else:
            response.close()  # a cut, late or broken answer: its connection is dropped
    response._content_consumed = True
    return response


def _read(response, end: float, cap: int, where: str, timeout: float) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() >= end:
                raise StrategyError(
                    f"{where} did not finish within {timeout:g}s: its answer was still coming"
                )
            chunk = response.raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return b"".join(parts), False
            parts.append(chunk)
            size += len(chunk)
            if size > cap:
                return b"".join(parts)[:cap], True
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.Timeout(str(exc)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.ConnectionError(str(exc)) from exc
