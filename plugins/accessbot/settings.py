"""Configuration keys (DESIGN section 3): the bot's config, overridden by the environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .domain import DurationError, parse_duration

PUBLIC_PAGERDUTY_URL = "https://api.pagerduty.com"


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    policy_dir: str = "policies"
    db_path: str = "data/access.json"
    audit_path: str = "data/audit.jsonl"
    audit_max_bytes: int = 50 * 1024 * 1024
    tick_seconds: float = 1.0
    user_emails: Mapping[str, str] = field(default_factory=dict)
    pagerduty_token: str | None = None
    pagerduty_url: str = PUBLIC_PAGERDUTY_URL
    pending_timeout: timedelta = timedelta(hours=1)

    @classmethod
    def load(cls, config: Any = None, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ

        def get(name: str, default):
            if name in environ and environ[name] != "":
                return environ[name]
            return getattr(config, name, default) if config is not None else default

        emails = get("ACCESS_USER_EMAILS", {})
        if isinstance(emails, str):
            try:
                emails = json.loads(emails)
            except ValueError as exc:
                raise SettingsError(
                    'ACCESS_USER_EMAILS must be JSON like {"alice": "alice@example.com"}'
                ) from exc
        if not isinstance(emails, Mapping):
            raise SettingsError("ACCESS_USER_EMAILS must map chat handles to e-mails")
        try:
            tick = float(get("ACCESS_TICK_SECONDS", 1))
        except (TypeError, ValueError) as exc:
            raise SettingsError("ACCESS_TICK_SECONDS must be a number of seconds, e.g. 1") from exc
        if tick <= 0:
            raise SettingsError("ACCESS_TICK_SECONDS must be more than 0")
        timeout = get("ACCESS_PENDING_TIMEOUT", "1h")
        if not isinstance(timeout, timedelta):
            try:
                timeout = parse_duration(timeout)
            except DurationError as exc:
                raise SettingsError(f"ACCESS_PENDING_TIMEOUT: {exc}") from exc
        max_bytes = parse_size(get("ACCESS_AUDIT_MAX_BYTES", 50 * 1024 * 1024))
        return cls(
            policy_dir=str(get("ACCESS_POLICY_DIR", "policies")),
            db_path=str(get("ACCESS_DB_PATH", "data/access.json")),
            audit_path=str(get("ACCESS_AUDIT_PATH", "data/audit.jsonl")),
            audit_max_bytes=max_bytes,
            tick_seconds=tick,
            user_emails={k.lstrip("@").lower(): v for k, v in emails.items()},
            pagerduty_token=get("ACCESS_PAGERDUTY_TOKEN", None) or None,
            pagerduty_url=str(get("ACCESS_PAGERDUTY_URL", PUBLIC_PAGERDUTY_URL)),
            pending_timeout=timeout,
        )


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
