"""The strategy interface and the payload every strategy receives."""

from __future__ import annotations

import json
import logging
import os
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlparse

from ..domain import DurationError, from_iso, iso, parse_duration
from ..errors import AccessBotError
from ..safe_text import redact_urls
from ..settings import SettingsError  # re-exported: strategies.SettingsError is the one class

if TYPE_CHECKING:
    from .accounts import Accounts

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ANSWER_LIMIT = 16 * 1024  # bytes of a target's JSON answer kept on the request

log = logging.getLogger(__name__)


class StrategyError(AccessBotError):
    """The target refused or did not answer; the message is the target's own words.

    The message reaches chat, alerts and the audit log, so any URL in it is shown as
    scheme://host[:port]/path only: never the credentials or token a URL may carry."""

    def __init__(self, message: str):
        super().__init__(redact_urls(message))


class CannotList(StrategyError):
    """The target cannot say who holds the access (a webhook answering 404 or 501 to
    `list`, a command exiting 64, a strategy with no way to list): not a failure to
    retry, but a resource the standing-access sweep cannot check."""


# True while settings are checked again with stand-ins (`strategies.strategy_problems`):
# what a strategy would log about its settings then would name the stand-ins, not the
# policy's own values, so it stays quiet.
RECHECKING: ContextVar[bool] = ContextVar("accessbot_strategy_rechecking", default=False)


ACTIONS = ("grant", "revoke", "extend")
LIST_LIMIT = 16 * 1024 * 1024  # bytes of a `list` answer: 100,000 members or so


@dataclass(frozen=True)
class Member:
    """Someone who holds the access at the target: their name there, e-mail and the
    target's stable id for them (the `account` a grant records), as far as it says;
    `note` says how they hold it when that is not plain membership ("invitation pending")."""

    user: str = ""
    user_email: str | None = None
    account: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Sessions:
    """What a revoke does to the sessions opened with the access before it (a psql session
    that did SET ROLE, an Okta sign-in, an AWS console session): they are `ended` by the
    revoke itself, `may_last` up to `seconds` after it (the target's own session length),
    or their fate is `unknown` to the bot. `what` names them for people ("database
    sessions"). Recorded on the grant at revoke (`at`) and said in every revoke notice."""

    fate: str = "unknown"  # "ended" | "may_last" | "unknown"
    what: str = "sessions"
    seconds: float | None = None  # for "may_last": how long after the revoke, at most
    until: datetime | None = None  # for "may_last", when the target names the time itself

    def at(self, revoked_at: datetime) -> dict:
        """The statement as recorded on the grant: {"fate", "what"} and, for "may_last",
        "until" (an ISO time): when the last session opened before may end."""
        recorded = {"fate": self.fate, "what": self.what}
        if self.fate == "may_last" and self.until is not None:
            recorded["until"] = iso(self.until)
        elif self.fate == "may_last" and self.seconds is not None:
            recorded["until"] = iso(revoked_at + timedelta(seconds=self.seconds))
        return recorded


UNKNOWN_SESSIONS = Sessions("unknown", "sessions")


@dataclass(frozen=True)
class Done:
    """What a strategy call did: a short note for the log and audit, the target's stable
    id for the user when the call learnt it (recorded at grant, used by revoke and
    extend), and the target's JSON answer where there is one."""

    note: str = ""
    account: str | None = None
    answer: dict | None = None
    # What a revoke did to sessions opened before, when the call itself knows better than
    # the strategy's declaration (`Strategy.sessions_at_revoke`).
    sessions: Sessions | None = None


class Strategy:
    kind: ClassVar[str]
    allowed_keys: ClassVar[frozenset[str]] = frozenset({"type"})
    # Who each chat user is on each target; build_strategy sets it from the bot's settings.
    accounts: Accounts | None = None
    # True when one instance may serve many calls from several threads at once (it keeps
    # no per-call state), so the service builds it once and reuses its connections.
    shareable: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, settings: dict) -> Strategy:
        raise NotImplementedError

    @classmethod
    def check_keys(cls, settings: dict) -> None:
        unknown = sorted(set(settings) - cls.allowed_keys)
        if unknown:
            allowed = ", ".join(sorted(cls.allowed_keys))
            raise SettingsError(
                f"strategy.{unknown[0]}",
                f"is not a setting of the {cls.kind} strategy (it takes: {allowed})",
            )

    @classmethod
    def timeout_setting(cls, settings: dict, default: str) -> float:
        return cls.duration_setting(settings, "timeout", default)

    @staticmethod
    def duration_setting(settings: dict, key: str, default: str) -> float:
        """A duration like "30s" or "2m", in seconds."""
        try:
            seconds = parse_duration(settings.get(key, default)).total_seconds()
        except DurationError as exc:
            raise SettingsError(f"strategy.{key}", str(exc)) from exc
        if seconds <= 0:
            raise SettingsError(f"strategy.{key}", "must be longer than 0s")
        return seconds

    @staticmethod
    def text_setting(settings: dict, key: str, example: str, required: bool = True) -> str | None:
        """A non-empty string setting; a missing or empty one is a load error naming it."""
        value = settings.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(
                f"strategy.{key}",
                f"is required, e.g. {example!r}"
                if value is None
                else f"must be text like {example!r}",
            )
        return value.strip()

    @classmethod
    def url_setting(cls, settings: dict, key: str, example: str, required: bool = True):
        url = cls.text_setting(settings, key, example, required)
        if url is None:
            return None
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError(
                f"strategy.{key}", f"{url!r} is not an http(s) URL like {example!r}"
            )
        return url.rstrip("/")

    @classmethod
    def env_setting(cls, settings: dict, key: str, example: str) -> str:
        name = cls.text_setting(settings, key, example)
        if not name.replace("_", "").isalnum():
            raise SettingsError(
                f"strategy.{key}", f"must name an environment variable, e.g. {example!r}"
            )
        return name

    @classmethod
    def env_names(cls, settings: dict) -> dict[str, str]:
        """The environment variables these settings need, by key: every `*_env` setting
        (`secret_env`, `token_env`) names one, e.g. {"strategy.token_env": "GITHUB_TOKEN"}."""
        return {
            f"strategy.{key}": settings[key].strip()
            for key in sorted(cls.allowed_keys)
            if key.endswith("_env") and isinstance(settings.get(key), str) and settings[key].strip()
        }

    @staticmethod
    def secret(env_name: str, what: str) -> str:
        """Read a token from the environment at call time (never from a policy file)."""
        value = os.environ.get(env_name, "").strip()
        if not value:
            raise StrategyError(f"the environment variable {env_name} ({what}) is not set")
        return value

    def account(self, system: str, handle: str) -> str:
        """`handle`'s account on `system` (github, aws), or a StrategyError naming the key."""
        from .accounts import NO_ACCOUNTS

        return (self.accounts or NO_ACCOUNTS).require(system, handle)

    def call(self, action: str, payload: dict) -> Done:
        """Carry out `action`; return what was done, or raise StrategyError.

        `payload["account"]` is the account recorded at grant (None for grants made
        before accounts were recorded): revoke and extend act on that account."""
        raise NotImplementedError

    def members(self, resource: str) -> list[Member]:
        """Everyone who holds the access at the target now, read in full (every page);
        CannotList when the target has no way to say, StrategyError when it failed to."""
        raise CannotList(f"the {self.kind} strategy cannot list who holds the access")

    def describe(self) -> str:
        return self.kind

    def sessions_at_revoke(self) -> Sessions:
        """What happens, at a successful revoke, to sessions opened with the access before:
        each strategy declares it (README: "Sessions opened before a revoke"); a strategy
        that can neither end them nor tell how long they last says `unknown`."""
        return UNKNOWN_SESSIONS

    def target_key(self) -> tuple | None:
        """What this strategy grants at, as a comparable tuple: two resources whose
        strategies give equal keys share one target (the same Okta group, GitHub team,
        AWS group or permission set), so a live grant through either explains a member
        of both. None: the target cannot be told apart from the resource (the resource
        is its own target)."""
        return None


def target_host(url: str | None) -> str:
    """A URL as a target's identity: scheme, host and path, case-folded where URLs are
    case-insensitive (scheme, host), without credentials, query or a trailing slash."""
    if not url:
        return ""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower() + (f":{parsed.port}" if parsed.port else "")
    return f"{parsed.scheme.lower()}://{host}{parsed.path.rstrip('/')}"


def payload_for(action: str, request) -> dict:
    return {
        "action": action,
        "grant_id": request.grant_id,
        "request_id": request.id,
        "user": request.requester,
        "user_email": request.requester_email,
        "resource": request.resource,
        "expires_at": iso(request.expires_at),
        "reason": request.reason,
        "account": request.account,
    }


def done_from_answer(note: str, raw: bytes, who: str) -> Done:
    """A Done from a target's answer (a webhook's body, a command's stdout): when it is a
    JSON object, it is kept as the answer and its `account` is the account to record.

    Anything else (empty, plain text) is fine: the call still succeeded. A malformed
    `account` is left out with a warning rather than failing a call that did its work.
    """
    if not raw or len(raw) > ANSWER_LIMIT:
        return Done(note)
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Done(note)
    if not isinstance(answer, dict):
        return Done(note)
    account = answer.get("account")
    if isinstance(account, bool) or not isinstance(account, (str, int)) or not str(account):
        if account is not None:
            log.warning("%s answered an account that is not a string: %r", who, account)
        account = None
    elif len(str(account)) > 200:
        log.warning("%s answered an account longer than 200 characters; not recorded", who)
        account = None
    return Done(note, None if account is None else str(account), answer, sessions_of(answer, who))


def sessions_of(answer: dict, who: str) -> Sessions | None:
    """What a revoke's answer says of sessions opened before (README, the webhook
    contract): `"sessions": "ended"`, `"unknown"`, or an ISO time they may last until;
    None (the strategy's declaration, unknown) when it says nothing or nothing usable."""
    said = answer.get("sessions")
    if said is None:
        return None
    if said in ("ended", "unknown"):
        return Sessions(said)
    try:
        until = from_iso(str(said)) if isinstance(said, str) else None
    except ValueError:
        until = None
    if until is None or until.tzinfo is None:
        log.warning("%s answered sessions that are not ended, unknown or a time: %r", who, said)
        return None
    return Sessions("may_last", until=until)


def encode_payload(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def members_from_answer(raw: bytes, who: str) -> list[Member]:
    """The members of a `list` answer: `{"members": [{"user", "user_email", "account"}]}`
    (the README's webhook contract). Anything else is a failure: a caller proving that someone is
    absent must have read a whole, well-formed list."""
    if len(raw) > LIST_LIMIT:
        raise StrategyError(f"{who} answered more than {LIST_LIMIT // 1024 // 1024} MB to list")
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        answer = None
    entries = answer.get("members") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise StrategyError(
            f'{who} did not answer list with JSON like {{"members": [{{"user": "alice", '
            '"user_email": "alice@acme.com", "account": "u-123"}]}'
        )
    members = []
    for number, entry in enumerate(entries, start=1):
        values = {}
        for key in ("user", "user_email", "account"):
            value = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
                value = None
            values[key] = str(value).strip() if value is not None else ""
        if not any(values.values()):
            raise StrategyError(
                f"{who}: member {number} of the list names no user, user_email or account"
            )
        members.append(
            Member(values["user"], values["user_email"] or None, values["account"] or None)
        )
    return members
