"""Audit sinks: copies of the audit log off this host (ACCESS_AUDIT_SINKS), and checkpoints.

A chain kept on one host proves that nothing was changed in its middle, not that nothing
was removed from its end or rewritten whole; a copy elsewhere does. Each sink has its own
worker thread that reads the stored lines after the sink's cursor (kept in the store:
`sink_cursor`), sends them in `seq` order and moves the cursor once the destination has
acknowledged them: every line at least once, never out of order, never past a gap. A
failure is retried with backoff (1 s doubling up to 5 minutes, on the injected clock).
Nothing waits for a sink: commands and revocations only append to the log, which wakes
the workers. A worker keeps its cursor in memory and saves it (a file write with two
fsyncs on TinyDB) at most once every CURSOR_SAVE_SECONDS while it ships, and when it
stops or stops leading, so a sink adds no disk writes in step with the appends; a crash
sends at most that last second's lines again (at least once, as always). After a batch
that was not full it lets lines gather for GATHER_SECONDS before the next, so lines
appended one by one go out a few at a time, not one request (and read) each. With several bots on one database only the bot holding the scheduler lease
ships, so each line goes out from one bot.

Kinds: `http` (the stored lines, ndjson, signed as the webhook strategy signs), `splunk_hec`
(Splunk's HTTP Event Collector), `file` (appended and fsynced) and `syslog` (RFC 5424 over
UDP or TCP). `Checkpoints` appends a `checkpoint` event pinning the chain head now and then,
so a copy knows the head even when nothing else happens.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .audit import CHECKPOINT, AuditError, StoredLine
from .capped_http import ANSWER_LIMIT, capped, capped_session
from .domain import cut_text, format_duration, from_iso, iso
from .durable import open_private
from .errors import AccessBotError
from .messages import redact_url, redact_urls, when
from .settings import SinkConfig
from .store import SinkCursor, StoreError, fsync_dir
from .strategies.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, post, sign

log = logging.getLogger(__name__)

RETRY_FIRST = timedelta(seconds=1)
RETRY_CAP = timedelta(minutes=5)
IDLE_SECONDS = 0.5  # how often an idle worker looks for new lines without being woken
CURSOR_SAVE_SECONDS = 1.0  # a shipping worker saves its cursor at most this often
GATHER_SECONDS = 0.1  # after a batch that was not full, lines gather this long first
SUSPECTED = "audit_tampering_suspected"
VERIFY_HINT = "compare with the sink's copy: python -m accessbot audit verify --against COPY"


class SinkError(AccessBotError):
    """A batch was not delivered; the message says why, without credentials."""


# -- the kinds -----------------------------------------------------------------------


class Sink:
    """One destination: `send` delivers a batch or raises SinkError."""

    kind = ""
    batch = 100

    def __init__(self, config: SinkConfig, environ: Mapping[str, str]):
        self.name = config.name
        self.environ = environ
        self.batch = int(config.get("batch", self.batch))
        self.timeout = float(config.get("timeout", 10.0))

    def send(self, lines: list[StoredLine]) -> None:
        raise NotImplementedError

    def problem(self) -> str | None:
        """A set-up mistake that keeps every batch from going out (an unset variable)."""
        return None

    def close(self) -> None:
        pass


class HttpPost:
    """POSTs for the HTTP kinds: kept-alive, redirects never followed, URLs redacted,
    answers read up to `capped_http.ANSWER_LIMIT` (the rest is never read)."""

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout
        self.session = capped_session(requests.Session())

    def post(self, body: bytes, headers: dict) -> requests.Response:
        response = post(self.session, self.url, body, headers, self.timeout, SinkError)
        where = redact_url(self.url)
        if not 200 <= response.status_code < 300:
            snippet = redact_urls(response.text.strip().replace("\n", " ")[:200])
            raise SinkError(
                f"{where} answered HTTP {response.status_code}"
                + (f": {snippet}" if snippet else "")
            )
        return response

    def close(self) -> None:
        self.session.close()


class HttpSink(Sink):
    """POST of a batch: the lines exactly as stored, one per line (ndjson), signed like the
    webhook strategy (`X-Access-Timestamp`, `X-Access-Signature`); any 2xx acknowledges it."""

    kind = "http"

    def __init__(self, config: SinkConfig, environ: Mapping[str, str]):
        super().__init__(config, environ)
        self.secret_env = config.get("secret_env")
        self.http = HttpPost(config.get("url"), self.timeout)
        if not self.secret_env:
            log.warning("audit sink %s has no secret_env: its batches are not signed", self.name)

    def problem(self) -> str | None:
        if self.secret_env and not self.environ.get(self.secret_env):
            return f"the environment variable {self.secret_env} (its signing secret) is not set"
        return None

    def send(self, lines: list[StoredLine]) -> None:
        body = b"".join(line.data + b"\n" for line in lines)
        stamp = int(time.time())  # the receiver compares it with its own clock
        headers = {
            "Content-Type": "application/x-ndjson",
            TIMESTAMP_HEADER: str(stamp),
            "X-Access-Audit-Seq": f"{lines[0].seq}-{lines[-1].seq}",
        }
        if self.secret_env:
            secret = self.environ.get(self.secret_env)
            if not secret:
                raise SinkError(self.problem())
            headers[SIGNATURE_HEADER] = sign(body, secret, stamp)
        self.http.post(body, headers)

    def close(self) -> None:
        self.http.close()


class SplunkHecSink(Sink):
    """Splunk's HTTP Event Collector: one event per line, carrying the line's fields and
    its `hash` (its `seq` is one of the fields), `Authorization: Splunk <token>`."""

    kind = "splunk_hec"
    PATH = "/services/collector/event"

    def __init__(self, config: SinkConfig, environ: Mapping[str, str]):
        super().__init__(config, environ)
        url = config.get("url").rstrip("/")
        if urlsplit(url).path in ("", "/"):
            url += self.PATH
        self.token_env = config.get("token_env")
        self.index = config.get("index")
        self.source = config.get("source", "accessbot")
        self.sourcetype = config.get("sourcetype", "accessbot:audit")
        self.host = socket.gethostname()
        self.http = HttpPost(url, self.timeout)

    def problem(self) -> str | None:
        if not self.environ.get(self.token_env):
            return f"the environment variable {self.token_env} (its HEC token) is not set"
        return None

    def event(self, line: StoredLine) -> dict:
        """The HEC event for one line: its fields, plus the hash that chains the next."""
        record = line.record()
        moment = from_iso(record.get("ts"))
        event = {
            "time": round(moment.timestamp(), 6) if moment else time.time(),
            "host": self.host,
            "source": self.source,
            "sourcetype": self.sourcetype,
            "event": {**record, "hash": line.hash},
        }
        if self.index:
            event["index"] = self.index
        return event

    def send(self, lines: list[StoredLine]) -> None:
        token = self.environ.get(self.token_env)
        if not token:
            raise SinkError(self.problem())
        body = "\n".join(
            json.dumps(self.event(line), separators=(",", ":"), sort_keys=True) for line in lines
        ).encode()
        headers = {"Authorization": f"Splunk {token}", "Content-Type": "application/json"}
        response = self.http.post(body, headers)
        if capped(response):  # a HEC answer is a few words: this is no acknowledgement
            raise SinkError(
                f"Splunk HEC answered more than the {ANSWER_LIMIT} bytes the bot reads; "
                "not an acknowledgement"
            )
        try:
            answer = response.json()
        except ValueError:
            return  # a 2xx without JSON (a proxy): accepted
        if isinstance(answer, dict) and answer.get("code", 0) != 0:
            raise SinkError(
                f"Splunk HEC refused the batch: code {answer.get('code')}, {answer.get('text')}"
            )

    def close(self) -> None:
        self.http.close()


class FileSink(Sink):
    """Append to another file (a WORM or remote mount), fsynced before it counts."""

    kind = "file"
    batch = 1000

    def __init__(self, config: SinkConfig, environ: Mapping[str, str]):
        super().__init__(config, environ)
        self.path = Path(config.get("path"))

    def send(self, lines: list[StoredLine]) -> None:
        body = b"".join(line.data + b"\n" for line in lines)
        try:
            new = not self.path.exists()
            with open_private(self.path, "ab+") as handle:
                if handle.tell() > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        body = b"\n" + body  # a torn last line (a crash): never glue onto it
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            if new:
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise SinkError(f"could not append to {self.path}: {exc.strerror or exc}") from exc


FACILITY_LOG_AUDIT = 13  # RFC 5424 table 1: "log audit"
SEVERITY_NOTICE, SEVERITY_WARNING = 5, 4
FAILED_OUTCOMES = frozenset({"failed", "grant_failed", "revoke_failed"})


# The largest message every RFC 5424 receiver must accept (section 6.1). Over UDP a
# longer line goes as several messages, each `part i/n of seq S: ` and a piece of it.
SYSLOG_UDP_OCTETS = 2048


class SyslogSink(Sink):
    """RFC 5424 messages whose MSG is the stored line, over UDP (one datagram each, a line
    past 2,048 octets split into marked parts) or TCP (octet-counted frames, RFC 6587).
    Syslog has no acknowledgement: a line counts as delivered once the kernel took it."""

    kind = "syslog"

    def __init__(self, config: SinkConfig, environ: Mapping[str, str]):
        super().__init__(config, environ)
        self.host = config.get("host")
        self.port = int(config.get("port"))
        self.protocol = config.get("protocol", "udp")
        self.hostname = (socket.gethostname() or "-")[:255]
        self._socket: socket.socket | None = None

    def message(self, line: StoredLine) -> bytes:
        return self._header(line) + line.data

    def _header(self, line: StoredLine) -> bytes:
        record = line.record()
        failed = record.get("outcome") in FAILED_OUTCOMES or record.get("event") == SUSPECTED
        pri = FACILITY_LOG_AUDIT * 8 + (SEVERITY_WARNING if failed else SEVERITY_NOTICE)
        msgid = "".join(c for c in str(record.get("event", "-")) if 33 <= ord(c) <= 126)[:32]
        header = f"<{pri}>1 {record.get('ts') or '-'} {self.hostname} accessbot {os.getpid()} "
        return f"{header}{msgid or '-'} - ".encode()

    def datagrams(self, line: StoredLine) -> list[bytes]:
        """The UDP messages of one line: the line whole, or marked parts of it, each at
        most SYSLOG_UDP_OCTETS (cut between UTF-8 characters; `audit verify --against`
        joins them again)."""
        header = self._header(line)
        if len(header) + len(line.data) <= SYSLOG_UDP_OCTETS:
            return [header + line.data]
        marker = b"part %d/%d of seq %d: "
        room = SYSLOG_UDP_OCTETS - len(header) - len(marker % (999, 999, line.seq))
        pieces, rest = [], line.data
        while rest:
            cut = min(room, len(rest))
            while cut < len(rest) and cut > 1 and rest[cut] & 0xC0 == 0x80:
                cut -= 1  # not inside a character
            pieces.append(rest[:cut])
            rest = rest[cut:]
        total = len(pieces)
        return [header + marker % (i, total, line.seq) + p for i, p in enumerate(pieces, 1)]

    def send(self, lines: list[StoredLine]) -> None:
        where = f"syslog {self.host}:{self.port}/{self.protocol}"
        try:
            if self.protocol == "udp":
                sock = self._connected(socket.SOCK_DGRAM)
                for line in lines:
                    for datagram in self.datagrams(line):
                        sock.send(datagram)
            else:
                messages = [self.message(line) for line in lines]
                sock = self._connected(socket.SOCK_STREAM)
                sock.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
        except OSError as exc:
            self.close()
            raise SinkError(f"{where}: {exc.strerror or type(exc).__name__}") from exc

    def _connected(self, kind: int) -> socket.socket:
        if self._socket is None:
            family, _, _, _, address = socket.getaddrinfo(self.host, self.port, type=kind)[0]
            sock = socket.socket(family, kind)
            sock.settimeout(self.timeout)
            try:
                sock.connect(address)
            except OSError:
                sock.close()
                raise
            self._socket = sock
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


KINDS: dict[str, type[Sink]] = {
    cls.kind: cls for cls in (HttpSink, SplunkHecSink, FileSink, SyslogSink)
}


def build_sink(config: SinkConfig, environ: Mapping[str, str] | None = None) -> Sink:
    return KINDS[config.type](config, os.environ if environ is None else environ)


# -- shipping ------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkStatus:
    """Where one sink stands, for `!access audit status` and the report."""

    name: str
    kind: str
    seq: int  # acknowledged up to here
    head: int  # the log's last event
    shipped_at: str | None = None
    error: str = ""
    error_at: str | None = None
    failing: bool = False
    retry_at: datetime | None = None
    attempts: int = 0

    @property
    def lag(self) -> int:
        return max(0, self.head - self.seq)


class SinkWorker:
    """Ships one sink from its cursor, on its own thread, while this bot leads."""

    def __init__(
        self,
        sink: Sink,
        audit,
        store,
        leads: Callable[[], bool],
        clock: Callable[[], datetime],
        suspect: Callable[[str], None],
        idle: float = IDLE_SECONDS,
    ):
        self.sink = sink
        self.audit = audit
        self.store = store
        self.leads = leads
        self.clock = clock
        self.suspect = suspect
        self.idle = idle
        self.attempts = 0  # failures in a row
        self.failing_since: datetime | None = None
        self.retry_at: datetime | None = None
        self._reported: set[int] = set()  # cursors already found rewritten
        self._cursor: SinkCursor | None = None  # as shipped; in the store once saved
        self._dirty = False  # `_cursor` moved since it was saved
        self._saved_at = float("-inf")  # time.monotonic() of the last save
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.sink.name

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"accessbot-sink-{self.name}"[:60], daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop shipping. A batch still in flight to a hung destination is left to its
        own timeout (the thread is a daemon): at worst it is sent again, never lost."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the audit sink %s is still sending; it stops after that", self.name)
                return
            self._thread = None
        self.flush()
        self.sink.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before reading: an append meanwhile wakes the next wait
            shipped = self.step(flush=False)
            if self._dirty and time.monotonic() - self._saved_at >= CURSOR_SAVE_SECONDS:
                self.flush()
            if 0 < shipped < self.sink.batch:
                # Appends come one by one: let some gather rather than send each alone
                # (a request, a read and a cursor per line would slow the appends).
                self._stop.wait(GATHER_SECONDS)
            if not shipped:
                pause = self._pause()
                if self._dirty:  # save it once its second is up, if nothing comes first
                    pause = min(pause, self._saved_at + CURSOR_SAVE_SECONDS - time.monotonic())
                self._wake.wait(max(0.0, pause))
        self.flush()

    def _pause(self) -> float:
        """Wait for an append, or until the retry is due (polled: the clock may be a
        test's, moved by hand)."""
        if self.retry_at is None:
            return self.idle
        return min(self.idle, 0.05)

    def step(self, flush: bool = True) -> int:
        """One round on the calling thread: ship one batch if this bot leads and no retry
        is waiting; the number of lines acknowledged (0: nothing done). With `flush`, a
        round with nothing to ship saves the cursor (the worker's own loop saves it at
        most once a second instead)."""
        if not self.leads():
            self.flush()
            self._cursor = None  # another bot ships: read its cursor when we lead again
            return 0
        if self.retry_at is not None and self.clock() < self.retry_at:
            return 0
        try:
            shipped = self.ship_once()
            if not shipped and flush:
                self.flush()
            return shipped
        except (SinkError, AuditError, StoreError) as exc:
            self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not end shipping for good
            log.exception("audit sink %s failed", self.name)
            self._failed(f"{type(exc).__name__} inside the bot (see its log)")
        return 0

    def flush(self) -> None:
        """Save the cursor if it moved since it was last saved."""
        if not self._dirty or self._cursor is None:
            return
        try:
            self.store.save_sink_cursor(self._cursor)
        except StoreError as exc:  # kept in memory: the next save tries again
            log.warning("could not save the cursor of audit sink %s: %s", self.name, exc)
            return
        self._dirty = False
        self._saved_at = time.monotonic()

    def _current(self) -> SinkCursor:
        if self._cursor is None:
            self._cursor = self.store.sink_cursor(self.name) or SinkCursor(self.name)
        return self._cursor

    def ship_once(self) -> int:
        """Send the next batch after the cursor; move the cursor once it is acknowledged
        (saved at most once a second, see `flush`)."""
        cursor = self._current()
        lines = self.audit.lines_after(cursor.seq, self.sink.batch)
        if not lines:
            head = self.audit.head()
            if head is None or head[0] <= cursor.seq:
                return 0
            # More than we read: a line may have been written in between (read again),
            # or the log has a hole after the cursor.
            lines = self.audit.lines_after(cursor.seq, self.sink.batch)
            if not lines:
                raise SinkError(
                    f"the audit log has no event {cursor.seq + 1} although it goes on to "
                    f"{head[0]}: part of it is missing (run python -m accessbot audit verify); "
                    "shipping waits there"
                )
        if cursor.hash and lines[0].record().get("prev") != cursor.hash:
            self._rewritten(cursor, lines[0])
        self.sink.send(lines)
        now = self.clock()
        self._cursor = replace(cursor, seq=lines[-1].seq, hash=lines[-1].hash, shipped_at=iso(now))
        self._dirty = True
        if time.monotonic() - self._saved_at >= CURSOR_SAVE_SECONDS:
            self.flush()
        if self.attempts:
            self._recovered(now)
        return len(lines)

    def _rewritten(self, cursor: SinkCursor, first: StoredLine) -> None:
        if cursor.seq in self._reported:
            return
        self._reported.add(cursor.seq)
        self.suspect(
            f"POSSIBLE TAMPERING: event {first.seq} of the audit log does not follow event "
            f"{cursor.seq} as the sink {self.name} received it: the log was rewritten after "
            f"that sink acknowledged it; {VERIFY_HINT}"
        )

    def _failed(self, error: str) -> None:
        error = cut_text(error)  # it may quote what the sink answered
        now = self.clock()
        self.attempts += 1
        delay = min(RETRY_FIRST * 2 ** (self.attempts - 1), RETRY_CAP)
        self.retry_at = now + delay
        log.warning(
            "audit sink %s: %s (attempt %d; next try in %s)",
            self.name,
            error,
            self.attempts,
            format_duration(delay),
        )
        if self.attempts == 1:
            self.failing_since = now
            self._audit("sink_failing", f"{self.name}: {error}")
        try:
            self._cursor = replace(self._current(), error=error, error_at=iso(now))
            self._dirty = True
            self.flush()
        except StoreError as exc:
            log.warning("could not record the error of audit sink %s: %s", self.name, exc)

    def _recovered(self, now: datetime) -> None:
        since = self.failing_since or now
        self._audit(
            "sink_recovered",
            f"{self.name}: delivering again after {self.attempts} failed attempt(s) over "
            f"{format_duration(now - since) if now > since else '0s'}",
        )
        self.attempts = 0
        self.retry_at = self.failing_since = None

    def _audit(self, event: str, detail: str) -> None:
        try:
            self.audit.append(event, actor="bot", outcome="ok", detail=detail)
        except AuditError as exc:
            log.warning("could not audit %s for sink %s: %s", event, self.name, exc)

    def status(self, head: int) -> SinkStatus:
        cursor = self._cursor or self.store.sink_cursor(self.name) or SinkCursor(self.name)
        return status_of(self.sink.kind, cursor, head, self.attempts, self.retry_at)


def status_of(
    kind: str,
    cursor: SinkCursor,
    head: int,
    attempts: int = 0,
    retry_at: datetime | None = None,
) -> SinkStatus:
    """A sink's status from its stored cursor: failing while its last error is newer than
    its last delivery (what any bot, or the report, can tell), or while it is retrying."""
    stored_failing = bool(cursor.error_at) and (cursor.error_at or "") > (cursor.shipped_at or "")
    return SinkStatus(
        cursor.name,
        kind,
        cursor.seq,
        head,
        cursor.shipped_at,
        cursor.error,
        cursor.error_at,
        failing=bool(attempts) or stored_failing,
        retry_at=retry_at,
        attempts=attempts,
    )


class AuditSinks:
    """Every configured sink's worker, the start-up check, and their status."""

    def __init__(
        self,
        configs: Sequence[SinkConfig],
        audit,
        store,
        leadership,
        clock: Callable[[], datetime],
        alarm: Callable[[str], None] = log.warning,
        environ: Mapping[str, str] | None = None,
        idle: float = IDLE_SECONDS,
    ):
        self.audit = audit
        self.store = store
        self.leadership = leadership
        self.clock = clock
        self.alarm = alarm
        self.workers = [
            SinkWorker(
                build_sink(config, environ), audit, store, self.leads, clock, self.suspect, idle
            )
            for config in configs
        ]
        if self.workers:
            audit.listen(self.wake)

    def leads(self) -> bool:
        """Only the bot holding the scheduler lease ships (always the one bot on files)."""
        return bool(getattr(self.leadership, "held", True))

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        for worker in self.workers:
            worker.stop(timeout)

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def suspect(self, text: str) -> None:
        """Possible tampering: audited, and told to the admins loudly."""
        try:
            self.audit.append(SUSPECTED, actor="bot", outcome="failed", detail=text)
        except AuditError as exc:
            log.error("could not audit a suspicion of tampering: %s", exc)
        log.critical("%s", text)
        self.alarm(text)

    def acknowledged(self) -> dict[str, int]:
        """How far each sink has acknowledged the log (name -> seq), for the checkpoints."""
        found = {}
        for worker in self.workers:
            cursor = self.store.sink_cursor(worker.name)
            if cursor is not None and cursor.seq > 0:
                found[worker.name] = cursor.seq
        return found

    def check_at_start(self) -> list[str]:
        """Compare the log's head with each sink's cursor: a log shorter than what a sink
        acknowledged, or a different line where its cursor stands, is possible tampering
        (audited and told to the admins). So is a cursor behind what the last checkpoint
        recorded for its sink (its file deleted or rewritten). Also a sink that cannot
        send at all."""
        told = []
        head = self.audit.head() if self.workers else None
        checkpoint = last_checkpoint(self.audit) if self.workers else None
        recorded = (checkpoint or {}).get("acked") or {}
        for worker in self.workers:
            problem = worker.sink.problem()
            if problem:
                told.append(f"Audit sink {worker.name} cannot ship: {problem}.")
                self.alarm(told[-1])
            cursor = self.store.sink_cursor(worker.name)
            acked = recorded.get(worker.name)
            if isinstance(acked, int) and acked > (cursor.seq if cursor else 0):
                text = _cursor_behind(worker.name, checkpoint, acked, cursor)
                self.suspect(text)
                told.append(text)
                continue
            if cursor is None or cursor.seq <= 0:
                continue
            text = _mismatch(self.audit, head, cursor)
            if text:
                self.suspect(text)
                told.append(text)
        return told

    def status(self) -> list[SinkStatus]:
        head = self.audit.head()
        return [worker.status(head[0] if head else 0) for worker in self.workers]

    def status_text(self) -> str:
        """`!access audit status`: each sink, its cursor, lag and last error."""
        return render_status(self.status(), self.leads(), last_checkpoint(self.audit))


def _cursor_behind(name: str, checkpoint: dict, acked: int, cursor: SinkCursor | None) -> str:
    where = f"is at event {cursor.seq}" if cursor and cursor.seq > 0 else "is gone"
    return (
        f"POSSIBLE TAMPERING: the checkpoint at event {checkpoint.get('seq')} of the audit "
        f"log records that the sink {name} had acknowledged events up to {acked}, but its "
        f"cursor {where} (its file, access.sinks.json, or its row was deleted or rewritten): "
        f"whatever the sink received since may be gone from this host's log; {VERIFY_HINT}"
    )


def _mismatch(audit, head: tuple[int, str] | None, cursor: SinkCursor) -> str | None:
    name = cursor.name
    if head is None or head[0] < cursor.seq:
        ends = f"ends at event {head[0]}" if head else "is empty"
        gone = cursor.seq - (head[0] if head else 0)
        return (
            f"POSSIBLE TAMPERING: the audit log {ends}, but the sink {name} already "
            f"acknowledged events up to {cursor.seq}: {gone} event(s) it received are gone "
            f"from this host's log; {VERIFY_HINT}"
        )
    found = audit.lines_after(cursor.seq - 1, 1)
    if not found or found[0].seq != cursor.seq:
        return (
            f"POSSIBLE TAMPERING: event {cursor.seq}, which the sink {name} acknowledged, is "
            f"missing from the audit log; {VERIFY_HINT}"
        )
    if cursor.hash and found[0].hash != cursor.hash:
        return (
            f"POSSIBLE TAMPERING: event {cursor.seq} of the audit log is not the line the sink "
            f"{name} acknowledged (its hash differs): the log was rewritten; {VERIFY_HINT}"
        )
    return None


def last_checkpoint(audit, look_back: int = 5000) -> dict | None:
    """The newest `checkpoint` event among the last `look_back` events."""
    for number, record in enumerate(audit.events_newest_first()):
        if record.get("event") == CHECKPOINT:
            return record
        if number >= look_back:
            break
    return None


def _at(text: str | None) -> str:
    return when(from_iso(text)) if text else "never"


def render_status(statuses: list[SinkStatus], leads: bool, checkpoint: dict | None) -> str:
    if not statuses:
        lines = [
            "No audit sinks are configured (ACCESS_AUDIT_SINKS): the audit log is only on this "
            "host, where it proves that nothing changed in its middle but not that nothing was "
            'removed. See the README, "For auditors".'
        ]
    else:
        who = "this bot" if leads else "the bot holding the scheduler lease (not this one)"
        lines = [f"Audit sinks (shipped by {who}):"]
        for status in statuses:
            line = (
                f"- {status.name}: acknowledged up to event {status.seq} of {status.head}, "
                + (f"{status.lag} behind" if status.lag else "up to date")
                + f"; last delivery {_at(status.shipped_at)}"
            )
            if status.failing:
                retry = f", next try {when(status.retry_at)}" if status.retry_at else ""
                tries = f" (attempt {status.attempts}{retry})" if status.attempts else ""
                line += f"; FAILING since {_at(status.error_at)}: {status.error}{tries}"
            elif status.error:
                line += f"; last error {_at(status.error_at)}: {status.error}"
            lines.append(line)
    if checkpoint:
        lines.append(
            f"Last checkpoint: event {checkpoint.get('seq')} at {_at(checkpoint.get('ts'))}, "
            f"pinning the chain head at event {checkpoint.get('head_seq')}."
        )
    return "\n".join(lines)


# -- checkpoints ---------------------------------------------------------------------


class Checkpoints:
    """The periodic checkpoint: every `every` (on the injected clock) the scheduler's leader
    appends a `checkpoint` event pinning the chain head, if anything happened since the
    last one. `run` is cheap when nothing is due: the scheduler calls it every tick."""

    def __init__(
        self,
        audit,
        every: timedelta,
        clock: Callable[[], datetime],
        acked: Callable[[], dict[str, int]] | None = None,
    ):
        self.audit = audit
        self.every = every
        self.clock = clock
        self.acked = acked  # AuditSinks.acknowledged: recorded in each checkpoint
        self._due: datetime | None = None

    def run(self) -> dict | None:
        if not self.every:
            return None
        now = self.clock()
        if self._due is None:
            self._due = now + self.every
            return None
        if now < self._due:
            return None
        self._due = now + self.every
        try:
            acked = self.acked() if self.acked else None
        except StoreError as exc:
            log.warning("the checkpoint leaves out the sinks' positions: %s", exc)
            acked = None
        return self.audit.append_checkpoint(acked) if acked else self.audit.append_checkpoint()
