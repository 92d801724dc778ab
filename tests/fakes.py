"""Small real HTTP servers on 127.0.0.1 that speak the documented APIs."""

from __future__ import annotations

import hashlib
import hmac
import json
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    """The fakes' HTTP server: one thread a connection, a deep backlog (the scheduler and
    concurrent tests connect many at once; the default backlog is 5), and a stop that
    takes no time: its loop sleeps in select() until a connection or `stop()` wakes it,
    where socketserver's serve_forever() would only notice a shutdown at its next poll."""

    daemon_threads = True
    block_on_close = False  # a handler still answering is a daemon thread: never waited for
    request_queue_size = 128

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self._stopping = False
        self._stopped = threading.Event()
        self._wake, self._waker = socket.socketpair()

    def serve(self) -> None:
        """Answer connections until `stop()`."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake, selectors.EVENT_READ)
            try:
                while not self._stopping:
                    for key, _ in selector.select():
                        if key.fileobj is self and not self._stopping:
                            self._handle_request_noblock()
            finally:
                self._stopped.set()

    def stop(self) -> None:
        """Stop serving at once and close the listening socket."""
        self._stopping = True
        self._waker.send(b"x")
        self._stopped.wait()
        self.server_close()
        self._wake.close()
        self._waker.close()


class FakeHandler(BaseHTTPRequestHandler):
    """A fake service's request handler: silent, with one way to answer."""

    def respond(self, status: int, data: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serve_local(handler) -> tuple[LocalServer, str]:
    """Serve `handler` on a free port of 127.0.0.1 from a daemon thread; returns the
    server (stop it with `stop_local`) and its base URL, without a trailing slash."""
    server = LocalServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop_local(server: LocalServer) -> None:
    server.stop()


def signed_by(secret: str, headers, body: bytes, now: float, max_age: int = 300) -> bool:
    """Does the body carry the webhook signature of `secret` (README, "The webhook contract"):
    `X-Access-Signature` = sha256=HMAC-SHA256 of `"<X-Access-Timestamp>." + body`, the
    timestamp within `max_age` seconds of `now`? As a real receiver checks it."""
    stamp = headers.get("X-Access-Timestamp", "")
    signed = stamp.encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = stamp.isdigit() and abs(now - int(stamp)) <= max_age
    return fresh and hmac.compare_digest(headers.get("X-Access-Signature", ""), expected)


class WebhookTarget:
    """A webhook receiver that checks the signature like a real target would (README's
    webhook contract): `X-Access-Signature` is HMAC-SHA256 of `"<X-Access-Timestamp>." + body`,
    and a timestamp more than 5 minutes from `clock()` is refused.

    `status` is what it answers (a list is consumed one per call, then its last value
    repeats); `delay` makes it slow; `answer` is a JSON body for 2xx answers; `location`
    is sent with 3xx answers; `GET /login` is a login page that answers 200. `calls` keeps every accepted JSON body, `headers_seen` the
    headers of every signed call. Every body must carry `idempotency_key`, the header's
    `Idempotency-Key` (400 otherwise); `calls`, `lists` and `on_call` get the body without it.

    `list` calls (the standing-access sweep) are answered apart, and recorded in `lists`,
    not `calls`: from `members` (`{"user", "user_email", "account"}` dicts), or with
    `list_status` (501 while `members` is None: it cannot list).
    """

    MAX_AGE = 300

    def __init__(
        self,
        secret: str,
        status: int | list[int] = 200,
        delay: float = 0.0,
        clock=time.time,
    ):
        self.secret = secret
        self.statuses = list(status) if isinstance(status, list) else [status]
        self.delay = delay
        self.clock = clock
        self.answer: dict | None = None
        self.location: str | None = None
        self.calls: list[dict] = []
        self.headers_seen: list[dict] = []
        self.logins = 0  # calls that reached the login page
        self.on_call = None  # a test's hook, called with each signed body before answering
        self.rejected: list[str] = []
        self.members: list[dict] | None = None
        self.list_status: int | None = None
        self.lists: list[dict] = []
        self.lock = threading.Lock()
        # The hang switch (`hang`, `release`): calls of the named actions wait, counted in
        # `held` (request ids waiting now) and `most_held` (the most at once).
        self.hanging: set[str] = set()
        self.released = threading.Event()
        self.held: list[str] = []
        self.most_held = 0
        target = self

        class Handler(FakeHandler):
            def do_GET(self):
                """A login page, as an SSO proxy in front of a receiver redirects to."""
                with target.lock:
                    target.logins += 1
                self.respond(200, b"<html>Sign in</html>", "text/html")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/login"):
                    self.do_GET()
                    return
                if not signed_by(target.secret, self.headers, body, target.clock()):
                    with target.lock:
                        target.rejected.append(self.headers.get("X-Access-Signature", ""))
                    self.respond(401, b"bad signature", "text/plain")
                    return
                call = json.loads(body)
                if call.pop("idempotency_key", None) != self.headers.get("Idempotency-Key"):
                    with target.lock:
                        target.rejected.append("idempotency_key")
                    self.respond(400, b"idempotency_key differs from the header", "text/plain")
                    return
                if call.get("action") == "list":
                    self.answer_list(call)
                    return
                if target.delay:
                    time.sleep(target.delay)
                target.hold(call)
                if target.on_call is not None:
                    target.on_call(dict(call))
                with target.lock:
                    target.headers_seen.append(dict(self.headers))
                    status = (
                        target.statuses.pop(0) if len(target.statuses) > 1 else target.statuses[0]
                    )
                    if 200 <= status < 300:
                        target.calls.append(dict(call))
                if 200 <= status < 300 and target.answer is not None:
                    self.respond(status, json.dumps(target.answer).encode(), "application/json")
                elif 300 <= status < 400:
                    where = [("Location", target.location)] if target.location else []
                    self.respond(status, b"", "text/plain", where)
                else:
                    self.respond(
                        status, b"ok" if status < 300 else b"target exploded", "text/plain"
                    )

            def answer_list(self, call):
                with target.lock:
                    target.lists.append(call)
                    members = None if target.members is None else list(target.members)
                    status = target.list_status or (501 if members is None else 200)
                if status == 200:
                    data = json.dumps({"members": members}).encode()
                    self.respond(200, data, "application/json")
                else:
                    self.respond(status, b"cannot list", "text/plain")

        self.server, base = serve_local(Handler)
        self.base = base
        self.url = base + "/access"

    def set_status(self, *statuses: int) -> None:
        with self.lock:
            self.statuses = list(statuses)

    def hang(self, *actions: str) -> None:
        """Calls of these actions (say "revoke") wait until `release()`, like a target
        that stopped answering (the caller's timeout still applies)."""
        with self.lock:
            self.hanging = set(actions)
            self.released.clear()

    def release(self) -> None:
        with self.lock:
            self.hanging = set()
        self.released.set()

    def hold(self, call: dict) -> None:
        with self.lock:
            if call.get("action") not in self.hanging:
                return
            self.held.append(call.get("request_id"))
            self.most_held = max(self.most_held, len(self.held))
        self.released.wait(30)
        with self.lock:
            self.held.remove(call.get("request_id"))

    def count_all(self, action: str) -> int:
        return sum(1 for a, _ in self.actions() if a == action)

    def count(self, action: str, request_id: str) -> int:
        return self.actions().count((action, request_id))

    def actions(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(c["action"], c["request_id"]) for c in self.calls]

    def close(self) -> None:
        stop_local(self.server)
