"""Configuration keys (README: "Configuration"): the bot's config, overridden by the environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .domain import DurationError, parse_duration
from .errors import AccessBotError
from .safe_text import redact_url, redact_urls

PUBLIC_PAGERDUTY_URL = "https://api.pagerduty.com"
# The checkout this package lives in (plugins/accessbot/ -> the project), and the Errbot
# config the bot runs with there: the CLI reads it too, from whatever folder it runs in.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = PROJECT_ROOT / "config.py"


class SettingsError(AccessBotError):
    """A setting is missing or wrong, with what to write instead.

    Two kinds, one class: an ACCESS_* key (`SettingsError(message)`, the message names the
    key) and a strategy setting in a policy file (`SettingsError(key, message)`, `key` and
    `message` kept apart for the policy checks; `strategies.SettingsError` is this class;
    a bad URL setting may carry a password, so URLs in its message are shown redacted)."""

    def __init__(self, key_or_message: str, message: str | None = None):
        if message is None:
            key, message = None, key_or_message
            super().__init__(message)
        else:
            key, message = key_or_message, redact_urls(message)
            super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Settings:
    policy_dir: str = "policies"
    db_path: str = "data/access.json"
    audit_path: str = "data/audit.jsonl"
    audit_max_bytes: int = 50 * 1024 * 1024
    tick_seconds: float = 1.0
    user_emails: Mapping[str, str] = field(default_factory=dict)
    user_github: Mapping[str, str] = field(default_factory=dict)  # handle -> GitHub login
    user_aws: Mapping[str, str] = field(default_factory=dict)  # handle -> AWS user name
    user_db: Mapping[str, str] = field(default_factory=dict)  # handle -> database login
    pagerduty_token: str | None = None
    pagerduty_url: str = PUBLIC_PAGERDUTY_URL
    pagerduty_timeout: float = 3.0
    pending_timeout: timedelta = timedelta(hours=1)
    # The shortest duration one may ask for where a resource sets no min_duration; 0: none.
    min_duration: timedelta = timedelta(seconds=30)
    expiry_reminder: timedelta = timedelta(minutes=10)
    approval_reminder: timedelta = timedelta(minutes=15)
    hook_timeout: float = 10.0  # seconds a policy hook may run
    # Seconds before a slow policy check is acknowledged ("Checking the policy..."); 0: at once.
    ack_seconds: float = 2.0
    groups: Mapping[str, list[str]] = field(default_factory=dict)  # ACCESS_GROUPS
    policy_watch: bool = False  # reload when the policy files change
    policy_watch_seconds: float = 1.0  # how often the watcher looks
    db_url: str | None = None  # PostgreSQL for several bots; None: TinyDB and files
    lease_seconds: float = 10.0  # how long a dead bot's scheduler lease and claims last
    # How long a command waits for a database connection before it answers that the
    # database is not answering (the scheduler and its workers wait longer).
    db_command_wait: float = 1.5
    strategy_workers: int = 32  # concurrent strategy calls in one scheduler tick
    delivery_workers: int = 4  # threads sending what waits in the outbox
    # Slack teams (besides the bot's own) whose users may act: Slack Connect partners.
    slack_allowed_teams: frozenset[str] = frozenset()
    # How often the standing-access sweep compares targets with grants; None: never.
    standing_sweep: timedelta | None = timedelta(hours=1)
    standing_max_removals: int = 20  # a sweep wanting to remove more removes nothing
    requests_per_hour: int = 30  # requests one person may make in any hour; 0: no limit
    audit_sinks: tuple[SinkConfig, ...] = ()  # ACCESS_AUDIT_SINKS: copies off the host
    audit_checkpoint: timedelta = timedelta(minutes=5)  # 0: no checkpoints
    # ACCESS_METRICS_TOKEN (environment only): GET /metrics wants it as a Bearer token.
    metrics_token: str | None = field(default=None, repr=False)
    # How often the tickets and incidents of active end_with grants are looked up again.
    link_check: timedelta = timedelta(minutes=1)
    # A grant this long past its end without a confirmed revoke is told to the admins.
    overdue_grace: timedelta = timedelta(minutes=2)

    @classmethod
    def load(
        cls,
        config: Any = None,
        environ: Mapping[str, str] | None = None,
        data_dir: str | None = None,
    ) -> Settings:
        """Read every ACCESS_* key: the environment wins over the config.

        `data_dir` is where the DB and audit log go when neither names a path: the bot
        passes errbot's BOT_DATA_DIR, so a bot started without the keys (a throwaway
        TestBot, say) never shares files with another; the shipped config.py sets them.
        """
        environ = os.environ if environ is None else environ

        def get(name: str, default):
            if name in environ and environ[name] != "":
                return environ[name]
            value = getattr(config, name, None) if config is not None else None
            return default if value is None else value  # None in the config means "unset"

        emails = _handle_map(get, "ACCESS_USER_EMAILS", "e-mails", "alice@example.com")
        github = _handle_map(get, "ACCESS_USER_GITHUB", "GitHub logins", "alice-gh")
        aws = _handle_map(get, "ACCESS_USER_AWS", "AWS user names", "alice")
        db = _handle_map(get, "ACCESS_USER_DB", "database logins", "alice_rw")
        try:
            tick = float(get("ACCESS_TICK_SECONDS", 1))
        except (TypeError, ValueError) as exc:
            raise SettingsError("ACCESS_TICK_SECONDS must be a number of seconds, e.g. 1") from exc
        if tick <= 0:
            raise SettingsError("ACCESS_TICK_SECONDS must be more than 0")

        def duration(name: str, default: str) -> timedelta:
            value = get(name, default)
            if isinstance(value, timedelta):
                return value
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise SettingsError(f"{name}: {exc}") from exc

        def seconds(name: str, default: float, example: str, zero: bool = False) -> float:
            """Seconds as a number or a duration (`10`, `1.5`, `10s`); more than 0, or
            0 or more when `zero` is allowed."""
            value = get(name, default)
            try:
                value = (
                    parse_duration(value).total_seconds()
                    if isinstance(value, str) and not value.replace(".", "", 1).isdigit()
                    else float(value)
                )
            except (DurationError, TypeError, ValueError) as exc:
                raise SettingsError(f"{name} must be seconds, e.g. {example}") from exc
            if value < 0 or (value == 0 and not zero):
                raise SettingsError(
                    f"{name} must be {'0 or more' if zero else 'more than 0'}, e.g. {example}"
                )
            return value

        pd_timeout = seconds("ACCESS_PAGERDUTY_TIMEOUT", 3.0, "3 or 3s")
        max_bytes = parse_size(get("ACCESS_AUDIT_MAX_BYTES", 50 * 1024 * 1024))
        db_url = str(get("ACCESS_DB_URL", "") or "").strip() or None
        if db_url and not db_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError(
                "ACCESS_DB_URL must be a PostgreSQL URL like postgresql://accessbot@db/accessbot "
                "(put the password in PGPASSWORD or ~/.pgpass), or empty for the TinyDB files"
            )
        try:
            lease = float(get("ACCESS_LEASE_SECONDS", 10))
        except (TypeError, ValueError) as exc:
            raise SettingsError(
                "ACCESS_LEASE_SECONDS must be a number of seconds, e.g. 10"
            ) from exc
        if db_url and lease < tick:
            raise SettingsError(
                f"ACCESS_LEASE_SECONDS ({lease:g}) must be at least ACCESS_TICK_SECONDS "
                f"({tick:g}): the scheduler renews its lease once a tick"
            )
        raw_workers = get("ACCESS_STRATEGY_WORKERS", 32)
        try:
            workers = 0 if isinstance(raw_workers, bool) else int(str(raw_workers).strip())
        except ValueError:
            workers = 0
        if not 1 <= workers <= 64:
            raise SettingsError(
                "ACCESS_STRATEGY_WORKERS must be a whole number from 1 to 64, e.g. 32"
            )
        return cls(
            policy_dir=str(get("ACCESS_POLICY_DIR", "policies")),
            db_path=str(get("ACCESS_DB_PATH", os.path.join(data_dir or "data", "access.json"))),
            audit_path=str(
                get("ACCESS_AUDIT_PATH", os.path.join(data_dir or "data", "audit.jsonl"))
            ),
            audit_max_bytes=max_bytes,
            tick_seconds=tick,
            user_emails=emails,
            user_github=github,
            user_aws=aws,
            user_db=db,
            pagerduty_token=get("ACCESS_PAGERDUTY_TOKEN", None) or None,
            pagerduty_url=str(get("ACCESS_PAGERDUTY_URL", PUBLIC_PAGERDUTY_URL)),
            pagerduty_timeout=pd_timeout,
            pending_timeout=duration("ACCESS_PENDING_TIMEOUT", "1h"),
            min_duration=timedelta(0)
            if str(get("ACCESS_MIN_DURATION", "30s")).strip() == "0"
            else duration("ACCESS_MIN_DURATION", "30s"),
            expiry_reminder=duration("ACCESS_EXPIRY_REMINDER", "10m"),
            approval_reminder=duration("ACCESS_APPROVAL_REMINDER", "15m"),
            hook_timeout=seconds("ACCESS_HOOK_TIMEOUT", 10.0, "10 or 10s"),
            ack_seconds=seconds("ACCESS_ACK_SECONDS", 2.0, "2 or 2s", zero=True),
            groups=_groups(get("ACCESS_GROUPS", {})),
            policy_watch=_flag(get("ACCESS_POLICY_WATCH", False), "ACCESS_POLICY_WATCH"),
            policy_watch_seconds=seconds("ACCESS_POLICY_WATCH_SECONDS", 1.0, "1 or 0.5"),
            db_url=db_url,
            lease_seconds=lease,
            db_command_wait=seconds("ACCESS_DB_COMMAND_WAIT", 1.5, "1.5 or 1s"),
            strategy_workers=workers,
            delivery_workers=_delivery_workers(get("ACCESS_DELIVERY_WORKERS", 4)),
            slack_allowed_teams=_teams(get("ACCESS_SLACK_ALLOWED_TEAMS", ())),
            standing_sweep=_sweep_every(get("ACCESS_STANDING_SWEEP", "1h")),
            standing_max_removals=_count(
                get("ACCESS_STANDING_MAX_REMOVALS", 20), "ACCESS_STANDING_MAX_REMOVALS", "20"
            ),
            requests_per_hour=_count(
                get("ACCESS_REQUESTS_PER_HOUR", 30), "ACCESS_REQUESTS_PER_HOUR", "30"
            ),
            audit_sinks=parse_sinks(get("ACCESS_AUDIT_SINKS", ())),
            audit_checkpoint=_checkpoint_every(get("ACCESS_AUDIT_CHECKPOINT", "5m")),
            # A secret: from the environment only, never from config.py.
            metrics_token=environ.get("ACCESS_METRICS_TOKEN", "").strip() or None,
            link_check=duration("ACCESS_LINK_CHECK", "1m"),
            overdue_grace=duration("ACCESS_OVERDUE_GRACE", "2m"),
        )


def _groups(value) -> dict[str, list[str]]:
    """ACCESS_GROUPS: group name -> approvers; JSON in the environment. The policy loader
    checks the names and members, so `python -m accessbot check` reports them too."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SettingsError(
                'ACCESS_GROUPS must be JSON like {"sre": ["@alice", "@bob"]}'
            ) from exc
    if not isinstance(value, Mapping):
        raise SettingsError(
            'ACCESS_GROUPS must map group names to approvers, like {"sre": ["@alice"]}'
        )
    return dict(value)


def _teams(value) -> frozenset[str]:
    """ACCESS_SLACK_ALLOWED_TEAMS: Slack team ids (T...); a list, JSON, or comma-separated."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise SettingsError(
                    'ACCESS_SLACK_ALLOWED_TEAMS must be team ids like ["T0PARTNER"] or '
                    "T0PARTNER,T0OTHER"
                ) from exc
        else:
            value = [t for t in text.split(",") if t.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(t, str) and re.fullmatch(r"[TE][A-Z0-9]{2,30}", t.strip()) for t in value
    ):
        raise SettingsError(
            "ACCESS_SLACK_ALLOWED_TEAMS must list Slack team ids (T..., or E... for an "
            'Enterprise Grid), like ["T0PARTNER"]'
        )
    return frozenset(t.strip() for t in value)


def _sweep_every(value) -> timedelta | None:
    """ACCESS_STANDING_SWEEP: a duration like 1h or 30m; 0 turns the sweep off."""
    if isinstance(value, timedelta):
        return value if value > timedelta(0) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value) if value > 0 else None
    text = str(value).strip()
    if text in ("0", "0s", "off"):
        return None
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise SettingsError(
            f"ACCESS_STANDING_SWEEP must be a duration like 1h or 30m, or 0 to turn the "
            f"standing-access sweep off, not {value!r}"
        ) from exc


def _delivery_workers(value) -> int:
    """ACCESS_DELIVERY_WORKERS: 1 to 32 threads sending the outbox."""
    number = _count(value, "ACCESS_DELIVERY_WORKERS", "4")
    if not 1 <= number <= 32:
        raise SettingsError("ACCESS_DELIVERY_WORKERS must be a whole number from 1 to 32, e.g. 4")
    return number


def _count(value, name: str, example: str) -> int:
    """A whole number of 0 or more."""
    try:
        number = -1 if isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0:
        raise SettingsError(f"{name} must be a whole number of 0 or more, e.g. {example}")
    return number


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be True or False, not {value!r}")


def _handle_map(get, name: str, what: str, example: str) -> dict[str, str]:
    """A chat handle -> account dict from the config, or JSON from the environment."""
    value = get(name, {})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SettingsError(f'{name} must be JSON like {{"alice": "{example}"}}') from exc
    if not isinstance(value, Mapping) or not all(
        isinstance(v, str) and v.strip() for v in value.values()
    ):
        raise SettingsError(
            f'{name} must map chat handles to {what}, like {{"alice": "{example}"}}'
        )
    return {str(k).strip().lstrip("@").lower(): v.strip() for k, v in value.items()}


_SIZE = re.compile(r"^(\d+)\s*([kmg]?)i?b?$", re.IGNORECASE)


def parse_size(value) -> int:
    """A byte count: `52428800`, `50MB`, `512k`; 0 turns rotation off."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise SettingsError(
            f"ACCESS_AUDIT_MAX_BYTES must be a size like 50MB, 512k or 52428800, not {value!r}"
        )
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


# -- ACCESS_AUDIT_SINKS ----------------------------------------------------------------


@dataclass(frozen=True)
class SinkConfig:
    """One destination of ACCESS_AUDIT_SINKS, checked: `accessbot.sinks` builds it."""

    type: str  # http, splunk_hec, file, syslog
    name: str  # the key of its cursor in the store; unique
    options: Mapping[str, Any] = field(default_factory=dict)  # the other keys, as given

    def get(self, key: str, default=None):
        return self.options.get(key, default)


SINK_EXAMPLES = {
    "http": '{"type": "http", "url": "https://siem.example.com/accessbot", '
    '"secret_env": "AUDIT_SINK_SECRET", "batch": 100}',
    "splunk_hec": '{"type": "splunk_hec", "url": "https://splunk.example.com:8088", '
    '"token_env": "SPLUNK_HEC_TOKEN"}',
    "file": '{"type": "file", "path": "/mnt/worm/accessbot-audit.jsonl"}',
    "syslog": '{"type": "syslog", "address": "siem.example.com:514", "protocol": "tcp"}',
}
# Every kind's keys: required ones, and optional ones with what they must be.
_SINK_KEYS = {
    "http": ({"url"}, {"secret_env", "batch", "timeout"}),
    "splunk_hec": ({"url", "token_env"}, {"batch", "timeout", "index", "source", "sourcetype"}),
    "file": ({"path"}, set()),
    "syslog": ({"address"}, {"protocol", "timeout"}),
}
MAX_SINK_BATCH = 10_000


def parse_sinks(value) -> tuple[SinkConfig, ...]:
    """ACCESS_AUDIT_SINKS: a list of destinations (JSON in the environment), each checked
    here so that a mistake stops the bot at start with what to write instead."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise SettingsError(
                f"ACCESS_AUDIT_SINKS must be JSON: a list like [{SINK_EXAMPLES['http']}] "
                f"({exc.msg} at character {exc.pos})"
            ) from exc
    if isinstance(value, Mapping):
        value = [value]  # one sink given without the list around it
    if not isinstance(value, (list, tuple)):
        raise SettingsError(
            f"ACCESS_AUDIT_SINKS must be a list of sinks, like [{SINK_EXAMPLES['file']}]"
        )
    sinks = [_sink(number, spec) for number, spec in enumerate(value)]
    names = [s.name for s in sinks]
    for number, name in enumerate(names):
        if name in names[:number]:
            raise SettingsError(
                f"ACCESS_AUDIT_SINKS[{number}]: another sink is already called {name!r}; "
                'give each a different "name" (it keys the sink\'s place in the log)'
            )
    return tuple(sinks)


def _sink(number: int, spec) -> SinkConfig:
    where = f"ACCESS_AUDIT_SINKS[{number}]"
    if not isinstance(spec, Mapping):
        raise SettingsError(f"{where} must be a dict like {SINK_EXAMPLES['http']}")
    kind = spec.get("type")
    if kind not in SINK_EXAMPLES:
        kinds = ", ".join(sorted(SINK_EXAMPLES))
        raise SettingsError(f"{where}: type {kind!r} is not a sink; use one of: {kinds}")
    where = f"{where} ({kind})"
    required, optional = _SINK_KEYS[kind]
    unknown = sorted(set(spec) - required - optional - {"type", "name"})
    if unknown:
        allowed = ", ".join(sorted(required | optional | {"name"}))
        raise SettingsError(f"{where}: unknown key {unknown[0]!r}; a {kind} sink takes {allowed}")
    for key in sorted(required):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise SettingsError(f'{where}: "{key}" is required, e.g. {SINK_EXAMPLES[kind]}')
    options = {k: v for k, v in spec.items() if k not in ("type", "name")}
    for key, check in _SINK_CHECKS.items():
        if key in spec:
            options.update(check(f'{where}: "{key}"', spec[key], spec))
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise SettingsError(f'{where}: "name" must be a short text, e.g. "siem"')
    return SinkConfig(kind, (name or _sink_name(kind, options)).strip(), options)


def _env_name(what: str, value, spec) -> dict:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(value)):
        raise SettingsError(
            f'{what} names an environment variable, e.g. "AUDIT_SINK_SECRET", not the secret'
        )
    return {}


def _sink_url(what: str, value, spec) -> dict:
    url = str(value).strip()
    if not re.match(r"^https?://[^/\s]+", url):
        raise SettingsError(f"{what} must be an http(s) URL, e.g. {SINK_EXAMPLES[spec['type']]}")
    return {"url": url}


def _sink_batch(what: str, value, spec) -> dict:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SINK_BATCH:
        raise SettingsError(
            f"{what} must be a whole number of lines from 1 to {MAX_SINK_BATCH}, e.g. 100"
        )
    return {}


def _sink_address(what: str, value, spec) -> dict:
    host, _, port = str(value).strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{what} must be host:port, e.g. {SINK_EXAMPLES['syslog']}")
    return {"host": host.strip("[]"), "port": int(port)}


def _sink_protocol(what: str, value, spec) -> dict:
    if value not in ("udp", "tcp"):
        raise SettingsError(f'{what} must be "udp" or "tcp", not {value!r}')
    return {}


def _sink_timeout(what: str, value, spec) -> dict:
    try:
        seconds = (
            parse_duration(value).total_seconds()
            if isinstance(value, str) and not value.replace(".", "", 1).isdigit()
            else float(value)
        )
    except (DurationError, TypeError, ValueError):
        seconds = 0
    if not 0 < seconds <= 300:
        raise SettingsError(f'{what} must be seconds from 1 to 300, e.g. "10s"')
    return {"timeout": seconds}


# What each optional or required key must be, and the values it stands for.
_SINK_CHECKS = {
    "secret_env": _env_name,
    "token_env": _env_name,
    "url": _sink_url,
    "batch": _sink_batch,
    "timeout": _sink_timeout,
    "address": _sink_address,
    "protocol": _sink_protocol,
}


def _sink_name(kind: str, options: Mapping[str, Any]) -> str:
    """A sink's default name: its kind and where it sends, with no credentials."""
    if kind in ("http", "splunk_hec"):
        return f"{kind} {redact_url(options['url'])}"
    if kind == "file":
        return f"file {options['path']}"
    return f"syslog {options['host']}:{options['port']}/{options.get('protocol', 'udp')}"


def _checkpoint_every(value) -> timedelta:
    """ACCESS_AUDIT_CHECKPOINT: a duration like 5m; 0 or off: no checkpoints."""
    if isinstance(value, timedelta):
        return value
    if str(value).strip().lower() in ("0", "off", "none", "false"):
        return timedelta(0)
    try:
        every = parse_duration(value)
    except DurationError as exc:
        raise SettingsError(
            f"ACCESS_AUDIT_CHECKPOINT must be a duration like 5m or 1h (0 turns checkpoints "
            f"off), not {value!r}"
        ) from exc
    if every < timedelta(seconds=10):
        raise SettingsError("ACCESS_AUDIT_CHECKPOINT must be at least 10s, e.g. 5m")
    return every


LISTENER_HOST = "127.0.0.1"  # where errbot's webserver binds when ACCESS_WEBSERVER names no host


def listener(config=None, environ: Mapping[str, str] | None = None) -> tuple[str, int] | str | None:
    """ACCESS_WEBSERVER: where errbot's webserver (/health, /metrics, /slack/interactive)
    listens, the environment winning over the config: `3141` (on 127.0.0.1),
    `127.0.0.1:3141`, `0.0.0.0:3141` (a container, behind its published port), or `off`.
    None when unset: errbot's own stored Webserver configuration decides (none: off)."""
    environ = os.environ if environ is None else environ
    value = environ.get("ACCESS_WEBSERVER") or getattr(config, "ACCESS_WEBSERVER", None)
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if text.lower() in ("off", "0", "none", "false"):
        return "off"
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or LISTENER_HOST
    if not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise SettingsError(
            f"ACCESS_WEBSERVER must be a port or host:port, e.g. 127.0.0.1:3141 (or off), "
            f"not {text!r}"
        )
    return host, int(port)
