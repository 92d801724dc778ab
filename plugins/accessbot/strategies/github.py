"""GitHub strategies: team membership and repository collaborator access.

The requester's GitHub login comes from ACCESS_USER_GITHUB (chat handle -> login),
handed in by the service. `api_url` points at GitHub Enterprise Server
(`https://github.acme.com/api/v3`); it defaults to the public API. GitHub memberships
do not expire, so `extend` needs no call.

Logins can be renamed, so the grant records the user's id (`GET /users/{login}`) and
the revoke acts on the login that id has at that moment (`GET /user/{id}`). A revoke
counts as done only when GitHub removed the access, or when the team's member list
(the repository's collaborators), read in full and compared by id, lacks the user: a
404 for a login never proves the access is gone.

`members()` lists who holds the access, every page, by user id: a team's members and
its pending invitations; a repository's direct collaborators with at least the
resource's permission, and its pending invitations.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import requests

from ..safe_text import redact_url
from .base import Done, Member, Sessions, SettingsError, Strategy, StrategyError, target_host
from .rest import RestClient, json_field

PUBLIC_API = "https://api.github.com"
API_VERSION = "2022-11-28"
REPO_PERMISSIONS = ("pull", "triage", "push", "maintain", "admin")
# An invitation names its permission as the web page does.
INVITATION_PERMISSIONS = {"read": "pull", "write": "push"}
PENDING = "invitation pending"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def github_error(response: requests.Response) -> str:
    """GitHub's own words: `message`, plus the first validation error if any."""
    words = json_field(response, "message")
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    details = [str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)] or [
        str(e) for e in errors if isinstance(e, str)
    ]
    if details:
        words += " (" + "; ".join(details[:3]) + ")"
    return words


def _part(value: str) -> str:
    return quote(value, safe="")


def _entry_id(entry: dict) -> int | None:
    """The user id of a listed user, or of a listed invitation's invitee."""
    user = entry.get("invitee") if "invitee" in entry else entry
    try:
        return int((user or {}).get("id"))
    except (TypeError, ValueError):
        return None


def _member(entry: dict, note: str = "") -> Member | None:
    """A listed user (or an invitation's invitee) as a Member, by user id."""
    user_id = _entry_id(entry)
    if user_id is None:
        return None
    user = entry.get("invitee") if "invitee" in entry else entry
    return Member(str(user.get("login") or user_id), None, str(user_id), note)


def _who(user_id: int, login: str | None, with_id: bool = False) -> str:
    if login is None:
        return f"the deleted account {user_id}"
    return f"{login} (user id {user_id})" if with_id else login


def _granted(permissions) -> str | None:
    """The highest permission a collaborator's `permissions` flags give."""
    if not isinstance(permissions, dict):
        return None
    held = [p for p in REPO_PERMISSIONS if permissions.get(p)]
    return held[-1] if held else ""


def _invited(permission) -> str | None:
    return INVITATION_PERMISSIONS.get(permission, permission) if permission else None


# GitHub checks team and repository access on every request (web, API, git), so a
# session or token opened before the revoke keeps the person's other access, not this.
GITHUB_SESSIONS = Sessions("ended", "GitHub web sessions and tokens, for this access")


class _GitHubStrategy(Strategy):
    target_label = "GitHub"

    def sessions_at_revoke(self) -> Sessions:
        return GITHUB_SESSIONS

    def __init__(
        self,
        token_env: str,
        api_url: str,
        timeout: float,
        session: requests.Session | None = None,
        sleep=time.sleep,
    ):
        self.token_env = token_env
        self.api_url = api_url
        self.timeout = timeout
        self.session = session
        self.sleep = sleep

    @classmethod
    def common_settings(cls, settings: dict) -> dict:
        return {
            "token_env": cls.env_setting(settings, "token_env", "GITHUB_TOKEN"),
            "api_url": cls.url_setting(
                settings, "api_url", "https://github.acme.com/api/v3", required=False
            )
            or PUBLIC_API,
            "timeout": cls.timeout_setting(settings, "10s"),
        }

    def _client(self) -> RestClient:
        token = self.secret(self.token_env, "the GitHub token")
        return RestClient(
            "GitHub",
            self.api_url,
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            self.timeout,
            session=self.session,
            sleep=self.sleep,
            explain=github_error,
        )

    def call(self, action: str, payload: dict) -> Done:
        if action == "extend":
            return Done(f"{self.target_label} access does not expire; nothing to extend")
        if action not in ("grant", "revoke"):
            raise StrategyError(f"{self.kind} cannot {action!r}")
        if action == "grant":
            login = self.account("github", payload["user"])
            client = self._client()
            user_id = self._user_id(client, login)
            return Done(self.grant(client, login), account=str(user_id))
        client = self._client()
        account = payload.get("account")
        if account:
            login = self._current_login(client, account)
        else:  # granted before user ids were recorded: look the login up once
            login = self.account("github", payload["user"])
            account = str(self._user_id(client, login, revoking=True))
        return Done(self.revoke(client, int(account), login), account=account)

    def _user_id(self, client: RestClient, login: str, revoking: bool = False) -> int:
        """The stable id of the user `login` names now (`GET /users/{login}`)."""
        answer = client.call("GET", f"/users/{_part(login)}")
        if answer.status_code == 404:
            if revoking:
                # The login may have been renamed, or the account deleted: a 404 for a
                # name proves nothing about who still holds the access.
                raise StrategyError(
                    f"GitHub has no user {login} any more (renamed or deleted?), and this "
                    "grant is older than recorded user ids, so the bot cannot tell whether "
                    f"they still have access to {self.target()}: put their current login "
                    "in ACCESS_USER_GITHUB (the revoke is retried), or check by hand"
                )
            raise StrategyError(f"GitHub has no user {login}: check ACCESS_USER_GITHUB")
        if answer.status_code != 200:
            raise client.failure(answer, f"look up the user {login}")
        return self._id_of(answer, f"user {login}")

    def _current_login(self, client: RestClient, account: str) -> str | None:
        """The login the user with id `account` has now (`GET /user/{id}`); None when
        GitHub has no such account any more (deleted)."""
        if not str(account).isdigit():
            raise StrategyError(f"the recorded GitHub user id {account!r} is not a number")
        answer = client.call("GET", f"/user/{account}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise client.failure(answer, f"look up the user with id {account}")
        try:
            login = answer.json()["login"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StrategyError(f"GitHub's answer for user id {account} has no login") from exc
        return str(login)

    @staticmethod
    def _id_of(answer: requests.Response, what: str) -> int:
        try:
            return int(answer.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StrategyError(f"GitHub's answer for {what} has no id") from exc

    def _listed(self, client: RestClient, path: str, user_id: int, doing: str) -> bool:
        """Whether the user id appears in every page of a listing (users or invitations)."""
        for entry in client.get_all(path, doing):
            if isinstance(entry, dict) and _entry_id(entry) == user_id:
                return True
        return False

    def target(self) -> str:
        raise NotImplementedError

    def grant(self, client: RestClient, login: str) -> str:
        raise NotImplementedError

    def revoke(self, client: RestClient, user_id: int, login: str | None) -> str:
        """Remove the user with id `user_id` (`login` is their login now; None when the
        account was deleted): succeed only when the access is proved gone."""
        raise NotImplementedError

    def _host(self) -> str:
        return "" if self.api_url == PUBLIC_API else f" at {redact_url(self.api_url)}"


class GitHubTeamStrategy(_GitHubStrategy):
    """`PUT`/`DELETE /orgs/{org}/teams/{team}/memberships/{login}`."""

    kind = "github_team"
    allowed_keys = frozenset({"type", "org", "team", "token_env", "api_url", "timeout"})

    def __init__(self, org: str, team: str, **common):
        super().__init__(**common)
        self.org = org
        self.team = team

    @classmethod
    def from_settings(cls, settings: dict, **wiring) -> GitHubTeamStrategy:
        cls.check_keys(settings)
        org = cls.text_setting(settings, "org", "acme")
        team = cls.text_setting(settings, "team", "sre")
        for key, value in (("org", org), ("team", team)):
            if not _NAME.match(value):
                raise SettingsError(
                    f"strategy.{key}",
                    f"{value!r} is not a GitHub {key} name; use the slug, e.g. "
                    + ("'acme'" if key == "org" else "'sre' or 'platform-admins'"),
                )
        return cls(org, team, **cls.common_settings(settings), **wiring)

    def _path(self, login: str = "") -> str:
        path = f"/orgs/{_part(self.org)}/teams/{_part(self.team)}"
        return path + (f"/memberships/{_part(login)}" if login else "")

    def grant(self, client: RestClient, login: str) -> str:
        answer = client.call("PUT", self._path(login), json={"role": "member"})
        if answer.status_code == 200:
            try:
                state = answer.json().get("state", "active")
            except (ValueError, AttributeError):
                state = "active"
            if state == "pending":
                return f"GitHub: invited {login} to {self.org}/{self.team} (pending until accepted)"
            return f"GitHub: {login} is a member of {self.org}/{self.team}"
        raise client.failure(answer, f"add {login} to team {self.org}/{self.team}")

    def target(self) -> str:
        return f"team {self.org}/{self.team}"

    def members(self, resource: str) -> list[Member]:
        client = self._client()
        listed = client.get_all(
            self._path() + "/members?per_page=100", f"list the members of {self.target()}"
        )
        found = [m for m in (_member(e) for e in listed if isinstance(e, dict)) if m]
        invitations = client.get_all(
            self._path() + "/invitations?per_page=100",
            f"list the pending invitations of {self.target()}",
        )
        for invitation in invitations:
            login = invitation.get("login") if isinstance(invitation, dict) else None
            if login:  # an invitation by e-mail names nobody on GitHub yet
                found.append(
                    Member(login, None, str(self._user_id(client, login, revoking=True)), PENDING)
                )
        return found

    def revoke(self, client: RestClient, user_id: int, login: str | None) -> str:
        if login is not None:
            answer = client.call("DELETE", self._path(login))
            if answer.status_code in (200, 204):
                return f"GitHub: {login} removed from {self.org}/{self.team}"
            if answer.status_code != 404:
                raise client.failure(answer, f"remove {login} from team {self.org}/{self.team}")
        # GitHub answers 404 for "not a member" and for "no such team (that this token
        # can see)"; a deleted account cannot be named at all. Only the team's member
        # list, read in full and compared by user id, proves the membership is gone.
        members = self._path() + "/members?per_page=100"
        if self._listed(client, members, user_id, f"list the members of {self.target()}"):
            raise StrategyError(
                f"GitHub still lists {_who(user_id, login, with_id=True)} in "
                f"{self.target()} (perhaps through a child team); the revoke is retried"
            )
        return f"GitHub: {_who(user_id, login)} was not in {self.org}/{self.team}"

    def target_key(self) -> tuple:
        return (self.kind, target_host(self.api_url), self.org.lower(), self.team.lower())

    def describe(self) -> str:
        return f"github_team ({self.org}/{self.team}{self._host()})"


class GitHubRepoStrategy(_GitHubStrategy):
    """`PUT`/`DELETE /repos/{owner}/{repo}/collaborators/{login}` with a permission."""

    kind = "github_repo"
    allowed_keys = frozenset({"type", "repo", "permission", "token_env", "api_url", "timeout"})

    def __init__(self, repo: str, permission: str, **common):
        super().__init__(**common)
        self.repo = repo
        self.permission = permission

    @classmethod
    def from_settings(cls, settings: dict, **wiring) -> GitHubRepoStrategy:
        cls.check_keys(settings)
        repo = cls.text_setting(settings, "repo", "acme/api")
        parts = repo.split("/")
        if len(parts) != 2 or not all(_NAME.match(p) for p in parts):
            raise SettingsError("strategy.repo", f"{repo!r} must be owner/name, e.g. 'acme/api'")
        permission = cls.text_setting(settings, "permission", "push")
        if permission not in REPO_PERMISSIONS:
            raise SettingsError(
                "strategy.permission",
                f"{permission!r} is not a repository permission; use one of: "
                + ", ".join(REPO_PERMISSIONS),
            )
        return cls(repo, permission, **cls.common_settings(settings), **wiring)

    def _path(self, tail: str = "") -> str:
        owner, name = self.repo.split("/")
        return f"/repos/{_part(owner)}/{_part(name)}{tail}"

    def grant(self, client: RestClient, login: str) -> str:
        answer = client.call(
            "PUT",
            self._path(f"/collaborators/{_part(login)}"),
            json={"permission": self.permission},
        )
        if answer.status_code == 201:
            return f"GitHub: invited {login} to {self.repo} ({self.permission}), pending until accepted"
        if answer.status_code in (200, 204):
            return f"GitHub: {login} has {self.permission} on {self.repo}"
        raise client.failure(answer, f"give {login} {self.permission} on {self.repo}")

    def target(self) -> str:
        return f"repository {self.repo}"

    def members(self, resource: str) -> list[Member]:
        client = self._client()
        listed = client.get_all(
            self._path("/collaborators?affiliation=direct&per_page=100"),
            f"list the collaborators of {self.repo}",
        )
        found = [
            _member(e)
            for e in listed
            if isinstance(e, dict) and self._at_least(_granted(e.get("permissions")))
        ]
        invitations = client.get_all(
            self._path("/invitations?per_page=100"), f"list the invitations of {self.repo}"
        )
        found += [
            _member(i, PENDING)
            for i in invitations
            if isinstance(i, dict) and self._at_least(_invited(i.get("permissions")))
        ]
        return [m for m in found if m]

    def _at_least(self, permission: str | None) -> bool:
        """Does `permission` include the resource's? "" (none at all) does not; one this
        code does not know (None, a custom role) counts as yes, to be looked at."""
        if permission == "":
            return False
        if permission not in REPO_PERMISSIONS:
            return True
        return REPO_PERMISSIONS.index(permission) >= REPO_PERMISSIONS.index(self.permission)

    def revoke(self, client: RestClient, user_id: int, login: str | None) -> str:
        removed = False
        if login is not None:
            answer = client.call("DELETE", self._path(f"/collaborators/{_part(login)}"))
            if answer.status_code not in (200, 204, 404):
                raise client.failure(answer, f"remove {login} from {self.repo}")
            removed = answer.status_code != 404
        if not removed:
            # As for teams: a 404, or an account with no login, proves nothing until the
            # collaborator list, read in full, no longer has the user id.
            path = self._path("/collaborators?affiliation=direct&per_page=100")
            if self._listed(client, path, user_id, f"list the collaborators of {self.repo}"):
                raise StrategyError(
                    f"GitHub still lists {_who(user_id, login, with_id=True)} as a "
                    f"collaborator on {self.repo}; the revoke is retried"
                )
        # An invitation not yet accepted is not a collaborator: withdraw it too, or it
        # could be accepted after the grant has ended.
        withdrawn = self._withdraw_invitations(client, user_id, login)
        note = f"GitHub: {_who(user_id, login)} " + (
            f"removed from {self.repo}" if removed else f"had no access to {self.repo}"
        )
        return note + (f"; {withdrawn} pending invitation(s) withdrawn" if withdrawn else "")

    def _withdraw_invitations(self, client: RestClient, user_id: int, login: str | None) -> int:
        """Withdraw every pending invitation of the user id, read from all pages."""
        invitations = client.get_all(
            self._path("/invitations?per_page=100"), f"list the invitations of {self.repo}"
        )
        withdrawn = 0
        for invitation in invitations:
            if not isinstance(invitation, dict) or _entry_id(invitation) != user_id:
                continue
            answer = client.call("DELETE", self._path(f"/invitations/{invitation.get('id')}"))
            if answer.status_code not in (204, 404):
                raise client.failure(
                    answer, f"withdraw {_who(user_id, login)}'s invitation to {self.repo}"
                )
            withdrawn += 1
        return withdrawn

    def target_key(self) -> tuple:
        # A revoke removes the collaborator whatever the permission: one repo, one target.
        return (self.kind, target_host(self.api_url), self.repo.lower())

    def describe(self) -> str:
        return f"github_repo ({self.repo}, {self.permission}{self._host()})"
