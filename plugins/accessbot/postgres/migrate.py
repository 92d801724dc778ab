"""Moving a TinyDB deployment into PostgreSQL: live records, archive and audit chain.

Everything is copied in one transaction (requests, the standing-access sweep's findings,
access certifications and their items),
into a database that must hold no requests and no audit events yet; the audit lines are copied byte for byte, so the chain in the table
is the chain of the files and the bots continue it. Afterwards the counts and the chain
are checked again from the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..audit import chain_files, verify_chain
from ..domain import Request
from ..store import StoreError, TinyDBStore
from .audit import PostgresAuditLog, insert
from .database import Database
from .store import PostgresStore, _row


class MigrationRefused(StoreError):
    """The copy did not start (or was rolled back); the message says why and what to do."""


@dataclass
class Copied:
    live: int
    archived: int
    audit_events: int
    audit_files: int
    verdict: str


def migrate_tinydb(db_path: str | Path, audit_path: str | Path, url: str) -> Copied:
    files = chain_files(audit_path)
    if files:
        source_chain = verify_chain(files)
        if not source_chain.ok:
            raise MigrationRefused(
                f"the audit log at {audit_path} does not verify ({source_chain}); nothing was "
                "copied. Restore it from a backup, or start and stop the bot once if only a "
                "torn last line is left from a crash (the bot cuts it and records that)"
            )
    if not Path(db_path).exists() and not files:
        raise MigrationRefused(f"there is nothing to copy: no {db_path} and no {audit_path}")
    source = TinyDBStore(db_path)
    live, archived = source.live(), list(source.archived())
    db = Database(url, heartbeat=False)
    try:
        store, audit = PostgresStore(db), PostgresAuditLog(db, clock=None)
        with db.transaction() as conn:
            held = store.counts()
            events = audit.count()
            if held["live"] or held["archived"] or events:
                raise MigrationRefused(
                    f"{db.where} already holds {held['live'] + held['archived']} requests and "
                    f"{events} audit events; `migrate` only writes into an empty database, so "
                    "that nothing is mixed or overwritten. Point --to at a new database"
                )
            for request in [*live, *archived]:
                _copy_request(conn, request)
            for resource, state in source.standing().items():
                # What the standing-access sweep found: not announced again after the move.
                store.save_standing(resource, state)
            _copy_certifications(db_path, db)
            lines = 0
            for path in files:
                with open(path, "rb") as handle:
                    for raw in handle:
                        line = raw.rstrip(b"\n").decode("utf-8")
                        insert(conn, json.loads(line), line)
                        lines += 1
        counts = store.counts()
        verdict = audit.verify() if lines else None
    finally:
        db.close()
    if counts != {"live": len(live), "archived": len(archived)}:
        raise MigrationRefused(
            f"after the copy {db.where} holds {counts}, not {len(live)} live and "
            f"{len(archived)} archived requests: check the database before using it"
        )
    if verdict is not None and (not verdict.ok or verdict.lines != lines):
        raise MigrationRefused(f"the copied audit chain does not verify: {verdict}")
    return Copied(
        len(live),
        len(archived),
        lines,
        len(files),
        str(verdict) if verdict else "no audit events to copy",
    )


def _copy_certifications(db_path: str | Path, db: Database) -> None:
    """Access certifications and their items (certification_store.py), as they were."""
    from ..certification_store import PostgresCertifications, TinyDBCertifications

    if not Path(db_path).with_suffix(".certifications.json").exists():
        return
    source = TinyDBCertifications.beside(db_path)
    try:
        target = PostgresCertifications(db)
        for certification in source.certifications():
            target.save(certification, source.items(certification["id"]))
    finally:
        source.close()


def _copy_request(conn, request: Request) -> None:
    """Insert one request as it was, keeping its version (at least 1: it was stored)."""
    row = _row(request, max(request.version, 1))
    conn.execute(
        """
        INSERT INTO requests (id, status, final, requester, resource, created_at,
            expires_at, next_retry_at, awaits_review, version, saved_seq, data)
        VALUES (%(id)s, %(status)s, %(final)s, %(requester)s, %(resource)s,
            %(created_at)s, %(expires_at)s, %(next_retry_at)s, %(awaits_review)s,
            %(version)s, nextval('requests_saved_seq'), %(data)s)
        """,
        row,
    )
