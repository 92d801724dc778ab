"""Where state lives: TinyDB and the audit file (one bot), or PostgreSQL (ACCESS_DB_URL,
several bots). The drivers (plugin, CLI, benches) open one here and use its parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .audit import AuditLog
from .scheduler import Leadership, SoleLeader
from .settings import Settings
from .store import RequestStore, TinyDBStore


@dataclass
class Backend:
    store: RequestStore
    audit: AuditLog  # or PostgresAuditLog: the same methods
    leadership: Leadership
    describe: str

    def close(self) -> None:
        self.store.close()


def open_backend(settings: Settings, clock: Callable[[], datetime]) -> Backend:
    """Open the configured backend; raises StoreError (naming what to fix) if it cannot."""
    if settings.db_url:
        from .postgres import Database, LeaderLease, PostgresAuditLog, PostgresStore

        db = Database(settings.db_url, lease_seconds=settings.lease_seconds)
        return Backend(
            PostgresStore(db),
            PostgresAuditLog(db, clock),
            LeaderLease(db),
            f"PostgreSQL at {db.where} (bot {db.bot_id})",
        )
    return Backend(
        TinyDBStore(settings.db_path),
        AuditLog(settings.audit_path, clock, settings.audit_max_bytes),
        SoleLeader(),
        f"TinyDB at {settings.db_path}, audit at {settings.audit_path}",
    )
