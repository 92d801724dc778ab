"""An in-memory request store behind the same port (`store.RequestStore`): the same
indexes and answers as the TinyDB store (live_index.py), the version check, the
archive, standing-access documents, audit sink cursors and claims, with nothing on
disk. For tests of the service that need no durability, and for the benches.

`reopen()` plays a restart: a new store holding what was saved (live and finished
requests, standing documents, sink cursors), with its claims and transaction gone, as a
bot started again on the same files would find them."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator, MutableSet
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from .domain import Request
from .live_index import IndexedStore
from .store import SinkCursor


class MemoryStore(IndexedStore):
    """Requests, standing documents and sink cursors in dictionaries; one process."""

    def __init__(self):
        super().__init__()
        self._archive: dict[str, Request] = {}  # finished, latest version; in archive order
        self._standing: dict[str, dict] = {}
        self._cursors: dict[str, SinkCursor] = {}
        self._cursors_lock = threading.Lock()

    def reopen(self) -> MemoryStore:
        """A new store with what this one saved, as after a restart (this one is closed)."""
        with self.lock:
            again = MemoryStore()
            for request in self._archive.values():
                again._write([request.copy()])
            again._write([r.copy() for r in self._live.values()])
            again._standing = copy.deepcopy(self._standing)
            again._cursors = dict(self._cursors)
            self.close()
            return again

    # -- where the requests are --------------------------------------------------------

    def _archived(self, request_id: str) -> Request | None:
        with self.lock:
            request = self._archive.get(request_id)
            return None if request is None else request.copy()

    def _is_archived(self, request_id: str) -> bool:
        return request_id in self._archive

    def _write(self, requests: list[Request]) -> None:
        for request in requests:
            if request.is_final:
                first = request.id not in self._archive
                self._archive.pop(request.id, None)  # saved again: last in archive order
                self._archive[request.id] = request
                self._finish(request, first)
            else:
                self._take(request)

    def archived(self) -> Iterator[Request]:
        """Every finished request once, in its latest version, in the order last saved."""
        with self.lock:
            found = [r.copy() for r in self._archive.values()]
        yield from found

    # -- the rest of the port -----------------------------------------------------------

    def transaction(self) -> AbstractContextManager:
        return nullcontext()  # one process: the service's lock is all it takes

    def claims(self) -> MutableSet[str]:
        return set()

    def standing(self) -> dict[str, dict]:
        with self.lock:
            return copy.deepcopy(self._standing)

    def save_standing(self, resource: str, state: dict | None) -> None:
        with self.lock:
            if state is None:
                self._standing.pop(resource, None)
            else:  # as the TinyDB store keeps it: JSON
                self._standing[resource] = json.loads(json.dumps(state, default=str))

    def sink_cursor(self, name: str) -> SinkCursor | None:
        with self._cursors_lock:
            return self._cursors.get(name)

    def save_sink_cursor(self, cursor: SinkCursor) -> None:
        with self._cursors_lock:
            stored = self._cursors.get(cursor.name)
            if stored is not None and stored.seq > cursor.seq:
                cursor = replace(
                    cursor, seq=stored.seq, hash=stored.hash, shipped_at=stored.shipped_at
                )
            self._cursors[cursor.name] = cursor

    def close(self) -> None:
        """Nothing to let go of: what it holds stays for `reopen`."""
