"""Webhook strategy: a signed JSON POST per action (README: "Strategies", the webhook contract).

The signature covers a timestamp and the body (`X-Access-Timestamp`,
`X-Access-Signature: sha256=HMAC(secret, "<timestamp>." + body)`), so a receiver can
refuse a captured call replayed later. The body also carries the call's
`idempotency_key` (the `Idempotency-Key` header's value, which stays): signed, so a
receiver that de-duplicates on it cannot be fooled by a replay with a new header. Redirects are never followed: a 3xx (an SSO
proxy sending the bot to a login page, say) is a failure to retry, not a success.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlparse

import requests
import requests.adapters

from ..safe_text import redact_url
from .base import (
    LIST_LIMIT,
    RECHECKING,
    CannotList,
    Done,
    Member,
    SettingsError,
    Strategy,
    StrategyError,
    done_from_answer,
    encode_payload,
    members_from_answer,
    target_host,
)
from .deadline import ANSWER_CAP, exchange

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Access-Signature"
TIMESTAMP_HEADER = "X-Access-Timestamp"
POOL_SIZE = 64


def post(
    session: requests.Session,
    url: str,
    body: bytes,
    headers: dict,
    timeout: float,
    fail: Callable[[str], Exception],
    label: str = "",
) -> requests.Response:
    """One POST with redirects never followed (the webhook and the audit http sinks); a
    timeout or an unreachable receiver raises `fail(message)`, naming the URL without its
    credentials."""
    where = f"{label}{redact_url(url)}"
    try:
        return session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise fail(f"{where} timed out after {timeout:g}s") from exc
    except requests.RequestException as exc:
        raise fail(f"{where} unreachable: {type(exc).__name__}") from exc


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """`sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def idempotency_key(action: str, payload: dict) -> str:
    """The same for every retry of one call: `grant_id:action`. Each extension of a grant
    is its own call, so an extend's key also names the end it asks for."""
    key = f"{payload['grant_id']}:{action}"
    return f"{key}:{payload.get('expires_at')}" if action == "extend" else key


class WebhookStrategy(Strategy):
    kind = "webhook"
    allowed_keys = frozenset({"type", "url", "secret_env", "timeout", "target"})
    # What the receiver grants (a group, a role), when several resources post to one
    # receiver that grants them the same thing: they then share one target (target_key).
    target: str | None = None

    shareable = True  # reused across calls and threads: keep-alive to the target

    def __init__(
        self,
        url: str,
        secret_env: str | None,
        timeout: float,
        session=None,
        clock: Callable[[], float] = time.time,
    ):
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        self.clock = clock  # unix seconds, for X-Access-Timestamp
        if session is None:
            session = requests.Session()
            # One kept-alive connection per concurrent caller (ACCESS_STRATEGY_WORKERS
            # is at most POOL_SIZE), not urllib3's default of 10.
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session

    @classmethod
    def from_settings(cls, settings: dict, **wiring) -> WebhookStrategy:
        cls.check_keys(settings)
        url = settings.get("url")
        if not url:
            raise SettingsError("strategy.url", "is required for a webhook strategy")
        parsed = urlparse(str(url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError("strategy.url", f"{url!r} is not an http(s) URL")
        secret_env = settings.get("secret_env")
        if secret_env is not None and (
            not isinstance(secret_env, str) or not secret_env.replace("_", "").isalnum()
        ):
            raise SettingsError(
                "strategy.secret_env", "must name an environment variable, e.g. PROD_DB_HOOK_SECRET"
            )
        if secret_env is None and not RECHECKING.get():
            log.warning("webhook %s has no secret_env: its calls are not signed", redact_url(url))
        strategy = cls(url, secret_env, cls.timeout_setting(settings, "10s"), **wiring)
        strategy.target = cls.text_setting(settings, "target", "okta:prod-admins", required=False)
        return strategy

    def call(self, action: str, payload: dict) -> Done:
        response = self._post(payload, idempotency_key(action, payload))
        status = response.status_code
        if not 200 <= status < 300:
            raise self._refused(response)
        where = redact_url(self.url)
        return done_from_answer(f"webhook HTTP {status}", response.content, f"webhook {where}")

    def members(self, resource: str) -> list[Member]:
        """`{"action": "list", "resource": ...}`, signed like the others; 404 or 501
        means the receiver cannot list."""
        # A read: each call its own key, so a receiver's idempotency cache never answers
        # an old list, and a receiver can answer each signed list once (a replay: 409).
        key = f"list:{resource}:{secrets.token_hex(8)}"
        response = self._post({"action": "list", "resource": resource}, key, LIST_LIMIT)
        if response.cut:
            raise StrategyError(
                f"webhook {redact_url(self.url)} answered more than "
                f"{LIST_LIMIT // 1024 // 1024} MB to list"
            )
        if response.status_code in (404, 501):
            raise CannotList(
                f"webhook {redact_url(self.url)} answered HTTP {response.status_code} to "
                "list: it cannot say who holds the access"
            )
        if not 200 <= response.status_code < 300:
            raise self._refused(response)
        return members_from_answer(response.content, f"webhook {redact_url(self.url)}")

    def _post(self, payload: dict, key: str, cap: int = ANSWER_CAP) -> requests.Response:
        """One signed POST of `payload` with its `idempotency_key` (in the body, so it is
        signed, and in the header); a timeout, an unreachable receiver or a redirect is a
        failure. Its answer is read up to `cap` bytes and by the call's deadline
        (deadline.py)."""
        body = encode_payload({**payload, "idempotency_key": key})
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.secret_env:
            secret = os.environ.get(self.secret_env)
            if not secret:
                raise StrategyError(
                    f"the environment variable {self.secret_env} (the webhook's signing "
                    "secret) is not set"
                )
            headers[SIGNATURE_HEADER] = sign(body, secret, timestamp)
        where = redact_url(self.url)
        try:
            response = exchange(
                self.session,
                "POST",
                self.url,
                self.timeout,
                f"webhook {where}",
                cap,
                data=body,
                headers=headers,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise StrategyError(f"webhook {where} timed out after {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise StrategyError(f"webhook {where} unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if 300 <= status < 400:
            to = response.headers.get("Location")
            raise StrategyError(
                f"webhook {where} answered HTTP {status}, a redirect"
                + (f" to {redact_url(to)}" if to else "")
                + ": redirects are not followed, so nothing is known to be done; "
                "point the policy's url at the receiver itself"
            )
        return response

    def _refused(self, response: requests.Response) -> StrategyError:
        snippet = response.text.strip().replace("\n", " ")[:200]
        return StrategyError(
            f"webhook {redact_url(self.url)} answered HTTP {response.status_code}"
            + (f": {snippet}" if snippet else "")
        )

    def target_key(self) -> tuple | None:
        """Each call names its resource, so a receiver may keep resources apart: only a
        `target` setting says two resources on one url grant the same thing."""
        return (self.kind, target_host(self.url), self.target) if self.target else None

    def describe(self) -> str:
        return f"webhook ({redact_url(self.url)})"
