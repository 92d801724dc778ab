"""What every request store answers from memory: the live requests with their indexes,
finished requests' bookkeeping (break-glass reviews, follow-ups owed, the history
counts), and the version check of `save`/`save_many`. The TinyDB store
(`store.TinyDBStore`) and the in-memory one (`memory_store.MemoryStore`) are this plus
where they keep the requests; the PostgreSQL store asks its database instead."""

from __future__ import annotations

import json
import threading
from array import array
from base64 import b64decode, b64encode
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from .domain import Request, Status
from .durable import ConflictError


class _TimeIndex:
    """Request ids ordered by a time. Changes and range reads are binary searches (plus
    a list insert, a memmove), so a tick costs what is due, not what is stored."""

    def __init__(self):
        self._order: list[tuple[float, str]] = []
        self._key: dict[str, float] = {}

    def put(self, request_id: str, at: datetime | None) -> None:
        """Place `request_id` at `at`, or take it out when `at` is None."""
        old = self._key.pop(request_id, None)
        if old is not None:
            del self._order[bisect_left(self._order, (old, request_id))]
        if at is not None:
            key = at.timestamp()
            self._key[request_id] = key
            insort(self._order, (key, request_id))

    def until(self, at: datetime) -> list[str]:
        """Ids placed at or before `at`, earliest first."""
        end = bisect_right(self._order, (at.timestamp(), "\U0010ffff"))
        return [request_id for _, request_id in self._order[:end]]

    def first(self) -> str | None:
        """The id placed earliest, or None."""
        return self._order[0][1] if self._order else None


def _history_entry(line: bytes) -> tuple[str, str, float, Status] | None:
    """(requester, resource, made at, status) of an archive line, cheaply; None for an
    extension request. `to_dict` writes the fields in their declared order, and inside a
    JSON string every quote is escaped, so `","created_at":"` cannot occur in the reason
    and none of the keys looked for occurs, unescaped, in a value before its own (the
    strategy's settings have fixed keys). Anything unusual is parsed in full."""
    requester = line.find(b'","requester":"')
    resource = line.find(b'","resource":"', requester)
    duration = line.find(b'","duration":', resource)
    made = line.find(b'","created_at":"', duration)
    status = line.find(b'"status":"', line.find(b'"requester_id":', made))
    status_end = line.find(b'"', status + 10)
    extends = line.find(b'"extends":', status_end)
    found = min(requester, resource, duration, made, status, extends) >= 0
    if found and line.startswith(b'{"id":"'):
        who, what = line[requester + 15 : resource], line[resource + 14 : duration]
        if b"\\" not in who and b"\\" not in what:
            if line[extends + 10 : extends + 14] != b"null":
                return None
            return (
                who.decode(),
                what.decode(),
                datetime.fromisoformat(
                    line[made + 16 : line.find(b'"', made + 16)].decode()
                ).timestamp(),
                Status(line[status + 10 : status_end].decode()),
            )
    record = json.loads(line)
    if record.get("extends"):
        return None
    return (
        record["requester"],
        record["resource"],
        datetime.fromisoformat(record["created_at"]).timestamp(),
        Status(record["status"]),
    )


class _History:
    """Finished requests (not extensions) by (requester, resource): when each was made
    and how it ended, packed (9 bytes each: a hundred thousand fit in a megabyte).
    Each request is added once, from its first archive line: a finished request saved
    again (acknowledged, its after_revoke recorded) ended the same way."""

    _CODES = {status: code for code, status in enumerate(Status)}
    _STATUSES = tuple(Status)

    def __init__(self):
        self._by: dict[tuple[str, str], tuple[array, bytearray]] = {}

    def add(self, requester: str, resource: str, at: float, status: Status) -> None:
        times, codes = self._by.setdefault((requester, resource), (array("d"), bytearray()))
        times.append(at)
        codes.append(self._CODES[status])

    def count(
        self, requester: str, resource: str, statuses: set[Status], floor: float | None
    ) -> int:
        found = self._by.get((requester, resource))
        if found is None:
            return 0
        wanted = {self._CODES[s] for s in statuses}
        return sum(
            1 for at, code in zip(*found) if code in wanted and (floor is None or at >= floor)
        )

    def to_json(self) -> dict:
        """The index as JSON, compact: per (requester, resource) its times and status
        codes as base64 of the packed arrays (no list of a hundred thousand numbers and
        strings to build, or to parse at the next start), with the codes' legend."""
        return {
            "statuses": [s.value for s in self._STATUSES],
            "entries": [
                [
                    requester,
                    resource,
                    b64encode(times.tobytes()).decode(),
                    b64encode(bytes(codes)).decode(),
                ]
                for (requester, resource), (times, codes) in self._by.items()
            ],
        }

    def load_json(self, saved: dict | list) -> None:
        """What `to_json` wrote (or, older, lists of times and status words); ValueError
        (nothing loaded) if it is not that."""
        loaded = {}
        if isinstance(saved, list):  # an index written before the packed form
            for requester, resource, times, statuses in saved:
                if len(times) != len(statuses):
                    raise ValueError("a history entry is torn")
                loaded[(str(requester), str(resource))] = (
                    array("d", map(float, times)),
                    bytearray(self._CODES[Status(s)] for s in statuses),
                )
        else:
            legend = bytearray(range(256))  # a saved code -> this version's code
            for code, word in enumerate(saved["statuses"]):
                legend[code] = self._CODES[Status(word)]
            known = len(saved["statuses"])
            for requester, resource, times_b64, codes_b64 in saved["entries"]:
                times = array("d")
                times.frombytes(b64decode(times_b64, validate=True))
                codes = bytearray(b64decode(codes_b64, validate=True))
                if len(times) != len(codes) or (codes and max(codes) >= known):
                    raise ValueError("a history entry is torn")
                loaded[(str(requester), str(resource))] = (times, codes.translate(legend))
        self._by.update(loaded)


class IndexedStore:
    """The read side of `RequestStore` over live requests held in memory, and the write
    side's version check. A subclass says where finished requests are (`_archived`,
    `_is_archived`) and makes a write durable (`_write`, under `lock`, in `_writing()`).
    Every method costs what it returns, not the number of requests stored."""

    def __init__(self):
        self.lock = threading.RLock()
        self._live: dict[str, Request] = {}
        self._awaiting_review: set[str] = set()  # break-glass grants, live or finished
        self._follow_ups: set[str] = set()  # after-hooks still to run, live or finished
        self._history = _History()  # finished requests, for history_count
        # Indexes over the live requests.
        self._by_status: dict[Status, set[str]] = {}
        self._by_requester: dict[str, set[str]] = {}
        self._by_extends: dict[str, set[str]] = {}
        self._revoke_at = _TimeIndex()  # holds access: when to take it away
        self._remind_at = _TimeIndex()  # active, not reminded: when it ends
        self._pending_since = _TimeIndex()  # pending: when it was created
        self._nudge_at = _TimeIndex()  # pending: when the approvers are reminded
        self._escalate_at = _TimeIndex()  # pending: when the next escalation level is asked

    # -- what a subclass provides ------------------------------------------------------

    def _archived(self, request_id: str) -> Request | None:
        """A finished request's latest version (a copy), or None."""
        raise NotImplementedError

    def _is_archived(self, request_id: str) -> bool:
        raise NotImplementedError

    def _write(self, requests: list[Request]) -> None:
        """Store these versions durably (the caller holds `lock`): finished ones go to
        the archive (and `_finish`), live ones are `_take`n. Raises StoreError, having
        changed nothing, if they cannot be stored."""
        raise NotImplementedError

    def _writing(self) -> AbstractContextManager:
        """Held around every write (the TinyDB store: its file lock against a backup)."""
        return nullcontext()

    # -- the port: writing ---------------------------------------------------------------

    def save(self, request: Request) -> None:
        self.save_many([request])

    def save_many(self, requests: Iterable[Request]) -> None:
        originals = list(requests)
        requests = [r.copy() for r in originals]
        if not requests:
            return
        with self.lock, self._writing():
            self._check_versions(originals)
            for request in requests:
                request.version += 1  # what is stored is the new version
            self._write(requests)
            for original in originals:
                original.version += 1

    # -- the port: reading ---------------------------------------------------------------

    def get(self, request_id: str) -> Request | None:
        with self.lock:
            if request_id in self._live:
                return self._live[request_id].copy()
        return self._archived(request_id)

    def exists(self, request_id: str) -> bool:
        with self.lock:
            return request_id in self._live or self._is_archived(request_id)

    def live(self) -> list[Request]:
        with self.lock:
            return self._copies(self._live)

    def live_of(self, requester: str) -> list[Request]:
        with self.lock:
            return self._copies(self._by_requester.get(requester, ()))

    def live_in(self, statuses: Iterable[Status]) -> list[Request]:
        with self.lock:
            ids = [i for s in statuses for i in self._by_status.get(Status(s), ())]
            return self._copies(ids)

    def holding_grants(self) -> dict[str, tuple]:
        """Each grant holding access: id -> (account, expires_at, resource, revoke_due_at),
        read in place, no copies (the check against the audit log at start)."""
        with self.lock:
            live = self._live
            return {
                i: (r.account, r.expires_at, r.resource, r.revoke_due_at)
                for s in (Status.ACTIVE, Status.REVOKE_FAILED)
                for i in self._by_status.get(s, ())
                for r in (live[i],)
            }

    def extensions_of(self, grant_id: str) -> list[Request]:
        with self.lock:
            return self._copies(self._by_extends.get(grant_id, ()))

    def live_counts(self) -> dict[Status, int]:
        with self.lock:
            return {status: len(ids) for status, ids in self._by_status.items() if ids}

    def due_for_revocation(self, now: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._revoke_at.until(now)]

    def next_revocation_at(self) -> datetime | None:
        with self.lock:
            first = self._revoke_at.first()
            return None if first is None else self._live[first].revoke_due_at

    def expiring_unreminded(self, until: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._remind_at.until(until)]

    def pending_created_before(self, at: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._pending_since.until(at)]

    def nudges_due(self, at: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._nudge_at.until(at)]

    def escalations_due(self, at: datetime) -> list[Request]:
        with self.lock:
            return [self._live[i].copy() for i in self._escalate_at.until(at)]

    def follow_ups_due(self) -> list[Request]:
        with self.lock:
            ids = list(self._follow_ups)
        found = [r for r in (self.get(i) for i in ids) if r is not None and r.follow_ups_due]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def history_count(
        self,
        requester: str,
        resource: str,
        statuses: Iterable[Status],
        since: datetime | None,
    ) -> int:
        wanted = {Status(s) for s in statuses}
        floor = since.timestamp() if since is not None else None
        with self.lock:
            count = self._history.count(requester, resource, wanted, floor)
            for request_id in self._by_requester.get(requester, ()):
                request = self._live[request_id]
                if (
                    request.resource == resource
                    and not request.extends
                    and request.status in wanted
                    and (floor is None or request.created_at.timestamp() >= floor)
                ):
                    count += 1
        return count

    def awaiting_review(self) -> list[Request]:
        """Break-glass grants nobody has acknowledged yet, finished ones too, oldest first.

        Kept as an index of ids, so this costs what is waiting, not the archive's size.
        """
        with self.lock:
            ids = list(self._awaiting_review)
        found = [r for r in (self.get(i) for i in ids) if r is not None and r.awaits_review]
        return sorted(found, key=lambda r: r.created_at)

    # -- internals -----------------------------------------------------------------------

    def _check_versions(self, requests: list[Request]) -> None:
        seen: set[str] = set()
        for request in requests:
            if request.id in seen:
                raise ConflictError(
                    f"request {request.id} is twice in one write; nothing was written"
                )
            seen.add(request.id)
            self._check_version(request)

    def _check_version(self, request: Request) -> None:
        stored = self._live.get(request.id)
        if stored is None and self._is_archived(request.id):
            stored = self._archived(request.id)
        version = stored.version if stored is not None else 0
        if version != request.version:
            raise ConflictError(
                f"request {request.id} was changed by someone else meanwhile (version "
                f"{version}, not {request.version}); nothing was written, try again"
            )

    def _copies(self, ids: Iterable[str]) -> list[Request]:
        found = [self._live[i] for i in ids]
        found.sort(key=lambda r: (r.created_at, r.id))
        return [r.copy() for r in found]

    def _take(self, request: Request) -> None:
        """Hold `request` as the live version of its id (the caller made it durable)."""
        if request.id in self._live:
            self._unindex(self._live[request.id])
        self._live[request.id] = request
        self._track_review(request)  # also on loading: break-glass grants still live
        self._track_follow_ups(request)
        self._index(request)

    def _finish(self, request: Request, first: bool) -> None:
        """`request` went to the archive (`first`: it was not there before): off the
        live indexes, into the history (once) and the review / follow-up sets."""
        if first:
            self._remember(request)  # once: a request saved again ended the same way
        self._track_review(request)
        self._track_follow_ups(request)
        self._drop(request.id)

    def _drop(self, request_id: str) -> None:
        request = self._live.pop(request_id, None)
        if request is not None:
            self._unindex(request)

    def _index(self, request: Request) -> None:
        rid = request.id
        self._by_status.setdefault(request.status, set()).add(rid)
        self._by_requester.setdefault(request.requester, set()).add(rid)
        if request.extends:
            self._by_extends.setdefault(request.extends, set()).add(rid)
        self._revoke_at.put(rid, request.revoke_due_at)
        unreminded = request.status is Status.ACTIVE and not request.reminder_sent
        self._remind_at.put(rid, request.expires_at if unreminded else None)
        pending = request.status is Status.PENDING
        self._pending_since.put(rid, request.waits_since if pending else None)
        self._nudge_at.put(rid, request.next_nudge_at if pending else None)
        self._escalate_at.put(rid, request.next_escalation_at if pending else None)

    def _unindex(self, request: Request) -> None:
        rid = request.id
        for index, key in (
            (self._by_status, request.status),
            (self._by_requester, request.requester),
            (self._by_extends, request.extends),
        ):
            ids = index.get(key)
            if ids is not None:
                ids.discard(rid)
                if not ids:
                    del index[key]
        for index in (
            self._revoke_at,
            self._remind_at,
            self._pending_since,
            self._nudge_at,
            self._escalate_at,
        ):
            index.put(rid, None)

    def _track_follow_ups(self, request: Request) -> None:
        if request.follow_ups_due:
            self._follow_ups.add(request.id)
        else:
            self._follow_ups.discard(request.id)

    def _track_review(self, request: Request) -> None:
        if request.awaits_review:
            self._awaiting_review.add(request.id)
        else:
            self._awaiting_review.discard(request.id)

    def _remember(self, request: Request) -> None:
        """A finished request into the history index (extensions are not counted)."""
        if not request.extends:
            at = request.created_at.timestamp()
            self._history.add(request.requester, request.resource, at, request.status)
