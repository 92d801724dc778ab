"""A small real PagerDuty REST API on 127.0.0.1: `GET /users`, `GET /users/{id}`,
`GET /oncalls`, `GET /incidents`, `GET /incidents/{id}`.

It answers with the JSON shapes PagerDuty documents, checks the `Authorization: Token
token=...` header (401 otherwise) and rejects query parameters the real API does not
take (400), so the real pdpyras client runs against it unchanged. `fail_with` makes it
misbehave: "500", "401", "429", "hang" (no answer until closed), "garbage" or "huge" (a
200 MB answer, made as it is sent; `sent` counts what reached the socket).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from urllib.parse import parse_qs, urlparse

from tests.fakes import FakeHandler, serve_local, stop_local

TOKEN = "pd-test-token-0123456789"

_PAGING = {"limit", "offset", "total"}
ALLOWED_PARAMS = {
    "/users": _PAGING | {"query", "include[]", "team_ids[]"},
    "/oncalls": _PAGING
    | {
        "user_ids[]",
        "schedule_ids[]",
        "escalation_policy_ids[]",
        "include[]",
        "since",
        "until",
        "earliest",
        "time_zone",
    },
    # https://developer.pagerduty.com/api-reference/9d0b4b12e36f9-list-incidents
    "/incidents": _PAGING
    | {
        "date_range",
        "incident_key",
        "include[]",
        "service_ids[]",
        "since",
        "sort_by",
        "statuses[]",
        "team_ids[]",
        "time_zone",
        "until",
        "urgencies[]",
        "user_ids[]",
    },
}
INCIDENT_STATUSES = {"triggered", "acknowledged", "resolved"}
DEFAULT_SINCE = "2026-10-24T09:00:00Z"  # a month before the tests' START
_FAILURES = {"500", "401", "429", "hang", "garbage", "huge"}
HUGE = 200 * 1024 * 1024


class FakePagerDuty:
    def __init__(self, token: str = TOKEN):
        self.token = token
        self.users: list[dict] = []
        self.oncalls: list[dict] = []
        self.incidents: list[dict] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []  # every call received
        self.failure: str | None = None
        self.failures_left: int | None = None  # None: fail until told otherwise
        self.lock = threading.Lock()
        self.sent = 0  # bytes of "huge" answers that reached the socket
        self._release = threading.Event()
        fake = self

        class Handler(FakeHandler):
            def do_GET(self):
                url = urlparse(self.path)
                params = parse_qs(url.query, keep_blank_values=True)
                failure = fake._take_failure()
                with fake.lock:
                    fake.requests.append((url.path, params))
                if failure == "hang":
                    fake._release.wait(30)
                    return
                if failure == "401" or self.headers.get("Authorization") != (
                    f"Token token={fake.token}"
                ):
                    self._json(401, {"error": {"message": "Unauthorized", "code": 2006}})
                    return
                if failure == "500":
                    self._json(500, {"error": {"message": "Internal Server Error", "code": 2000}})
                elif failure == "429":
                    self._json(429, {"error": {"message": "Rate Limit Exceeded", "code": 2020}})
                elif failure == "garbage":
                    self.respond(200, b"<html>upstream proxy error</html>", "text/html")
                elif failure == "huge":
                    self._huge()
                else:
                    status, body = fake._answer(url.path, params)
                    self._json(status, body)

            def _huge(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(HUGE + 12))
                self.end_headers()
                block = b" " * (1024 * 1024)
                try:
                    self.wfile.write(b'{"oncalls": ')
                    for _ in range(HUGE // len(block)):
                        self.wfile.write(block)
                        fake.sent += len(block)
                except OSError:
                    pass  # the client hung up

            def _json(self, status, body):
                self.respond(status, json.dumps(body).encode(), "application/json")

        self.server, self.url = serve_local(Handler)

    # -- arranging --------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, email: str) -> dict:
        user = {
            "id": user_id,
            "type": "user",
            "name": name,
            "summary": name,
            "email": email,
            "time_zone": "Europe/London",
            "role": "user",
            "self": f"{self.url}/users/{user_id}",
            "html_url": f"https://acme.pagerduty.com/users/{user_id}",
        }
        with self.lock:
            self.users.append(user)
        return user

    def put_on_call(
        self,
        user_id: str,
        schedule: str | None = None,
        escalation_policy: str = "PEP0001",
        level: int = 1,
    ) -> None:
        entry = {
            "escalation_policy": _ref("escalation_policy", escalation_policy, "Production"),
            "escalation_level": level,
            "schedule": _ref("schedule", schedule, "Primary") if schedule else None,
            "user": {"id": user_id},
            "start": "2026-11-24T08:00:00Z",
            "end": "2026-11-25T08:00:00Z",
        }
        with self.lock:
            self.oncalls.append(entry)

    def add_incident(
        self,
        incident_id: str,
        service: str,
        assignees: list[str],
        status: str = "triggered",
        created_at: str = "2026-11-24T08:30:00Z",
    ) -> dict:
        """An incident on `service` assigned to these user ids, shaped as PagerDuty's."""
        incident = {
            "id": incident_id,
            "type": "incident",
            "summary": f"[#{len(self.incidents) + 1}] database down",
            "self": f"{self.url}/incidents/{incident_id}",
            "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
            "incident_number": len(self.incidents) + 1,
            "title": "database down",
            "created_at": created_at,
            "status": status,
            "urgency": "high",
            "service": _ref("service", service, "Database"),
            "assignments": [
                {"at": created_at, "assignee": _ref("user", user_id, user_id)}
                for user_id in assignees
            ],
            "escalation_policy": _ref("escalation_policy", "PEP0001", "Production"),
        }
        with self.lock:
            self.incidents.append(incident)
        return incident

    def set_status(self, incident_id: str, status: str) -> None:
        """The incident moves on (acknowledged, resolved), as its responders would move it."""
        assert status in INCIDENT_STATUSES, status
        with self.lock:
            for incident in self.incidents:
                if incident["id"] == incident_id:
                    incident["status"] = status

    def fail_with(self, failure: str | None, times: int | None = None) -> None:
        """Misbehave on the next `times` calls (every call when None); None heals."""
        assert failure is None or failure in _FAILURES, failure
        with self.lock:
            self.failure = failure
            self.failures_left = times

    # -- reading ----------------------------------------------------------------------

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if path is None or p == path)

    def calls(self) -> Counter:
        with self.lock:
            return Counter(p for p, _ in self.requests)

    def close(self) -> None:
        self._release.set()
        stop_local(self.server)

    # -- the API ----------------------------------------------------------------------

    def _take_failure(self) -> str | None:
        with self.lock:
            failure = self.failure
            if failure and self.failures_left is not None:
                self.failures_left -= 1
                if self.failures_left <= 0:
                    self.failure, self.failures_left = None, None
            return failure

    def _answer(self, path: str, params: dict[str, list[str]]) -> tuple[int, dict]:
        if path.startswith("/users/") and path.count("/") == 2:
            user = self._user(path.rsplit("/", 1)[1])
            if user is None:
                return 404, {"error": {"message": "Not Found", "code": 2100}}
            return 200, {"user": user}
        if path.startswith("/incidents/") and path.count("/") == 2:
            # https://developer.pagerduty.com/api-reference/005299ba2ff09-get-an-incident
            with self.lock:
                incident_id = path.rsplit("/", 1)[1]
                found = next((i for i in self.incidents if i["id"] == incident_id), None)
            if found is None:
                return 404, {"error": {"message": "Not Found", "code": 2100}}
            return 200, {"incident": found}
        allowed = ALLOWED_PARAMS.get(path)
        if allowed is None:
            return 404, {"error": {"message": "Not Found", "code": 2100}}
        unknown = sorted(set(params) - allowed)
        if unknown:
            return 400, {
                "error": {
                    "message": "Invalid Input Provided",
                    "code": 2001,
                    "errors": [f"{name} is not a parameter of GET {path}" for name in unknown],
                }
            }
        with self.lock:
            if path == "/users":
                query = _one(params, "query").lower()
                found = [
                    u
                    for u in self.users
                    if query in u["email"].lower() or query in u["name"].lower()
                ]
                return 200, _page("users", found, params)
            if path == "/incidents":
                return self._incidents(params)
            found = [
                self._expand(o, "users" in params.get("include[]", []))
                for o in self.oncalls
                if _selected(o, "user", params.get("user_ids[]"))
                and _selected(o, "schedule", params.get("schedule_ids[]"))
                and _selected(o, "escalation_policy", params.get("escalation_policy_ids[]"))
            ]
            return 200, _page("oncalls", found, params)

    def _incidents(self, params: dict[str, list[str]]) -> tuple[int, dict]:
        """`GET /incidents`: without `date_range=all` or `since`, only the last month's
        (the API's default range; here the month before the tests' START)."""
        statuses = params.get("statuses[]") or []
        bad = sorted(set(statuses) - INCIDENT_STATUSES)
        if bad:
            return 400, {
                "error": {
                    "message": "Invalid Input Provided",
                    "code": 2001,
                    "errors": [f"statuses[] {status!r} is not a status" for status in bad],
                }
            }
        every_date = _one(params, "date_range") == "all"
        since = _one(params, "since") or DEFAULT_SINCE
        found = [
            i
            for i in self.incidents
            if (not statuses or i["status"] in statuses)
            and _selected(i, "service", params.get("service_ids[]"))
            and (
                not params.get("user_ids[]")
                or any(a["assignee"]["id"] in params["user_ids[]"] for a in i["assignments"])
            )
            and (every_date or i["created_at"] >= since)
        ]
        return 200, _page("incidents", found, params)

    def _user(self, user_id: str) -> dict | None:
        with self.lock:
            return next((u for u in self.users if u["id"] == user_id), None)

    def _expand(self, oncall: dict, include_users: bool) -> dict:
        user_id = oncall["user"]["id"]
        user = next((u for u in self.users if u["id"] == user_id), None)
        if include_users and user:
            expanded = dict(user)
        else:
            expanded = {
                "id": user_id,
                "type": "user_reference",
                "summary": user["name"] if user else user_id,
                "self": f"{self.url}/users/{user_id}",
                "html_url": f"https://acme.pagerduty.com/users/{user_id}",
            }
        return {**oncall, "user": expanded}


def _ref(kind: str, ref_id: str, name: str) -> dict:
    return {
        "id": ref_id,
        "type": f"{kind}_reference",
        "summary": name,
        "self": f"https://api.pagerduty.com/{kind}s/{ref_id}",
        "html_url": f"https://acme.pagerduty.com/{kind}s/{ref_id}",
    }


def _one(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name) or [""]
    return values[0]


def _selected(oncall: dict, key: str, wanted: list[str] | None) -> bool:
    if not wanted:
        return True
    ref = oncall.get(key)
    return bool(ref) and ref["id"] in wanted


def _page(wrapper: str, items: list[dict], params: dict[str, list[str]]) -> dict:
    limit = int(_one(params, "limit") or 25)
    offset = int(_one(params, "offset") or 0)
    page = items[offset : offset + limit]
    return {
        wrapper: page,
        "limit": limit,
        "offset": offset,
        "more": offset + limit < len(items),
        "total": len(items) if _one(params, "total") in ("true", "1") else None,
    }
