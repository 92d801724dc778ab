"""Append-only, hash-chained audit log: one JSON object a line.

Each line carries `prev`, the SHA-256 of the line before it; the first line records a
random `seed` and chains from the SHA-256 of that seed. Editing, deleting or reordering
any line breaks the chain at that point, and `verify` names the line.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .domain import from_iso, iso


class AuditError(Exception):
    pass


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    bad_line: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit log intact: {self.lines} events, hash chain verified"
        return f"audit log BROKEN at line {self.bad_line}: {self.reason}"


class AuditLog:
    def __init__(self, path: str | os.PathLike, clock: Callable[[], datetime]):
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._last_hash: str | None = None
        self._seq = 0

    def _tail(self) -> None:
        """Find the hash and sequence number of the last complete line."""
        if self._last_hash is not None:
            return
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            chunk = min(size, 65536)
            while True:
                handle.seek(size - chunk)
                data = handle.read(chunk)
                lines = data.rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or chunk == size:
                    break
                chunk = min(size, chunk * 4)
        if not data.endswith(b"\n"):
            raise AuditError(
                f"{self.path} ends in a torn line; run `python -m accessbot audit verify`"
            )
        last = lines[-1]
        self._last_hash = _digest(last)
        self._seq = json.loads(last).get("seq", 0)

    def append(self, event: str, **fields) -> dict:
        """Write one event and fsync it before returning; raises AuditError on failure."""
        with self._lock:
            self._tail()
            record = {"seq": self._seq + 1, "ts": iso(self.clock()), "event": event}
            record.update({k: v for k, v in fields.items() if v not in (None, "")})
            if self._last_hash is None:
                seed = secrets.token_hex(16)
                record["seed"] = seed
                record["prev"] = _digest(seed.encode())
            else:
                record["prev"] = self._last_hash
            line = json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)
            data = line.encode("utf-8")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "ab") as handle:
                    handle.write(data + b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise AuditError(
                    f"could not write the audit log {self.path}: {exc.strerror or exc}"
                ) from exc
            self._last_hash = _digest(data)
            self._seq = record["seq"]
            return record

    def events(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):
                    yield json.loads(line)

    def query(
        self,
        *,
        user: str | None = None,
        resource: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[dict]:
        """The newest `limit` events matching every filter given, oldest first."""
        found = []
        for record in self.events():
            if user and user not in (record.get("actor"), record.get("user")):
                continue
            if resource and record.get("resource") != resource:
                continue
            if request_id and record.get("request_id") != request_id:
                continue
            if since and (from_iso(record["ts"]) or since) < since:
                continue
            found.append(record)
        return found[-limit:] if limit else found

    def verify(self) -> VerifyResult:
        return verify_file(self.path)


def verify_file(path: str | os.PathLike) -> VerifyResult:
    """Walk the chain; report the first line that is torn, unparsable or out of chain."""
    path = Path(path)
    if not path.exists():
        return VerifyResult(False, 0, 1, f"{path} does not exist")
    prev_hash = None
    count = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return VerifyResult(False, count, number, "torn line (no newline at the end)")
            data = raw[:-1]
            try:
                record = json.loads(data)
            except ValueError:
                return VerifyResult(False, count, number, "not valid JSON")
            if prev_hash is None:
                if "seed" in record:
                    expected = _digest(str(record["seed"]).encode())
                else:
                    expected = record.get("continues")  # first line of a rotated file
                    if not expected:
                        return VerifyResult(
                            False, count, number, "first line has neither seed nor continues"
                        )
            else:
                expected = prev_hash
            if record.get("prev") != expected:
                return VerifyResult(
                    False,
                    count,
                    number,
                    "hash chain broken: this line does not follow the line before it "
                    "(a line was changed, removed or inserted)",
                )
            prev_hash = _digest(data)
            count += 1
    if count == 0:
        return VerifyResult(False, 0, 1, "the log is empty")
    return VerifyResult(True, count)
