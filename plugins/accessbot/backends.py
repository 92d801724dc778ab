"""Where state lives: TinyDB and the audit file (one bot), or PostgreSQL (ACCESS_DB_URL,
several bots). The drivers (plugin, CLI, benches) open one here and use its parts."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .audit import AuditLog
from .durable import ProcessLock
from .scheduler import Leadership, SoleLeader
from .settings import Settings
from .store import RequestStore, StoreFiles, TinyDBStore


@dataclass
class Backend:
    store: RequestStore
    audit: AuditLog  # or PostgresAuditLog: the same methods
    leadership: Leadership
    describe: str
    db: object | None = None  # the PostgreSQL Database, if that is where state lives

    def for_command(self) -> AbstractContextManager:
        """Around a person's command: the database is waited for at most
        ACCESS_DB_COMMAND_WAIT, so they hear back in time even while it is away."""
        return self.db.for_command() if self.db is not None else nullcontext()

    def for_scheduler(self) -> AbstractContextManager:
        """Around each pass of the scheduler's loop: the database is waited for at most
        half the lease (a bot that cannot have a connection sooner cannot keep its lease
        anyway), so it learns, and tells the admins, soon that the database is away."""
        if self.db is None:
            return nullcontext()
        return self.db.waiting_at_most(max(1.0, self.db.lease_seconds / 2))

    def close(self) -> None:
        self.store.close()


def hold_data_folder(settings: Settings) -> ProcessLock:
    """Take the data folder's lock (`access.lock` beside ACCESS_DB_PATH) for the life of
    the process, before anything in the folder is read; raises FolderInUse (a StoreError)
    naming the process that holds it. The plugin takes it with PostgreSQL too: each bot
    has a data folder of its own (errbot's files are there)."""
    files = StoreFiles.of(settings.db_path)
    lock = ProcessLock(files.lock, f"the data folder {files.snapshot.parent}")
    lock.acquire()
    return lock


def exposed_folders(settings: Settings) -> list[str]:
    """A warning for each data folder (the store's, the audit log's) that users other than
    the bot's may read or enter: its files are created 0600, but files an older version
    made, or a folder made by hand, may be open to them."""
    folders = dict.fromkeys(Path(p).parent for p in (settings.db_path, settings.audit_path))
    warnings = []
    for folder in folders:
        try:
            mode = folder.stat().st_mode & 0o777
            # A folder inside one that only its owner may enter is out of others' reach.
            reachable = all(up.stat().st_mode & 0o011 for up in folder.resolve().parents)
        except OSError:
            continue
        if mode & 0o077 and reachable:
            warnings.append(
                f"the data folder {folder} is open to other users (mode {mode:04o}): it "
                "holds who had what access and why; run `chmod 700 "
                f"{folder}` (and `chmod 600` its files)"
            )
    return warnings


def open_backend(settings: Settings, clock: Callable[[], datetime]) -> Backend:
    """Open the configured backend; raises StoreError (naming what to fix) if it cannot."""
    if settings.db_url:
        from .postgres import Database, LeaderLease, PostgresAuditLog, PostgresStore

        db = Database(
            settings.db_url,
            lease_seconds=settings.lease_seconds,
            command_wait=settings.db_command_wait,
        )
        return Backend(
            PostgresStore(db),
            PostgresAuditLog(db, clock),
            LeaderLease(db),
            f"PostgreSQL at {db.where} (bot {db.bot_id})",
            db,
        )
    return Backend(
        TinyDBStore(settings.db_path),
        AuditLog(settings.audit_path, clock, settings.audit_max_bytes),
        SoleLeader(),
        f"TinyDB at {settings.db_path}, audit at {settings.audit_path}",
    )
