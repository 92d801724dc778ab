"""The scheduler thread: `schedule` jobs, each with its own cadence.

The revocation tick (`tick`) runs every ACCESS_TICK_SECONDS; it only hands the due calls
to the provisioner's pool and returns, so it never waits for a target. The `periodic`
jobs (the service's housekeeping, the review reminders) are `schedule` jobs of their own,
each at its own cadence, run on this thread on the leader only.

Between ticks it also wakes for the next revocation: when `next_due()` (the earliest
time a grant must be taken away) has come, it ticks at once instead of waiting up to
a whole tick, so grants that end together are revoked within a poll of their end.

One instance per plugin activation; `stop()` joins the thread, so a plugin reload never
leaves two schedulers running. With several bots on one database, each has a scheduler
but only the one holding the leadership lease ticks; the others ask again every tick
and take over when the lease of a dead leader runs out.

Periodic `jobs` (the standing-access sweep) run on the leader too, each on its own
thread when its `due(now)` says so by the injected clock, one run of a job at a time:
a slow job never delays a revocation. `after_tick` callables (audit checkpoints) run on
the leader after every tick; their own clocks say when they have work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import schedule

log = logging.getLogger(__name__)


class Leadership(Protocol):
    def acquire(self) -> bool:
        """Take or renew the right to tick; True while this bot has it."""

    def release(self) -> None: ...


class Job(Protocol):
    name: str

    def due(self, now: datetime) -> bool:
        """Should it run now? Asked often: it must be cheap."""

    def run(self) -> object: ...


@dataclass(frozen=True)
class Periodic:
    """A `schedule` job of the leader: `run()` every `every_seconds`, on the scheduler's
    thread. It must be quick (no strategy or chat call): it hands its work on."""

    name: str
    every_seconds: float
    run: Callable[[], object]


class SoleLeader:
    """One bot on its own files: it always runs the scheduler."""

    held = True

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class Scheduler:
    def __init__(
        self,
        tick: Callable[[], None],
        every_seconds: float,
        leadership: Leadership | None = None,
        next_due: Callable[[], datetime | None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_beat: Callable[[bool], None] | None = None,
        jobs: Sequence[Job] = (),
        after_tick: Sequence[Callable[[], object]] = (),
        periodic: Sequence[Periodic] = (),
        bounded: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self.tick = tick
        self.bounded = bounded  # around each pass of the loop (the database's wait)
        self.periodic = tuple(periodic)  # the leader's other `schedule` jobs
        self.on_beat = on_beat  # told after every lease check: True when this bot leads
        self.jobs = list(jobs)
        self._job_threads: dict[str, threading.Thread] = {}
        self.after_tick = tuple(after_tick)  # after each tick, by the leader (checkpoints)
        self.every_seconds = every_seconds
        self.leadership = leadership or SoleLeader()
        self.next_due = next_due
        self.clock = clock
        self._jobs = schedule.Scheduler()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._woken_for: datetime | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the scheduler is already running")
        self._stop.clear()
        self._jobs.clear()
        self._jobs.every(self.every_seconds).seconds.do(self._safe_tick)
        for job in self.periodic:
            self._jobs.every(job.every_seconds).seconds.do(self._safe_periodic, job)
        self._thread = threading.Thread(target=self._run, name="accessbot-scheduler", daemon=True)
        self._thread.start()

    def cadences(self) -> dict[str, float]:
        """Each `schedule` job of the leader and how often it runs, in seconds."""
        return {"revocation tick": self.every_seconds} | {
            job.name: job.every_seconds for job in self.periodic
        }

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the scheduler thread did not stop within %ss", timeout)
        self._thread = None
        for name, thread in self._job_threads.items():
            thread.join(timeout)
            if thread.is_alive():
                log.error("the %s job did not stop within %ss", name, timeout)
        self._job_threads.clear()
        self._jobs.clear()
        self.leadership.release()  # a standby takes over at its next tick, not after the lease

    def run_once(self, tick: Callable[[], object] | None = None) -> bool:
        """One revocation tick now (or `tick`: the plugin's full first pass at start), on
        the caller's thread, if this bot leads; True if it ticked."""
        leads = self.leadership.acquire()
        if self.on_beat is not None:
            self.on_beat(leads)
        if not leads:
            return False
        try:
            (tick or self.tick)()
        finally:
            for job in self.after_tick:
                try:
                    job()
                except Exception:  # noqa: BLE001 - a job never stops the tick or the others
                    log.exception("scheduled job %s failed; it runs again next tick", job)
        return True

    def _run(self) -> None:
        poll = min(0.2, self.every_seconds / 4)
        while not self._stop.is_set():
            with self.bounded():
                if self._revocation_due():
                    self._safe_tick()
                self._jobs.run_pending()
                self.start_due_jobs()
                pause = self._pause(poll)
            self._stop.wait(pause)

    def _leads(self) -> bool:
        """A standby does not look up revocations between ticks: the leader does them."""
        return self.next_due is not None and getattr(self.leadership, "held", True)

    def _pause(self, poll: float) -> float:
        """Sleep one poll, or less when the next revocation comes due sooner."""
        if not self._leads():
            return poll
        try:
            due = self.next_due()
            left = (due - self.clock()).total_seconds() if due is not None else poll
        except Exception:  # noqa: BLE001 - _revocation_due reports it
            return poll
        # Already due means a revoke is in flight or waits for the regular tick: poll.
        return min(poll, left + 0.001) if left > 0 else poll

    def _revocation_due(self) -> bool:
        """Something new is due to be revoked. A due time already ticked for (its revoke
        failed or is in flight) waits for the regular tick, so a stuck one cannot spin."""
        if not self._leads():
            return False
        try:
            due = self.next_due()
            if due is None or due > self.clock() or due == self._woken_for:
                return False
        except Exception:  # noqa: BLE001 - the regular tick still runs and reports
            log.exception("could not look up the next revocation")
            return False
        self._woken_for = due
        return True

    def start_due_jobs(self) -> list[threading.Thread]:
        """Start each due job on its own thread, on the leader only, one run at a time;
        returns the threads started. The scheduler's loop calls it at every poll."""
        started: list[threading.Thread] = []
        if not self.jobs or not getattr(self.leadership, "held", True):
            return started
        now = self.clock()
        for job in self.jobs:
            running = self._job_threads.get(job.name)
            if running is not None and running.is_alive():
                continue
            try:
                due = job.due(now)
            except Exception:  # noqa: BLE001 - asked again at the next poll
                log.exception("could not tell whether the %s job is due", job.name)
                continue
            if due:
                thread = threading.Thread(
                    target=self._safe_job, args=(job,), name=f"accessbot-{job.name}", daemon=True
                )
                self._job_threads[job.name] = thread
                thread.start()
                started.append(thread)
        return started

    def _safe_periodic(self, job: Periodic) -> None:
        """A periodic job runs on the leader only (the revocation tick renews the lease)."""
        if not getattr(self.leadership, "held", True):
            return
        try:
            job.run()
        except Exception:  # noqa: BLE001 - it runs again at its next turn
            log.exception("the %s job failed; it runs again at its next turn", job.name)

    @staticmethod
    def _safe_job(job: Job) -> None:
        try:
            job.run()
        except Exception:  # noqa: BLE001 - the job runs again when it is next due
            log.exception("the %s job failed; it runs again when it is next due", job.name)

    def _safe_tick(self) -> None:
        try:
            self.run_once()
        except Exception:  # noqa: BLE001 - one bad tick must not kill revocation for good
            log.exception("scheduler tick failed; trying again next tick")
