"""Small real issue trackers on 127.0.0.1: Jira's `GET /rest/api/{2,3}/issue/{key}` and
GitHub's `GET /repos/{owner}/{repo}/issues/{n}`, answering with the shapes their API
descriptions give (only the fields the bot reads, plus a few around them), checking
credentials (401 otherwise) and answering 404 for what they do not hold."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from urllib.parse import parse_qs, urlparse

from tests.fakes import FakeHandler, serve_local, stop_local

STATUS_CATEGORY = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}


class FakeTracker:
    """What both fakes share: their issues, the calls received, a failure to play."""

    def __init__(self):
        self.issues: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []  # (path, Authorization header)
        self.failure: int | None = None  # answer this HTTP status to every call
        self.delay = 0.0  # seconds before each answer (a real tracker's latency)
        self.lock = threading.Lock()
        fake = self

        class Handler(FakeHandler):
            def do_GET(self):
                url = urlparse(self.path)
                with fake.lock:
                    fake.calls.append((url.path, self.headers.get("Authorization", "")))
                    failure = fake.failure
                if fake.delay:
                    time.sleep(fake.delay)
                if failure:
                    self.respond(failure, b'{"message": "unavailable"}', "application/json")
                    return
                status, body = fake.answer(url.path, parse_qs(url.query), self.headers)
                self.respond(status, json.dumps(body).encode(), "application/json")

        self.server, self.url = serve_local(Handler)

    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    def close(self) -> None:
        stop_local(self.server)


class FakeJira(FakeTracker):
    """Jira Cloud (v3) and Data Center (v2) issue look-ups, Basic or Bearer auth."""

    def __init__(self, user: str = "bot@acme.com", token: str = "jira-token-123"):
        self.user, self.token = user, token
        super().__init__()

    def add(self, key: str, status: str = "In Progress", summary: str = "", assignee=None):
        with self.lock:
            self.issues[key] = {
                "status": status,
                "summary": summary or f"work on {key}",
                "assignee": assignee,
            }

    def move(self, key: str, status: str) -> None:
        with self.lock:
            self.issues[key]["status"] = status

    def _authorised(self, header: str) -> bool:
        basic = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        return header in (f"Basic {basic}", f"Bearer {self.token}")

    def answer(self, path, query, headers):
        match = re.fullmatch(r"/rest/api/([23])/issue/([A-Z][A-Z0-9_]+-[0-9]+)", path)
        if not self._authorised(headers.get("Authorization", "")):
            return 401, {"errorMessages": ["You are not authenticated."], "errors": {}}
        with self.lock:
            issue = self.issues.get(match.group(2)) if match else None
        if issue is None:
            return 404, {
                "errorMessages": ["Issue does not exist or you do not have permission to see it."],
                "errors": {},
            }
        key = match.group(2)
        assignee = None
        if issue["assignee"]:
            assignee = {
                "accountId": "5b10a2844c20165700ede21g",
                "emailAddress": issue["assignee"],
                "displayName": issue["assignee"].split("@")[0],
                "active": True,
            }
        return 200, {
            "id": "10002",
            "key": key,
            "self": f"{self.url}/rest/api/{match.group(1)}/issue/10002",
            "fields": {
                "summary": issue["summary"],
                "status": {
                    "name": issue["status"],
                    "id": "3",
                    "statusCategory": {
                        "key": STATUS_CATEGORY.get(issue["status"], "indeterminate"),
                        "name": issue["status"],
                    },
                },
                "assignee": assignee,
            },
        }


class FakeGitHubIssues(FakeTracker):
    """GitHub's issues of one or more repositories; a token is optional, a wrong one 401."""

    def __init__(self, token: str = "ghp_issues_token"):
        self.token = token
        super().__init__()

    def add(self, repo: str, number: int, state: str = "open", title: str = "", login=None):
        with self.lock:
            self.issues[f"{repo}#{number}"] = {
                "state": state,
                "title": title or f"issue {number}",
                "login": login,
            }

    def close_issue(self, repo: str, number: int) -> None:
        with self.lock:
            self.issues[f"{repo}#{number}"]["state"] = "closed"

    def answer(self, path, query, headers):
        header = headers.get("Authorization", "")
        if header and header != f"Bearer {self.token}":
            return 401, {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
            }
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/([0-9]+)", path)
        with self.lock:
            issue = self.issues.get(f"{match.group(1)}#{match.group(2)}") if match else None
        if issue is None:
            return 404, {
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest",
            }
        repo, number = match.group(1), int(match.group(2))
        return 200, {
            "id": 1,
            "number": number,
            "state": issue["state"],
            "title": issue["title"],
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "user": {"login": "octocat", "id": 1},
            "assignee": {"login": issue["login"], "id": 2} if issue["login"] else None,
            "labels": [],
        }
