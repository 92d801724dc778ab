"""A SHA-256 of their content in the TinyDB store's files, so a change that leaves valid
JSON (a flipped byte, a hand edit) is noticed when they are read.

- `access.json` starts with a line `{"_digest":{"1":{"sha256":"<hex>"}},` whose hash
  covers every byte after that line (`seal_database`, `open_database`). TinyDB sees a
  table `_digest`; the store strips it when it reads and writes it again at every fold.
- Each line of the journal and of the archive is one JSON object that ends
  `,"_sha256":"<hex>"}`, the hash of the line's text before that key (`seal_line`,
  `line_verdict`). Readers that parse a line as JSON get an extra key and ignore it.

Files written by an older version carry none: they are read as they are, with a warning,
and get their digests as they are written again (the snapshot at its next fold, the
journal and the archive line by line). A line without a digest after one with a digest
is damage: this version writes every line sealed.

A digest is no signature: someone who can write the files can strip it or compute a new
one. What stops a changed grant is the check of the store against the audit log at start
(`rebuild.audit_differences`); the digest catches the rest (pending and finished
requests, which the audit log alone does not describe whole). See SECURITY.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

DIGEST_TABLE = "_digest"
LINE_KEY = "_sha256"
_HEADER = re.compile(rb'\{"_digest":\{"1":\{"sha256":"([0-9a-f]{64})"\}\},\n')
_SUFFIX = re.compile(rb',"_sha256":"([0-9a-f]{64})"\}$')
# What is left of a digest whose key, value or closing was damaged (no line of ours
# ends so, nor has the key near its end).
_NEAR_VALUE = re.compile(rb'[0-9a-f]{64}"\}$')

SEALED, UNSEALED, BROKEN = "sealed", "unsealed", "broken"


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def seal_database(body: str) -> str:
    """The file's text: the digest line, then `body` (the tables after the opening brace,
    each `"name":{...}`, joined and closed: `"_default":{...}}\\n`)."""
    return f'{{"{DIGEST_TABLE}":{{"1":{{"sha256":"{sha256(body)}"}}}},\n{body}'


def open_database(raw: bytes, data: dict) -> tuple[str, str]:
    """(verdict, why) of a database file (`raw`, its bytes) parsed into `data`: SEALED
    (its digest matches), UNSEALED (none: an older version wrote it) or BROKEN. `data`
    loses its digest table."""
    table = data.pop(DIGEST_TABLE, None)
    if table is None:
        return UNSEALED, ""
    header = _HEADER.match(raw)
    digest = header.group(1).decode() if header else ""
    if header is None or table != {"1": {"sha256": digest}}:
        return BROKEN, "its first line, the digest of its content, is damaged"
    if hashlib.sha256(memoryview(raw)[header.end() :]).hexdigest() != digest:
        return BROKEN, "its content does not match its digest (changed since it was written)"
    return SEALED, ""


def seal_line(text: str) -> str:
    """One JSON object's text, `{...}`, with the digest of its content put in last (no
    newline)."""
    content = text[:-1]
    return f'{content},"{LINE_KEY}":"{sha256(content)}"}}'


def line_verdict(line: bytes) -> str:
    """SEALED, UNSEALED (no digest: an older version wrote it) or BROKEN (the content
    does not match its digest, or the digest is damaged). `line` without its newline."""
    found = _SUFFIX.search(line)
    if found is None:
        near = LINE_KEY.encode() in line[-90:] or _NEAR_VALUE.search(line[-70:])
        return BROKEN if near else UNSEALED
    return SEALED if sha256(line[: found.start()]) == found.group(1).decode() else BROKEN


def finish_sealed_tail(path: Path, most: int = 1 << 20) -> bool:
    """A file of sealed lines whose last line lacks only its newline (a crash just before
    the newline reached the disk, or the newline changed into another byte) gets it back,
    fsynced: its content is whole, as its digest shows, so it is not a torn write to cut.
    True if it did."""
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    with handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return False
        handle.seek(max(0, size - most))
        tail = handle.read()
        if tail.endswith(b"\n"):
            return False
        cut = tail.rfind(b"\n")
        if cut < 0 and size > most:
            return False  # a last line longer than we look at: left as it is
        last = tail[cut + 1 :]
        if line_verdict(last) == SEALED:
            pass  # whole but for its newline
        elif line_verdict(last[:-1]) == SEALED:
            handle.seek(size - 1)  # whole, its newline changed into another byte
        else:
            return False
        handle.write(b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    log.warning("%s: its last line lacked only its newline; put back", path)
    return True
