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
from urllib.parse import parse_qs, unquote, urlparse

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
                parsed = urlparse(self.path)
                path = parsed.path
                query = parse_qs(parsed.query)
                with api.lock:
                    api.calls.append((self.command, path))
                    api.bodies.append(body)
                    api.headers_seen.append(dict(self.headers))
                    canned = api.scripted.pop(0) if api.scripted else None
                if api.hang.is_set():
                    api.released.wait(10)
                if canned is None:
                    canned = api.route(self.command, path, query, body, self.headers, compiled)
                status, headers, payload = canned
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.respond(status, data, "application/json", headers.items())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_PUT = do_DELETE = do_POST = _serve

        self.server, self.url = serve_local(Handler)

    def route(self, method, path, query, body, headers, compiled):
        denied = self.check_auth(headers)
        if denied:
            return denied
        for route_method, pattern, handler in compiled:
            match = pattern.match(path)
            if match and route_method == method:
                with self.lock:
                    return getattr(self, handler)(
                        *[unquote(g) for g in match.groups()],
                        body=body,
                        headers=headers,
                        query=query,
                        path=path,
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
    """Okta's users and group-membership API, with SSWS token checks.

    State is keyed by Okta user id, as in Okta: a user's login (their e-mail here) can
    change (`rename`) and their group memberships stay with the id. Listing a group's
    members is paginated with `after` cursors and a `Link: rel="next"` header.
    """

    routes = [
        ("GET", r"/api/v1/users/([^/]+)", "get_user"),
        ("GET", r"/api/v1/groups/([^/]+)", "get_group"),
        ("GET", r"/api/v1/groups/([^/]+)/users", "list_members"),
        ("PUT", r"/api/v1/groups/([^/]+)/users/([^/]+)", "add_member"),
        ("DELETE", r"/api/v1/groups/([^/]+)/users/([^/]+)", "remove_member"),
        # "Revoke all User sessions" (UserSessions in Okta's management API description).
        ("DELETE", r"/api/v1/users/([^/]+)/sessions", "revoke_sessions"),
    ]

    def __init__(self, token: str = "okta-t0ken"):
        self.token = token
        self.sessions: dict[str, int] = {}  # user id -> their open Okta sessions
        self.oauth_tokens: dict[str, int] = {}  # user id -> OAuth tokens Okta issued them
        self.users: dict[str, str] = {}  # user id -> login (an e-mail)
        self.groups: dict[str, set[str]] = {}  # group id -> member user ids
        self.page_size = 1000  # the most users one page holds, whatever `limit` asks
        super().__init__()

    def add_user(self, login: str, user_id: str) -> str:
        self.users[user_id] = login
        return user_id

    def rename(self, old_login: str, new_login: str) -> None:
        """The user's login changes; their id and memberships stay."""
        user_id = self.user_id(old_login)
        self.users[user_id] = new_login

    def user_id(self, login: str) -> str | None:
        return next((i for i, name in self.users.items() if name == login), None)

    @staticmethod
    def error(status: int, code: str, summary: str):
        return status, {}, {"errorCode": code, "errorSummary": summary, "errorCauses": []}

    def check_auth(self, headers):
        if headers.get("Authorization") != f"SSWS {self.token}":
            return self.error(401, "E0000011", "Invalid token provided")
        return None

    def _user(self, user_id):
        login = self.users[user_id]
        return {"id": user_id, "status": "ACTIVE", "profile": {"login": login, "email": login}}

    def get_user(self, id_or_login, **_):
        # Okta's GET /api/v1/users/{id} takes the user's id or login.
        user_id = id_or_login if id_or_login in self.users else self.user_id(id_or_login)
        if user_id is None:
            return self.error(
                404, "E0000007", f"Not found: Resource not found: {id_or_login} (User)"
            )
        return 200, {}, self._user(user_id)

    def _no_group(self, group_id):
        return self.error(404, "E0000007", f"Not found: Resource not found: {group_id} (UserGroup)")

    def get_group(self, group_id, **_):
        if group_id not in self.groups:
            return self._no_group(group_id)
        return 200, {}, {"id": group_id, "profile": {"name": "Prod admins"}}

    def list_members(self, group_id, query, **_):
        if group_id not in self.groups:
            return self._no_group(group_id)
        members = [self._user(u) for u in sorted(self.groups[group_id]) if u in self.users]
        after = query.get("after", [""])[0]
        limit = min(int(query.get("limit", [self.page_size])[0]), self.page_size)
        start = next((n + 1 for n, m in enumerate(members) if m["id"] == after), 0)
        page = members[start : start + limit]
        headers = {}
        if start + limit < len(members):
            link = f"{self.url}/api/v1/groups/{group_id}/users?after={page[-1]['id']}&limit={limit}"
            headers["Link"] = f'<{link}>; rel="next"'
        return 200, headers, page

    def add_member(self, group_id, user_id, **_):
        if group_id not in self.groups or user_id not in self.users:
            return self.error(404, "E0000007", "Not found: Resource not found")
        self.groups[group_id].add(user_id)
        return 204, {}, None

    def revoke_sessions(self, user_id, query, **_):
        """Ends every Okta session of the user; their OAuth tokens too with oauthTokens=true
        (Okta's default is false). 204, no body; 404 for an unknown user."""
        if user_id not in self.users:
            return self.error(404, "E0000007", f"Not found: Resource not found: {user_id} (User)")
        self.sessions[user_id] = 0
        if query.get("oauthTokens", ["false"])[0] == "true":
            self.oauth_tokens[user_id] = 0
        return 204, {}, None

    def remove_member(self, group_id, user_id, **_):
        if user_id not in self.groups.get(group_id, set()):
            return self.error(404, "E0000007", "Not found: Resource not found")
        self.groups[group_id].discard(user_id)
        return 204, {}, None


class FakeGitHub(JsonApi):
    """GitHub's users, team-membership, collaborator and invitation endpoints.

    State is keyed by GitHub user id, as on GitHub: a login can be renamed (`rename`)
    or deleted, and memberships stay with the id. Lists are paginated as GitHub does
    (`per_page`, at most 100, default 30; `page`; a `Link: rel="next"` header).
    """

    routes = [
        ("GET", r"/user/(\d+)", "get_user_by_id"),
        ("GET", r"/users/([^/]+)", "get_user"),
        ("GET", r"/orgs/([^/]+)/teams/([^/]+)", "get_team"),
        ("GET", r"/orgs/([^/]+)/teams/([^/]+)/members", "list_team_members"),
        ("PUT", r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", "add_member"),
        ("DELETE", r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", "remove_member"),
        ("GET", r"/orgs/([^/]+)/teams/([^/]+)/invitations", "list_team_invitations"),
        ("GET", r"/repos/([^/]+)/([^/]+)", "get_repo"),
        ("GET", r"/repos/([^/]+)/([^/]+)/collaborators", "list_collaborators"),
        ("PUT", r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)", "add_collaborator"),
        ("DELETE", r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)", "remove_collaborator"),
        ("GET", r"/repos/([^/]+)/([^/]+)/invitations", "list_invitations"),
        ("DELETE", r"/repos/([^/]+)/([^/]+)/invitations/(\d+)", "delete_invitation"),
    ]

    def __init__(self, token: str = "gh-t0ken"):
        self.token = token
        self.users: dict[int, str] = {}  # user id -> current login
        self.org_members: set[int] = set()  # added to teams at once; others get invited
        self.teams: dict[tuple[str, str], dict[int, str]] = {}  # -> user id -> state
        self.repos: dict[str, dict[int, str]] = {}  # "owner/name" -> user id -> permission
        # "owner/name" -> {"id", "invitee_id", "permission"}
        self.invitations: dict[str, list[dict]] = {}
        self._next_invitation = 1
        super().__init__()

    # -- arranging and inspecting -------------------------------------------------------

    def add_user(self, login: str, user_id: int | None = None, org_member: bool = False) -> int:
        user_id = user_id or 1000 + len(self.users)
        self.users[user_id] = login
        if org_member:
            self.org_members.add(user_id)
        return user_id

    def user_id(self, login: str) -> int | None:
        return next((i for i, name in self.users.items() if name.lower() == login.lower()), None)

    def rename(self, old_login: str, new_login: str) -> None:
        """The account's login changes (GitHub allows it); its id and access stay."""
        self.users[self.user_id(old_login)] = new_login

    def delete_user(self, login: str) -> None:
        """The account is deleted; GitHub drops its memberships with it."""
        user_id = self.user_id(login)
        del self.users[user_id]
        for members in (*self.teams.values(), *self.repos.values()):
            members.pop(user_id, None)

    def team(self, org: str, team: str) -> dict[str, str]:
        """The team's members as {current login: state}."""
        return {self.users.get(i, f"#{i}"): s for i, s in self.teams[(org, team)].items()}

    def collaborators(self, repo: str) -> dict[str, str]:
        """The repository's collaborators as {current login: permission}."""
        return {self.users.get(i, f"#{i}"): p for i, p in self.repos[repo].items()}

    def invite(self, repo: str, user_id: int, permission: str = "push") -> dict:
        invitation = {"id": self._next_invitation, "invitee_id": user_id, "permission": permission}
        self._next_invitation += 1
        self.invitations.setdefault(repo, []).append(invitation)
        return invitation

    # -- the API --------------------------------------------------------------------------

    def check_auth(self, headers):
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs"}
        return None

    @staticmethod
    def not_found():
        return 404, {}, {"message": "Not Found"}

    def _user(self, user_id: int) -> dict:
        return {"login": self.users[user_id], "id": user_id, "type": "User"}

    def page(self, items: list, path: str, query: dict):
        """One page of `items`, with GitHub's Link header when more follow."""
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        number = int(query.get("page", ["1"])[0])
        start = (number - 1) * per_page
        headers = {}
        if start + per_page < len(items):
            following = f"{self.url}{path}?per_page={per_page}&page={number + 1}"
            headers["Link"] = f'<{following}>; rel="next"'
        return 200, headers, items[start : start + per_page]

    def get_user_by_id(self, user_id, **_):
        if int(user_id) not in self.users:
            return self.not_found()
        return 200, {}, self._user(int(user_id))

    def get_user(self, login, **_):
        user_id = self.user_id(login)
        return self.not_found() if user_id is None else (200, {}, self._user(user_id))

    def get_team(self, org, team, **_):
        if (org, team) not in self.teams:
            return self.not_found()
        return 200, {}, {"slug": team, "organization": {"login": org}}

    def list_team_members(self, org, team, query, path, **_):
        if (org, team) not in self.teams:
            return self.not_found()
        active = [i for i, s in self.teams[(org, team)].items() if s == "active"]
        return self.page([self._user(i) for i in active if i in self.users], path, query)

    def list_team_invitations(self, org, team, query, path, **_):
        """Pending team memberships, as GitHub lists an organization's invitations."""
        if (org, team) not in self.teams:
            return self.not_found()
        pending = [i for i, s in self.teams[(org, team)].items() if s == "pending"]
        shown = [
            {"id": 5000 + i, "login": self.users[i], "email": None, "role": "direct_member"}
            for i in pending
            if i in self.users
        ]
        return self.page(shown, path, query)

    def add_member(self, org, team, login, **_):
        user_id = self.user_id(login)
        if (org, team) not in self.teams or user_id is None:
            return self.not_found()
        state = "active" if user_id in self.org_members else "pending"
        self.teams[(org, team)][user_id] = state
        return 200, {}, {"role": "member", "state": state}

    def remove_member(self, org, team, login, **_):
        members = self.teams.get((org, team), {})
        user_id = self.user_id(login)
        if user_id not in members:
            return self.not_found()
        del members[user_id]
        return 204, {}, None

    def get_repo(self, owner, name, **_):
        if f"{owner}/{name}" not in self.repos:
            return self.not_found()
        return 200, {}, {"full_name": f"{owner}/{name}"}

    def list_collaborators(self, owner, name, query, path, **_):
        if f"{owner}/{name}" not in self.repos:
            return self.not_found()
        ranks = ("pull", "triage", "push", "maintain", "admin")
        found = [
            {
                **self._user(i),
                "permissions": {p: ranks.index(p) <= ranks.index(held) for p in ranks},
            }
            for i, held in self.repos[f"{owner}/{name}"].items()
            if i in self.users
        ]
        return self.page(found, path, query)

    def add_collaborator(self, owner, name, login, body, **_):
        repo = f"{owner}/{name}"
        user_id = self.user_id(login)
        if repo not in self.repos or user_id is None:
            return self.not_found()
        permission = (body or {}).get("permission", "push")
        if permission not in ("pull", "triage", "push", "maintain", "admin"):
            return 422, {}, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}
        if user_id in self.org_members:
            self.repos[repo][user_id] = permission
            return 204, {}, None
        invitation = self.invite(repo, user_id, permission)
        return 201, {}, {"id": invitation["id"], "permissions": permission}

    def remove_collaborator(self, owner, name, login, **_):
        repo = self.repos.get(f"{owner}/{name}", {})
        user_id = self.user_id(login)
        if user_id not in repo:
            return self.not_found()
        del repo[user_id]
        return 204, {}, None

    def list_invitations(self, owner, name, query, path, **_):
        if f"{owner}/{name}" not in self.repos:
            return self.not_found()
        # Invitations name their permission as the web page does: read, write, ...
        words = {"pull": "read", "push": "write"}
        shown = [
            {
                "id": i["id"],
                "invitee": self._user(i["invitee_id"]),
                "permissions": words.get(i.get("permission", "push"), i.get("permission")),
            }
            for i in self.invitations.get(f"{owner}/{name}", [])
            if i["invitee_id"] in self.users
        ]
        return self.page(shown, path, query)

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
