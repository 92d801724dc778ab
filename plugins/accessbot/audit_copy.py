"""The local audit log compared with a copy an audit sink received (`verify --against`).

The hash chain alone proves that no line was changed in the middle. It cannot prove that
nothing was removed from the end, nor that the whole chain was not recomputed or started
again: whoever can write the files can do that too. A copy kept off the host can: every
event it holds must be in the local log, with the same hash. What the copy lacks at the
end is lag (the sink is behind), not tampering.

The copy is the lines a sink received, one per line: the stored lines themselves (http,
file), syslog lines (read from their first `{`), Splunk HEC events or a Splunk export
(`{"result": {"_raw": ...}}`), whose `hash` field is the hash of the stored line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .audit import StoredLine, VerifyResult


@dataclass(frozen=True)
class CopiedEvent:
    seq: int
    hash: str
    seed: str | None
    line: int  # where in the copy


TAMPERING, LAG, NOTE = "TAMPERING", "lag", "note"


@dataclass(frozen=True)
class Problem:
    """One finding over a range of sequence numbers: TAMPERING, lag or a note."""

    first: int
    last: int
    kind: str
    what: str

    @property
    def tampering(self) -> bool:
        return self.kind == TAMPERING

    def __str__(self) -> str:
        if self.first == self.last:
            where = f"seq {self.first}"
        else:
            where = f"seq {self.first}-{self.last} ({self.last - self.first + 1} events)"
        return f"{self.kind} {where}: {self.what}"


@dataclass
class Comparison:
    local_events: int
    copy_events: int
    local_chain: VerifyResult | None
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # copy lines that are no audit event

    @property
    def tampered(self) -> bool:
        chain_broken = self.local_chain is not None and not self.local_chain.ok
        return chain_broken or any(p.tampering for p in self.problems)

    def report(self, local_name: str, copy_name: str) -> list[str]:
        lines = [
            f"compared {local_name} ({self.local_events} events) with the copy {copy_name} "
            f"({self.copy_events} events)"
        ]
        lines += [str(problem) for problem in self.problems]
        lines += self.skipped[:10]
        if len(self.skipped) > 10:
            lines.append(f"... and {len(self.skipped) - 10} more copy lines skipped")
        if self.local_chain is not None:
            lines.append(f"local chain: {self.local_chain}")
        if self.tampered:
            count = sum(p.tampering for p in self.problems)
            lines.append(
                f"RESULT: the local log is NOT what the sink received ({count} problem(s) "
                "above): events were removed, changed or the chain was restarted after they "
                "were shipped"
            )
        else:
            lines.append(
                "RESULT: ok: every event of the copy is in the local log, unchanged"
                + ("; the copy is behind (lag above)" if self.problems else "")
            )
        return lines


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# A syslog message that carries one part of a line too long for one UDP datagram (the
# syslog sink's `part i/n of seq S: `), before the line's own text.
_PART = re.compile(rb"^[^{]*? - part (\d+)/(\d+) of seq (\d+): ")


def read_copy(raw_lines: Iterable[bytes]) -> tuple[list[CopiedEvent], list[str]]:
    """The events of a copy, and a note for each line that is not one. The parts of a
    line split for syslog over UDP are joined again."""
    events, skipped = [], []
    parts: dict[int, tuple[int, int, list[bytes]]] = {}  # seq -> first line, of n, pieces
    for number, raw in enumerate(raw_lines, start=1):
        text = raw.rstrip(b"\r\n")
        if not text.strip():
            continue
        part = _PART.match(text)
        if part:
            index, total, seq = (int(g) for g in part.groups())
            first, _, pieces = parts.setdefault(seq, (number, total, []))
            if index != len(pieces) + 1:
                continue  # out of order or repeated: the whole line is reported missing
            pieces.append(text[part.end() :])
            if len(pieces) < total:
                continue
            del parts[seq]
            number, text = first, b"".join(pieces)
        start = text.find(b"{")
        event = _copied(text[start:], number) if start >= 0 else None
        if event is None:
            skipped.append(f"note copy line {number}: not an audit event; skipped")
        else:
            events.append(event)
    skipped += [
        f"note copy line {first}: part {len(pieces)}/{total} of event {seq} only (the rest "
        "never arrived); skipped"
        for seq, (first, total, pieces) in parts.items()
    ]
    return events, skipped


def _copied(text: bytes, number: int) -> CopiedEvent | None:
    try:
        record = json.loads(text)
        result = record.get("result") if isinstance(record, dict) else None
        if isinstance(result, dict) and isinstance(result.get("_raw"), str):
            record = json.loads(result["_raw"])  # a Splunk export
        if isinstance(record, dict) and isinstance(record.get("event"), dict):
            record = record["event"]  # a HEC event as sent
    except (ValueError, AttributeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
        return None
    # A Splunk event names the stored line's hash; any other copy is the stored line.
    claimed = record["hash"] if isinstance(record.get("hash"), str) else _digest(text)
    seed = record.get("seed")
    return CopiedEvent(record["seq"], claimed, str(seed) if seed else None, number)


def compare(
    local: Iterable[StoredLine], copy: list[CopiedEvent], local_chain: VerifyResult | None = None
) -> Comparison:
    """Every event of the copy must be in the local log with the same hash."""
    local_hash: dict[int, str] = {}
    local_seed: dict[int, str] = {}
    for line in local:
        local_hash.setdefault(line.seq, line.hash)
        if b'"seed"' in line.data:
            seed = line.record().get("seed")
            if seed:
                local_seed.setdefault(line.seq, str(seed))
    copied: dict[int, set[str]] = {}
    copy_seed: dict[int, str] = {}
    for event in copy:
        copied.setdefault(event.seq, set()).add(event.hash)
        if event.seed:
            copy_seed.setdefault(event.seq, event.seed)
    result = Comparison(len(local_hash), len(copied), local_chain)
    found: list[tuple[int, str, str]] = []  # (seq, what, kind)
    for seq in sorted(copy_seed):
        if seq in local_seed and local_seed[seq] != copy_seed[seq]:
            found.append(
                (
                    seq,
                    f"the local chain was started again with a new seed ({local_seed[seq][:12]}..., "
                    f"the copy's {copy_seed[seq][:12]}...): the log was deleted or replaced",
                    TAMPERING,
                )
            )
    for seq in sorted(copied):
        hashes = copied[seq]
        if len(hashes) > 1:
            found.append(
                (
                    seq,
                    "the copy holds two different events with this number: the log was "
                    "rewritten after the first was shipped",
                    TAMPERING,
                )
            )
        if seq not in local_hash:
            found.append(
                (
                    seq,
                    "in the copy, missing from the local log: removed after it was shipped",
                    TAMPERING,
                )
            )
        elif local_hash[seq] not in hashes:
            found.append(
                (
                    seq,
                    "the local event differs from the one shipped (hash differs): changed "
                    "after it was shipped",
                    TAMPERING,
                )
            )
    newest = max(copied, default=0)
    for seq in sorted(local_hash):
        if seq > newest:
            found.append(
                (
                    seq,
                    "in the local log, not in the copy yet: the sink is behind (lag, not "
                    "tampering)",
                    LAG,
                )
            )
        elif seq not in copied:
            found.append(
                (
                    seq,
                    "in the local log, not in the copy (the copy starts later or has a hole; "
                    "not tampering)",
                    NOTE,
                )
            )
    result.problems = _ranges(found)
    return result


def _ranges(found: list[tuple[int, str, str]]) -> list[Problem]:
    """Consecutive numbers with the same finding become one range, in order of seq."""
    problems: list[Problem] = []
    for seq, what, kind in sorted(found, key=lambda f: (f[1], f[0])):
        last = problems[-1] if problems else None
        if last is not None and last.what == what and last.last == seq - 1:
            problems[-1] = Problem(last.first, seq, kind, what)
        else:
            problems.append(Problem(seq, seq, kind, what))
    return sorted(problems, key=lambda p: (not p.tampering, p.first))
