"""Slack's rate limits on every WebClient the bot uses: a 429 waits its `Retry-After`.

Slack answers a call over its limits with HTTP 429 and `Retry-After` (seconds). slack_sdk
retries such a call only when the client has a `RateLimitErrorRetryHandler`, and its
default client has none: without one the call fails, and errbot's Slack backend only logs
a message that failed, so it would be lost. `honour_rate_limits(client)` adds our
subclass of that handler to a client (once; the backend makes a new client when it
reconnects, so callers pass each client they get through it).

A thread that paces its own sends (a delivery worker serving a channel) must not sleep
inside a call: within `rate_limits_reported()` the handler does not wait, it notes the
`Retry-After` on the yielded report and lets the call fail, and the worker reschedules.

The same handler sees every answer, so `slack_calls_watched()` also tells which Slack
error a call got even when errbot's send swallowed it (`not_in_channel`, `is_archived`).

The same function caps what a client reads of an answer (`ANSWER_LIMIT`): slack_sdk reads
a whole body into memory, whatever its size; past the cap the call fails with
SlackRequestError and the connection is closed.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from slack_sdk.errors import SlackRequestError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

MAX_RETRIES = 3  # per call; each waits Slack's Retry-After (about a second for chat.*)
DEFAULT_RETRY_AFTER = 1.0  # Slack always sends the header; this is for a proxy that drops it
# Bytes of one Slack answer the bot reads: users.info is a few kB, a page of a list a few
# hundred; a bigger answer is a broken proxy or an attacker, not Slack.
ANSWER_LIMIT = 2 * 1024 * 1024


@dataclass
class CallReport:
    """What Slack answered on this thread during `slack_calls_watched()`: its error codes
    (`ok: false`), and for a 429 the method refused and how long Slack asked us to wait
    (None: no call was refused). `wait` False: a 429 fails at once instead of waiting."""

    wait: bool = True
    retry_after: float | None = None
    method: str = ""
    channel: str = ""
    refused: int = 0
    errors: list[str] = field(default_factory=list)


_watching = threading.local()


@contextmanager
def slack_calls_watched(wait: bool = True) -> Iterator[CallReport]:
    """Within this block, on this thread, Slack's answers are noted on the yielded report
    (blocks nest: each sees the calls made inside it)."""
    report = CallReport(wait=wait)
    reports = getattr(_watching, "reports", ())
    _watching.reports = (*reports, report)
    try:
        yield report
    finally:
        _watching.reports = reports


def rate_limits_reported() -> CallReport:
    """Within this block, on this thread, a 429 is not waited for: the call fails at once
    (errbot's send only logs it) and the report says how long to wait before trying again."""
    return slack_calls_watched(wait=False)


class RateLimitRetry(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits `Retry-After`, then retries), except on a thread
    inside `rate_limits_reported()`, where it reports the wait instead. `observe(method)`
    is called for every 429 (the plugin counts them for /metrics)."""

    def __init__(self, max_retry_count: int = MAX_RETRIES, observe=None):
        super().__init__(max_retry_count=max_retry_count)
        self.observe = observe

    def can_retry(self, *, state, request, response=None, error=None) -> bool:
        # Overrides the base's check of the retry count: every answer is seen, so a 429
        # that is not retried (the last one, or on a pacing thread) is on the reports.
        if response is None:
            return False
        reports: tuple[CallReport, ...] = getattr(_watching, "reports", ())
        if response.status_code != 429:
            code = _error_of(response)
            for report in reports if code else ():
                report.errors.append(code)
            return False
        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        if self.observe is not None:
            self.observe(method)
        retrying = state.current_attempt < self.max_retry_count and all(r.wait for r in reports)
        seconds = header_seconds(response.headers)
        for report in reports:
            report.retry_after, report.method = seconds, method
            report.channel = _channel_of(request)
            report.refused += 1
            if not retrying:
                report.errors.append("ratelimited")
        return retrying


def honour_rate_limits(client, max_retries: int = MAX_RETRIES, observe=None):
    """`client` (a slack_sdk WebClient, or None) with a 429 handler (added once; `observe`
    as in `RateLimitRetry`); returns it."""
    if client is None:
        return None
    cap_answers(client)
    handlers = getattr(client, "retry_handlers", None)
    if handlers is not None and not any(
        isinstance(h, RateLimitErrorRetryHandler) for h in handlers
    ):
        handlers.append(RateLimitRetry(max_retries, observe))
    return client


def cap_answers(client, limit: int = ANSWER_LIMIT):
    """Make `client` (a slack_sdk WebClient) read at most `limit` bytes of an answer.

    slack_sdk's urllib call reads the whole body (`resp.read()`, and `e.read()` for an
    HTTP error); this instance's call is replaced by the same one reading `limit` + 1
    bytes. A client without that call (another slack_sdk) is left as it is."""
    if getattr(client, "_answers_capped", False) or not hasattr(
        client, "_perform_urllib_http_request_internal"
    ):
        return client
    client._perform_urllib_http_request_internal = _capped_call(client, limit)
    client._answers_capped = True
    return client


def _capped_call(client, limit: int):
    def perform(url: str, req) -> dict:
        if not url.lower().startswith("http"):
            raise SlackRequestError(f"Invalid URL detected: {url}")
        try:
            if client.proxy:
                proxies = {"http": client.proxy, "https": client.proxy}
                opener = urllib.request.build_opener(
                    urllib.request.ProxyHandler(proxies),
                    urllib.request.HTTPSHandler(context=client.ssl),
                )
                resp = opener.open(req, timeout=client.timeout)
            else:
                resp = urllib.request.urlopen(req, context=client.ssl, timeout=client.timeout)
        except urllib.error.HTTPError as error:  # slack_sdk reads its body: give it ours
            with error:
                body = _read(error, limit, url)
            raise urllib.error.HTTPError(
                error.url, error.code, error.msg, error.headers, io.BytesIO(body)
            ) from None
        with resp:
            body = _read(resp, limit, url)
        if resp.headers.get_content_type() == "application/gzip":
            return {"status": resp.code, "headers": resp.headers, "body": body}
        charset = resp.headers.get_content_charset() or "utf-8"
        return {"status": resp.code, "headers": resp.headers, "body": body.decode(charset)}

    return perform


def _read(answer, limit: int, url: str) -> bytes:
    body = answer.read(limit + 1)
    if len(body) > limit:
        method = url.rstrip("/").rsplit("/", 1)[-1]
        raise SlackRequestError(f"Slack's answer to {method} is more than {limit} bytes; not read")
    return body


def retry_after(exc: BaseException) -> float | None:
    """The `Retry-After` of a Slack API error that is a 429, else None."""
    response = getattr(exc, "response", None)
    if response is None or getattr(response, "status_code", None) != 429:
        return None
    return header_seconds(getattr(response, "headers", None) or {})


def header_seconds(headers) -> float:
    """Slack's `Retry-After` (whole seconds) from a header mapping whose values may be
    lists (slack_sdk's retry response) or strings."""
    for name, value in dict(headers).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


def _channel_of(request) -> str:
    """The `channel` argument of a retried request, if it had one."""
    data = request.data
    if not data:
        return ""
    try:
        text = data.decode() if isinstance(data, bytes) else str(data)
    except UnicodeDecodeError:
        return ""
    if text.lstrip().startswith("{"):
        try:
            return str(json.loads(text).get("channel") or "")
        except (ValueError, AttributeError):
            return ""
    return (parse_qs(text).get("channel") or [""])[0]


def _error_of(response) -> str:
    """Slack's error code in an `ok: false` answer, else ""."""
    body = getattr(response, "body", None)
    if isinstance(body, dict) and body.get("ok") is False:
        return str(body.get("error") or "")
    return ""
