"""GitHub strategies: team membership and repository collaborator access.

The requester's GitHub login comes from ACCESS_USER_GITHUB (chat handle -> login),
handed in by the service. `api_url` points at GitHub Enterprise Server
(`https://github.acme.com/api/v3`); it defaults to the public API. GitHub memberships
do not expire, so `extend` needs no call.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote, urlparse

import requests

from .base import Done, SettingsError, Strategy, StrategyError
from .rest import RestClient, json_field

PUBLIC_API = "https://api.github.com"
API_VERSION = "2022-11-28"
REPO_PERMISSIONS = ("pull", "triage", "push", "maintain", "admin")
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


class _GitHubStrategy(Strategy):
    target_label = "GitHub"

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
        login = self.account("github", payload["user"])
        client = self._client()
        note = self.grant(client, login) if action == "grant" else self.revoke(client, login)
        return Done(note)

    def grant(self, client: RestClient, login: str) -> str:
        raise NotImplementedError

    def revoke(self, client: RestClient, login: str) -> str:
        raise NotImplementedError

    def _host(self) -> str:
        return "" if self.api_url == PUBLIC_API else f" at {urlparse(self.api_url).netloc}"


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

    def revoke(self, client: RestClient, login: str) -> str:
        answer = client.call("DELETE", self._path(login))
        if answer.status_code in (200, 204):
            return f"GitHub: {login} removed from {self.org}/{self.team}"
        if answer.status_code == 404:
            # GitHub answers 404 for "not a member" and for "no such team (that this
            # token can see)": only the first means the revoke is already done.
            team = client.call("GET", self._path())
            if team.status_code == 200:
                return f"GitHub: {login} was not in {self.org}/{self.team}"
            raise client.failure(team, f"find team {self.org}/{self.team}")
        raise client.failure(answer, f"remove {login} from team {self.org}/{self.team}")

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

    def revoke(self, client: RestClient, login: str) -> str:
        answer = client.call("DELETE", self._path(f"/collaborators/{_part(login)}"))
        if answer.status_code == 404:
            repo = client.call("GET", self._path())
            if repo.status_code != 200:
                raise client.failure(repo, f"find repository {self.repo}")
        elif answer.status_code not in (200, 204):
            raise client.failure(answer, f"remove {login} from {self.repo}")
        # An invitation not yet accepted is not a collaborator: withdraw it too, or it
        # could be accepted after the grant has ended.
        withdrawn = self._withdraw_invitations(client, login)
        note = f"GitHub: {login} removed from {self.repo}"
        return note + (f"; {withdrawn} pending invitation(s) withdrawn" if withdrawn else "")

    def _withdraw_invitations(self, client: RestClient, login: str) -> int:
        listing = client.call("GET", self._path("/invitations?per_page=100"))
        if listing.status_code != 200:
            raise client.failure(listing, f"list the invitations of {self.repo}")
        try:
            invitations = listing.json()
        except ValueError:
            invitations = []
        withdrawn = 0
        for invitation in invitations if isinstance(invitations, list) else []:
            invitee = (invitation.get("invitee") or {}).get("login", "")
            if invitee.lower() != login.lower():
                continue
            answer = client.call("DELETE", self._path(f"/invitations/{invitation.get('id')}"))
            if answer.status_code not in (204, 404):
                raise client.failure(answer, f"withdraw {login}'s invitation to {self.repo}")
            withdrawn += 1
        return withdrawn

    def describe(self) -> str:
        return f"github_repo ({self.repo}, {self.permission}{self._host()})"
