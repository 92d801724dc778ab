"""The provisioner: every strategy call (grant, revoke, extend, take-back) and its record.

One pool of `workers` threads runs the scheduler's calls, each grant or revoke its own
task. `revocation_tick` hands out what is due and returns at once: a task records its own
outcome when its call comes back, announcing its notices in that commit (the outbox;
see unit_of_work.py), and hands them to `notify`, so a target that hangs never holds up
the tick. A burst of due work on one resource starts at a quarter of the workers (at
least one); the rest waits its turn, claimed. Isolation is work-conserving: each call
of that resource that comes back fast (under `SLOW_CALL` seconds, done, and not overtaken
by a pool's width of calls started after it) while the resource has a healthy streak of
`workers` such calls starts two waiting calls instead of one, so a healthy resource grows
into every idle worker (8, 16, 32 of 32). A call that is slow or fails ends the streak,
and while one of its calls runs past `SLOW_CALL` nothing more is added: a hanging or
failing target stays held to the quarter, and delays only its own resource. A request whose call is under way or waiting is claimed (`inflight`, the
store's claims: other bots see them too), so it is never handed out twice.

Calls a person waits for (an approval's grant, `!access revoke`, an extension) run on the
command's own thread, as before: they never queue behind the scheduler's work.

Revoke outcomes that come back together are committed together (`record_revokes`: one
audit flush and one store flush for the batch): whichever task finishes records every
outcome waiting at that moment.

The provisioner works for its host, the AccessService, and uses its unit of work: the
decision lock, `_commit`/`_commit_many`/`_audit`, the store, the clock, the metrics, the
follow-up pool, `_ask_again` and `_cancel_pending_extensions`. Each outcome is one
`Request` method (domain.py: `activate`, `fail_grant`, `take_back`, `end`, `fail_revoke`,
`extend`, `mark_applied`, `owe_follow_up`); its notices are written by messages.py
(`granted`, `grant_failed`, `taken_back`, `grant_ended`, `revoke_failed`, `extension_*`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from . import messages as msg
from .domain import AccessError, Request, Status, retry_delay
from .notices import Notice
from .rebuild import grant_fields
from .store import StoreError
from .strategies import (
    Sessions,
    SettingsError,
    Strategy,
    StrategyError,
    build_strategy,
    payload_for,
)
from .strategies.deadline import call_within, deadline_of

log = logging.getLogger(__name__)

DEFAULT_STRATEGY_WORKERS = 32

Notify = Callable[[list[Notice]], None]
# What the caller tells people of a call's outcome: given the request as recorded and the
# provisioner's own notices, the notices to announce with the record.
Render = Callable[[Request, list[Notice]], list[Notice]]


def as_is(request: Request, notices: list[Notice]) -> list[Notice]:
    return notices


def revoke_due(request: Request, now: datetime) -> bool:
    due = request.revoke_due_at
    return due is not None and due <= now


SLOW_CALL = 1.0  # seconds: a call running longer holds its resource to the quarter


def per_resource(workers: int) -> int:
    """How many of the pool's workers one resource may hold at once."""
    return max(1, workers // 4)


def _tell(notify: Notify, notices: Sequence[Notice]) -> None:
    if not notices:
        return
    try:
        notify(list(notices))
    except Exception:  # noqa: BLE001 - what was recorded stays recorded
        log.exception("could not hand over %d notice(s)", len(notices))


class Provisioner:
    def __init__(self, host, workers: int, notify: Notify):
        self.host = host
        self.notify = notify  # where the notices of the pool's finished calls go
        # Requests whose strategy call is under way: the service's one claims object,
        # shared with the handlers (an approval's grant) so nothing is called twice.
        self.inflight = host._inflight
        # Grants taken back because they could not be recorded: id -> (attempts, next try).
        self.grant_waits: dict[str, tuple[int, datetime]] = {}
        self._strategies: dict[str, Strategy] = {}  # shareable strategies by settings
        self._strategies_lock = threading.Lock()
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._admit = threading.Lock()  # guards the counts below and the pool
        self._idle = threading.Condition(self._admit)
        self._busy: Counter[str] = Counter()  # resource -> its calls on the pool now
        self._total = 0  # calls on the pool now, all resources
        self._seq = 0  # calls started, ever (their order)
        # request id -> [resource, start seq, start monotonic, calls started after it that
        # came back before it]: the calls on the pool now
        self._running: dict[str, list] = {}
        self._streak: Counter[str] = Counter()  # resource -> fast calls back in a row
        # resource -> claimed request id -> (kind, request, notify), waiting for a worker
        self._waiting: dict[str, dict[str, tuple[str, Request, Notify]]] = {}
        self._handed: set[str] = set()  # ids handed out (running or waiting), not yet recorded
        self._closed = False
        self._finished: queue.SimpleQueue = queue.SimpleQueue()  # revoke outcomes to record
        self._recording = threading.Lock()

    # -- the pool -------------------------------------------------------------------

    @property
    def workers(self) -> int:
        return self._workers

    @workers.setter
    def workers(self, count: int) -> None:
        with self._admit:
            self._workers = max(1, count)
            old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False)  # its calls under way finish; new ones go to the new pool

    def revocation_tick(self, notify: Notify | None = None) -> None:
        """Hand out what is due: revokes first, then grants (and extensions) an approval
        left unmade (the bot stopped first, or the grant was taken back and waits for the
        disk, see `taken_back`). Returns without waiting for any call."""
        notify = notify or self.notify
        now = self.host.clock()
        for due in self.host.store.due_for_revocation(now):
            self._offer("revoke", due.id, due.resource, notify)
        for approved in self.host.store.live_in([Status.APPROVED]):
            wait = self.grant_waits.get(approved.id)
            if wait and wait[1] > now:
                continue
            self._offer("grant", approved.id, approved.resource, notify)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every call handed out is recorded; False if `timeout` ran out first.
        For tests, `tick` and a clean stop: the scheduler's ticks never wait."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._handed, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Hand out nothing more; let the calls under way finish and record (up to
        `timeout`). What waited its turn is let go (its claim too): the next start's
        first tick hands it out again."""
        with self._admit:
            self._closed = True
            let_go = [job[1].id for jobs in self._waiting.values() for job in jobs.values()]
            self._waiting.clear()
        for request_id in let_go:
            self.inflight.discard(request_id)
        self._done(*let_go)
        if not self.drain(timeout):
            log.error(
                "strategy calls still under way after %ss; the next start finishes them", timeout
            )
        with self._admit:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _offer(self, kind: str, request_id: str, resource: str, notify: Notify) -> None:
        """Claim a due request (as before, on the tick's thread) and start its call, or
        let it wait, claimed, for a worker of its resource to come free."""
        with self._admit:
            if self._closed or request_id in self._handed:
                return  # under way or waiting its turn already
        request = self._claim_for(kind, request_id)
        if request is None:
            return  # not due any more, or someone else (a command, another bot) has it
        with self._admit:
            if self._closed:
                self.inflight.discard(request_id)
                return
            self._handed.add(request_id)
            if self._busy[resource] >= per_resource(self._workers):
                self._waiting.setdefault(resource, {})[request_id] = (kind, request, notify)
                return
            self._admitted(resource, request_id)
        self._start(kind, request, resource, notify)

    def _admitted(self, resource: str, request_id: str) -> None:
        """Count a call as on the pool (the caller holds `_admit`)."""
        self._busy[resource] += 1
        self._total += 1
        self._seq += 1
        self._running[request_id] = [resource, self._seq, time.monotonic(), 0]

    def _came_back(self, request_id: str, ok: bool) -> None:
        """A call is over: was it fast? (The caller holds `_admit`.)"""
        call = self._running.pop(request_id, None)
        if call is None:
            return
        resource, seq, started, _ = call
        for other in self._running.values():
            if other[1] < seq:
                other[3] += 1  # overtaken by this later call
        fast = ok and time.monotonic() - started < SLOW_CALL and call[3] < max(2, self._workers)
        self._streak[resource] = self._streak[resource] + 1 if fast else 0

    def _may_widen(self, resource: str) -> bool:
        """Whether `resource` may start one more call past its quarter now: a healthy
        streak, an idle worker, and none of its calls running long (`_admit` held)."""
        if self._streak[resource] < self._workers or self._total >= self._workers:
            return False
        late = time.monotonic() - SLOW_CALL
        return not any(c[0] == resource and c[2] < late for c in self._running.values())

    def _start(self, kind: str, request: Request, resource: str, notify: Notify) -> None:
        """Hand a claimed request's call to the pool (holding one worker of `resource`)."""
        try:
            with self._admit:
                pool = self._executor()
            pool.submit(self._task, kind, request, resource, notify)
        except Exception:  # noqa: BLE001 - the pool is gone (stopping): the next start does it
            log.exception("could not start the %s call for %s", kind, request.id)
            self.inflight.discard(request.id)
            self._done(request.id)
            self._free(resource, request.id, False)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="accessbot-strategy")
        return self._pool

    def _claim_for(self, kind: str, request_id: str) -> Request | None:
        if kind == "revoke":
            return self.claim_current(request_id, lambda r: revoke_due(r, self.host.clock()))
        wait = self.grant_waits.get(request_id)
        if wait and wait[1] > self.host.clock():
            return None
        return self.claim_current(request_id, lambda r: r.status is Status.APPROVED)

    def _task(self, kind: str, request: Request, resource: str, notify: Notify) -> None:
        if kind == "revoke":
            try:
                outcome = self.revoke_call(request)
            except Exception as exc:  # noqa: BLE001 - recorded below as not done, and retried
                outcome = exc
            ok = isinstance(outcome, tuple) and outcome[0] is None
            self._free(resource, request.id, ok)  # the resource's next call may start
            self._finished.put((request, outcome, notify))
            self._record_finished()
            return
        ok = False
        try:
            grant = self.apply_extension if request.extends else self.grant
            _tell(notify, grant(request))
            ok = True
        except Exception:  # noqa: BLE001 - its request stays approved: the next tick tries again
            log.exception("the grant call for %s failed; the next tick tries again", request.id)
            self.inflight.discard(request.id)
        finally:
            self._done(request.id)
            self._free(resource, request.id, ok)

    def _free(self, resource: str, request_id: str, ok: bool) -> None:
        """One call of `resource` is over: start the next that waits for its turn, and
        one more while the resource is healthy and a worker is idle (`_may_widen`)."""
        starts = []
        with self._admit:
            self._busy[resource] -= 1
            self._total -= 1
            self._came_back(request_id, ok)
            waiting = self._waiting.get(resource)
            while waiting and not self._closed:
                cap = per_resource(self._workers)
                # Past the quarter (widened already, or the one more): only when healthy.
                past = bool(starts) or self._busy[resource] >= cap
                if len(starts) >= 2 or (past and not self._may_widen(resource)):
                    break
                next_id = next(iter(waiting))
                starts.append(waiting.pop(next_id))
                self._admitted(resource, next_id)
            if not waiting:
                self._waiting.pop(resource, None)
            if self._busy[resource] <= 0:
                del self._busy[resource]
        for kind, request, notify in starts:
            self._start(kind, request, resource, notify)

    def _done(self, *request_ids: str) -> None:
        with self._admit:
            self._handed.difference_update(request_ids)
            if not self._handed:
                self._idle.notify_all()

    def _record_finished(self) -> None:
        """Record every revoke outcome waiting now, in one batch; a task that finds
        another recording leaves its outcome to it (that one looks again before it goes)."""
        while not self._finished.empty():
            if not self._recording.acquire(blocking=False):
                return
            try:
                batch = []
                while True:
                    try:
                        batch.append(self._finished.get_nowait())
                    except queue.Empty:
                        break
                self._record_batch(batch)
            finally:
                self._recording.release()

    def _record_batch(self, batch: list) -> None:
        by_notify: dict[int, tuple[Notify, list]] = {}
        for request, outcome, notify in batch:
            if isinstance(outcome, BaseException):
                self.inflight.discard(request.id)
                log.error(
                    "the revoke call for %s failed; the next tick tries again",
                    request.id,
                    exc_info=outcome,
                )
                self._done(request.id)
                continue
            by_notify.setdefault(id(notify), (notify, []))[1].append((request, outcome))
        for notify, results in by_notify.values():
            try:
                _tell(notify, self.record_revokes(results, "scheduler"))
            except Exception as exc:  # noqa: BLE001 - the other batches go on
                # The database away is one line (the heartbeat logs the outage itself);
                # anything else gets its traceback.
                log.error(
                    "could not record %d revocation(s) (%s); the next tick tries again",
                    len(results),
                    exc,
                    exc_info=not isinstance(exc, (StoreError, AccessError)),
                )
            finally:
                self._done(*(request.id for request, _ in results))

    # -- claims ---------------------------------------------------------------------

    def claim(self, request_id: str) -> bool:
        """Take the right to call a strategy for this request; False if someone has it."""
        with self.host.lock:
            if request_id in self.inflight:
                return False
            self.inflight.add(request_id)
            return True

    def release(self, *request_ids: str) -> None:
        """Hand back these claims, every one of them: one that fails (the database is
        away) stops none of the others, and the bot's heartbeat deletes its row later."""
        for request_id in request_ids:
            try:
                self.inflight.discard(request_id)
            except Exception:  # noqa: BLE001 - the others are handed back all the same
                log.warning("could not hand back the claim on %s", request_id, exc_info=True)

    def claim_current(self, request_id: str, still: Callable[[Request], bool]) -> Request | None:
        """Claim a request and re-read it; None (and no claim) if it is taken or moved on."""
        with self.host.lock:
            if not self.claim(request_id):
                return None
            current = self.host.store.get(request_id)
            if current is None or not still(current):
                self.inflight.discard(request_id)
                return None
            return current

    # -- granting -------------------------------------------------------------------

    def grant(self, request: Request, render: Render | None = None) -> list[Notice]:
        """Call the strategy for an approved request; the caller has claimed its id. The
        outcome is recorded with its notices (`render` may change them) in one commit."""
        host = self.host
        render = render or as_is
        notices: list[Notice] = []
        if request.grant_round:
            request = self.audit_grant_retry(request)
            if request is None:
                return []  # the audit log is still not writable: nothing is granted
        unrecorded = None
        try:
            error = None
            # A grant call whose outcome could not be recorded (the database went away, the
            # bot died) is made again, by any bot, with the start recorded before the first
            # call: the same expiry under the same Idempotency-Key, and the target's answer
            # and the audit tell the same access window.
            started = self.grant_start(request)
            preview = request.with_end(started + request.duration)
            try:
                done = self.call(request.strategy, "grant", payload_for("grant", preview))
                note = done.note
            except (StrategyError, SettingsError) as exc:
                error, note, done = str(exc), "", None
            with host.lock:
                request = host.store.get(request.id)
                now = host.clock()
                if error is None:
                    # the expiry the target was just told; revoke and extend act on its account
                    request.activate(started, done.account, done.answer)
                    self.owe_follow_up(request, "after_grant")
                    try:
                        host._commit(
                            request,
                            "granted",
                            "bot",
                            outcome="active",
                            detail=f"until {msg.when(request.expires_at)}; {note}",
                            **grant_fields(request),
                        )
                        notices = host.uow.announce(render(request, msg.granted(request)))
                    except AccessError as exc:
                        unrecorded = str(exc)
                else:
                    request.fail_grant(error, now)
                    host._commit(
                        request, "grant_failed", "bot", outcome="grant_failed", detail=error
                    )
                    failed = msg.grant_failed(request, host._ask_again(request))
                    notices = host.uow.announce(render(request, failed))
            host.metrics.grants.labels(
                request.strategy.get("type", "?"),
                "granted"
                if error is None and unrecorded is None
                else ("taken_back" if error is None else "grant_failed"),
            ).inc()
            if unrecorded is not None:  # still claimed: no other call
                return self.taken_back(request, unrecorded, render)
        finally:
            self.inflight.discard(request.id)
        if error is None and request.follow_ups_due:
            host._follow_ups.submit(request.id)
        return notices

    def grant_start(self, request: Request) -> datetime:
        """The start the target is told for this grant id: recorded on the request before
        its first call (a StoreError if it cannot be, and no call), read back on every
        later one."""
        if request.grant_starts_at is not None:
            return request.grant_starts_at
        host = self.host
        with host.lock:
            current = host.store.get(request.id)
            if current.grant_id == request.grant_id and current.grant_starts_at is None:
                current.grant_starts_at = host.clock()
                host.store.save(current)
        request.grant_starts_at = current.grant_starts_at or host.clock()
        return request.grant_starts_at

    def _backoff(self, request_id: str, attempt: int) -> None:
        self.grant_waits[request_id] = (attempt, self.host.clock() + retry_delay(attempt))

    def taken_back(self, granted: Request, why: str, render: Render | None = None) -> list[Notice]:
        """The target granted but the bot could not record it: take the grant back at once
        (no access may exist that the bot does not know to revoke). The request stays
        approved and waits, with backoff, until the audit log and store take writes; the
        next grant has a new grant id. Announced once, not at every attempt."""
        host = self.host
        self.take_back(granted)
        request = host.store.get(granted.id) or granted
        request.take_back(granted.grant_round)
        wait = self.grant_waits.get(request.id)
        self._backoff(request.id, wait[0] + 1 if wait else 1)
        try:  # so a restart grants under the new id too; the audit records it when it can
            host.store.save(request)
        except StoreError as exc:
            log.error("request %s: could not save its next grant id: %s", request.id, exc)
        try:
            host._audit(
                "grant_taken_back",
                "bot",
                request_id=request.id,
                user=request.requester,
                resource=request.resource,
                outcome="approved",
                detail=f"granted as {granted.grant_id} but not recorded ({why}); taken back",
            )
        except AccessError:
            pass  # the log is what failed; the retry's own event records the round
        if wait:
            return []
        with host.lock:  # the take-back is recorded as far as the disk let it: announce it
            return host.uow.announce((render or as_is)(request, msg.taken_back(request, why)))

    def audit_grant_retry(self, request: Request) -> Request | None:
        """Before granting again after a take-back: record the new attempt, which also
        proves the audit log takes writes again. The request as recorded (its grant
        round the store's), or None (and a longer wait) if the log takes no writes yet."""
        host = self.host
        wait = self.grant_waits.get(request.id)
        try:
            with host.lock:
                current = host.store.get(request.id)
                host._commit(
                    current,
                    "grant_retry",
                    "bot",
                    outcome="approved",
                    detail=f"granting again as {current.grant_id}",
                )
        except AccessError as exc:
            self._backoff(request.id, (wait[0] if wait else 0) + 1)
            log.warning("request %s waits to be granted: %s", request.id, exc)
            self.inflight.discard(request.id)
            return None
        self.grant_waits.pop(request.id, None)
        return current

    def take_back(self, request: Request) -> None:
        """Revoke a grant the bot could not record, once."""
        try:
            self.call(request.strategy, "revoke", payload_for("revoke", request))
        except (StrategyError, SettingsError) as exc:
            log.critical(
                "request %s: granted at the target but not recorded, and the revoke failed "
                "too (%s); revoke grant %s by hand",
                request.id,
                exc,
                request.grant_id,
            )

    # -- revoking -------------------------------------------------------------------

    def revoke(self, request: Request, actor: str) -> list[Notice]:
        """Call the strategy to take access away, on the caller's thread; the caller has
        claimed the request's id."""
        try:
            outcome = self.revoke_call(request)
        except BaseException:
            self.inflight.discard(request.id)
            raise
        return self.record_revokes([(request, outcome)], actor)

    def revoke_call(self, request: Request) -> tuple[str | None, str | None, Sessions | None]:
        """The strategy's revoke call: what went wrong (None if it worked), the account
        the target named (for a grant made before accounts were recorded), and what became
        of sessions opened before (the call's own word, else its strategy's declaration)."""
        try:
            done = self.call(request.strategy, "revoke", payload_for("revoke", request))
        except (StrategyError, SettingsError) as exc:
            return str(exc), None, None
        return None, done.account, done.sessions or self.sessions_declared(request.strategy)

    def sessions_declared(self, settings: dict) -> Sessions:
        """What the strategy says a revoke does to sessions opened before; unknown when it
        cannot be built (the revoke itself has worked, so that must not undo it)."""
        try:
            return self.strategy(settings).sessions_at_revoke()
        except (StrategyError, SettingsError):
            return Sessions()

    def record_revokes(
        self,
        results: list[tuple[Request, tuple[str | None, str | None, Sessions | None]]],
        actor: str,
    ) -> list[Notice]:
        """Record the outcome of claimed revoke calls (error None: it worked) and release
        the claims. Outcomes that arrive together are committed together: all their audit
        events with one fsync, then all their store writes with one, so revocations that
        end at the same moment do not queue behind each other's disk flushes."""
        host = self.host
        try:
            with host.lock:
                done = []
                now = host.clock()
                for claimed, (error, account, *said) in results:
                    request = host.store.get(claimed.id)
                    if error is None:
                        sessions = said[0].at(now) if said and said[0] is not None else None
                        final = request.end(now, actor, account, sessions)
                        self.owe_follow_up(request, "after_revoke")
                        ended = {"outcome": final.value, **grant_fields(request)}
                        if request.sessions:  # what became of sessions opened before
                            ended["sessions"] = request.sessions
                        done.append((request, error, final.value, ended))
                    else:
                        request.fail_revoke(error, now, actor, account)
                        fields = {
                            "outcome": "revoke_failed",
                            "detail": f"attempt {request.revoke_attempts}: {error}",
                            **grant_fields(request),
                        }
                        done.append((request, error, "revoke_failed", fields))
                host._commit_many([(r, event, actor, fields) for r, _, event, fields in done])
                told: list[Notice] = []
                for request, error, *_ in done:
                    told += (
                        [msg.revoke_failed(request)] if error else msg.grant_ended(request, actor)
                    )
                notices = host.uow.announce(told)
        finally:
            self.release(*(claimed.id for claimed, _ in results))
        for request, error, outcome, _ in done:
            if error is None and request.follow_ups_due:
                host._follow_ups.submit(request.id)
            host.metrics.revokes.labels(request.strategy.get("type", "?"), outcome).inc()
            if request.status is Status.EXPIRED and request.expires_at is not None:
                late = (request.ended_at - request.expires_at).total_seconds()
                host.metrics.lateness.observe(max(late, 0.0))
            # Ended, or ending (a failed revoke is retried): its waiting extension
            # requests can no longer be granted.
            notices += self.host._cancel_pending_extensions(request)
        return notices

    # -- extending ------------------------------------------------------------------

    def apply_extension(self, extension: Request, render: Render | None = None) -> list[Notice]:
        """Move the grant's end by the extension's duration, counted from its current end;
        the outcome is recorded with its notices (`render` may change them: it is given
        the extension as recorded) in one commit."""
        host = self.host
        render = render or as_is
        with host.lock:
            grant = host.store.get(extension.extends)
            ended = grant is None or grant.status is not Status.ACTIVE
            if ended or grant.id in self.inflight:
                why = msg.extension_not_applicable(extension, ended)
                extension = host.store.get(extension.id)
                extension.fail_grant(why, host.clock())
                self.inflight.discard(extension.id)
                host._commit(
                    extension, "extension_refused", "bot", outcome="grant_failed", detail=why
                )
                return host.uow.announce(render(extension, [msg.extension_refused(extension)]))
            self.inflight.add(grant.id)
        try:
            new_end = grant.expires_at + extension.duration
            preview = grant.with_end(new_end)
            error = None
            try:
                done = self.call(grant.strategy, "extend", payload_for("extend", preview))
            except (StrategyError, SettingsError) as exc:
                error = str(exc)
            with host.lock:
                grant = host.store.get(grant.id)
                extension = host.store.get(extension.id)
                now = host.clock()
                if error is None:
                    grant.extend(extension, new_end, now, done.account)
                    host._commit(
                        grant,
                        "extended",
                        extension.decided_by or "policy",
                        outcome="active",
                        detail=f"by {extension.id} until {msg.when(new_end)}",
                        **grant_fields(grant),
                        extension=extension.id,
                    )
                    extension.mark_applied(grant, now)
                    host._commit(extension, "extension_applied", "bot", outcome="extended")
                    told = msg.extension_applied(grant, extension)
                else:
                    extension.fail_grant(error, now)
                    host._commit(
                        extension, "extension_failed", "bot", outcome="grant_failed", detail=error
                    )
                    told = msg.extension_failed(grant, extension)
                return host.uow.announce(render(extension, told))
        finally:
            self.release(grant.id, extension.id)

    # -- follow-ups: what a grant or revoke owes -------------------------------------

    def owe_follow_up(self, request: Request, hook: str) -> None:
        """Note on the request, in the same write as its grant or revoke, that its
        resource's `hook` is to run: so it runs once, even if the bot stops first."""
        policies = self.host.policies
        resource = policies.get(request.resource) if policies else None
        if resource is not None and hook in resource.hooks:
            request.owe_follow_up(hook)

    # -- the strategies ---------------------------------------------------------------

    def call(self, settings: dict, action: str, payload: dict):
        """One strategy call, timed and counted for /metrics, with a deadline for the
        whole call (the resource's `timeout`, 30 s by default): past it, whatever the target
        still sends, the call is a StrategyError like any failure (strategies/deadline.py)."""
        started, ok = time.monotonic(), False
        try:
            strategy = self.strategy(settings)
            done = call_within(
                deadline_of(settings),
                f"the {action} call to {strategy.describe()}",
                lambda: strategy.call(action, payload),
                strategy.describe(),
            )
            ok = True
            return done
        finally:
            kind = str(settings.get("type", "?")) if isinstance(settings, dict) else "?"
            self.host.metrics.target_call(kind, action, time.monotonic() - started, ok)

    def strategy(self, settings: dict) -> Strategy:
        """The strategy for a request's settings; a shareable one is built once and reused,
        so its HTTP connections stay open across calls."""
        accounts = self.host.accounts
        try:
            key = json.dumps(settings, sort_keys=True, default=str)
        except (TypeError, ValueError):
            return build_strategy(settings, accounts)
        with self._strategies_lock:
            found = self._strategies.get(key)
        if found is not None:
            return found
        strategy = build_strategy(settings, accounts)
        if strategy.shareable:
            with self._strategies_lock:
                if len(self._strategies) >= 256:  # policies changed a lot: start afresh
                    self._strategies.clear()
                strategy = self._strategies.setdefault(key, strategy)
        return strategy
