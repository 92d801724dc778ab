"""A damaged store never stops revocation: the grants it held, rebuilt from the audit log.

Every grant is audited before it is stored, and its audit events carry what a revoke
needs (`grant_fields`: the grant id, the target's account, the end, the strategy settings
with credentials in URLs redacted, who and where). So when the store cannot be read:

- at start the bot runs *degraded* (`degraded_start`): an in-memory store holds the grants
  the audit log says still hold access, the scheduler revokes them on time through its
  usual path (audited as always), and new requests and decisions are refused with a
  message naming `python -m accessbot store rebuild`;
- `store rebuild` (`rebuild_store`) writes a fresh store from the audit log and whatever
  lines of the old snapshot, journal and archive still read (`salvage`), after moving the
  damaged files aside, never deleting them.

The audit log is the truth for every state it records; a salvaged line only fills in what
the audit does not hold (approver ids, the card, the history) and must agree with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import integrity, memory_store
from .domain import (
    FINAL,
    HOLDS_ACCESS,
    AccessError,
    Event,
    Request,
    Status,
    from_iso,
    iso,
    parse_duration,
)
from .errors import AccessBotError
from .safe_text import redact_urls
from .store import (
    FileLock,
    SinkCursor,
    StoreFiles,
    TinyDBStore,
    fsync_dir,
    read_sink_cursors,
)

log = logging.getLogger(__name__)

REBUILD_COMMAND = "python -m accessbot store rebuild"

# The status each audit event leaves a request in (events not named leave it as it was).
_STATUS_AFTER = {
    "requested": Status.PENDING,
    "approved": Status.APPROVED,
    "grant_retry": Status.APPROVED,
    "grant_taken_back": Status.APPROVED,
    "denied": Status.DENIED,
    "cancelled": Status.CANCELLED,
    "timed_out": Status.TIMED_OUT,
    "grant_failed": Status.GRANT_FAILED,
    "extension_refused": Status.GRANT_FAILED,
    "extension_failed": Status.GRANT_FAILED,
    "extension_applied": Status.EXTENDED,
    "granted": Status.ACTIVE,
    "extended": Status.ACTIVE,
    "revoke_requested": Status.ACTIVE,
    "revoke_failed": Status.REVOKE_FAILED,
    "expired": Status.EXPIRED,
    "revoked": Status.REVOKED,
}


# -- what the audit events of a grant carry --------------------------------------------


def redacted_settings(settings: dict) -> tuple[dict, bool]:
    """Strategy settings fit for the audit log: every URL inside them as `redact_url` shows
    it (no `user:password@`, query or fragment). True if anything was taken out."""
    changed = False

    def clean(value):
        nonlocal changed
        if isinstance(value, str):
            shown = redact_urls(value)
            changed = changed or shown != value
            return shown
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(dict(settings or {})), changed


def grant_fields(request: Request) -> dict:
    """The fields of a grant's audit events (granted, extended, expired, revoked,
    revoke_failed): what it takes to revoke it without the store."""
    strategy, redacted = redacted_settings(request.strategy)
    return {
        "grant_id": request.grant_id,
        "account": request.account,
        "granted_at": iso(request.granted_at),
        "expires_at": iso(request.expires_at),
        "strategy": strategy,
        "strategy_redacted": redacted or None,
        "user_id": request.requester_id,
        "user_email": request.requester_email,
        "user_address": request.requester_address,
        "channel": request.channel,
    }


# -- rebuilding --------------------------------------------------------------------------


@dataclass
class Rebuilt:
    """What the audit log (and the salvaged lines) say the store held."""

    live: list[Request] = field(default_factory=list)  # holding access, or salvaged whole
    finished: list[Request] = field(default_factory=list)
    # Requests that could not be rebuilt whole, each with what an admin should do.
    problems: list[str] = field(default_factory=list)
    events: int = 0
    # Events after the hash chain broke (each, and whether it was believed), and grants
    # whose end the store's copy contradicts: ends the target is to confirm.
    untrusted: list[str] = field(default_factory=list)
    # Waiting for a decision (pending, or approved with no grant recorded), as the audit
    # tells them: a degraded bot decides none of them, but names them.
    waiting: list[Request] = field(default_factory=list)

    @property
    def holding(self) -> list[Request]:
        return [r for r in self.live if r.status in HOLDS_ACCESS]

    def summary(self) -> str:
        return (
            f"{len(self.holding)} grant(s) holding access, {len(self.live)} live request(s), "
            f"{len(self.finished)} finished, from {self.events} audit event(s)"
        )


class _Trace:
    """One request as its audit events tell it."""

    def __init__(self, request_id: str):
        self.id = request_id
        self.status: Status | None = None
        self.fields: dict = {}  # the latest value of every field any event carried
        self.requested: dict = {}
        self.created_at: datetime | None = None
        self.ending: str | None = None
        self.reminded = False
        self.reviewed: tuple[str, datetime] | None = None
        self.review_required = False
        self.revoke_attempts = 0
        self.extensions = 0
        self.history: list[Event] = []
        self.unconfirmed_end: str | None = None  # an end only an untrusted event told

    def add(self, record: dict, trusted: bool = True) -> bool:
        """Take one event in; False if it was not believed (an event after the hash chain
        broke may not end a grant, or make it longer: its target must confirm that)."""
        if not trusted and self.status in HOLDS_ACCESS:
            ends = _STATUS_AFTER.get(record.get("event", ""), self.status) not in HOLDS_ACCESS
            old_end, new_end = self.fields.get("expires_at"), record.get("expires_at")
            longer = bool(old_end and new_end and from_iso(new_end) > from_iso(old_end))
            if ends or longer:
                if ends:
                    self.unconfirmed_end = record.get("event") or "an end"
                return False
        self._add(record)
        return True

    def _add(self, record: dict) -> None:
        event, at = record.get("event", ""), from_iso(record.get("ts"))
        self.fields.update({k: v for k, v in record.items() if v not in (None, "")})
        self.status = _STATUS_AFTER.get(event, self.status)
        seen = getattr(self, f"_on_{event}", None)
        if seen is not None:
            seen(record, at)
        if at is not None and event:
            self.history.append(Event(at, event, str(record.get("actor", "")), ""))

    def _on_requested(self, record: dict, at: datetime | None) -> None:
        self.requested, self.created_at = record, at

    def _on_approved(self, record: dict, at: datetime | None) -> None:
        if record.get("actor") == "policy":
            self.review_required = True  # break-glass: a human reviews it afterwards

    def _on_granted(self, record: dict, at: datetime | None) -> None:
        self.reminded = False

    def _on_extended(self, record: dict, at: datetime | None) -> None:
        self.extensions += 1
        self.reminded = False  # a new end earns a new reminder

    def _on_expiry_reminder(self, record: dict, at: datetime | None) -> None:
        self.reminded = True

    def _on_revoke_requested(self, record: dict, at: datetime | None) -> None:
        self.ending = "revoked"

    def _on_revoke_failed(self, record: dict, at: datetime | None) -> None:
        self.revoke_attempts += 1

    def _on_reviewed(self, record: dict, at: datetime | None) -> None:
        if at is not None:
            self.reviewed = (str(record.get("actor", "")), at)

    def request(self, strategy_for: Callable[[str], dict | None]) -> tuple[Request | None, str]:
        """The request as far as the audit tells it; (None, why) if it cannot be rebuilt."""
        if not self.fields.get("resource") or not self.fields.get("user") or not self.status:
            return None, f"request {self.id}: the audit log does not say who asked for what"
        request = self._skeleton()
        if request.status not in HOLDS_ACCESS:
            return request, ""
        return self._with_strategy(request, strategy_for)

    def _skeleton(self) -> Request:
        f, asked = self.fields, self.requested
        granted_at, expires_at = from_iso(f.get("granted_at")), from_iso(f.get("expires_at"))
        try:
            duration = parse_duration(asked["duration"])
        except (KeyError, ValueError):
            duration = (expires_at - granted_at) if expires_at and granted_at else timedelta(0)
        grant_id = str(f.get("grant_id", ""))
        request = Request(
            id=self.id,
            requester=f["user"],
            resource=f["resource"],
            duration=duration,
            reason=str(asked.get("reason", "")),
            created_at=self.created_at or granted_at or self.history[0].at,
            channel=str(f.get("channel", "")),
            approvers=[a for a in str(asked.get("approvers", "")).split(", ") if a],
            status=self.status,
            requester_id=str(f.get("user_id", "")),
            requester_email=f.get("user_email"),
            requester_address=str(f.get("user_address", "")),
            extends=asked.get("extends"),
            fields=dict(asked.get("fields") or {}),
            granted_at=granted_at,
            expires_at=expires_at,
            account=f.get("account"),
            ending=self.ending,
            revoke_attempts=self.revoke_attempts,
            extensions=self.extensions,
            reminder_sent=self.reminded,
            history=list(self.history),
            grant_round=int(grant_id.rpartition(".")[2]) if "." in grant_id else 0,
            review_required=self.review_required,
        )
        if self.reviewed:
            request.reviewed_by, request.reviewed_at = self.reviewed
        if self.unconfirmed_end and request.status is Status.ACTIVE:
            request.ending = "revoked"  # revoked again at its target at once (idempotent)
        if request.status in FINAL:
            request.ended_at = self.history[-1].at
        return request

    def _with_strategy(
        self, request: Request, strategy_for: Callable[[str], dict | None]
    ) -> tuple[Request | None, str]:
        """The settings its revoke is made with: as recorded unless credentials were taken
        out of them, then the current policy's."""
        recorded = self.fields.get("strategy")
        recorded = recorded if isinstance(recorded, dict) and recorded else None
        current = strategy_for(request.resource)
        what = f"grant {request.grant_id} ({request.resource} for {request.requester})"
        if recorded and not self.fields.get("strategy_redacted"):
            request.strategy = recorded
        elif current:
            request.strategy = dict(current)
        elif recorded:
            request.strategy = recorded
            return request, (
                f"{what}: its recorded strategy settings had credentials taken out and no "
                "policy names the resource any more; its revoke may fail: check the target"
            )
        else:
            return None, (
                f"{what} holds access, but neither the audit log nor a policy says how to "
                "revoke it: revoke it by hand"
            )
        return request, ""


def rebuild(
    events: Iterable[dict],
    strategy_for: Callable[[str], dict | None] = lambda resource: None,
    salvaged: dict[str, Request] | None = None,
    trusted: int | None = None,
) -> Rebuilt:
    """Rebuild the requests from the audit events (oldest first). `strategy_for(resource)`
    gives the current policy's strategy settings; `salvaged` the records still readable
    in the damaged store, used where the audit agrees with them. `trusted`: how many
    events, from the first, follow an intact hash chain (None: all); a later event may
    not end a grant or make it longer, so a forged `expired` leaves the grant holding
    access, to be revoked again at its target (`Rebuilt.untrusted` names each)."""
    traces: dict[str, _Trace] = {}
    result = Rebuilt()
    for number, record in enumerate(events):
        result.events += 1
        request_id, believed = record.get("request_id"), True
        if request_id:
            believed = traces.setdefault(request_id, _Trace(request_id)).add(
                record, trusted is None or number < trusted
            )
        if trusted is not None and number >= trusted:
            what = f"event {record.get('seq', number + 1)}: {record.get('event')}"
            if request_id:
                what += f" of {request_id}"
            if request_id and not believed:
                what += " (not believed: the grant is revoked again at its target)"
            result.untrusted.append(what)
    salvaged = salvaged or {}
    for trace in traces.values():
        asked, why = trace.request(strategy_for)
        if asked is not None and asked.status in (Status.PENDING, Status.APPROVED):
            result.waiting.append(asked)
        request, problem = _choose(asked, why, salvaged.get(trace.id))
        if problem.startswith(AGAIN):
            result.untrusted.append(problem.removeprefix(AGAIN))
        elif problem:
            result.problems.append(problem)
        if request is not None:
            (result.finished if request.status in FINAL else result.live).append(request)
    for request_id, request in salvaged.items():  # finished before the audit log begins
        if request_id not in traces and request.status in FINAL:
            result.finished.append(request)
    result.live.sort(key=lambda r: (r.created_at, r.id))
    result.waiting.sort(key=lambda r: (r.created_at, r.id))
    result.finished.sort(key=lambda r: (r.created_at, r.id))
    return result


AGAIN = "again: "  # a `_choose` note of a grant revoked again, not a problem


def _choose(
    rebuilt: Request | None, problem: str, base: Request | None
) -> tuple[Request | None, str]:
    """The request to keep, from the audit's version and the salvaged one, and what an
    admin should hear about it."""
    if base is not None and (rebuilt is None or _agrees(base, rebuilt)):
        return _merged(base, rebuilt), ""  # the salvaged line fills what the audit lacks
    if (
        base is not None
        and rebuilt is not None
        and base.status in HOLDS_ACCESS
        and rebuilt.status in (Status.EXPIRED, Status.REVOKED)
    ):
        # The log says it ended, the store's last copy that it holds access: the target
        # confirms it (a revoke is idempotent) before it counts as ended.
        merged = _merged(base, rebuilt)
        merged.status, merged.ending, merged.ended_at = Status.ACTIVE, "revoked", None
        return merged, AGAIN + (
            f"grant {rebuilt.grant_id} ({rebuilt.resource} for {rebuilt.requester}): the "
            f"audit log says {rebuilt.status.value}, the store that it still held access; "
            "it is revoked again at its target"
        )
    if rebuilt is not None and rebuilt.status in (Status.PENDING, Status.APPROVED):
        return None, _lost(rebuilt)  # the audit does not hold enough to decide it
    return rebuilt, problem


def _agrees(base: Request, rebuilt: Request) -> bool:
    return base.status is rebuilt.status


def _merged(base: Request, rebuilt: Request | None) -> Request:
    """A salvaged record with what the audit records put over it (the audit wins)."""
    request = base.copy()
    request.version = 0
    if rebuilt is None:
        return request
    for name in ("status", "expires_at", "granted_at", "ending", "revoke_attempts"):
        setattr(request, name, getattr(rebuilt, name))
    request.account = rebuilt.account or request.account
    request.strategy = rebuilt.strategy or request.strategy
    request.reminder_sent = request.reminder_sent and rebuilt.reminder_sent
    if request.status is Status.REVOKE_FAILED and rebuilt.next_retry_at is None:
        request.next_retry_at = None  # retried at once: the store's retry time was lost
    return request


def _lost(request: Request) -> str:
    if request.status is Status.APPROVED:
        return (
            f"request {request.id} ({request.resource} for {request.requester}) was approved "
            f"but no grant was recorded: it was not restored; if the target holds grant "
            f"{request.grant_id}, revoke it there; the requester asks again"
        )
    return (
        f"request {request.id} ({request.resource} for {request.requester}) was waiting for "
        "approval: it was not restored (the audit log does not hold who may decide); the "
        "requester asks again"
    )


# -- reading what is left of a damaged store --------------------------------------------


def salvage(files: StoreFiles) -> dict[str, Request]:
    """Every request version still readable in the store's files (snapshot, journal,
    archive), the latest version of each; damaged lines are skipped."""
    found: dict[str, Request] = {}

    def keep(record) -> None:
        try:
            request = Request.from_dict(record)
            if not (isinstance(request.id, str) and isinstance(request.created_at, datetime)):
                raise TypeError("not a whole request")
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        known = found.get(request.id)
        if known is None or request.version >= known.version:
            found[request.id] = request

    for record in _snapshot_records(files.snapshot):
        keep(record)
    for path in (files.journal, files.archive):
        for line in _lines(path):
            if integrity.line_verdict(line.rstrip(b"\n")) == integrity.BROKEN:
                continue  # changed since it was written: not to be trusted
            try:
                record = json.loads(line)
            except ValueError:
                continue
            # A journal line holds the document a write changed (`doc`; null: removed).
            keep(record.get("doc") if isinstance(record, dict) and "table" in record else record)
    return found


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            yield from (line for line in handle if line.endswith(b"\n"))
    except FileNotFoundError:
        return


def _snapshot_records(path: Path) -> Iterator[dict]:
    """The request documents of a DB file: whole when it parses (any layout: TinyDB's
    tables of documents, or the older `requests` keyed by id), else line by line (the
    store writes one document a line), skipping what is damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    try:
        whole = json.loads(data)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        verdict, why = integrity.open_database(data, whole)
        if verdict == integrity.BROKEN:
            log.warning("not salvaging %s: %s", path, why)
            return
        for table in whole.values():
            if isinstance(table, dict):
                yield from (doc for doc in table.values() if isinstance(doc, dict))
        return
    for line in data.split(b"\n"):
        line = line.strip().removesuffix(b",")
        try:
            ((_, record),) = json.loads(b"{" + line + b"}").items()
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


# -- the store a degraded bot runs on -----------------------------------------------------


class MemoryStore(memory_store.MemoryStore):
    """The in-memory store (memory_store.py) a bot runs on when its store cannot be read:
    the rebuilt grants, the audit sinks' cursors, and a lock on the damaged files (so
    `store rebuild` waits for this bot to stop). Nothing it is told outlives the process
    (the audit log records every change anyway)."""

    def __init__(
        self,
        requests: Iterable[Request] = (),
        cursors: dict[str, dict] | None = None,
        held: FileLock | None = None,
    ):
        super().__init__()
        self.held = held  # a lock on the damaged store's files, released at close
        self._hold([r.copy() for r in requests])
        for name, data in (cursors or {}).items():
            self.save_sink_cursor(SinkCursor.from_dict(name, data))

    def _hold(self, requests: list[Request]) -> None:
        """Take requests as they are (their versions too): they were read, not changed."""
        with self.lock:
            self._write(requests)

    def close(self) -> None:
        if self.held is not None:
            self.held.close()

    def fill(
        self,
        files: StoreFiles,
        events: Iterable[dict],
        strategy_for: Callable[[str], dict | None],
        trusted: int | None = None,
    ) -> Rebuilt:
        """Hold the grants that still hold access, rebuilt from the audit events and what
        still reads of the damaged store's files. Pending and approved requests are left
        out: nothing is decided meanwhile. `trusted`: as for `rebuild` (an audit log whose
        chain broke cannot end a grant after the break)."""
        try:
            salvaged = salvage(files)
        except Exception:  # noqa: BLE001 - the audit log alone still says what to revoke
            log.exception("could not salvage what is left of the damaged store")
            salvaged = {}
        rebuilt = rebuild(events, strategy_for, salvaged, trusted)
        self._hold([r.copy() for r in rebuilt.holding])
        return rebuilt


# -- degraded start ---------------------------------------------------------------------


def store_held_elsewhere(files: StoreFiles) -> bool:
    """True if another process holds the store's open lock exclusively (a restore or a
    rebuild): not damage, and not a reason to run degraded."""
    lock = FileLock(files.open_lock)
    try:
        return not lock.acquire(exclusive=False, wait=False)
    finally:
        lock.close()


def degraded_reason(error: Exception) -> str:
    what = str(error).split(" The bot will not start")[0]  # the store's advice is for a stop
    what = what.rstrip(". ")  # it goes in parentheses, before our own full stop
    return (
        f"the store cannot be read ({what}). The bot runs on the grants its audit log "
        f"holds: it revokes them on time, and takes no new requests or decisions until an "
        f'admin runs `{REBUILD_COMMAND}` (see the README: "A damaged store")'
    )


def strategy_of(policies) -> Callable[[str], dict | None]:
    """The current policy's strategy settings of a resource (None if no policy names it)."""

    def settings(resource: str) -> dict | None:
        found = policies.get(resource) if policies is not None else None
        return found.strategy_settings if found is not None else None

    return settings


def open_degraded_backend(settings, clock):
    """The backend of a bot whose store cannot be read: the audit log as always, and an
    empty MemoryStore (with the audit sinks' cursors, so they do not ship the log again)
    to `fill` once the policies are loaded. Nothing is written to the damaged files."""
    from .audit import AuditLog
    from .backends import Backend
    from .scheduler import SoleLeader

    files = StoreFiles.of(settings.db_path)
    try:
        cursors = read_sink_cursors(files.sink_cursors)
    except Exception:  # noqa: BLE001 - the sinks then ship from the start: duplicates, no loss
        cursors = {}
    # Held shared like an open store's, so `store rebuild` and `restore` wait for this bot
    # to stop: what it revokes meanwhile is audited, and the rebuild must read it.
    held = FileLock(files.open_lock)
    held.acquire(exclusive=False, wait=False)
    return Backend(
        MemoryStore(cursors=cursors, held=held),
        AuditLog(settings.audit_path, clock, settings.audit_max_bytes),
        SoleLeader(),
        f"grants rebuilt from the audit at {settings.audit_path} (store damaged)",
    )


# -- the store checked against the audit log at start -----------------------------------


@dataclass(slots=True)
class _Held:
    """What the audit log says of one grant holding access: its status, account and end."""

    status: Status | None = None
    account: str | None = None
    expires_at: str | None = None
    resource: str = ""


# The events that move a grant into or out of holding access (the others leave it as it
# was, or belong to requests never granted): all the check at start needs to parse.
_GRANT_EVENTS = frozenset(
    {"granted", "extended", "revoke_failed", "revoke_requested", "expired", "revoked"}
    | {"grant_taken_back"}
)


_ENDING_EVENTS = frozenset({"expired", "revoked", "grant_taken_back"})
# The `"event":"..."` of a line with one of them (a quote inside a value is escaped, so
# this matches a key, not text in a reason): an ending one with the line's request id
# (keys are sorted: `request_id` comes later in the line), the others alone.
_GRANT_EVENT = re.compile(
    rb'"event": ?"(?:(expired|revoked|grant_taken_back)"[^\n]*?"request_id": ?"([^"\\\n]*)"'
    rb'|(granted|extended|revoke_failed|revoke_requested)")'
)


def grant_events(audit) -> Iterator[dict]:
    """The first event of the log (does it start with its seed?) and every event in
    `_GRANT_EVENTS`, oldest first. From a log on files, only those lines are parsed
    (found in blocks by `_grant_lines`), and an ending event not even that: its request
    id is all it gives. From any other log, `events()` filtered."""
    path = getattr(audit, "path", None)
    if not isinstance(path, Path):
        first = True
        for record in audit.events():
            if first or record.get("event") in _GRANT_EVENTS:
                yield record
            first = False
        return
    from .audit import chain_files

    first = True
    for file in chain_files(path):
        with open(file, "rb") as handle:
            if first:
                line = handle.readline()
                if line.endswith(b"\n"):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = {}
                    yield record if isinstance(record, dict) else {}
                    first = False
            rest = b""  # the start of a line the next block finishes (or a torn tail)
            while chunk := handle.read(1 << 20):
                block = rest + chunk
                whole = block.rfind(b"\n") + 1
                rest = block[whole:]
                yield from _grant_lines(block[:whole])


def _grant_lines(block: bytes) -> Iterator[dict]:
    """The events of `_GRANT_EVENTS` in a block of whole audit lines, in order, found by
    one regular expression (in C, not line by line): an ending event as its request id
    alone, the others parsed whole."""
    for found in _GRANT_EVENT.finditer(block):
        ending, request_id, other = found.groups()
        if ending is not None:
            yield {"event": ending.decode(), "request_id": request_id.decode()}
            continue
        start = block.rfind(b"\n", 0, found.start()) + 1
        end = block.find(b"\n", found.end())
        try:
            record = json.loads(block[start:end])
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == other.decode():
            yield record


def _raw_value(raw: bytes, key: bytes) -> bytes:
    """The string value of a top-level `key` of a raw JSON line, read without parsing it
    (b"" if not there): the audit log writes `"key":"value"`, another writer may put a
    space after the colon."""
    at = raw.find(key)
    if at < 0:
        return b""
    start = at + len(key) + (raw[at + len(key) : at + len(key) + 1] == b" ")
    if raw[start : start + 1] != b'"':
        return b""
    return raw[start + 1 : raw.find(b'"', start + 1)]


def audit_differences(store, events: Iterable[dict], now: datetime | None = None) -> list[str]:
    """How the store's grants differ from the audit log's (empty: they agree). Every grant
    the log says holds access must be in the store, holding access, with the same account
    and end; every grant the store holds must be one the log says holds access. Two
    exceptions: a grant whose events are all in audit files no longer kept (the log does
    not start with its seed), and a grant the log says ended that the store has due for
    revocation by `now` (a crash between the two writes, or a rebuild that asks its
    target to confirm the end): this start revokes it again, and both agree."""
    held: dict[str, _Held] = {}  # the grants the log says hold access
    ended: dict[str, Status] = {}  # the others, only their status (most of a long log)
    complete = None
    for record in events:
        if complete is None:
            complete = "seed" in record
        request_id = record.get("request_id")
        status = _STATUS_AFTER.get(record.get("event", ""))
        if not request_id or status is None:
            continue
        if status not in HOLDS_ACCESS:
            held.pop(request_id, None)
            ended[request_id] = status
            continue
        ended.pop(request_id, None)
        known = held.setdefault(request_id, _Held())
        known.status = status
        for name in ("account", "expires_at", "resource"):
            if record.get(name) not in (None, ""):
                setattr(known, name, record[name])
    # What the store holds, as small tuples (read in place where the store can).
    if hasattr(store, "holding_grants"):
        holding = store.holding_grants()
    else:
        holding = {
            r.id: (r.account, r.expires_at, r.resource, r.revoke_due_at)
            for r in store.live_in(HOLDS_ACCESS)
        }
    differences = []
    for request_id, known in held.items():
        what = f"grant of {request_id} ({known.resource})"  # refusals show it: no names
        if request_id not in holding:
            stored = store.get(request_id)
            found = "does not hold it" if stored is None else f"says {stored.status.value}"
            differences.append(
                f"{what}: the audit log says it holds access until {known.expires_at}, "
                f"the store {found}"
            )
            continue
        account, expires_at, _, _ = holding[request_id]
        if (account or None) != (known.account or None):
            differences.append(
                f"{what}: the audit log says account {known.account!r}, the store {account!r}"
            )
        elif expires_at != from_iso(known.expires_at):
            differences.append(
                f"{what}: the audit log says it ends {known.expires_at}, the store "
                f"{iso(expires_at)}"
            )
    for request_id, (_, expires_at, resource, due) in holding.items():
        if request_id in held:
            continue
        status = ended.get(request_id)
        if status is None and not complete:
            continue  # its events are in audit files no longer kept
        if status is not None and now is not None and due is not None and due <= now:
            continue  # revoked again at this start: the target confirms the end
        said = "has no event of it" if status is None else f"says {status.value}"
        differences.append(
            f"grant of {request_id} ({resource}): the store says it holds access until "
            f"{iso(expires_at)}, the audit log {said}"
        )
    return differences


def differs_reason(differences: list[str], shown: int = 5) -> str:
    listed = "; ".join(differences[:shown])
    more = f"; and {len(differences) - shown} more" if len(differences) > shown else ""
    return (
        f"the store does not match the audit log ({len(differences)} difference(s): "
        f"{listed}{more}). The bot runs on the grants its audit log holds: it revokes them "
        f"on time, and takes no new requests or decisions until an admin runs "
        f'`{REBUILD_COMMAND}` (see the README: "A damaged store")'
    )


def checked_against_audit(backend, settings, clock):
    """(backend, why degraded or None): the opened TinyDB store checked against the audit
    log; if they differ, the store is closed and the degraded backend (grants rebuilt
    from the audit log, `open_degraded_backend`) is opened instead. PostgreSQL writes
    both in one transaction: not checked here."""
    if settings.db_url:
        return backend, None
    try:
        differences = audit_differences(backend.store, grant_events(backend.audit), clock())
    except Exception:  # noqa: BLE001 - an unreadable log cannot rebuild grants either
        log.exception("could not check the store against the audit log")
        return backend, None
    if not differences:
        return backend, None
    for difference in differences:
        log.critical("the store does not match the audit log: %s", difference)
    backend.close()
    return open_degraded_backend(settings, clock), differs_reason(differences)


class DegradedService:
    """The service of a bot on rebuilt grants: an explicit allow-list. Reads, revocation
    and the scheduler's work go through; everything else (anything that would start,
    decide or change a request, and any method added later until it is listed here) is
    refused, saying why. tests/test_rebuild_unit.py checks that every public name of
    AccessService is in ALLOWED or REFUSED."""

    # Answer from the rebuilt grants and the audit log; write nothing.
    READS = frozenset(
        {
            "show",
            "mine",
            "list_live",
            "review",
            "resources",
            "audit_events",
            "verify_audit",
            "whatif",
            "evaluate",
            "evaluate_vote",
            "field_names",
            "policies",
            "policy_error",
            "policy_dir",
            "history_counts",
            "strategy_workers",
            "next_revocation_at",
        }
    )
    # Ending access, by a person or by the scheduler, and telling about it (the store
    # holds only grants that hold access, so a retry can only be a revoke's).
    REVOCATION = frozenset(
        {
            "revoke",
            "retry",
            "revocation_tick",
            "tick",
            "drain",
            "housekeeping",
            "remind_reviews",
            "check_overdue",  # the alarm for grants past their end: it only reads and tells
            "check_links",  # ends grants whose ticket closed: only ever sooner
            "close",
        }
    )
    # Policy reloads change what a new request would get (none is taken) and no grant:
    # the rebuilt grants carry their strategy settings.
    CONFIG = frozenset({"reload", "reload_policies"})
    # What the plugin wires once (the standing-access report reads through it, /health
    # the overdue grants; the sweep that removes members does not run degraded).
    WIRING = frozenset({"store", "clock", "lock", "overdue"})
    ALLOWED = READS | REVOCATION | CONFIG | WIRING
    # Refused on purpose (anything not in ALLOWED is refused as well).
    REFUSED = frozenset(
        {
            "request",
            "checks_at_request",
            "approve",
            "deny",
            "extend",
            "cancel",
            "ack",
            "remember_card",
            "pagerduty",
            "slack_groups",
            "links",
        }
    )

    def __init__(self, service, reason: str, waiting: Iterable[Request] = ()):
        self._service = service
        self.reason = reason
        # The requests that were waiting for a decision: not held, but never hidden.
        self.waiting = {r.id: r for r in waiting}

    def show(self, actor, request_id: str) -> str:
        try:
            return self._service.show(actor, request_id)
        except AccessError:
            waiting = self.waiting.get(str(request_id).strip().lower())
            if waiting is None:
                raise
            raise AccessError(waiting_text(waiting, self.reason)) from None

    def list_live(self, actor) -> str:
        text = self._service.list_live(actor)
        if not self.waiting or not getattr(actor, "is_admin", False):
            return text
        return f"{text}\n{waiting_list(self.waiting.values())}"

    def __getattr__(self, name: str):
        if name in self.ALLOWED:
            return getattr(self._service, name)
        if name.startswith("__"):
            raise AttributeError(name)

        def refuse(*args, **kwargs):
            raise AccessError(f"Nothing was done: {self.reason}.")

        return refuse


def waiting_line(request: Request) -> str:
    what = "waiting for approval" if request.status is Status.PENDING else "approved, not granted"
    return (
        f"{request.id} ({request.resource} for @{request.requester}, "
        f"asked {request.created_at:%Y-%m-%d %H:%M} UTC): {what}"
    )


def waiting_list(requests: Iterable[Request]) -> str:
    """The requests a degraded bot does not decide, and what becomes of them."""
    lines = [f"- {waiting_line(r)}" for r in requests]
    return (
        "Waiting for a decision when the store broke (none is decided until an admin runs "
        f"`{REBUILD_COMMAND}`; it keeps each one its old store still reads, else the "
        "requester asks again):\n" + "\n".join(lines)
    )


def waiting_text(request: Request, reason: str) -> str:
    """`!access show` of a request the degraded bot does not hold."""
    what = "waiting for approval" if request.status is Status.PENDING else "approved"
    return (
        f"Request {request.id} ({request.resource} for @{request.requester}) was {what} "
        f"when the store broke; the bot does not decide it now: {reason}. After the "
        f"rebuild, `!access show {request.id}` says whether it was kept; if not, the "
        f"requester asks again: `!access request {request.resource} <duration> <reason>`."
    )


def rebuilt_notice(rebuilt: Rebuilt, reason: str) -> str:
    """What the admins are told once when the bot starts degraded."""
    text = f"Access bot: {reason}.\nRebuilt from the audit log: {rebuilt.summary()}."
    if rebuilt.waiting:
        text += "\n" + waiting_list(rebuilt.waiting)
    if rebuilt.problems:
        text += "\nNot restored:\n" + "\n".join(f"- {p}" for p in rebuilt.problems)
    if rebuilt.untrusted:
        shown = rebuilt.untrusted[:10]
        more = len(rebuilt.untrusted) - len(shown)
        text += "\nNot trusted:\n" + "\n".join(f"- {u}" for u in shown)
        text += f"\n- and {more} more" if more else ""
    return text


# -- `store rebuild` ----------------------------------------------------------------------


class RebuildError(AccessBotError):
    """The store cannot be rebuilt now; the message says why and what to do."""


@dataclass(frozen=True)
class RebuildReport:
    rebuilt: Rebuilt
    aside: Path | None  # where the old files went

    def text(self) -> str:
        lines = [f"rebuilt the store: {self.rebuilt.summary()}"]
        if self.aside:
            lines.append(f"the old store files were moved to {self.aside}")
        lines += [f"not restored: {p}" for p in self.rebuilt.problems]
        lines += [f"not trusted: {u}" for u in self.rebuilt.untrusted]
        return "\n".join(lines)


def rebuild_store(
    store_path: str | os.PathLike,
    events: Iterable[dict],
    strategy_for: Callable[[str], dict | None],
    now: datetime,
    trusted: int | None = None,
) -> RebuildReport:
    """Write a fresh store at `store_path` from the audit events and what still reads of
    the old files, which are moved aside into `before-rebuild-<time>/`. Refuses while a
    bot has the store open. `trusted`: how many events follow an intact hash chain (see
    `rebuild`). Raises RebuildError."""
    from .backup import BackupError, move_aside, store_closed

    files = StoreFiles.of(store_path)
    files.snapshot.parent.mkdir(parents=True, exist_ok=True)
    try:
        with store_closed(files, "rebuild"):
            rebuilt = rebuild(events, strategy_for, salvage(files), trusted)
            with tempfile.TemporaryDirectory(dir=files.snapshot.parent, prefix=".rebuild-") as d:
                scratch = StoreFiles.of(Path(d) / files.snapshot.name)
                fresh = TinyDBStore(scratch.snapshot)
                try:
                    everything = [*rebuilt.finished, *rebuilt.live]
                    for request in everything:
                        request.version = 0
                    for start in range(0, len(everything), 1000):
                        fresh.save_many(everything[start : start + 1000])
                    fresh.compact()
                finally:
                    fresh.close()
                aside = move_aside(files.data, files.snapshot.parent, "before-rebuild", now)
                for role in ("snapshot", "journal", "archive"):
                    made = getattr(scratch, role)
                    if made.exists():
                        shutil.move(made, getattr(files, role))
                fsync_dir(files.snapshot.parent)
    except BackupError as exc:
        raise RebuildError(str(exc)) from exc
    return RebuildReport(rebuilt, aside)
