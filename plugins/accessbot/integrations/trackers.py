"""Checked justification: a request's field (`ticket=OPS-12`, `incident=Q1ABC2D`) looked
up in the tracker it names, and looked up again while the grant lasts.

A field's `check` settings say which tracker, where, with which credentials (from the
environment, read at each look-up, never logged) and what counts as open:

- `jira`: `GET <url>/rest/api/<api_version>/issue/<KEY>` (3, Cloud, by default; 2 for
  Data Center), Basic auth with `user_env` + `token_env`, a bearer token with
  `token_env` alone; `projects` limits the keys, `open_statuses` the statuses that
  count as open (else anything whose status category is not "done").
- `pagerduty`: `GET /incidents/{id}` through the bot's PagerDuty client (pdpyras,
  ACCESS_PAGERDUTY_TOKEN); open is triggered or acknowledged; `services` limits them.
- `github_issue`: `GET /repos/{owner}/{repo}/issues/{n}` (`repo`, value `#123` or `123`,
  `token_env` optional, `api_url` for GitHub Enterprise); open is state "open".

Every check may say `"when_unreachable": "ask_approvers"`: a tracker that cannot be
reached lets the request through marked "not checked" instead of refusing it.
`LinkChecker.look_up` answers a `Link` (what the tracker said) or raises `Unknown`,
`Unreachable`; `Link.problem` says why an answer cannot justify access.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from ..errors import AccessBotError
from .pagerduty import IncidentNotFound, PagerDutyError

TYPES = ("jira", "pagerduty", "github_issue")
COMMON_KEYS = frozenset({"type", "when_unreachable", "timeout"})
KEYS = {
    "jira": COMMON_KEYS
    | {"url", "user_env", "token_env", "projects", "open_statuses", "api_version"},
    "pagerduty": COMMON_KEYS | {"services"},
    "github_issue": COMMON_KEYS | {"repo", "token_env", "api_url"},
}
WHEN_UNREACHABLE = ("refuse", "ask_approvers")
PD_OPEN = ("triggered", "acknowledged")
GITHUB_API = "https://api.github.com"
MAX_BODY = 1_000_000  # a tracker's answer larger than this is not an issue's JSON
DEFAULT_TIMEOUT = 5.0
_JIRA_KEY = re.compile(r"^([A-Z][A-Z0-9_]+)-([0-9]+)$")
_PD_ID = re.compile(r"^[A-Z0-9]{5,40}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ISSUE = re.compile(r"^#?([0-9]{1,10})$")
EXAMPLES = {
    "jira": '{"type": "jira", "url": "https://acme.atlassian.net", "user_env": "JIRA_USER", '
    '"token_env": "JIRA_TOKEN", "projects": ["OPS"]}',
    "pagerduty": '{"type": "pagerduty", "services": ["PSVC123"]}',
    "github_issue": '{"type": "github_issue", "repo": "acme/ops", "token_env": "GITHUB_TOKEN"}',
}


class LinkError(AccessBotError):
    """A look-up that gave no usable answer; the message is safe to show in chat."""


class Unknown(LinkError):
    """The tracker does not know the value (or may not show it to the bot)."""


class Unreachable(LinkError):
    """The tracker could not be asked or did not answer as its API documents."""


@dataclass(frozen=True)
class Link:
    """What the tracker said about one field's value when it was looked up."""

    field: str
    type: str
    key: str
    title: str
    status: str
    url: str
    assignee: str | None
    open: bool
    project: str = ""  # Jira's project key, PagerDuty's service id, GitHub's repo
    checked: bool = True  # False: the tracker could not be reached (ask_approvers)
    note: str = ""  # why it was not checked

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Link:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def hook_view(self) -> dict:
        """What a policy hook sees as `request.links[field]`."""
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "url": self.url,
            "assignee": self.assignee,
            "open": self.open,
            "checked": self.checked,
        }


# -- settings ---------------------------------------------------------------------------


def check_problems(field: str, settings: Any) -> list[tuple[str, str]]:
    """(key, message) for everything wrong with a field's `check` settings."""
    key = f"fields.{field}.check"
    if not isinstance(settings, dict):
        return [(key, f"must be a dict like {EXAMPLES['jira']}")]
    kind = settings.get("type")
    if kind not in TYPES:
        return [
            (
                f"{key}.type",
                f"{kind!r} is not a tracker (use one of: {', '.join(TYPES)}), e.g. "
                f"{EXAMPLES['jira']}",
            )
        ]
    problems = [
        (f"{key}.{name}", f"unknown key for {kind} (allowed: {', '.join(sorted(KEYS[kind]))})")
        for name in settings
        if name not in KEYS[kind]
    ]
    when = settings.get("when_unreachable", "refuse")
    if when not in WHEN_UNREACHABLE:
        problems.append(
            (f"{key}.when_unreachable", f"{when!r} is not one of: refuse, ask_approvers")
        )
    timeout = settings.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 30:
        problems.append((f"{key}.timeout", "must be a number of seconds above 0, at most 30"))
    for name in ("user_env", "token_env"):
        if name in settings and not _env_name(settings[name]):
            problems.append((f"{key}.{name}", "must name an environment variable, e.g. JIRA_TOKEN"))
    if kind == "jira":
        problems += _jira_problems(key, settings)
    elif kind == "pagerduty":
        problems += _list_problem(key, settings, "services", '["PSVC123"]')
    else:
        repo = settings.get("repo")
        if not isinstance(repo, str) or not _REPO.match(repo):
            problems.append(
                (f"{key}.repo", 'is required: the issues\' repository, e.g. "acme/ops"')
            )
        if "api_url" in settings and not _http_url(settings["api_url"]):
            problems.append(
                (f"{key}.api_url", 'must be an http(s) URL, e.g. "https://github.acme.com/api/v3"')
            )
    return problems


def _jira_problems(key: str, settings: dict) -> list[tuple[str, str]]:
    problems = []
    if not _http_url(settings.get("url")):
        problems.append(
            (f"{key}.url", 'is required: the Jira site, e.g. "https://acme.atlassian.net"')
        )
    if "token_env" not in settings:
        problems.append(
            (
                f"{key}.token_env",
                'is required: the variable holding the API token, e.g. "JIRA_TOKEN"',
            )
        )
    if settings.get("api_version", 3) not in (2, 3) or isinstance(
        settings.get("api_version"), bool
    ):
        problems.append((f"{key}.api_version", "must be 3 (Jira Cloud) or 2 (Data Center)"))
    problems += _list_problem(key, settings, "projects", '["OPS"]')
    problems += _list_problem(key, settings, "open_statuses", '["To Do", "In Progress"]')
    return problems


def _list_problem(key: str, settings: dict, name: str, example: str) -> list[tuple[str, str]]:
    if name not in settings:
        return []
    value = settings[name]
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        return [(f"{key}.{name}", f"must be a non-empty list of strings like {example}")]
    return []


def env_names(field: str, settings: Mapping) -> dict[str, str]:
    """The environment variables a check reads, by key (for unset-variable warnings)."""
    return {
        f"fields.{field}.check.{name}": settings[name].strip()
        for name in ("user_env", "token_env")
        if isinstance(settings.get(name), str) and settings[name].strip()
    }


def _env_name(value: Any) -> bool:
    return isinstance(value, str) and bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value.strip()))


def _http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


# -- looking up -------------------------------------------------------------------------


class LinkChecker:
    """Looks field values up in their trackers. `session` is the HTTP client (injected;
    only its `get` is used, with a timeout, no redirects and a bounded read);
    `pagerduty()` the bot's PagerDuty client; `environ` where credentials are read
    from, at each call."""

    def __init__(
        self,
        pagerduty: Callable[[], object],
        session: requests.Session | None = None,
        environ: Mapping[str, str] | None = None,
        observe: Callable[[str, float, bool], None] | None = None,
    ):
        self.pagerduty = pagerduty
        self.session = session or requests.Session()
        self.environ = os.environ if environ is None else environ
        self.observe = observe  # (type, seconds, reached) after each look-up, for metrics

    def look_up(self, field: str, settings: Mapping, value: str) -> Link:
        kind = settings["type"]
        started, reached = time.monotonic(), False
        try:
            if kind == "jira":
                link = self._jira(field, settings, value)
            elif kind == "pagerduty":
                link = self._pagerduty(field, settings, value)
            else:
                link = self._github(field, settings, value)
            reached = True
            return link
        except Unknown:
            reached = True
            raise
        finally:
            if self.observe is not None:
                self.observe(kind, time.monotonic() - started, reached)

    # Jira --------------------------------------------------------------------------

    def _jira(self, field: str, settings: Mapping, value: str) -> Link:
        key = value.strip().upper()
        if not _JIRA_KEY.match(key):
            raise Unknown(f"{key} is not a Jira key like OPS-12")
        site = settings["url"].rstrip("/")
        version = settings.get("api_version", 3)
        token = self._secret(settings["token_env"], "the Jira API token")
        if settings.get("user_env"):
            user = self._secret(settings["user_env"], "the Jira user")
            auth: Any = (user, token)
            headers = {}
        else:
            auth, headers = None, {"Authorization": f"Bearer {token}"}
        fields = "summary,status,assignee"
        answer = self._get(
            f"{site}/rest/api/{version}/issue/{quote(key, safe='')}?fields={fields}",
            settings,
            "Jira",
            headers=headers,
            auth=auth,
        )
        if answer is None:
            raise Unknown(f"{key} is not a Jira issue the bot can see")
        found = answer.get("fields") or {}
        status = found.get("status") or {}
        name = str(status.get("name") or "")
        category = status.get("statusCategory") or {}
        # Jira's categories are new, indeterminate and done (its API reference's example
        # says "completed"); either means the work is finished.
        done = str(category.get("key") or "").casefold() in ("done", "completed") or (
            str(category.get("name") or "").casefold() == "done"
        )
        allowed = settings.get("open_statuses")
        is_open = name.casefold() in {s.casefold() for s in allowed} if allowed else not done
        assignee = found.get("assignee") or {}
        real_key = str(answer.get("key") or key)
        return Link(
            field,
            "jira",
            real_key,
            str(found.get("summary") or ""),
            name or "unknown",
            f"{site}/browse/{real_key}",
            str(assignee.get("emailAddress")) if assignee.get("emailAddress") else None,
            is_open,
            project=real_key.rsplit("-", 1)[0],
        )

    # PagerDuty ---------------------------------------------------------------------

    def _pagerduty(self, field: str, settings: Mapping, value: str) -> Link:
        incident_id = incident_id_of(value)
        if not incident_id:
            raise Unknown(f"{value} is not a PagerDuty incident id or link")
        checker = self.pagerduty()
        look = getattr(checker, "incident", None)
        if look is None:
            raise Unreachable(
                "PagerDuty incidents cannot be looked up (set ACCESS_PAGERDUTY_TOKEN)"
            )
        try:
            incident = look(incident_id)
        except IncidentNotFound:
            raise Unknown(f"{incident_id} is not a PagerDuty incident the bot can see") from None
        except PagerDutyError as exc:
            raise Unreachable(str(exc)) from None
        status = str(incident.get("status") or "unknown")
        service = incident.get("service") or {}
        assignees = [
            (a.get("assignee") or {})
            for a in incident.get("assignments") or []
            if isinstance(a, dict)
        ]
        email = next((str(a["email"]) for a in assignees if a.get("email")), None)
        if email is None and assignees and assignees[0].get("id") and hasattr(checker, "email_of"):
            try:  # an assignment names a user reference; its e-mail is the user's
                email = checker.email_of(str(assignees[0]["id"]))
            except PagerDutyError:
                email = None
        return Link(
            field,
            "pagerduty",
            incident_id,
            str(incident.get("title") or incident.get("summary") or ""),
            status,
            str(incident.get("html_url") or ""),
            email,
            status in PD_OPEN,
            project=str(service.get("id") or ""),
        )

    # GitHub ------------------------------------------------------------------------

    def _github(self, field: str, settings: Mapping, value: str) -> Link:
        match = _ISSUE.match(value.strip())
        if not match:
            raise Unknown(f"{value} is not an issue number like #123")
        number = int(match.group(1))
        repo = settings["repo"]
        api = str(settings.get("api_url") or GITHUB_API).rstrip("/")
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if settings.get("token_env"):
            headers["Authorization"] = (
                f"Bearer {self._secret(settings['token_env'], 'the GitHub token')}"
            )
        answer = self._get(
            f"{api}/repos/{repo}/issues/{number}", settings, "GitHub", headers=headers
        )
        if answer is None or "pull_request" in answer:
            raise Unknown(f"#{number} is not an issue of {repo} the bot can see")
        state = str(answer.get("state") or "unknown")
        assignee = answer.get("assignee") or {}
        return Link(
            field,
            "github_issue",
            f"{repo}#{number}",
            str(answer.get("title") or ""),
            state,
            str(answer.get("html_url") or ""),
            str(assignee.get("email") or assignee.get("login") or "") or None,
            state == "open",
            project=repo,
        )

    # HTTP --------------------------------------------------------------------------

    def _secret(self, name: str, what: str) -> str:
        value = str(self.environ.get(name, "")).strip()
        if not value:
            raise Unreachable(f"the environment variable {name} ({what}) is not set")
        return value

    def _get(
        self, url: str, settings: Mapping, tracker: str, headers: dict, auth: Any = None
    ) -> dict | None:
        """The JSON object at `url`; None for a 404; Unreachable for anything else that is
        not a 200 with a JSON object of at most MAX_BODY bytes."""
        timeout = float(settings.get("timeout", DEFAULT_TIMEOUT))
        where = _site(url)
        try:
            response = self.session.get(
                url,
                headers={"Accept": "application/json", **headers},
                auth=auth,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise Unreachable(f"{tracker} at {where} did not answer within {timeout:g}s") from None
        except requests.RequestException:
            raise Unreachable(f"could not connect to {tracker} at {where}") from None
        with response:
            if response.status_code == 404:
                return None
            if response.status_code in (401, 403):
                raise Unreachable(
                    f"{tracker} at {where} refused the bot's credentials "
                    f"(HTTP {response.status_code})"
                )
            if response.status_code != 200:
                raise Unreachable(f"{tracker} at {where} answered HTTP {response.status_code}")
            try:
                body = response.raw.read(MAX_BODY + 1, decode_content=True)
            except (requests.RequestException, OSError, ValueError):
                raise Unreachable(f"{tracker} at {where} broke off its answer") from None
        if len(body) > MAX_BODY:
            raise Unreachable(f"{tracker} at {where} sent more than {MAX_BODY} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            raise Unreachable(f"{tracker} at {where} did not answer with JSON") from None
        if not isinstance(data, dict):
            raise Unreachable(f"{tracker} at {where} did not answer with a JSON object")
        return data


class StaticLinks:
    """The trackers' answers as data, for policy tests and whatif without network:
    `tickets` maps a value as typed (`OPS-12`, `Q1ABC2D`, `#123`) to {status, title,
    assignee, project or service, open}; "down" makes every look-up unreachable. A value
    not listed is unknown. `open` defaults to what the check counts as open."""

    source = "the test file's tickets"

    def __init__(self, tickets: Mapping | str | None):
        self.down = tickets == "down"
        self.tickets = {str(k): v for k, v in (tickets or {}).items()} if not self.down else {}

    def look_up(self, field: str, settings: Mapping, value: str) -> Link:
        kind = settings["type"]
        if self.down:
            raise Unreachable(f"{kind} is down (the test says so)")
        key = value.strip()
        if kind == "jira":
            key = key.upper()
        elif kind == "pagerduty":
            key = incident_id_of(key) or key
        else:
            key = f"#{key.lstrip('#')}"
        entry = self.tickets.get(key) or self.tickets.get(key.lstrip("#"))
        if not isinstance(entry, Mapping):
            raise Unknown(f"{key} is not in the test file's tickets")
        status = str(entry.get("status", "open" if kind == "github_issue" else "In Progress"))
        if "open" in entry:
            is_open = bool(entry["open"])
        elif kind == "jira":
            allowed = settings.get("open_statuses")
            closed = ("done", "closed", "resolved")
            is_open = (
                status.casefold() in {s.casefold() for s in allowed}
                if allowed
                else status.casefold() not in closed
            )
        elif kind == "pagerduty":
            is_open = status in PD_OPEN
        else:
            is_open = status == "open"
        project = entry.get("project") or entry.get("service") or ""
        if kind == "jira" and not project:
            project = key.rsplit("-", 1)[0]
        if kind == "github_issue":
            key, project = f"{settings['repo']}{key}", settings["repo"]
        return Link(
            field,
            kind,
            key,
            str(entry.get("title", "")),
            status,
            str(entry.get("url", "")),
            str(entry["assignee"]) if entry.get("assignee") else None,
            is_open,
            project=str(project),
        )


def incident_id_of(value: str) -> str | None:
    """`Q1ABC2D` or `https://acme.pagerduty.com/incidents/Q1ABC2D` -> `Q1ABC2D`."""
    text = value.strip()
    if text.startswith("https://"):
        parts = [p for p in urlsplit(text).path.split("/") if p]
        text = parts[-1] if len(parts) >= 2 and parts[-2] == "incidents" else ""
    return text if _PD_ID.match(text) else None


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


# -- what an answer means -----------------------------------------------------------


def early_problem(settings: Mapping, value: str) -> str | None:
    """What is wrong before asking: a Jira key of a project not listed (no call made,
    so a key of another project does not even reveal whether it exists)."""
    match = _JIRA_KEY.match(value.strip().upper())
    projects = settings.get("projects") if settings["type"] == "jira" else None
    if match and projects and match.group(1) not in projects:
        return f"{match.group(0)} is in project {match.group(1)}, not {_or(projects)}"
    return None


def problem(link: Link, settings: Mapping) -> str | None:
    """Why `link` cannot justify access (closed, another project or service); None when
    it can. The texts name the value and what it is."""
    kind = settings["type"]
    if kind == "jira" and settings.get("projects") and link.project not in settings["projects"]:
        return f"{link.key} is in project {link.project}, not {_or(settings['projects'])}"
    if (
        kind == "pagerduty"
        and settings.get("services")
        and link.project not in settings["services"]
    ):
        return (
            f"{link.key} is on service {link.project or 'unknown'}, not {_or(settings['services'])}"
        )
    if not link.open:
        return f"{link.key} is {link.status}"
    return None


def _or(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
