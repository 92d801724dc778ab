"""A TCP proxy in front of PostgreSQL that a test can cut, hang and open again: one bot's
own way to the database, so a test decides which bot sees it when (a real server behind
it, a real socket in front; nothing mocked).

- `cut()`: every connection is closed and new ones are refused, as a database that is
  down or a network that is gone.
- `hang()`: connections are accepted and kept, but nothing goes through either way, as a
  database that stopped answering (a query waits until something gives up).
- `open()`: back to passing everything through.
"""

from __future__ import annotations

import socket
import threading


class Proxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.host = host
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._hung = threading.Event()  # set: nothing is relayed
        self._listener: socket.socket | None = None
        self._listen(0)
        self.port = self._listener.getsockname()[1]

    def url(self, db_url: str) -> str:
        """`db_url` (a database on the target server) reached through this proxy."""
        head, _, rest = db_url.partition("@")
        _, _, path = rest.partition("/")
        return f"{head}@{self.host}:{self.port}/{path}"

    # -- switches ------------------------------------------------------------------------

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for conn in conns:
            _close(conn)

    def hang(self) -> None:
        self._hung.set()

    def open(self) -> None:
        self._hung.clear()
        with self._lock:
            if self._listener is not None:
                return
        self._listen(self.port)

    def close(self) -> None:
        self.cut()

    # -- the relay -------------------------------------------------------------------------

    def _listen(self, port: int) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._conns += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self._hung.is_set():  # held back, not dropped: a database that hangs
                    threading.Event().wait(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
