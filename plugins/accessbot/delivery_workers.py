"""The threads that send what waits in the outbox (`outbox.py`), so neither the scheduler
nor a command ever waits for the chat platform.

A few workers each take the due entries of one destination at a time (the first of each
request there, so a card goes out before its updates), hand that batch to `merge`
(several notices for one channel may become one message; by default nothing is merged),
and send each with `send` (the plugin's single send function). Sent: marked delivered.
Refused for good (`permanent(error)`: the bot is not in the channel, the channel is gone
or archived), or after MAX_ATTEMPTS: marked failed and counted; the plugin's `send` has
told the admins, once. Otherwise tried again after a backoff (10 s doubling to 5 min)
by the injected clock. Workers sleep until `wake()` (something was put, the scheduler
ticked) or a poll interval passes; tests never sleep, they move the clock and wait for
`wait_idle()`. A wake-up wakes one worker, not all: the one that claims a batch wakes
another only while more is due, so a notice costs one claim, not one per worker. Each
sent entry is marked delivered at once (a killed bot sends again at most the one entry
each of its workers had in flight); the file outbox writes marks made at the same time
with one fsync.

Writers put notices through `put` (the service's `UnitOfWork.announce`, inside the
commit of the change they report). Entries a thread puts inside `holding_puts(scope)`
stay unsent until `release(scope)`: a command's notices are durable before its reply is
sent, and go out after it.

`send` may answer with a `delivery.Attempt` instead of an error: one with `retry_after`
(Slack's rate limit, or the channel's pace) puts that destination aside for so many
seconds, with the rest of its batch, and is no failed attempt: a notice is never failed
for being rate limited, however long that lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from .delivery import CHANNEL_ERRORS, Attempt, error_code
from .outbox import Entry, Outbox, urgent

log = logging.getLogger(__name__)

RETRY_FIRST = timedelta(seconds=10)
RETRY_CAP = timedelta(minutes=5)
MAX_ATTEMPTS = 20  # about an hour and a half of trying, then it is failed and reported
DEFAULT_WORKERS = 4
POLL_SECONDS = 1.0  # a worker looks for due retries at least this often
UNREADABLE_PAUSE = 2.0  # seconds a worker waits after the outbox could not be read


def no_merge(entries: list[Entry]) -> list[Entry]:
    """The default `merge`: every notice is its own message."""
    return entries


def backoff(attempts: int) -> timedelta:
    """The wait before the next try of an entry that has failed `attempts` times before."""
    return min(RETRY_FIRST * (2 ** min(attempts, 16)), RETRY_CAP)


class _Held:
    """The held ids as they are when the outbox reads them (under its lock, in `claim`),
    not as they were when the claim began: a put holds its entries under that lock."""

    def __init__(self, workers: DeliveryWorkers):
        self.workers = workers

    def __iter__(self):
        return iter(self.workers._held)


class DeliveryWorkers:
    def __init__(
        self,
        outbox: Outbox,
        send: Callable[[Entry], Attempt | str | None],
        clock: Callable[[], datetime],
        *,
        owner: str = "accessbot",
        workers: int = DEFAULT_WORKERS,
        merge: Callable[[list[Entry]], list[Entry]] = no_merge,
        prepare: Callable[[list], list] | None = None,
        permanent: Callable[[str], bool] = CHANNEL_ERRORS.__contains__,
        metrics=None,
        batch: int = 50,
        poll: float = POLL_SECONDS,
        name: str = "accessbot-delivery",
    ):
        """`send(entry)` sends one entry and returns the error that kept it from arriving,
        or None. `merge(entries)` turns one destination's batch into the entries to send;
        an entry it returns stands for the ids in its `covers`. `prepare(notices)`: what
        the notices a writer `put`s together become in the outbox (the plugin merges a
        channel's run of "grant ended" lines into one, which then goes out first)."""
        self.outbox = outbox
        self.send = send
        self.clock = clock
        self.owner = owner
        self.merge = merge
        self.prepare = prepare
        self.permanent = permanent
        self.metrics = metrics
        self.batch = batch
        self.poll = poll
        self._cond = threading.Condition()  # state below; wait_idle waits on it
        self._bell = threading.Condition(self._cond._lock)  # sleeping workers wait on it
        self._sleeping = 0  # workers waiting on `_bell`
        self._generation = 0  # bumped by every wake()
        self._in_flight = 0  # workers between a claim and the end of its batch
        self._busy: set[str] = set()  # destinations a worker here is sending to
        self._aside: dict[str, float] = {}  # destination -> monotonic time it may go again
        self._unreadable = False  # the last claim could not read the outbox (an outage)
        self._urgent_put = False  # an alert was put since the last claim: batches yield
        # Put, but not to be sent before the reply: replaced whole (never changed in
        # place) under `_held_lock`, so an outbox may read it under its own lock.
        self._held: frozenset[int] = frozenset()
        self._held_lock = threading.Lock()  # taken last: never held while taking another
        self._claiming = threading.Lock()  # a claim, or a put with its hold
        # An outbox whose puts no claim sees before their transaction commits needs no
        # `_claiming` around a held put (which would wait on a claim waiting for a
        # connection).
        self._visible_at_commit = bool(getattr(outbox, "visible_at_commit", False))
        self._local = threading.local()  # .scope: the ids this thread's puts hold
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    # -- driving ----------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Something was put, or time moved: look for due entries now."""
        with self._cond:
            self._generation += 1
            self._bell.notify()  # one worker: it wakes another if more is due
            self._cond.notify_all()  # wait_idle

    def _wake_another(self) -> None:
        """A claim took a batch: if more is due elsewhere, a sleeping worker takes it."""
        with self._cond:
            if not self._sleeping:
                return  # every worker is busy: each claims again when its batch ends
        if self._due():
            with self._cond:
                self._generation += 1
                self._bell.notify()

    # -- writing ------------------------------------------------------------------------

    def put(self, notices: list, now: datetime) -> list[Entry]:
        """Write notices to the outbox (the service's announce). Inside `holding_puts` on
        this thread they are held until that scope is released; else the workers are
        told once their transaction ends (`committed`)."""
        scope = getattr(self._local, "scope", None)
        if self.prepare is not None:
            notices = self.prepare(list(notices))
        # Only a held put must keep claims off between its write and its hold: an outbox
        # that holds them itself, in memory before it writes them (`holds_on_put`), needs
        # no `_claiming` around its fsync.
        holds = scope is not None and not self._visible_at_commit
        in_put = holds and getattr(self.outbox, "holds_on_put", False)
        with self._claiming if holds and not in_put else nullcontext():
            if in_put:
                entries = self.outbox.put(notices, now, hold=self._hold_entries)
            else:
                entries = self.outbox.put(notices, now)
            if any(urgent(entry) for entry in entries):
                self._urgent_put = True
            if scope is not None:
                ids = {i for entry in entries for i in entry.covers}
                scope |= ids
                self._hold(ids)
                self._local.unheld = getattr(self._local, "unheld", False)
            else:
                self._local.unheld = True
        return entries

    def committed(self) -> None:
        """The transaction that put entries has ended: they may be sent now (a held put
        wakes nobody here: its `release` does)."""
        if getattr(self._local, "unheld", True):
            self._local.unheld = False
            self.wake()

    @contextmanager
    def holding_puts(self, scope: set[int]):
        """What this thread puts in the block is held until `release(scope)` (the scope
        outlives the block: a command's reply is sent after its work is done)."""
        before = getattr(self._local, "scope", None)
        self._local.scope = scope
        try:
            yield scope
        finally:
            self._local.scope = before

    def release(self, scope: set[int]) -> None:
        """Let the workers send what was put under `scope`."""
        self._unhold(scope)
        scope.clear()
        self.wake()

    @contextmanager
    def holding(self, put: Callable[[], list[Entry] | None]):
        """Run `put()` (it writes entries to the outbox) and keep what it wrote (and the
        entries behind it) unsent until the block ends: a command's notices are written
        before its reply is sent, and go out after it. No worker here claims between the
        write and the hold. Yields what `put()` returned."""
        with self._claiming:
            entries = put()
            ids = {i for e in entries or () for i in e.covers}
            self._hold(ids)
        try:
            yield entries
        finally:
            if ids:  # nothing was put: no worker to wake
                self._unhold(ids)
                self.wake()

    def _hold(self, ids) -> None:
        with self._held_lock:
            self._held = self._held | frozenset(ids)

    def _unhold(self, ids) -> None:
        with self._held_lock:
            self._held = self._held - frozenset(ids)

    def _hold_entries(self, entries: list[Entry]) -> None:
        """The outbox's `hold`: called under its lock, before anything can claim them."""
        self._hold(i for entry in entries for i in entry.covers)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is being sent and nothing is due, or the outbox cannot be
        read (a database outage: nothing can go out until it is back); False if `timeout`
        ran out."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if self._unreadable or (self._in_flight == 0 and not self._due()):
                    return True  # nothing more can go out now
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))

    def stop(self, drain: float = 5.0, timeout: float = 30.0) -> None:
        """Send what is due for up to `drain` seconds, then stop after the entry each
        worker is sending; what is left stays in the outbox for the next start."""
        if drain > 0 and any(t.is_alive() for t in self._threads):
            self.wait_idle(drain)
        self._stopping.set()
        with self._cond:
            self._generation += 1
            self._bell.notify_all()
            self._cond.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
                if thread.is_alive():
                    log.error("a delivery worker did not stop within %ss", timeout)

    # -- a worker -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                seen = self._generation
            batch = self._claim()
            if batch:
                self._wake_another()
                try:
                    self._work(batch)
                finally:
                    with self._cond:
                        self._busy.discard(batch[0].destination)
                        self._in_flight -= 1
                        self._cond.notify_all()
                continue
            if self._unreadable:  # the outbox is away (a database outage): back off, so
                self._stopping.wait(UNREADABLE_PAUSE)  # the workers do not crowd its pool
                continue
            self._sleep(seen)

    def _sleep(self, seen: int) -> None:
        """Until `wake()` (the generation moves past `seen`) or a poll interval passes."""
        deadline = time.monotonic() + self.poll
        with self._cond:
            self._sleeping += 1
            try:
                while self._generation == seen and not self._stopping.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._bell.wait(left)
            finally:
                self._sleeping -= 1

    def _claim(self) -> list[Entry]:
        with self._cond:
            self._in_flight += 1
        batch: list[Entry] = []
        with self._claiming:  # busy at once: the next claim here must not take it too
            try:
                with self._cond:
                    busy, held = self._busy | self._set_aside(), _Held(self)
                self._urgent_put = False  # this claim hands it out first (outbox.priority)
                batch = self.outbox.claim(self.owner, self.clock(), self.batch, busy, held)
                self._unreadable = False
            except Exception as exc:  # noqa: BLE001 - the outbox is unreachable: try again later
                if not self._unreadable:  # once while it stays so, not at every attempt
                    log.warning("could not read the outbox (%s); trying again", exc)
                self._unreadable = True
            with self._cond:
                if batch:
                    self._busy.add(batch[0].destination)
                else:
                    self._in_flight -= 1
                    self._cond.notify_all()
        return batch

    def _work(self, batch: list[Entry]) -> None:
        try:
            entries = self.merge(list(batch))
        except Exception:  # noqa: BLE001 - a merge bug must not lose notices
            log.exception("merging %d notice(s) failed; sending them one by one", len(batch))
            entries = batch
        left = {e.id for e in batch}
        for number, entry in enumerate(entries):
            if number and self._urgent_put and not urgent(entry):
                break  # an alert was put meanwhile: the next claim hands it out first
            if self._stopping.is_set() or not self._deliver(entry):
                break
            left -= set(entry.covers)
        if left:
            self._mark(self.outbox.release, left)

    def _deliver(self, entry: Entry) -> bool:
        """Send one entry and record what came of it; False when its destination must
        wait (rate limited): the entry and the rest of the batch stay pending."""
        try:
            answer = self.send(entry)
        except Exception as exc:  # noqa: BLE001 - one bad notice must not stop the rest
            log.exception("could not deliver a notice to %s", entry.to)
            answer = error_code(exc)
        attempt = answer if isinstance(answer, Attempt) else Attempt(answer)
        if attempt.rate_limited:
            with self._cond:
                self._aside[entry.destination] = time.monotonic() + attempt.retry_after
            if self.metrics is not None:
                self.metrics.outbox_deliveries.labels("paced").inc(len(entry.covers))
            return False
        error = attempt.error
        now = self.clock()
        ids = list(entry.covers)
        if error is None:
            outcome = "delivered"
            self._mark(self.outbox.delivered, ids, now)
        elif self.permanent(error) or entry.attempts + 1 >= MAX_ATTEMPTS:
            outcome = "failed"
            log.error("gave up on a notice to %s: %s", entry.to, error)
            self._mark(self.outbox.failed, ids, error, now)
        else:
            outcome = "retried"
            self._mark(self.outbox.retry, ids, error, now + backoff(entry.attempts))
        if self.metrics is not None:
            self.metrics.outbox_deliveries.labels(outcome).inc(len(ids))
        return True

    def _set_aside(self) -> set[str]:
        """Destinations waiting out a rate limit (the caller holds `_cond`)."""
        now = time.monotonic()
        for destination in [d for d, until in self._aside.items() if until <= now]:
            del self._aside[destination]
        return set(self._aside)

    def _mark(self, how: Callable, ids, *args) -> None:
        try:
            how(ids, *args)
        except Exception:  # noqa: BLE001 - the claim lapses; the entry is sent again later
            log.exception("could not record the delivery of notice(s) %s", sorted(ids))
            try:
                self.outbox.release(ids)
            except Exception:  # noqa: BLE001
                pass

    def _due(self) -> bool:
        try:
            return self.outbox.due(self.clock(), self._held, self._busy | self._set_aside())
        except Exception:  # noqa: BLE001 - an unreachable outbox has nothing we can send
            return False
