"""A small JSON-over-HTTP client for the REST targets (Okta, GitHub).

It adds the timeout to every call (and reads each answer by the call's deadline, up
to 1 MB: deadline.py), waits out a rate limit when the target says how long
(`Retry-After`, capped and a bounded number of times), and turns network failures and
error answers into StrategyError in the target's own words. It never logs or repeats
the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

from .base import StrategyError
from .deadline import ANSWER_CAP, exchange

MAX_RETRIES = 2  # rate-limited calls are tried at most this many more times
MAX_WAIT = 10.0  # seconds; a target asking for longer gets a failure the core retries
MAX_PAGES = 200  # of a listing: 20,000 entries at GitHub's 100 a page


class RestClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        explain: Callable[[requests.Response], str] | None = None,
        max_retries: int = MAX_RETRIES,
        max_wait: float = MAX_WAIT,
    ):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self.session = session or requests.Session()
        self.sleep = sleep
        self.explain = explain or _snippet
        self.max_retries = max_retries
        self.max_wait = max_wait

    def call(self, method: str, path: str, json: dict | None = None) -> requests.Response:
        """One API call; returns the answer (any status but a rate limit) for the caller to judge."""
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            try:
                # read by the call's deadline and up to ANSWER_CAP (deadline.py)
                response = exchange(
                    self.session,
                    method,
                    url,
                    self.timeout,
                    f"{self.name} ({method} {path})",
                    json=json,
                    headers=self.headers,
                )
            except requests.Timeout as exc:
                raise StrategyError(
                    f"{self.name} did not answer {method} {path} within {self.timeout:g}s"
                ) from exc
            except requests.RequestException as exc:
                raise StrategyError(
                    f"{self.name} is unreachable ({method} {path}): {type(exc).__name__}"
                ) from exc
            if response.cut:
                raise StrategyError(
                    f"{self.name} answered {method} {path} with more than "
                    f"{ANSWER_CAP // 1024 // 1024} MB; not read"
                )
            wait = rate_limit_wait(response)
            if wait is None:
                return response
            if wait > self.max_wait or attempt == self.max_retries:
                raise StrategyError(
                    f"{self.name} is rate limiting us ({method} {path} answered HTTP "
                    f"{response.status_code}, retry after {wait:g}s): {self.explain(response)}"
                )
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_all(self, path: str, doing: str, max_pages: int = MAX_PAGES) -> list:
        """Every entry of a paginated listing, following `Link: <...>; rel="next"` (GitHub
        and Okta both page this way). Any answer but 200 with a JSON list is a failure:
        a caller proving that someone is absent must have seen every page."""
        entries: list = []
        for _ in range(max_pages):
            response = self.call("GET", path)
            if response.status_code != 200:
                raise self.failure(response, doing)
            try:
                page = response.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise StrategyError(f"{self.name} did not answer a list to {doing}")
            entries += page
            following = response.links.get("next", {}).get("url")
            if not following:
                return entries
            # Only ever follow a link back to the same API: the token goes with the call.
            if not following.startswith(self.base_url + "/"):
                raise StrategyError(
                    f"{self.name} sent a next page outside {self.base_url} to {doing}"
                )
            path = following[len(self.base_url) :]
        raise StrategyError(f"{self.name} had more than {max_pages} pages to {doing}")

    def failure(self, response: requests.Response, doing: str) -> StrategyError:
        """The error to raise for an unexpected answer: what we did, the status, their words."""
        words = self.explain(response)
        return StrategyError(
            f"{self.name} refused to {doing}: HTTP {response.status_code}"
            + (f": {words}" if words else "")
        )


def rate_limit_wait(response: requests.Response, now: datetime | None = None) -> float | None:
    """Seconds the target asks us to wait, or None when the answer is not a rate limit.

    429 always is one; GitHub also signals its secondary rate limits with 403 plus a
    Retry-After header or an exhausted `x-ratelimit-remaining`.
    """
    status = response.status_code
    retry_after = response.headers.get("Retry-After")
    exhausted = response.headers.get("x-ratelimit-remaining") == "0"
    if status != 429 and not (status == 403 and (retry_after or exhausted)):
        return None
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            try:
                at = parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                return 1.0
            return max((at - (now or datetime.now(UTC))).total_seconds(), 0.0)
    reset = response.headers.get("x-ratelimit-reset") or response.headers.get("X-Rate-Limit-Reset")
    if reset and reset.isdigit():
        now_ts = (now or datetime.now(UTC)).timestamp()
        return max(int(reset) - now_ts, 0.0)
    return 1.0


def _snippet(response: requests.Response) -> str:
    return response.text.strip().replace("\n", " ")[:200]


def json_field(response: requests.Response, *keys: str) -> str:
    """The first of `keys` present in a JSON error body, else a snippet of the body."""
    try:
        body = response.json()
    except ValueError:
        return _snippet(response)
    if isinstance(body, dict):
        for key in keys:
            if body.get(key):
                return str(body[key])[:300]
    return _snippet(response)
