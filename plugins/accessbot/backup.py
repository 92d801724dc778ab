"""Backup and restore for one bot on files: the TinyDB store (snapshot, journal, archive),
the access certifications (`access.certifications.json`) and every file of the audit
log, in one `.tar.gz`.

A backup may be taken while the bot runs. It holds the store's write lock exclusively
(`StoreFiles.write_lock`; every write and fold of the bot holds it shared) just long
enough to read the journal and to open the snapshot, the archive and the audit files and
note their lengths; then it copies those lengths. The snapshot is only ever replaced,
never rewritten, and the archive and the audit log are append-only, so what was opened
under the lock is one point in time: the store as it was, and the audit log at least as
far (every change is audited before it is stored, as after a crash). The certifications
file is replaced whole at each write, so the one opened under the lock is one version of
it. The copy is then loaded and its hash chain verified before the file is written.

With ACCESS_BACKUP_KEY in the environment the manifest (which holds every file's
SHA-256) carries an HMAC-SHA256 with that key, and a restore with the key refuses a
backup without it or whose HMAC differs: the checksums and the audit chain are not keyed,
so whoever can write the file can recompute them; the key is what they cannot.

A restore unpacks into a scratch directory beside the store, checks it the same way, and
only then, holding the store's open lock exclusively (so no bot has it open, and none
can start meanwhile), moves the files into place.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .audit import VerifyResult, chain_files, verify_chain
from .certification_store import TinyDBCertifications, path_beside
from .domain import HOLDS_ACCESS, iso
from .durable import ProcessLock, open_private
from .errors import AccessBotError
from .store import FileLock, StoreError, StoreFiles, TinyDBStore, fsync_dir

FORMAT = "accessbot-backup/1"
KEY_ENV = "ACCESS_BACKUP_KEY"  # the secret a backup's manifest is signed with (optional)
MANIFEST = "manifest.json"
BLOCK = 1 << 20
# Inside the tar the files have fixed names; restore maps them onto the configured paths.
STORE_NAMES = {
    "snapshot": "store/access.json",
    "journal": "store/access.journal.jsonl",
    "archive": "store/access.archive.jsonl",
    "certifications": "store/access.certifications.json",  # certification_store.py's TinyDB
}
AUDIT_LIVE = "audit/audit.jsonl"
AUDIT_MEMBER = re.compile(r"audit/audit\.jsonl(?:\.(\d+))?")


class BackupError(AccessBotError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Contents:
    """What a backup holds, as counted in its checked copy."""

    live: int
    finished: int
    audit_events: int
    audit_files: int
    verdict: VerifyResult
    taken_at: str
    certifications: tuple[int, int] | None = None  # (certifications, items); None: no file

    def describe(self) -> str:
        held = (
            f", {self.certifications[0]} certification(s) with {self.certifications[1]} item(s)"
            if self.certifications is not None
            else ""
        )
        return (
            f"{self.live} live and {self.finished} finished requests{held}, "
            f"{self.audit_events} audit events in {self.audit_files} file(s)"
        )


@dataclass(frozen=True)
class Restored:
    contents: Contents
    moved_aside: Path | None  # where the files that were there went (--force)
    signature: str = ""  # what became of ACCESS_BACKUP_KEY's check


# -- backup ------------------------------------------------------------------------------


def take_backup(
    store_path: str | os.PathLike,
    audit_path: str | os.PathLike,
    out: Path,
    now,
    key: str | None = None,
):
    """Copy the store and the audit log at `store_path`/`audit_path` into `out`, a
    .tar.gz readable only by its owner, its manifest signed with `key` (ACCESS_BACKUP_KEY)
    when given; returns what it holds. Raises BackupError."""
    files, audit = StoreFiles.of(store_path), Path(audit_path)
    if not any(p.exists() for p in files.data) and not chain_files(audit):
        raise BackupError(
            f"there is nothing to back up: no store at {files.snapshot} and no audit log at "
            f"{audit} (set ACCESS_DB_PATH and ACCESS_AUDIT_PATH, or give --config config.py)"
        )
    out = Path(out)
    if out.is_dir():
        raise BackupError(f"--out {out} is a directory; name a file like {out}/accessbot.tar.gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".accessbot-backup-") as scratch:
        staged = Path(scratch) / "copy"
        _copy_consistently(files, audit, staged)
        contents = _check(staged, iso(now), "no backup was written")
        manifest = {
            "format": FORMAT,
            "taken_at": contents.taken_at,
            "source": {"store": str(files.snapshot), "audit": str(audit)},
            "live": contents.live,
            "finished": contents.finished,
            "audit_events": contents.audit_events,
            "certifications": list(contents.certifications or (0, 0)),
            "files": {name: _digest(staged / name) for name in _staged_names(staged)},
        }
        if key:
            manifest["mac"] = _mac(manifest, key)
        partial = Path(scratch) / "backup.tar.gz"
        _write_tar(partial, staged, manifest, now.timestamp())
        os.replace(partial, out)
        fsync_dir(out.parent)
    return contents


def _copy_consistently(files: StoreFiles, audit: Path, staged: Path) -> None:
    (staged / "store").mkdir(parents=True)
    (staged / "audit").mkdir()
    lock = FileLock(files.write_lock)
    with ExitStack() as opened:
        try:
            lock.acquire(exclusive=True)  # the bot's writes and folds wait meanwhile
        except OSError as exc:
            raise BackupError(
                f"could not lock {files.write_lock}: {exc.strerror or exc}; run the backup "
                "as the user the bot runs as"
            ) from exc
        try:
            journal = files.journal.read_bytes() if files.journal.exists() else None
            copies = [
                (STORE_NAMES[role], handle, size, role == "archive")
                for role, handle, size in _open_store_files(files, opened)
            ]
            copies += [
                (AUDIT_LIVE + path.name[len(audit.name) :], handle, size, True)
                for path, handle, size in _open_chain(audit, opened)
            ]
        finally:
            lock.close()
        # The bot writes on; what was opened under the lock is copied now, up to the
        # lengths taken then.
        if journal is not None:
            target = staged / STORE_NAMES["journal"]
            _write_prefix(target, io.BytesIO(journal), len(journal), whole_lines=True)
        for name, handle, size, lines in copies:
            _write_prefix(staged / name, handle, size, whole_lines=lines)


def _open_store_files(files: StoreFiles, opened: ExitStack) -> Iterator[tuple[str, BinaryIO, int]]:
    paths = _store_paths(files)
    for role in ("snapshot", "archive", "certifications"):
        path = paths[role]
        try:
            handle = opened.enter_context(open(path, "rb"))  # noqa: SIM115 - the stack closes it
        except FileNotFoundError:
            continue
        yield role, handle, os.fstat(handle.fileno()).st_size


def _open_chain(audit: Path, opened: ExitStack) -> list[tuple[Path, BinaryIO, int]]:
    """Every file of the audit log, opened, oldest first, with its length now.

    A rotation renames the live file between our listing and our opening: then the
    listing changes, or a name no longer is the file opened, and we look again."""
    for _ in range(100):
        paths = chain_files(audit)
        with ExitStack() as attempt:
            try:
                handles = [attempt.enter_context(open(p, "rb")) for p in paths]
                same = chain_files(audit) == paths and all(
                    os.stat(p).st_ino == os.fstat(h.fileno()).st_ino for p, h in zip(paths, handles)
                )
            except FileNotFoundError:
                same = False
            if same:
                opened.enter_context(attempt.pop_all())
                return [(p, h, os.fstat(h.fileno()).st_size) for p, h in zip(paths, handles)]
    raise BackupError(f"the audit log at {audit} kept rotating while it was being opened")


def _write_prefix(target: Path, source: BinaryIO, size: int, whole_lines: bool = False) -> None:
    """The first `size` bytes of `source` into `target`, cut after the last newline for a
    file of lines (an append under way when the length was taken is not part of it)."""
    source.seek(0)
    last_newline = -1
    written = 0
    with open_private(target, "wb") as out:
        while written < size:
            block = source.read(min(BLOCK, size - written))
            if not block:
                break
            cut = block.rfind(b"\n")
            if cut >= 0:
                last_newline = written + cut
            out.write(block)
            written += len(block)
        if whole_lines:
            out.truncate(last_newline + 1)
        out.flush()
        os.fsync(out.fileno())


def _staged_names(staged: Path) -> list[str]:
    """The data files of a staged copy (not the lock files a check left), in tar order."""
    names = [n for n in STORE_NAMES.values() if (staged / n).exists()]
    audit = sorted(
        (int(m.group(1) or sys.maxsize), p.relative_to(staged).as_posix())
        for p in (staged / "audit").iterdir()
        if (m := AUDIT_MEMBER.fullmatch(p.relative_to(staged).as_posix()))
    )
    return names + [name for _, name in audit]


def _digest(path: Path) -> dict:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            sha.update(block)
    return {"bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def _write_tar(target: Path, staged: Path, manifest: dict, mtime: float) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, mtime
            tar.addfile(info, io.BytesIO(data))
            for name in manifest["files"]:
                info = tar.gettarinfo(str(staged / name), arcname=name)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with open(staged / name, "rb") as handle:
                    tar.addfile(info, handle)
        raw.flush()
        os.fsync(raw.fileno())


def _check(staged: Path, taken_at: str, nothing_done: str) -> Contents:
    """Load the copy as the bot would (without folding it) and verify its chain."""
    try:
        store = TinyDBStore(staged / STORE_NAMES["snapshot"], compact_after=sys.maxsize)
    except StoreError as exc:
        raise BackupError(f"the copied store does not load ({exc}); {nothing_done}") from exc
    try:
        grants = [r for r in store.live() if r.status in HOLDS_ACCESS]
        live, finished = len(store.live()), sum(1 for _ in store.archived())
    finally:
        store.close()
    certifications = _certification_counts(staged, nothing_done)
    audit_files = [staged / n for n in _staged_names(staged) if n.startswith("audit/")]
    verdict = verify_chain(audit_files) if audit_files else VerifyResult(True, 0, files=0)
    if problems := _unaudited_ends(grants, audit_files):
        raise BackupError(
            "the copied store disagrees with its audit log: "
            + "; ".join(problems[:5])
            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            + f"; {nothing_done}"
        )
    return Contents(
        live,
        finished,
        verdict.lines if verdict.ok else 0,
        len(audit_files),
        verdict,
        taken_at,
        certifications,
    )


def _certification_counts(staged: Path, nothing_done: str) -> tuple[int, int] | None:
    """(certifications, items) of the copied certifications file; None without one."""
    path = staged / STORE_NAMES["certifications"]
    if not path.exists():
        return None
    try:
        copy = TinyDBCertifications(path)
    except (ValueError, OSError) as exc:
        raise BackupError(
            f"the copied certifications ({path.name}) do not load ({exc}); {nothing_done}"
        ) from exc
    try:
        return copy.counts()
    finally:
        copy.close()


def _unaudited_ends(grants: list, audit_files: list[Path]) -> list[str]:
    """Each grant holding access whose end is not one its audit events recorded (granted,
    extended, revoke_failed carry it): a store edited apart from its log, such as a
    30-minute grant made to last a year. Any end the log recorded for it passes, as a
    backup may catch the log one change ahead of the store."""
    wanted = {grant.id for grant in grants}
    audited: dict[str, set[str]] = {}
    for path in audit_files:
        with open(path, "rb") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # verify_chain has judged the lines
                if isinstance(record, dict) and record.get("request_id") in wanted:
                    ends = audited.setdefault(record["request_id"], set())
                    if record.get("expires_at"):
                        ends.add(record["expires_at"])
    problems = []
    for grant in grants:
        ends = audited.get(grant.id)
        if ends is None:
            problems.append(f"grant {grant.id} holds access, but the audit log never names it")
        elif ends and iso(grant.expires_at) not in ends:  # none: a log older than the ends
            problems.append(
                f"grant {grant.id} ends at {iso(grant.expires_at)} in the store, but at "
                f"{max(ends)} in the audit log"
            )
    return problems


# -- restore -----------------------------------------------------------------------------


def restore_backup(
    source: Path,
    store_path: str | os.PathLike,
    audit_path: str | os.PathLike,
    force: bool,
    now,
    key: str | None = None,
) -> Restored:
    """Put the backup `source` back at `store_path`/`audit_path`. Refuses while a bot has
    the store open, where a store or audit log already is unless `force` (then those
    files are moved aside, never deleted), and, given `key` (ACCESS_BACKUP_KEY), a backup
    not signed with it. Raises BackupError."""
    files, audit = StoreFiles.of(store_path), Path(audit_path)
    files.snapshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=files.snapshot.parent, prefix=".restore-") as scratch:
        staged = Path(scratch)
        manifest = _unpack(Path(source), staged)
        signature = _signature(source, manifest, key)
        contents = _check(staged, str(manifest.get("taken_at", "")), "nothing was restored")
        expected = (manifest.get("live"), manifest.get("finished"), manifest.get("audit_events"))
        found = (contents.live, contents.finished, contents.audit_events)
        if "certifications" in manifest:  # a backup taken before they were kept has none
            expected += (manifest["certifications"],)
            found += (list(contents.certifications or (0, 0)),)
        if found != expected:
            raise BackupError(
                f"{source} does not hold what its manifest says ({contents.describe()}); "
                "nothing was restored"
            )
        with store_closed(files):
            moved = _clear(files, audit, force, now)
            for name, target in _targets(staged, files, audit):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(staged / name, target)
                _owned_like_its_directory(target)
            for directory in {files.snapshot.parent, audit.parent}:
                fsync_dir(directory)
    return Restored(contents, moved, signature)


def _mac(manifest: dict, key: str) -> str:
    """HMAC-SHA256 of the manifest without its `mac` (it names every file's SHA-256)."""
    signed = {k: v for k, v in manifest.items() if k != "mac"}
    data = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def _signature(source: Path, manifest: dict, key: str | None) -> str:
    """Check the manifest's signature with `key`; what came of it, or BackupError."""
    mac = manifest.get("mac")
    if not key:
        return f"signed, not checked: set {KEY_ENV} to check it" if mac else "not signed"
    if not isinstance(mac, str):
        raise BackupError(
            f"{source} is not signed with {KEY_ENV} (taken without it, or changed since); "
            f"nothing was restored. Unset {KEY_ENV} only if you trust the file."
        )
    if not hmac.compare_digest(mac, _mac(manifest, key)):
        raise BackupError(
            f"{source}: its signature does not match {KEY_ENV}: it was changed after it was "
            "taken, or taken with another key; nothing was restored"
        )
    return f"signature verified with {KEY_ENV}"


def _unpack(source: Path, staged: Path) -> dict:
    """Unpack the backup's files into `staged`, each checked against the manifest."""
    try:
        tar = tarfile.open(source, "r:*")  # noqa: SIM115 - closed by the `with` below
    except FileNotFoundError:
        raise BackupError(f"there is no file {source}") from None
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(
            f"{source} is not a backup made by `python -m accessbot backup`: {exc}"
        ) from exc
    with tar:
        try:
            manifest = json.load(tar.extractfile(MANIFEST))
        except (KeyError, AttributeError, ValueError):
            manifest = {}
        if manifest.get("format") != FORMAT:
            raise BackupError(
                f"{source} is not a backup made by `python -m accessbot backup` "
                f"(no {FORMAT} manifest in it)"
            )
        listed = manifest.get("files") or {}
        for name, expected in listed.items():
            if name not in STORE_NAMES.values() and not AUDIT_MEMBER.fullmatch(name):
                raise BackupError(f"{source} names an unexpected file {name!r}; not restored")
            target = staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                member = tar.extractfile(name)
            except KeyError:
                member = None
            if member is None:
                raise BackupError(f"{source} lacks {name}, which its manifest lists")
            with member, open_private(target, "wb") as out:
                shutil.copyfileobj(member, out, BLOCK)
                out.flush()
                os.fsync(out.fileno())
            if _digest(target) != expected:
                raise BackupError(f"{source}: {name} is damaged (its checksum differs)")
    return manifest


@contextmanager
def store_closed(files: StoreFiles, verb: str = "restore"):
    """Hold the store's open lock exclusively: no bot has it open, and none can open it;
    and the data folder's lock, so a bot started meanwhile is refused naming this command."""
    lock = FileLock(files.open_lock)
    folder = ProcessLock(files.lock, f"the data folder {files.snapshot.parent}")
    try:
        if not lock.acquire(exclusive=True, wait=False):
            raise BackupError(
                f"a bot is running on {files.snapshot} (it holds {files.open_lock.name}): "
                f"stop it first (Ctrl-C, or `systemctl stop accessbot`), then {verb}"
            )
        try:
            folder.acquire()
        except StoreError as exc:
            raise BackupError(f"{exc}; nothing was changed") from exc
        yield
    finally:
        folder.release()
        lock.close()


def _clear(files: StoreFiles, audit: Path, force: bool, now) -> Path | None:
    present = [
        p for p in (*files.data, path_beside(files.snapshot), *chain_files(audit)) if p.exists()
    ]
    holding = [p for p in present if p.stat().st_size and p != files.archive_index]
    if holding and not force:
        more = f" and {len(holding) - 3} more" if len(holding) > 3 else ""
        raise BackupError(
            f"there is already a store or an audit log here ({', '.join(map(str, holding[:3]))}"
            f"{more}); nothing was restored. Restore into an empty data directory, or add "
            f"--force to move these files aside into {files.snapshot.parent}/before-restore-"
            "<time>/ first"
        )
    return move_aside(present, files.snapshot.parent, "before-restore", now)


def move_aside(paths, directory: Path, prefix: str, now) -> Path | None:
    """Move the files of `paths` that exist into a new `directory/<prefix>-<time>/`
    (never deleted: an admin may need them); None if there were none."""
    present = [Path(p) for p in paths if Path(p).exists()]
    if not present:
        return None
    base = directory / f"{prefix}-{now:%Y%m%dT%H%M%SZ}"
    aside, number = base, 1
    while aside.exists():  # two within a second
        number += 1
        aside = base.with_name(f"{base.name}-{number}")
    aside.mkdir()
    for path in present:
        shutil.move(path, aside / path.name)
    return aside


def _owned_like_its_directory(path: Path) -> None:
    """Run as root (sudo), give a restored file to the owner of its directory, the bot's
    user, or the bot could not write it."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        owner = path.parent.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def _store_paths(files: StoreFiles) -> dict[str, Path]:
    """Each role of STORE_NAMES -> where the bot keeps that file."""
    return {
        "snapshot": files.snapshot,
        "journal": files.journal,
        "archive": files.archive,
        "certifications": path_beside(files.snapshot),
    }


def _targets(staged: Path, files: StoreFiles, audit: Path) -> Iterator[tuple[str, Path]]:
    roles = {name: _store_paths(files)[role] for role, name in STORE_NAMES.items()}
    for name in _staged_names(staged):
        if name in roles:
            yield name, roles[name]
        else:
            number = AUDIT_MEMBER.fullmatch(name).group(1)
            yield name, audit.with_name(f"{audit.name}.{number}") if number else audit
