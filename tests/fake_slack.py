"""A small Slack Web API on 127.0.0.1: usergroups.list and usergroups.users.list, as
documented (POST, form or JSON body, `Authorization: Bearer <token>`, answers
`{"ok": ...}`), so the real slack_sdk WebClient runs against it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from urllib.parse import parse_qs

from tests.fakes import FakeHandler, serve_local, stop_local
from tests.slack_tiers import SlackTiers

TOKEN = "xoxb-test-token"


class FakeSlack:
    def __init__(self, token: str = TOKEN):
        self.token = token
        self.groups: list[dict] = []  # {"id", "handle", "users", "date_delete"}
        self.error: str | None = None  # answer every call with {"ok": false, "error": ...}
        self.tiers: SlackTiers | None = None  # Slack's rate limits (429 + Retry-After) when set
        self._calls: Counter = Counter()
        self.lock = threading.Lock()
        fake = self

        class Handler(FakeHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    params = json.loads(body or "{}")
                else:
                    params = {k: v[0] for k, v in parse_qs(body).items()}
                method = self.path.rsplit("/", 1)[-1]
                with fake.lock:
                    fake._calls[method] += 1
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._json({"ok": False, "error": "invalid_auth"})
                    return
                retry_after = fake.tiers.take(method) if fake.tiers else 0
                if retry_after:
                    body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                    self.respond(429, body, "application/json", [("Retry-After", str(retry_after))])
                    return
                self._json(fake._answer(method, params))

            def _json(self, data):
                # Slack answers 200 with ok: false on errors
                self.respond(200, json.dumps(data).encode(), "application/json")

        self.server, base = serve_local(Handler)
        self.url = base + "/api/"

    def add_group(self, group_id: str, handle: str, users: list[str], deleted: bool = False):
        with self.lock:
            self.groups.append(
                {
                    "id": group_id,
                    "handle": handle,
                    "users": users,
                    "date_delete": 1 if deleted else 0,
                }
            )

    def calls(self) -> Counter:
        with self.lock:
            return Counter(self._calls)

    def _answer(self, method: str, params: dict) -> dict:
        with self.lock:
            if self.error:
                return {"ok": False, "error": self.error}
            if method == "usergroups.list":
                return {
                    "ok": True,
                    "usergroups": [
                        {
                            "id": g["id"],
                            "team_id": "T0001",
                            "name": g["handle"].title(),
                            "handle": g["handle"],
                            "date_delete": g["date_delete"],
                            "user_count": len(g["users"]),
                        }
                        for g in self.groups
                    ],
                }
            if method == "usergroups.users.list":
                group = next((g for g in self.groups if g["id"] == params.get("usergroup")), None)
                if group is None:
                    return {"ok": False, "error": "no_such_subteam"}
                return {"ok": True, "users": list(group["users"])}
            return {"ok": False, "error": "unknown_method"}

    def close(self) -> None:
        stop_local(self.server)
