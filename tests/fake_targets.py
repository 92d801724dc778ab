"""Small real HTTP servers on 127.0.0.1 for the access targets: Okta, GitHub, and the
JSON protocol of AWS IAM Identity Center (for what moto cannot show: a provisioning
request that stays IN_PROGRESS, or fails).

Each keeps its state in plain dicts the test arranges and inspects, records every call
as `(method, path)`, and can be told to answer the next calls with canned responses
(`script(...)`), e.g. a 429 with Retry-After, or to hold an answer (`hang`) to prove a
timeout.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import unquote, urlparse

from tests.fakes import FakeHandler, serve_local, stop_local


class JsonApi:
    """A JSON HTTP server: subclasses list `routes` of (method, regex, handler name)."""

    routes: list[tuple[str, str, str]] = []

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[dict | None] = []
        self.headers_seen: list[dict] = []
        self.scripted: list[tuple[int, dict, object]] = []
        self.hang = threading.Event()  # set by a test: calls wait until `release`
        self.released = threading.Event()
        api = self
        compiled = [(m, re.compile(f"^{p}$"), h) for m, p, h in self.routes]

        class Handler(FakeHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = urlparse(self.path).path
                with api.lock:
                    api.calls.append((self.command, path))
                    api.bodies.append(body)
                    api.headers_seen.append(dict(self.headers))
                    canned = api.scripted.pop(0) if api.scripted else None
                if api.hang.is_set():
                    api.released.wait(10)
                if canned is None:
                    canned = api.route(self.command, path, body, self.headers, compiled)
                status, headers, payload = canned
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.respond(status, data, "application/json", headers.items())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_PUT = do_DELETE = do_POST = _serve

        self.server, self.url = serve_local(Handler, poll_interval=0.02)

    def route(self, method, path, body, headers, compiled):
        denied = self.check_auth(headers)
        if denied:
            return denied
        for route_method, pattern, handler in compiled:
            match = pattern.match(path)
            if match and route_method == method:
                with self.lock:
                    return getattr(self, handler)(
                        *[unquote(g) for g in match.groups()], body=body, headers=headers
                    )
        return 404, {}, {"message": "Not Found"}

    def check_auth(self, headers):
        return None

    def script(self, status: int, body=None, **headers: str) -> None:
        """Answer the next call with this, whatever it is (queued, one per call)."""
        with self.lock:
            self.scripted.append(
                (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)
            )

    def methods(self) -> list[str]:
        with self.lock:
            return [f"{m} {p}" for m, p in self.calls]

    def close(self) -> None:
        self.released.set()
        stop_local(self.server)


class FakeOkta(JsonApi):
    """Okta's users and group-membership API, with SSWS token checks."""

    routes = [
        ("GET", r"/api/v1/users/([^/]+)", "get_user"),
        ("GET", r"/api/v1/groups/([^/]+)", "get_group"),
        ("PUT", r"/api/v1/groups/([^/]+)/users/([^/]+)", "add_member"),
        ("DELETE", r"/api/v1/groups/([^/]+)/users/([^/]+)", "remove_member"),
    ]

    def __init__(self, token: str = "okta-t0ken"):
        self.token = token
        self.users: dict[str, str] = {}  # login (e-mail) -> user id
        self.groups: dict[str, set[str]] = {}  # group id -> member user ids
        super().__init__()

    @staticmethod
    def error(status: int, code: str, summary: str):
        return status, {}, {"errorCode": code, "errorSummary": summary, "errorCauses": []}

    def check_auth(self, headers):
        if headers.get("Authorization") != f"SSWS {self.token}":
            return self.error(401, "E0000011", "Invalid token provided")
        return None

    def get_user(self, login, **_):
        if login not in self.users:
            return self.error(404, "E0000007", f"Not found: Resource not found: {login} (User)")
        return 200, {}, {"id": self.users[login], "profile": {"login": login, "email": login}}

    def get_group(self, group_id, **_):
        if group_id not in self.groups:
            return self.error(
                404, "E0000007", f"Not found: Resource not found: {group_id} (UserGroup)"
            )
        return 200, {}, {"id": group_id, "profile": {"name": "Prod admins"}}

    def add_member(self, group_id, user_id, **_):
        if group_id not in self.groups or user_id not in self.users.values():
            return self.error(404, "E0000007", "Not found: Resource not found")
        self.groups[group_id].add(user_id)
        return 204, {}, None

    def remove_member(self, group_id, user_id, **_):
        if user_id not in self.groups.get(group_id, set()):
            return self.error(404, "E0000007", "Not found: Resource not found")
        self.groups[group_id].discard(user_id)
        return 204, {}, None


class FakeGitHub(JsonApi):
    """GitHub's team-membership, collaborator and invitation endpoints."""

    routes = [
        ("GET", r"/orgs/([^/]+)/teams/([^/]+)", "get_team"),
        ("PUT", r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", "add_member"),
        ("DELETE", r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", "remove_member"),
        ("GET", r"/repos/([^/]+)/([^/]+)", "get_repo"),
        ("PUT", r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)", "add_collaborator"),
        ("DELETE", r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)", "remove_collaborator"),
        ("GET", r"/repos/([^/]+)/([^/]+)/invitations", "list_invitations"),
        ("DELETE", r"/repos/([^/]+)/([^/]+)/invitations/(\d+)", "delete_invitation"),
    ]

    def __init__(self, token: str = "gh-t0ken"):
        self.token = token
        self.logins: set[str] = set()  # users that exist on GitHub
        self.org_members: set[str] = set()  # added to teams at once; others get invited
        self.teams: dict[tuple[str, str], dict[str, str]] = {}  # -> login -> state
        self.repos: dict[str, dict[str, str]] = {}  # "owner/name" -> login -> permission
        self.invitations: dict[str, list[dict]] = {}  # "owner/name" -> invitations
        self._next_invitation = 1
        super().__init__()

    def check_auth(self, headers):
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs"}
        return None

    def get_team(self, org, team, **_):
        if (org, team) not in self.teams:
            return 404, {}, {"message": "Not Found"}
        return 200, {}, {"slug": team, "organization": {"login": org}}

    def add_member(self, org, team, login, **_):
        if (org, team) not in self.teams or login not in self.logins:
            return 404, {}, {"message": "Not Found"}
        state = "active" if login in self.org_members else "pending"
        self.teams[(org, team)][login] = state
        return 200, {}, {"role": "member", "state": state}

    def remove_member(self, org, team, login, **_):
        members = self.teams.get((org, team), {})
        if login not in members:
            return 404, {}, {"message": "Not Found"}
        del members[login]
        return 204, {}, None

    def get_repo(self, owner, name, **_):
        if f"{owner}/{name}" not in self.repos:
            return 404, {}, {"message": "Not Found"}
        return 200, {}, {"full_name": f"{owner}/{name}"}

    def add_collaborator(self, owner, name, login, body, **_):
        repo = f"{owner}/{name}"
        if repo not in self.repos or login not in self.logins:
            return 404, {}, {"message": "Not Found"}
        permission = (body or {}).get("permission", "push")
        if permission not in ("pull", "triage", "push", "maintain", "admin"):
            return 422, {}, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}
        if login in self.org_members:
            self.repos[repo][login] = permission
            return 204, {}, None
        invitation = {"id": self._next_invitation, "invitee": {"login": login}}
        self._next_invitation += 1
        self.invitations.setdefault(repo, []).append(invitation)
        return 201, {}, {"id": invitation["id"], "permissions": permission}

    def remove_collaborator(self, owner, name, login, **_):
        repo = self.repos.get(f"{owner}/{name}", {})
        if login not in repo:
            return 404, {}, {"message": "Not Found"}
        del repo[login]
        return 204, {}, None

    def list_invitations(self, owner, name, **_):
        return 200, {}, list(self.invitations.get(f"{owner}/{name}", []))

    def delete_invitation(self, owner, name, invitation_id, **_):
        pending = self.invitations.get(f"{owner}/{name}", [])
        self.invitations[f"{owner}/{name}"] = [i for i in pending if i["id"] != int(invitation_id)]
        return 204, {}, None


class FakeIdentityCenter(JsonApi):
    """sso-admin and identitystore over AWS's JSON 1.1 protocol (`X-Amz-Target`).

    Assignment requests stay IN_PROGRESS for `polls_in_progress` status checks, then end
    in `outcome` ("SUCCEEDED" or "FAILED" with `failure_reason`).
    """

    routes = [("POST", r"/", "dispatch")]

    def __init__(self):
        self.users: dict[str, str] = {}  # user name -> user id
        self.assignments: set[tuple[str, str, str]] = set()  # (account, permission set, user)
        self.polls_in_progress = 0
        self.outcome = "SUCCEEDED"
        self.failure_reason = ""
        self.requests: dict[str, dict] = {}
        self.targets: list[str] = []
        super().__init__()

    def dispatch(self, body, headers, **_):
        target = headers.get("X-Amz-Target", "")
        operation = target.split(".")[-1]
        self.targets.append(operation)
        handler = getattr(self, "op_" + operation, None)
        if handler is None:
            return 400, {}, {"__type": "UnknownOperationException", "message": operation}
        return handler(body or {})

    def op_GetUserId(self, body):
        name = body["AlternateIdentifier"]["UniqueAttribute"]["AttributeValue"]
        if name not in self.users:
            return 400, {}, {"__type": "ResourceNotFoundException", "Message": "USER not found."}
        return 200, {}, {"UserId": self.users[name], "IdentityStoreId": body["IdentityStoreId"]}

    def op_ListAccountAssignments(self, body):
        found = [
            {"AccountId": a, "PermissionSetArn": p, "PrincipalType": "USER", "PrincipalId": u}
            for a, p, u in sorted(self.assignments)
            if a == body["AccountId"] and p == body["PermissionSetArn"]
        ]
        return 200, {}, {"AccountAssignments": found}

    def _start(self, body, kind):
        request_id = f"00000000-0000-4000-8000-{len(self.requests) + 1:012d}"  # a UUID, as AWS
        key = (body["TargetId"], body["PermissionSetArn"], body["PrincipalId"])
        self.requests[request_id] = {"kind": kind, "key": key, "polls": self.polls_in_progress}
        status = self._status(request_id)
        return 200, {}, {f"AccountAssignment{kind}Status": status}

    def _status(self, request_id):
        request = self.requests[request_id]
        status = {"RequestId": request_id, "Status": "IN_PROGRESS"}
        if request["polls"] > 0:
            request["polls"] -= 1
            return status
        status["Status"] = self.outcome
        if self.outcome == "FAILED":
            status["FailureReason"] = self.failure_reason
        elif request["kind"] == "Creation":
            self.assignments.add(request["key"])
        else:
            self.assignments.discard(request["key"])
        return status

    def op_CreateAccountAssignment(self, body):
        return self._start(body, "Creation")

    def op_DeleteAccountAssignment(self, body):
        return self._start(body, "Deletion")

    def op_DescribeAccountAssignmentCreationStatus(self, body):
        status = self._status(body["AccountAssignmentCreationRequestId"])
        return 200, {}, {"AccountAssignmentCreationStatus": status}

    def op_DescribeAccountAssignmentDeletionStatus(self, body):
        status = self._status(body["AccountAssignmentDeletionRequestId"])
        return 200, {}, {"AccountAssignmentDeletionStatus": status}
