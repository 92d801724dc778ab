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
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import memory_store
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
from .messages import redact_urls
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

    def add(self, record: dict) -> None:
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
) -> Rebuilt:
    """Rebuild the requests from the audit events (oldest first). `strategy_for(resource)`
    gives the current policy's strategy settings; `salvaged` the records still readable
    in the damaged store, used where the audit agrees with them."""
    traces: dict[str, _Trace] = {}
    result = Rebuilt()
    for record in events:
        result.events += 1
        request_id = record.get("request_id")
        if request_id:
            traces.setdefault(request_id, _Trace(request_id)).add(record)
    salvaged = salvaged or {}
    for trace in traces.values():
        asked, why = trace.request(strategy_for)
        if asked is not None and asked.status in (Status.PENDING, Status.APPROVED):
            result.waiting.append(asked)
        request, problem = _choose(asked, why, salvaged.get(trace.id))
        if problem:
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


def _choose(
    rebuilt: Request | None, problem: str, base: Request | None
) -> tuple[Request | None, str]:
    """The request to keep, from the audit's version and the salvaged one, and what an
    admin should hear about it."""
    if base is not None and (rebuilt is None or _agrees(base, rebuilt)):
        return _merged(base, rebuilt), ""  # the salvaged line fills what the audit lacks
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
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        known = found.get(request.id)
        if known is None or request.version >= known.version:
            found[request.id] = request

    for record in _snapshot_records(files.snapshot):
        keep(record)
    for path in (files.journal, files.archive):
        for line in _lines(path):
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
    ) -> Rebuilt:
        """Hold the grants that still hold access, rebuilt from the audit events and what
        still reads of the damaged store's files. Pending and approved requests are left
        out: nothing is decided meanwhile."""
        rebuilt = rebuild(events, strategy_for, salvage(files))
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


class DegradedService:
    """The service of a bot on rebuilt grants: reads, revokes and the scheduler's work go
    through; anything that would start or decide a request is refused, saying why."""

    REFUSED = frozenset(
        {"request", "checks_at_request", "approve", "deny", "extend", "cancel", "ack"}
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
        if name in self.REFUSED:

            def refuse(*args, **kwargs):
                raise AccessError(f"Nothing was done: {self.reason}.")

            return refuse
        return getattr(self._service, name)


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
    return text


# -- `store rebuild` ----------------------------------------------------------------------


class RebuildError(Exception):
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
        return "\n".join(lines)


def rebuild_store(
    store_path: str | os.PathLike,
    events: Iterable[dict],
    strategy_for: Callable[[str], dict | None],
    now: datetime,
) -> RebuildReport:
    """Write a fresh store at `store_path` from the audit events and what still reads of
    the old files, which are moved aside into `before-rebuild-<time>/`. Refuses while a
    bot has the store open. Raises RebuildError."""
    from .backup import BackupError, move_aside, store_closed

    files = StoreFiles.of(store_path)
    files.snapshot.parent.mkdir(parents=True, exist_ok=True)
    try:
        with store_closed(files, "rebuild"):
            rebuilt = rebuild(events, strategy_for, salvage(files))
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
