"""The strategy interface and the payload every strategy receives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from ..domain import DurationError, iso, parse_duration

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class StrategyError(Exception):
    """The target refused or did not answer; the message is the target's own words."""


class SettingsError(Exception):
    """A strategy setting in a policy file is missing or wrong."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


ACTIONS = ("grant", "revoke", "extend")


class Strategy:
    kind: ClassVar[str]
    allowed_keys: ClassVar[frozenset[str]] = frozenset({"type"})

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

    @staticmethod
    def timeout_setting(settings: dict, default: str) -> float:
        try:
            seconds = parse_duration(settings.get("timeout", default)).total_seconds()
        except DurationError as exc:
            raise SettingsError("strategy.timeout", str(exc)) from exc
        if seconds <= 0:
            raise SettingsError("strategy.timeout", "must be longer than 0s")
        return seconds

    def call(self, action: str, payload: dict) -> str:
        """Carry out `action`; return a short note for the log, raise StrategyError."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


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
    }


def encode_payload(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
