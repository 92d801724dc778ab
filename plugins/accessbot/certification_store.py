"""Where access certifications and their items are kept (certification.py owns them).

A certification is one JSON document (`Certification.to_dict`), an item another
(`Item.to_dict`); the store only keeps them. One bot: a TinyDB file beside the request
store (`access.certifications.json`, tables `certifications` and `items`, replaced
atomically at each write). Several bots: the PostgreSQL tables `certifications` and
`certification_items` (migration 9). Either way a decision is taken once: `decide`
writes an item only while it is still undecided, so two reviewers (or two bots) clicking
at once count once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from tinydb import Query, TinyDB

from .tinydb_journal import AtomicJSONStorage


class CertificationStore(Protocol):
    def save(self, certification: dict, items: list[dict] | None = None) -> None:
        """Write a certification and (some of) its items, replacing what was there."""

    def certification(self, certification_id: str) -> dict | None: ...

    def certifications(self, open_only: bool = False) -> list[dict]:
        """Every certification (or the open ones), oldest first."""

    def items(self, certification_id: str) -> list[dict]: ...

    def item(self, item_id: str) -> dict | None: ...

    def decide(self, item: dict) -> bool:
        """Write `item` (now decided) only if the stored one is still undecided; False
        when someone decided it first."""

    def save_item(self, item: dict) -> None:
        """Write an item as it is (its removal's outcome after the decision)."""

    def close_once(self, certification: dict) -> bool:
        """Write `certification` (now closed) only if the stored one is still open; False
        when another thread or bot closed it first."""

    def close(self) -> None: ...


# The tables of access.certifications.json (TinyDB's default one is written when empty).
TABLES = frozenset({TinyDB.default_table_name, "certifications", "items"})


def path_beside(db_path: str | Path) -> Path:
    """Where the TinyDB certifications of the store at `db_path` are (backup finds it here)."""
    return Path(db_path).with_suffix(".certifications.json")


class TinyDBCertifications:
    """Certifications in a TinyDB file; one process (the data folder's lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = TinyDB(self.path, storage=AtomicJSONStorage, tables=TABLES)
        self.lock = threading.Lock()

    @classmethod
    def beside(cls, db_path: str | Path) -> TinyDBCertifications:
        """The file beside the request store's: `data/access.certifications.json`."""
        return cls(path_beside(db_path))

    def counts(self) -> tuple[int, int]:
        """(certifications, items) in the file: what a backup reports it holds."""
        with self.lock:
            return len(self.db.table("certifications")), len(self.db.table("items"))

    def save(self, certification: dict, items: list[dict] | None = None) -> None:
        with self.lock:
            self.db.table("certifications").upsert(certification, Query().id == certification["id"])
            if items:  # two writes of the file, not one per item
                table = self.db.table("items")
                table.remove(Query().id.one_of([i["id"] for i in items]))
                table.insert_multiple(items)

    def certification(self, certification_id: str) -> dict | None:
        with self.lock:
            return self.db.table("certifications").get(Query().id == certification_id)

    def certifications(self, open_only: bool = False) -> list[dict]:
        with self.lock:
            table = self.db.table("certifications")
            found = table.search(Query().state == "open") if open_only else table.all()
        return sorted((dict(c) for c in found), key=lambda c: c["opened_at"])

    def items(self, certification_id: str) -> list[dict]:
        with self.lock:
            found = self.db.table("items").search(Query().certification == certification_id)
        return sorted((dict(i) for i in found), key=lambda i: i["position"])

    def item(self, item_id: str) -> dict | None:
        with self.lock:
            found = self.db.table("items").get(Query().id == item_id)
        return None if found is None else dict(found)

    def decide(self, item: dict) -> bool:
        with self.lock:
            table = self.db.table("items")
            stored = table.get(Query().id == item["id"])
            if stored is None or stored.get("decision"):
                return False
            table.upsert(item, Query().id == item["id"])
            return True

    def save_item(self, item: dict) -> None:
        with self.lock:
            self.db.table("items").upsert(item, Query().id == item["id"])

    def close_once(self, certification: dict) -> bool:
        with self.lock:
            table = self.db.table("certifications")
            stored = table.get(Query().id == certification["id"])
            if stored is None or stored.get("state") != "open":
                return False
            table.upsert(certification, Query().id == certification["id"])
            return True

    def close(self) -> None:
        with self.lock:
            self.db.close()


class PostgresCertifications:
    """Certifications in PostgreSQL, shared by every bot (migration 9)."""

    def __init__(self, db):
        self.db = db

    def save(self, certification: dict, items: list[dict] | None = None) -> None:
        from psycopg.types.json import Jsonb

        with self.db.transaction() as conn:
            conn.execute(
                """
                INSERT INTO certifications (id, resource, state, opened_at, data)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, data = EXCLUDED.data
                """,
                (
                    certification["id"],
                    certification["resource"],
                    certification["state"],
                    certification["opened_at"],
                    Jsonb(certification),
                ),
            )
            for item in items or []:
                conn.execute(
                    """
                    INSERT INTO certification_items (id, certification_id, decision, data)
                    VALUES (%s, %s, %s, %s)
                    ON CONFLICT (id) DO UPDATE SET decision = EXCLUDED.decision,
                                                   data = EXCLUDED.data
                    """,
                    (item["id"], item["certification"], item.get("decision"), Jsonb(item)),
                )

    def certification(self, certification_id: str) -> dict | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT data FROM certifications WHERE id = %s", (certification_id,)
            ).fetchone()
        return None if row is None else row[0]

    def certifications(self, open_only: bool = False) -> list[dict]:
        where = "WHERE state = 'open'" if open_only else ""
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT data FROM certifications {where} ORDER BY opened_at, id"
            ).fetchall()
        return [row[0] for row in rows]

    def items(self, certification_id: str) -> list[dict]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT data FROM certification_items WHERE certification_id = %s",
                (certification_id,),
            ).fetchall()
        return sorted((row[0] for row in rows), key=lambda i: i["position"])

    def item(self, item_id: str) -> dict | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT data FROM certification_items WHERE id = %s", (item_id,)
            ).fetchone()
        return None if row is None else row[0]

    def decide(self, item: dict) -> bool:
        from psycopg.types.json import Jsonb

        with self.db.transaction() as conn:
            written = conn.execute(
                """
                UPDATE certification_items SET decision = %s, data = %s
                WHERE id = %s AND decision IS NULL
                """,
                (item["decision"], Jsonb(item), item["id"]),
            ).rowcount
        return written == 1

    def save_item(self, item: dict) -> None:
        from psycopg.types.json import Jsonb

        with self.db.connection() as conn:
            conn.execute(
                "UPDATE certification_items SET decision = %s, data = %s WHERE id = %s",
                (item.get("decision"), Jsonb(item), item["id"]),
            )

    def close_once(self, certification: dict) -> bool:
        from psycopg.types.json import Jsonb

        with self.db.transaction() as conn:
            written = conn.execute(
                """
                UPDATE certifications SET state = %s, data = %s
                WHERE id = %s AND state = 'open'
                """,
                (certification["state"], Jsonb(certification), certification["id"]),
            ).rowcount
        return written == 1

    def close(self) -> None:
        pass  # the Database is the backend's to close


def open_certifications(settings, backend) -> CertificationStore:
    """PostgreSQL when the backend is, else the TinyDB file beside ACCESS_DB_PATH."""
    db = getattr(backend, "db", None)
    if db is not None:
        return PostgresCertifications(db)
    return TinyDBCertifications.beside(settings.db_path)
