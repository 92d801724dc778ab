"""On-call lookups for policy hooks (`ctx.pagerduty`), through pdpyras, cached, fail-closed.

`OnCallChecker` talks to PagerDuty's REST API (`GET /users?query=`, `GET /oncalls`,
`GET /incidents`) and caches the answers for a short time. Policy hooks never see it directly: each request
gets an `OnCallLookups` (`checker.lookups()`), which turns every failure into "not on
call" and keeps the reason, so the service can show it on the approval card. Failing
closed is the point: PagerDuty down, slow, rate-limiting or refusing the token means a
human decides, never that access is granted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import requests
from cachetools import TLRUCache

with warnings.catch_warnings():
    # pdpyras warns at import that it is deprecated in favour of `pagerduty`; it still
    # works and is what this project pins.
    warnings.simplefilter("ignore")
    import pdpyras

from ..capped_http import ANSWER_LIMIT, capped, capped_session
from ..errors import AccessBotError

log = logging.getLogger(__name__)

PUBLIC_API_URL = "https://api.pagerduty.com"
NOT_CONFIGURED = "PagerDuty is not configured (set ACCESS_PAGERDUTY_TOKEN)"
INCIDENT_STATUSES = ("triggered", "acknowledged", "resolved")
OPEN_STATUSES = ("triggered", "acknowledged")  # what `has_incident` asks about by default


class PagerDutyError(AccessBotError):
    """A lookup failed; the message is safe to show in chat (never the token)."""


class IncidentNotFound(PagerDutyError):
    """PagerDuty has no incident by that id (HTTP 404)."""


class OnCallLookups:
    """`ctx.pagerduty` for one request: the checker's answers, failures kept for the card.

    Every failure is logged and means "not on call" / "nobody on call". One instance
    serves one request, so the failures of concurrent requests never mix.
    """

    def __init__(self, checker: OnCallChecker | PagerDutyNotConfigured):
        self._checker = checker
        self._failures: list[str] = []
        self._lock = threading.Lock()

    def is_on_call(
        self,
        email: str | None,
        schedule: str | None = None,
        escalation_policy: str | None = None,
        max_level: int | None = None,
    ) -> bool:
        """True only when PagerDuty says the user with this e-mail is on call right now
        (for `schedule` / `escalation_policy`, when given; at escalation level
        `max_level` or nearer, when given); False on any doubt."""
        try:
            return self._checker.is_on_call(email, schedule, escalation_policy, max_level)
        except PagerDutyError as exc:
            self._fail(str(exc))
            return False

    def on_call_users(
        self,
        schedule: str | None = None,
        escalation_policy: str | None = None,
        max_level: int | None = None,
    ) -> list[str]:
        """E-mails of whoever is on call right now for the schedule or escalation policy
        (at level `max_level` or nearer, when given); an empty list when PagerDuty cannot
        say."""
        try:
            return list(self._checker.on_call_users(schedule, escalation_policy, max_level))
        except PagerDutyError as exc:
            self._fail(str(exc))
            return []

    def has_incident(
        self,
        email: str | None = None,
        service: str | None = None,
        statuses: Iterable[str] | str = OPEN_STATUSES,
    ) -> bool:
        """True only when PagerDuty says the user with this e-mail is assigned an incident
        in one of `statuses` (open: triggered or acknowledged), on `service` when given;
        False on any doubt."""
        try:
            return self._checker.has_incident(email, service, statuses)
        except PagerDutyError as exc:
            self._fail(str(exc))
            return False

    @property
    def failures(self) -> list[str]:
        """What went wrong during this request's lookups, each once, in order."""
        with self._lock:
            return list(self._failures)

    def _fail(self, reason: str) -> None:
        log.warning("PagerDuty check failed, treating it as not on call: %s", reason)
        with self._lock:
            if reason not in self._failures:
                self._failures.append(reason)


class RecordedLookups(OnCallLookups):
    """OnCallLookups that also write down each question and answer, for `!access whatif`:
    `lines` says what was asked, what came back and where the answer came from."""

    def __init__(self, checker):
        super().__init__(checker)
        self.source = getattr(checker, "source", "live PagerDuty lookup")
        self.lines: list[str] = []

    def is_on_call(self, email, schedule=None, escalation_policy=None, max_level=None) -> bool:
        before = len(self.failures)
        answer = super().is_on_call(email, schedule, escalation_policy, max_level)
        self._note(
            f"is {email or 'the requester (no e-mail)'} on call"
            f"{_for(schedule, escalation_policy, max_level)}",
            answer,
            before,
        )
        return answer

    def on_call_users(self, schedule=None, escalation_policy=None, max_level=None) -> list[str]:
        before = len(self.failures)
        answer = super().on_call_users(schedule, escalation_policy, max_level)
        self._note(
            f"who is on call{_for(schedule, escalation_policy, max_level)}",
            ", ".join(answer) or "nobody",
            before,
        )
        return answer

    def has_incident(self, email=None, service=None, statuses=None) -> bool:
        statuses = OPEN_STATUSES if statuses is None else statuses
        before = len(self.failures)
        answer = super().has_incident(email, service, statuses)
        shown = ", ".join([statuses] if isinstance(statuses, str) else statuses)
        self._note(
            f"is {email or 'the requester (no e-mail)'} assigned a {shown} incident"
            + (f" of service {service}" if service else ""),
            answer,
            before,
        )
        return answer

    def _note(self, question: str, answer, failures_before: int) -> None:
        failures = self.failures
        if len(failures) > failures_before:
            said = f"failed ({failures[-1]}), counted as {'no' if answer is False else 'nobody'}"
        else:
            said = "yes" if answer is True else "no" if answer is False else str(answer)
        self.lines.append(f"{question}? {said} ({self.source})")


def _for(schedule, escalation_policy, max_level=None) -> str:
    parts = [
        f"schedule {schedule}" if schedule else "",
        f"escalation policy {escalation_policy}" if escalation_policy else "",
    ]
    parts = [p for p in parts if p]
    text = " for " + " and ".join(parts) if parts else ""
    return text + (f" at level {max_level} or nearer" if max_level is not None else "")


class StaticOnCall:
    """Fixed PagerDuty answers, for `python -m accessbot test`: schedule or escalation
    policy id -> who is on call (an e-mail at level 1, or {"email": ..., "level": 2});
    `incidents`: [{"email", "service", "status"}] the people assigned open incidents.
    `down` makes every lookup fail with that reason."""

    configured = True
    source = "answer from the test file"

    def __init__(
        self,
        on_call: Mapping[str, Iterable] | None = None,
        down: str | None = None,
        incidents: Iterable[Mapping] = (),
    ):
        self._on_call = {str(k): [_static_entry(e) for e in v] for k, v in (on_call or {}).items()}
        self._incidents = [
            (
                str(i["email"]).strip().lower(),
                str(i["service"]) if i.get("service") else None,
                str(i.get("status", "triggered")),
            )
            for i in incidents
        ]
        self.down = down

    def lookups(self) -> OnCallLookups:
        return OnCallLookups(self)

    def _emails(self, ref: str, max_level: int | None) -> list[str]:
        return [
            e for e, level in self._on_call.get(ref, ()) if max_level is None or level <= max_level
        ]

    def is_on_call(self, email, schedule=None, escalation_policy=None, max_level=None) -> bool:
        _check_filters(schedule, escalation_policy, required=False, max_level=max_level)
        wanted = self._asked_about(email)
        ids = [i for i in (schedule, escalation_policy) if i]
        if not ids:
            return any(wanted in self._emails(ref, max_level) for ref in self._on_call)
        return all(wanted in self._emails(i, max_level) for i in ids)

    def on_call_users(self, schedule=None, escalation_policy=None, max_level=None) -> list[str]:
        _check_filters(schedule, escalation_policy, required=True, max_level=max_level)
        if self.down:
            raise PagerDutyError(self.down)
        ids = [i for i in (schedule, escalation_policy) if i]
        found = [
            e
            for e in self._emails(ids[0], max_level)
            if all(e in self._emails(i, max_level) for i in ids)
        ]
        return list(dict.fromkeys(found))

    def has_incident(self, email=None, service=None, statuses=OPEN_STATUSES) -> bool:
        wanted_statuses = _check_incident_args(service, statuses)
        wanted = self._asked_about(email)
        return any(
            who == wanted and (service is None or on == service) and status in wanted_statuses
            for who, on, status in self._incidents
        )

    def _asked_about(self, email) -> str:
        if self.down:
            raise PagerDutyError(self.down)
        if not email or "@" not in str(email):
            raise PagerDutyError("no e-mail address is known for the requester")
        return str(email).strip().lower()


def _static_entry(entry) -> tuple[str, int]:
    """An on-call entry of a test file: "carol@x" (level 1) or {"email": ..., "level": 2}."""
    if isinstance(entry, Mapping):
        return str(entry["email"]).strip().lower(), int(entry.get("level", 1))
    return str(entry).strip().lower(), 1


class PagerDutyNotConfigured:
    """The checker when no ACCESS_PAGERDUTY_TOKEN is set: nobody is on call.

    Failing closed means a break-glass policy falls back to human approval, and the
    card says why.
    """

    configured = False
    source = "PagerDuty is not configured"

    def lookups(self) -> OnCallLookups:
        return OnCallLookups(self)

    def is_on_call(self, email, schedule=None, escalation_policy=None, max_level=None) -> bool:
        _check_filters(schedule, escalation_policy, required=False, max_level=max_level)
        raise PagerDutyError(NOT_CONFIGURED)

    def on_call_users(self, schedule=None, escalation_policy=None, max_level=None) -> list[str]:
        _check_filters(schedule, escalation_policy, required=True, max_level=max_level)
        raise PagerDutyError(NOT_CONFIGURED)

    def has_incident(self, email=None, service=None, statuses=OPEN_STATUSES) -> bool:
        _check_incident_args(service, statuses)
        raise PagerDutyError(NOT_CONFIGURED)


class _TTLCache:
    """A bounded thread-safe cache whose entries expire by the injected clock, each after
    the time it was put with (user ids an hour, on-call answers a minute): cachetools'
    TLRUCache, its `ttu` reading the time kept beside the value. Full, it drops the entry
    that expires first."""

    MAX_ENTRIES = 5000
    _MISSING = object()

    def __init__(self, clock: Callable[[], datetime]):
        self._entries = TLRUCache(
            maxsize=self.MAX_ENTRIES, ttu=lambda _key, kept, now: now + kept[0], timer=clock
        )
        self._lock = threading.Lock()  # commands, hooks and clicks ask from many threads

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key) -> tuple[bool, Any]:
        with self._lock:
            kept = self._entries.get(key, self._MISSING)
        if kept is self._MISSING:
            return False, None
        return True, kept[1]

    def put(self, key, value, ttl: timedelta) -> None:
        with self._lock:
            self._entries[key] = (ttl, value)


class OnCallChecker:
    """Asks PagerDuty who is on call, with pdpyras, a short timeout and cached answers.

    User ids (by e-mail) are cached for `user_ttl`, on-call answers for `on_call_ttl`.
    A 429 is retried `rate_limit_retries` times by pdpyras, `rate_limit_pause` seconds
    apart and doubling; a timeout or network error is not retried, so each HTTP call
    waits at most `timeout` seconds (a cold `is_on_call` makes two). Methods raise
    PagerDutyError; `lookups()` wraps them for policy hooks.
    """

    configured = True
    source = "live PagerDuty lookup"

    def __init__(
        self,
        token: str,
        url: str = PUBLIC_API_URL,
        *,
        clock: Callable[[], datetime],
        timeout: float = 3.0,
        user_ttl: timedelta = timedelta(hours=1),
        on_call_ttl: timedelta = timedelta(minutes=1),
        rate_limit_retries: int = 2,
        rate_limit_pause: float = 0.5,
    ):
        if not token:
            raise ValueError("an API token is required; without one use PagerDutyNotConfigured")
        self._token = token
        self.url = (url or PUBLIC_API_URL).rstrip("/")
        self.clock = clock
        self.timeout = timeout
        self.user_ttl = user_ttl
        self.on_call_ttl = on_call_ttl
        self.rate_limit_retries = rate_limit_retries
        self.rate_limit_pause = rate_limit_pause
        self._cache = _TTLCache(clock)
        # A requests.Session is not meant for concurrent use; commands run in parallel,
        # so each call borrows a session from this pool (and keeps its connections).
        self._sessions: queue.LifoQueue[pdpyras.APISession] = queue.LifoQueue()
        self._calls = 0
        self._calls_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token, not even in a traceback
        return f"OnCallChecker(url={self.url!r}, timeout={self.timeout:g})"

    @property
    def calls(self) -> int:
        """HTTP answers received from PagerDuty so far (retries included)."""
        with self._calls_lock:
            return self._calls

    def lookups(self) -> OnCallLookups:
        return OnCallLookups(self)

    # -- the questions policies ask --------------------------------------------------

    def is_on_call(
        self,
        email: str | None,
        schedule: str | None = None,
        escalation_policy: str | None = None,
        max_level: int | None = None,
    ) -> bool:
        _check_filters(schedule, escalation_policy, required=False, max_level=max_level)
        if schedule or escalation_policy:
            # Who is on call there answers it in one call, shared with routing that asks
            # `on_call_users` for the same schedule. Somebody not in it is looked up, so
            # an e-mail PagerDuty does not know is reported rather than a quiet "no".
            wanted = _email_key(email)
            on_call = self.on_call_users(schedule, escalation_policy, max_level)
            if wanted in (e.strip().lower() for e in on_call):
                return True
            self.user_id(email)
            return False
        user_id = self.user_id(email)
        key = ("on_call", user_id, max_level)
        hit, answer = self._cache.get(key)
        if hit:
            return answer
        params: dict[str, Any] = {"user_ids[]": [user_id]}
        answer = self._request(
            lambda s: any(
                _ref_id(oncall, "user") == user_id and _within(oncall, max_level)
                for oncall in s.iter_all("/oncalls", params=params)
            )
        )
        self._cache.put(key, answer, self.on_call_ttl)
        return answer

    def on_call_users(
        self,
        schedule: str | None = None,
        escalation_policy: str | None = None,
        max_level: int | None = None,
    ) -> list[str]:
        _check_filters(schedule, escalation_policy, required=True, max_level=max_level)
        key = ("on_call_users", schedule, escalation_policy)
        hit, entries = self._cache.get(key)
        if not hit:
            params = {"include[]": ["users"], **_filter_params(schedule, escalation_policy)}

            def collect(session: pdpyras.APISession) -> list[tuple[str, int | None]]:
                found: list[tuple[str, int | None]] = []
                for oncall in session.iter_all("/oncalls", params=params):
                    if not _matches(oncall, schedule, escalation_policy):
                        continue
                    user_id = _ref_id(oncall, "user")
                    email = oncall["user"].get("email") or (user_id and self._email_of(user_id))
                    if email:
                        found.append((str(email), _level(oncall)))
                return found

            entries = tuple(self._request(collect))
            # Every level is kept: a max_level asked later is answered from the cache.
            self._cache.put(key, entries, self.on_call_ttl)
        found: list[str] = []
        for email, level in entries:
            if max_level is not None and (level is None or level > max_level):
                continue
            if email.lower() not in (e.lower() for e in found):
                found.append(email)
        return found

    def has_incident(
        self,
        email: str | None,
        service: str | None = None,
        statuses: Iterable[str] | str = OPEN_STATUSES,
    ) -> bool:
        """Is the user with this e-mail assigned an incident in `statuses` (on `service`)?"""
        wanted = _check_incident_args(service, statuses)
        user_id = self.user_id(email)
        key = ("incident", user_id, service, wanted)
        hit, answer = self._cache.get(key)
        if hit:
            return answer
        params: dict[str, Any] = {
            "user_ids[]": [user_id],
            "statuses[]": sorted(wanted),
            "date_range": "all",  # else only the last month's: an old incident may be open
        }
        if service:
            params["service_ids[]"] = [service]

        def assigned(incident: dict) -> bool:
            # The server filters too; checking again means a sloppy answer cannot grant.
            if incident.get("status") not in wanted:
                return False
            if service and _ref_id(incident, "service") != service:
                return False
            return any(
                _ref_id(a, "assignee") == user_id
                for a in incident.get("assignments") or ()
                if isinstance(a, dict)
            )

        answer = self._request(
            lambda s: any(assigned(i) for i in s.iter_all("/incidents", params=params))
        )
        self._cache.put(key, answer, self.on_call_ttl)
        return answer

    def user_id(self, email: str | None) -> str:
        """The PagerDuty user id for an e-mail (exact, case-insensitive match)."""
        wanted = _email_key(email)
        key = ("user", wanted)
        hit, user_id = self._cache.get(key)
        if not hit:
            # `query` matches names and e-mails partially: alice@x also finds malice@x.
            user = self._request(
                lambda s: next(
                    (
                        u
                        for u in s.iter_all("/users", params={"query": wanted})
                        if str(u["email"]).strip().lower() == wanted
                    ),
                    None,
                )
            )
            user_id = str(user["id"]) if user else None
            # An unknown e-mail is remembered only briefly: the person may be added soon.
            self._cache.put(key, user_id, self.user_ttl if user_id else self.on_call_ttl)
            if user:
                self._cache.put(("email", user_id), str(user["email"]), self.user_ttl)
        if user_id is None:
            raise PagerDutyError(f"no PagerDuty user has the e-mail {email.strip()}")
        return user_id

    # -- HTTP ---------------------------------------------------------------------------

    def _email_of(self, user_id: str) -> str | None:
        """An on-call entry without the user's e-mail: ask for the user (rare, cached)."""
        hit, email = self._cache.get(("email", user_id))
        if hit:
            return email
        user = self._request(lambda s: s.rget(f"/users/{user_id}"))
        email = str(user["email"]) if user.get("email") else None
        self._cache.put(("email", user_id), email, self.user_ttl)
        return email

    def incident(self, incident_id: str) -> dict:
        """`GET /incidents/{id}`, never cached (a checked justification wants its status
        now); IncidentNotFound for a 404, PagerDutyError for any other failure."""

        def fetch(session: pdpyras.APISession) -> dict:
            try:
                return session.rget(f"/incidents/{incident_id}")
            except pdpyras.PDClientError as exc:
                if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                    raise IncidentNotFound(f"no PagerDuty incident {incident_id}") from None
                raise

        answer = self._request(fetch)
        if not isinstance(answer, dict):
            raise PagerDutyError("PagerDuty sent an answer that is not the JSON its API documents")
        return answer

    def email_of(self, user_id: str) -> str | None:
        """The e-mail of a PagerDuty user id (cached); PagerDutyError when it cannot say."""
        return self._email_of(user_id)

    # Told (seconds, ok) after every API call, for /metrics; the plugin sets it.
    observe: Callable[[float, bool], None] | None = None

    def _request(self, work: Callable[[pdpyras.APISession], Any]) -> Any:
        session = self._session()
        started, ok = time.monotonic(), False
        try:
            answer = work(session)
            ok = True
            return answer
        except PagerDutyError:
            raise
        except Exception as exc:  # noqa: BLE001 - any surprise must fail closed
            reason = self._explain(exc)
            # No traceback: pdpyras' own 401 text shows the token's last characters.
            log.debug("PagerDuty call failed (%s): %s", type(exc).__name__, reason)
            raise PagerDutyError(reason) from None
        finally:
            self._sessions.put(session)
            if self.observe is not None:
                self.observe(time.monotonic() - started, ok)

    def _session(self) -> pdpyras.APISession:
        try:
            return self._sessions.get_nowait()
        except queue.Empty:
            pass
        session = capped_session(pdpyras.APISession(self._token))  # answers up to ANSWER_LIMIT
        session.url = self.url
        session.timeout = self.timeout
        # A timeout or refused connection is reported at once, not retried for ~20s.
        session.max_network_attempts = 0
        # 429: pdpyras retries forever by default; a person is waiting, so only a few.
        session.retry[429] = self.rate_limit_retries
        session.sleep_timer = self.rate_limit_pause / session.sleep_timer_base
        checker = self

        def count(response, _session=session, _original=session.postprocess):
            with checker._calls_lock:
                checker._calls += 1
            if capped(response):
                raise PagerDutyError(
                    f"PagerDuty sent an answer over {ANSWER_LIMIT} bytes; it was not read"
                )
            _original(response)

        session.postprocess = count
        return session

    def _explain(self, exc: BaseException) -> str:
        """A reason a person can act on; never the token (pdpyras' own texts show part)."""
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(exc, pdpyras.PDClientError) and response is None:
            cause = exc.__cause__
            if isinstance(cause, requests.Timeout):
                return f"PagerDuty did not answer within {self.timeout:g}s"
            if isinstance(cause, requests.ConnectionError):
                return f"could not connect to PagerDuty at {self.url}"
            return f"could not reach PagerDuty at {self.url}"
        if status == 401:
            return "PagerDuty refused the API token (HTTP 401); check ACCESS_PAGERDUTY_TOKEN"
        if status == 403:
            return "the PagerDuty API token may not read users or on-calls (HTTP 403)"
        if status == 429:
            return "PagerDuty is rate-limiting the bot (HTTP 429)"
        if status is not None and not 200 <= status < 300:
            return f"PagerDuty answered HTTP {status}"
        return "PagerDuty sent an answer that is not the JSON its API documents"


def _email_key(email: str | None) -> str:
    """The e-mail as PagerDuty compares it; raises when there is none to ask about."""
    if not email or not isinstance(email, str) or "@" not in email:
        raise PagerDutyError(
            "no e-mail address is known for the requester (set it in their chat "
            "profile or in ACCESS_USER_EMAILS)"
        )
    return email.strip().lower()


def _check_filters(schedule, escalation_policy, *, required: bool, max_level=None) -> None:
    """Mistakes in a policy file raise, so the policy's author sees file and line."""
    for name, value in (("schedule", schedule), ("escalation_policy", escalation_policy)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f'{name} must be a PagerDuty id like "PABC123", not {value!r}')
    if required and schedule is None and escalation_policy is None:
        raise ValueError('on_call_users needs schedule="P..." or escalation_policy="P..."')
    if max_level is not None and (type(max_level) is not int or max_level < 1):
        raise ValueError(
            f"max_level must be a whole number of 1 or more (1: the first level), not {max_level!r}"
        )


def _check_incident_args(service, statuses) -> tuple[str, ...]:
    """The statuses asked for, checked; mistakes raise so the policy's author sees them."""
    if service is not None and (not isinstance(service, str) or not service.strip()):
        raise ValueError(f'service must be a PagerDuty service id like "PSVC123", not {service!r}')
    wanted = (statuses,) if isinstance(statuses, str) else tuple(statuses or ())
    if not wanted or any(s not in INCIDENT_STATUSES for s in wanted):
        raise ValueError(
            f"statuses must be some of {', '.join(INCIDENT_STATUSES)}, not {statuses!r}"
        )
    return tuple(sorted(set(wanted)))


def _level(oncall: dict) -> int | None:
    level = oncall.get("escalation_level")
    return level if type(level) is int else None


def _within(oncall: dict, max_level: int | None) -> bool:
    """At `max_level` or nearer; an entry without a level counts only when none is asked."""
    if max_level is None:
        return True
    level = _level(oncall)
    return level is not None and level <= max_level


def _filter_params(schedule: str | None, escalation_policy: str | None) -> dict:
    params = {}
    if schedule:
        params["schedule_ids[]"] = [schedule]
    if escalation_policy:
        params["escalation_policy_ids[]"] = [escalation_policy]
    return params


def _ref_id(oncall: dict, key: str) -> str | None:
    ref = oncall.get(key)
    return str(ref["id"]) if isinstance(ref, dict) and ref.get("id") else None


def _matches(oncall: dict, schedule: str | None, escalation_policy: str | None) -> bool:
    """The server filters too; checking again means a sloppy answer cannot grant."""
    if schedule and _ref_id(oncall, "schedule") != schedule:
        return False
    return not (escalation_policy and _ref_id(oncall, "escalation_policy") != escalation_policy)


def on_call_checker(
    token: str | None,
    url: str,
    clock: Callable[[], datetime],
    timeout: float = 3.0,
) -> OnCallChecker | PagerDutyNotConfigured:
    """The checker the plugin wires in: the real one when a token is set."""
    if not token:
        return PagerDutyNotConfigured()
    return OnCallChecker(token, url, clock=clock, timeout=timeout)
