"""Crash safety for TinyDB, through TinyDB's own extension points (a Storage and a
Middleware, and a Table class); the TinyDB store (`store.TinyDBStore`) opens its
database with them:

    JournalDB("data/access.json", storage=JournalMiddleware(AtomicJSONStorage))

`JournalDB` is TinyDB whose tables (`JournalTable`) change the stored table in place, so
a write costs what it changes, not a pass over every document.

`AtomicJSONStorage` keeps the whole database as one JSON file, written by temp file +
fsync + `os.replace`, so a crash leaves the old file or the new one, never half of one.
It writes one document a line, so a person (or `grep`) can read it; TinyDB's own
`JSONStorage` reads it as it is.

TinyDB hands its storage the whole database at every write, which would rewrite every
live request to store one. `JournalMiddleware` keeps the database in memory and makes a
write durable by appending only the documents it changed, fsynced, to a write-ahead
journal beside the file (`access.journal.jsonl`, one `{"table", "doc_id", "doc"}` a
line; `doc` null for a removed document). It folds the journal into the file (a whole
database, written atomically) when the journal outgrows max(`fold_after`, documents),
when it opens a database whose journal holds anything (after a crash), and when it is
closed. So the file is always a complete TinyDB database of some recent moment, and
after a clean close it is the whole database.

The middleware learns which documents a write changes from its writer:
`with middleware.changing(table, doc_ids) as changed:` around the TinyDB calls
(`changed.add(id)` for documents inserted inside). A write it was not told about is
folded at once: correct, only slower.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage
from tinydb.table import Table

from . import integrity
from .durable import AppendFile, StoreError, atomic_write, damaged

log = logging.getLogger(__name__)

FOLD_AFTER = 1000  # journal lines before a fold, or the number of documents if larger
# The tables the store writes (`requests`: the layout before document ids, upgraded).
KNOWN_TABLES = frozenset({TinyDB.default_table_name, "requests"})

Render = Callable[[str, str, dict], str]  # (table, doc id, document) -> its JSON


def render(table: str, doc_id: str, doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


class AtomicJSONStorage(Storage):
    """TinyDB storage: the database as one JSON file, one document a line, replaced
    atomically (temp file, fsync, `os.replace`) at each write; a damaged file is a
    StoreError naming it."""

    def __init__(self, path: str | Path, tables: frozenset[str] = KNOWN_TABLES):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tables = tables  # what this file may hold: another table is damage
        self.told_unsealed = False  # the warning about a file without a digest, once

    def read(self) -> dict | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise damaged(self.path, line, "not UTF-8 text") from exc
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            body = text.rstrip()
            if exc.pos >= len(body):  # cut short (not by us: we replace it whole)
                raise damaged(self.path, body.count("\n") + 1, "the file ends early") from exc
            raise damaged(self.path, exc.lineno, exc.msg) from exc
        if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
            raise damaged(self.path, 1, "not a TinyDB database: an object of tables")
        del text  # the bytes are what the digest covers
        verdict, why = integrity.open_database(raw, data)
        if verdict == integrity.BROKEN:
            raise damaged(self.path, 1, why)
        unknown = sorted(set(data) - self.tables)
        if unknown:
            raise damaged(self.path, 1, f"a table this store never writes: {unknown[0]!r}")
        if verdict == integrity.UNSEALED and not self.told_unsealed:
            self.told_unsealed = True
            log.warning(
                "%s has no digest of its content (an older version wrote it): read as it "
                "is; the next fold writes one",
                self.path,
            )
        return data

    def write(self, data: dict, render: Render = render) -> None:
        tables = []
        for name, docs in data.items():
            lines = ",\n".join(
                f"{json.dumps(doc_id)}:{render(name, doc_id, doc)}" for doc_id, doc in docs.items()
            )
            tables.append(
                f"{json.dumps(name)}:{{\n{lines}\n}}" if lines else f"{json.dumps(name)}:{{}}"
            )
        body = ",\n".join(tables or [f"{json.dumps(TinyDB.default_table_name)}:{{}}"]) + "}\n"
        try:
            atomic_write(self.path, integrity.seal_database(body))
        except OSError as exc:
            raise StoreError(
                f"could not write {self.path}: {exc.strerror or exc}; nothing was changed"
            ) from exc

    def close(self) -> None:
        pass


class _IntIds(MutableMapping):
    """A stored table (ids as strings, as JSON keeps them) as TinyDB's write path sees
    it: integer document ids."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict):
        self.raw = raw

    def __getitem__(self, doc_id):
        return self.raw[str(doc_id)]

    def __setitem__(self, doc_id, doc) -> None:
        self.raw[str(doc_id)] = doc

    def __delitem__(self, doc_id) -> None:
        del self.raw[str(doc_id)]

    def __contains__(self, doc_id) -> bool:
        return str(doc_id) in self.raw

    def __iter__(self):
        return (int(key) for key in self.raw)

    def __len__(self) -> int:
        return len(self.raw)


class JournalTable(Table):
    """TinyDB's table, but a write changes the stored table in place: TinyDB's own write
    path (`Table._update_table`) copies the whole table twice to convert every id, a
    pass over all live requests for each write; this one costs what the write changes.
    The same documents and ids either way (tinydb is pinned in requirements.txt, as
    this replaces one of its internal methods)."""

    def _update_table(self, updater: Callable[[MutableMapping], None]) -> None:
        tables = self._storage.read()
        if tables is None:
            tables = {}
        updater(_IntIds(tables.setdefault(self.name, {})))
        self._storage.write(tables)
        self.clear_cache()


class JournalDB(TinyDB):
    """TinyDB with `JournalTable`s (open it with `storage=JournalMiddleware(...)`)."""

    table_class = JournalTable


class JournalMiddleware(Middleware):
    """TinyDB middleware: the database in memory, each write's changed documents
    appended to a journal (fsynced) before it returns, the journal folded into the
    storage now and then. See the module's docstring."""

    def __init__(self, storage_cls=AtomicJSONStorage, fold_after: int = FOLD_AFTER):
        super().__init__(storage_cls)
        self.fold_after = fold_after
        self.journal_path: Path | None = None
        self._journal: AppendFile | None = None
        self._data: dict = {}
        self._texts: dict[tuple[str, str], str] = {}  # JSON of each document, for folds
        self._lines = 0  # journal lines since the last fold
        self.folds = 0  # how many folds so far (the store writes its archive index then)
        self._told: set[str] | None = None  # inside `changing`: the documents it changes
        self._open = False

    def __call__(self, path: str | Path, *args, **kwargs):
        """TinyDB opens its storage: read the file, replay the journal, fold if needed."""
        super().__call__(path, *args, **kwargs)
        path = Path(path)
        self.journal_path = path.with_suffix(".journal.jsonl")
        self._journal = AppendFile(self.journal_path)
        self._data = self.storage.read() or {}
        self._replay()
        self._open = True
        if self._lines or not path.exists():
            self.fold()
        return self

    def read(self) -> dict:
        return self._data

    def write(self, data: dict) -> None:
        self._data = data
        if self._told is None:
            self._texts.clear()  # a change it was not told about: fold the whole database
            self.fold()

    @contextmanager
    def changing(self, table: str, doc_ids: Iterable[int]) -> Iterator[set]:
        """Around TinyDB calls that change only these documents of `table` (and those
        `add`ed to the set it yields, e.g. inserted ids): at the end they are appended to
        the journal, fsynced, in one write. If that fails (StoreError) or the block
        raises, the database in memory is as it was before."""
        told = {str(i) for i in doc_ids}
        raw = self._data.setdefault(table, {})
        # TinyDB updates a document in place: let it change copies, keep the originals.
        saved = {k: raw[k] for k in told if k in raw}
        for key, doc in saved.items():
            raw[key] = dict(doc)
        self._told = told
        try:
            yield told
            self._journal_changes(table, told)
        except BaseException:
            # Back as it was, whether the table was changed in place (JournalTable) or
            # replaced by a new one (TinyDB's own Table).
            self._data[table] = raw
            for key in told:
                raw.pop(str(key), None)
                self._texts.pop((table, str(key)), None)
            raw.update(saved)
            raise
        finally:
            self._told = None
        if self._lines > max(self.fold_after, len(self._data.get(table, ()))):
            try:
                self.fold()
            except StoreError as exc:  # the journal holds every write; the next one tries again
                log.warning(
                    "could not fold %s into %s: %s", self.journal_path, self.storage.path, exc
                )

    def _journal_changes(self, table: str, told: set) -> None:
        docs = self._data.get(table, {})
        name = json.dumps(table)
        lines, texts = [], {}
        for key in sorted({str(k) for k in told}, key=int):  # ids as TinyDB stores them
            doc = docs.get(key)
            text = "null" if doc is None else render(table, key, doc)
            texts[(table, key)] = text
            line = f'{{"table":{name},"doc_id":{int(key)},"doc":{text}}}'
            lines.append(integrity.seal_line(line) + "\n")
        if not lines:
            return
        # An error names the database file: the journal is part of it.
        self._journal.append("".join(lines).encode(), self.storage.path)
        self._lines += len(lines)
        for key, text in texts.items():
            if text == "null":
                self._texts.pop(key, None)
            else:
                self._texts[key] = text

    def fold(self) -> None:
        """Write the whole database to the storage (atomically) and empty the journal.
        A crash between the two replays the journal onto a file that already holds its
        changes: the same database again."""
        self.storage.write(self._data, render=self._render)
        try:
            self._journal.empty()
        except OSError as exc:
            raise StoreError(f"could not empty {self.journal_path}: {exc.strerror or exc}") from exc
        self._lines = 0
        self.folds += 1

    def _render(self, table: str, doc_id: str, doc: dict) -> str:
        text = self._texts.get((table, doc_id))
        if text is None:
            text = self._texts[(table, doc_id)] = render(table, doc_id, doc)
        return text

    def close(self) -> None:
        if self._open:
            self._open = False
            if self._lines:
                self.fold()
        self.storage.close()

    def _replay(self) -> None:
        """Apply the journal's lines to the database read; a torn last line (a crash
        mid-append, never acknowledged) is cut."""
        path = self.journal_path
        if not path.exists():
            self._journal.end = 0
            return
        integrity.finish_sealed_tail(path)
        offset = good_end = 0
        sealed = unsealed = 0
        with open(path, "rb") as handle:
            for line in handle:
                offset += len(line)
                if not line.endswith(b"\n"):
                    continue
                try:
                    verdict = integrity.line_verdict(line[:-1])
                    if verdict == integrity.BROKEN:
                        raise ValueError("its content does not match its digest")
                    if verdict == integrity.UNSEALED and sealed:
                        raise ValueError("no digest, after lines with one")
                    sealed += verdict == integrity.SEALED
                    unsealed += verdict == integrity.UNSEALED
                    record = json.loads(line)
                    extra = set(record) - {"table", "doc_id", "doc", integrity.LINE_KEY}
                    if extra:
                        raise KeyError(f"unknown key {sorted(extra)[0]!r}")
                    table, key, doc = record["table"], str(int(record["doc_id"])), record["doc"]
                    if table not in KNOWN_TABLES:
                        raise ValueError(f"a table this store never writes: {table!r}")
                    if doc is not None and not isinstance(doc, dict):
                        raise TypeError("its document is not an object")
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise StoreError(
                        f"{path} has a damaged line at byte {offset - len(line)} ({exc}). "
                        "The bot will not start on a damaged store: restore the data "
                        "directory from a backup."
                    ) from exc
                docs = self._data.setdefault(table, {})
                if doc is None:
                    docs.pop(key, None)
                else:
                    docs[key] = doc
                self._lines += 1
                good_end = offset
        if unsealed:
            log.warning(
                "%s: %d line(s) without a digest (an older version wrote them): read as they are",
                path,
                unsealed,
            )
        self._journal.cut_torn_tail(good_end, offset)
