"""Slack's request signatures: a call Slack did not sign, or one played again within
the 5-minute window, is refused (SignatureError, answered with 401)."""

from __future__ import annotations

import threading

from cachetools import TTLCache
from slack_sdk.signature import Clock, SignatureVerifier

from ...errors import AccessBotError

SIGNATURE_WINDOW = 5 * 60  # seconds; Slack's documented replay window
MAX_SEEN = 100_000  # signatures remembered: over 300 calls a second for the whole window


class SignatureError(AccessBotError):
    """A call that Slack did not sign, or an old one played again: answered with 401."""


class RequestVerifier:
    """Slack's request signing (v0 HMAC of timestamp and body), its 5-minute window, and
    a memory of signatures already seen, so a captured call cannot be replayed in the window."""

    def __init__(self, signing_secret: str, clock: Clock | None = None):
        self.verifier = SignatureVerifier(signing_secret, clock or Clock())
        self.clock = self.verifier.clock
        # Signatures seen in the window. One second more than the window: the clock counts
        # whole seconds, and a signature seen exactly SIGNATURE_WINDOW ago is still
        # remembered (its timestamp may still pass the age check). Bounded far above what
        # Slack sends in 5 minutes; the oldest goes first.
        self._seen: TTLCache[str, bool] = TTLCache(
            MAX_SEEN, SIGNATURE_WINDOW + 1, timer=self.clock.now
        )
        self._lock = threading.Lock()

    def verify(self, body: bytes, headers) -> None:
        headers = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            raise SignatureError("the request has no Slack signature headers")
        try:
            age = abs(self.clock.now() - int(timestamp))
        except ValueError as exc:
            raise SignatureError("the request timestamp is not a number") from exc
        if age > SIGNATURE_WINDOW:
            raise SignatureError(f"the request timestamp is {int(age)}s old (a replay?)")
        if not self.verifier.is_valid(body, timestamp, signature):
            raise SignatureError("the request signature does not match the signing secret")
        with self._lock:
            if signature in self._seen:
                raise SignatureError("this exact request was already received (a replay?)")
            self._seen[signature] = True
