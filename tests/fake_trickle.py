"""A webhook receiver that trickles its answer: the target of issue 26 item 3.

It grants at once (200, `{"account": ...}`); a `revoke` (or each of `trickled`) is
answered as `mode` says:
- "body": the status line and headers at once, then the body one byte a second (a
  Content-Length of a few kB, so the answer never ends within a test);
- "headers": the status line and headers themselves one byte a second;
- "ok": at once, 200 (the target recovered).
No read timeout of the caller ever trips: a byte always comes within a second.
`revokes` counts the revoke calls that reached it.
"""

from __future__ import annotations

import json
import threading

from tests.fakes import FakeHandler, serve_local, stop_local

TRICKLE_EVERY = 1.0  # seconds between two bytes
BODY_LENGTH = 4096  # what the trickled body claims: more than an hour at a byte a second


class TricklingTarget:
    def __init__(self, mode: str = "body", trickled: tuple[str, ...] = ("revoke",)):
        self.mode = mode
        self.trickled = trickled  # the actions answered as `mode` says; the rest at once
        self.revokes = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        target = self

        class Handler(FakeHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                call = json.loads(body)
                if call.get("action") not in target.trickled:
                    answer = json.dumps({"account": f"acct-{call['user']}"}).encode()
                    self.respond(200, answer, "application/json")
                    return
                with target.lock:
                    target.revokes += 1
                    mode = target.mode
                if mode == "ok":
                    self.respond(200, b"{}", "application/json")
                    return
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {BODY_LENGTH}\r\n\r\n"
                ).encode()
                if mode == "body":
                    self.wfile.write(head)
                    self.wfile.flush()
                    self.trickle(b"{" + b" " * (BODY_LENGTH - 1))
                else:
                    self.trickle(head + b"{}")

            def trickle(self, data: bytes) -> None:
                """One byte a second until the caller hangs up or the target stops."""
                for byte in data:
                    if target.stopping.wait(TRICKLE_EVERY):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return  # the caller gave up and closed the connection
                self.close_connection = True

        self.server, base = serve_local(Handler)
        self.url = base + "/access"

    def recover(self) -> None:
        """From now on a revoke is answered at once."""
        with self.lock:
            self.mode = "ok"

    def count(self) -> int:
        with self.lock:
            return self.revokes

    def close(self) -> None:
        self.stopping.set()
        stop_local(self.server)
