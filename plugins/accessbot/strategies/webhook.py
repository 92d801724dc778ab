"""Webhook strategy: a signed JSON POST per action (DESIGN section 3)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from urllib.parse import urlparse

import requests
import requests.adapters

from .base import Done, SettingsError, Strategy, StrategyError, encode_payload

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Access-Signature"
POOL_SIZE = 64


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookStrategy(Strategy):
    kind = "webhook"
    allowed_keys = frozenset({"type", "url", "secret_env", "timeout"})

    shareable = True  # reused across calls and threads: keep-alive to the target

    def __init__(self, url: str, secret_env: str | None, timeout: float, session=None):
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            # One kept-alive connection per concurrent caller (ACCESS_STRATEGY_WORKERS
            # is at most POOL_SIZE), not urllib3's default of 10.
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session

    @classmethod
    def from_settings(cls, settings: dict) -> WebhookStrategy:
        cls.check_keys(settings)
        url = settings.get("url")
        if not url:
            raise SettingsError("strategy.url", "is required for a webhook strategy")
        parsed = urlparse(str(url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError("strategy.url", f"{url!r} is not an http(s) URL")
        secret_env = settings.get("secret_env")
        if secret_env is not None and (not isinstance(secret_env, str) or not secret_env):
            raise SettingsError(
                "strategy.secret_env", "must name an environment variable, e.g. PROD_DB_HOOK_SECRET"
            )
        if secret_env is None:
            log.warning("webhook %s has no secret_env: its calls are not signed", url)
        return cls(url, secret_env, cls.timeout_setting(settings, "10s"))

    def call(self, action: str, payload: dict) -> Done:
        body = encode_payload(payload)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"{payload['grant_id']}:{action}:{payload.get('expires_at')}",
        }
        if self.secret_env:
            secret = os.environ.get(self.secret_env)
            if not secret:
                raise StrategyError(
                    f"the environment variable {self.secret_env} (the webhook's signing "
                    "secret) is not set"
                )
            headers[SIGNATURE_HEADER] = sign(body, secret)
        try:
            response = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise StrategyError(f"webhook {self.url} timed out after {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise StrategyError(f"webhook {self.url} unreachable: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            snippet = response.text.strip().replace("\n", " ")[:200]
            raise StrategyError(
                f"webhook {self.url} answered HTTP {response.status_code}"
                + (f": {snippet}" if snippet else "")
            )
        return Done(f"webhook HTTP {response.status_code}")

    def describe(self) -> str:
        return "webhook"
