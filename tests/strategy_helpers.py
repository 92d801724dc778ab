"""Builders shared by the strategy tests."""

from __future__ import annotations


def payload(
    action: str = "grant",
    user: str = "carol",
    email: str | None = "carol@acme.com",
    account: str | None = None,
):
    """The JSON every strategy receives (README: "Strategies", the webhook contract), for request abc234; `account`
    is what the grant recorded (None: a grant made before accounts were recorded)."""
    return {
        "action": action,
        "grant_id": "g-abc234",
        "request_id": "abc234",
        "user": user,
        "user_email": email,
        "resource": "prod",
        "expires_at": "2026-11-24T10:00:00Z",
        "reason": "fixing INC-42",
        "account": account,
    }


class Naps:
    """An injected `sleep` that only records how long it was asked to sleep."""

    def __init__(self):
        self.taken: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
