"""Real receivers on 127.0.0.1 for the audit sinks: an HTTP collector that checks the
webhook signature, a Splunk HTTP Event Collector, and syslog listeners on UDP and TCP."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

from tests.fakes import FakeHandler, serve_local, signed_by, stop_local


class AuditReceiver:
    """Receives signed ndjson batches (`POST /audit`) like a SIEM's HTTP input would.

    `statuses` is what it answers, one per batch (the last repeats): 503 for a while, then
    200. It records every batch it acknowledged (`bodies`) and every attempt; a batch with
    a bad signature is refused with 401. `hold` (an Event) makes it hang until set.
    """

    def __init__(self, secret: str = "sink-secret", statuses: list[int] | None = None):
        self.secret = secret
        self.statuses = list(statuses or [200])
        self.bodies: list[bytes] = []
        self.attempts = 0
        self.refused = 0
        self.headers: list[dict] = []
        self.hold: threading.Event | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(FakeHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                if not signed_by(receiver.secret, self.headers, body, time.time()):
                    with receiver.lock:
                        receiver.refused += 1
                    self.respond(401, b"bad signature", "text/plain")
                    return
                with receiver.lock:
                    receiver.attempts += 1
                    status = (
                        receiver.statuses.pop(0)
                        if len(receiver.statuses) > 1
                        else (receiver.statuses[0])
                    )
                    if 200 <= status < 300:
                        receiver.bodies.append(body)
                        receiver.headers.append(dict(self.headers))
                self.respond(status, b"ok" if status < 300 else b"busy", "text/plain")

        self.server, base = serve_local(Handler)
        self.url = base + "/audit"

    def lines(self) -> list[bytes]:
        """Every line received, in the order received (without newlines)."""
        with self.lock:
            return [line for body in self.bodies for line in body.split(b"\n") if line]

    def copy(self, path) -> None:
        """What a collector would keep: the lines received, one per line."""
        path.write_bytes(b"".join(line + b"\n" for line in self.lines()))

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        stop_local(self.server)


class FakeSplunkHec:
    """Splunk's HTTP Event Collector (`POST /services/collector/event`): the token in
    `Authorization: Splunk <token>`, the body one or more JSON event objects each with an
    `event`; answers as Splunk does ({"text":"Success","code":0}, 401/403 and code 2/4 for
    a missing or wrong token, 400 and code 6 for a malformed event)."""

    def __init__(self, token: str = "hec-token"):
        self.token = token
        self.events: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(FakeHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization", "")
                if self.path != "/services/collector/event":
                    return self.answer(404, "Incorrect url", 404)
                if not auth.startswith("Splunk "):
                    return self.answer(401, "Token is required", 2)
                if auth != f"Splunk {fake.token}":
                    return self.answer(403, "Invalid token", 4)
                try:
                    events = list(_json_objects(body.decode()))
                except ValueError:
                    return self.answer(400, "Invalid data format", 6)
                if not events or not all(
                    isinstance(e, dict)
                    and isinstance(e.get("event"), dict)
                    and isinstance(e.get("time"), (int, float))
                    for e in events
                ):
                    return self.answer(400, "Event field is required", 12)
                with fake.lock:
                    fake.events += events
                return self.answer(200, "Success", 0)

            def answer(self, status: int, text: str, code: int):
                data = json.dumps({"text": text, "code": code}).encode()
                self.respond(status, data, "application/json")

        self.server, self.url = serve_local(Handler)

    def export(self, path) -> None:
        """A Splunk search exported as JSON (`output_mode=json`): one result per line,
        the event as Splunk keeps it in `_raw`."""
        with self.lock:
            rows = [
                {"preview": False, "result": {"_raw": json.dumps(e["event"]), "_time": e["time"]}}
                for e in self.events
            ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    def close(self) -> None:
        stop_local(self.server)


def _json_objects(text: str):
    """HEC's batch format: JSON objects one after another (whitespace between)."""
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return
        value, index = decoder.raw_decode(text, index)
        yield value


RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    rb"(?P<msgid>\S+) (?P<sd>-|\[.*?\]) (?P<msg>.*)$",
    re.DOTALL,
)


class SyslogListener:
    """A syslog server on 127.0.0.1: UDP (one message a datagram) or TCP with octet-counted
    framing (RFC 6587: `LEN SP MSG`). `messages` holds what arrived, whole."""

    def __init__(self, protocol: str = "udp"):
        self.protocol = protocol
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        if protocol == "tcp":
            self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.protocol == "udp":
                    data, _ = self.sock.recvfrom(65535)
                    self._add(data)
                else:
                    conn, _ = self.sock.accept()
                    threading.Thread(target=self._read_frames, args=(conn,), daemon=True).start()
            except (TimeoutError, OSError):
                continue

    def _read_frames(self, conn: socket.socket) -> None:
        buffer = b""
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b" " in buffer:
                    length, _, rest = buffer.partition(b" ")
                    if not length.isdigit() or len(rest) < int(length):
                        break
                    self._add(rest[: int(length)])
                    buffer = rest[int(length) :]

    def _add(self, message: bytes) -> None:
        with self.lock:
            self.messages.append(message)

    def parsed(self) -> list[re.Match]:
        with self.lock:
            return [RFC5424.match(m) for m in self.messages]

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


class HugeAnswer:
    """A receiver that answers every POST with `status` and a body of `size` bytes made as
    it is sent (`body` repeated; a JSON `prefix` before it and `suffix` after, so a Splunk
    refusal can carry a huge `text`). `sent` counts the bytes that reached the socket:
    a client that stops reading makes the server's writes fail long before the end."""

    def __init__(self, size: int, status: int = 200, prefix=b"", suffix=b"", chunked=False):
        self.sent = 0
        fake = self

        class Handler(FakeHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(prefix) + size + len(suffix)))
                self.end_headers()
                try:
                    for part in fake.parts(size, prefix, suffix):
                        if chunked:
                            part = b"%x\r\n%s\r\n" % (len(part), part)
                        self.wfile.write(part)
                        fake.sent += len(part)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client hung up: it read what it wanted

        self.server, self.url = serve_local(Handler)

    @staticmethod
    def parts(size: int, prefix: bytes, suffix: bytes):
        yield prefix
        block = b"x" * (1024 * 1024)
        left = size
        while left > 0:
            yield block[: min(left, len(block))]
            left -= len(block)
        yield suffix

    def close(self) -> None:
        stop_local(self.server)
