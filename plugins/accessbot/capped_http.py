"""Answers over HTTP read up to a cap, whatever size the peer sends.

A `requests` session with `CappedAdapter` mounted reads at most `limit` bytes of each
answer (declared or chunked, after decompression) and hangs up on the rest: the answer
keeps what was read, and `response.capped` says that it was cut. Used by the audit sinks
and the PagerDuty client (pdpyras is a `requests.Session`), whose answers a broken peer
or an attacker in the middle may make any size.
"""

from __future__ import annotations

import requests
import requests.adapters

ANSWER_LIMIT = 256 * 1024  # PagerDuty's pages and a sink's acknowledgement are a few kB


class CappedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that reads at most `limit` bytes of an answer's body."""

    def __init__(self, limit: int = ANSWER_LIMIT, **kwargs):
        self.limit = limit
        super().__init__(**kwargs)

    def send(self, request, stream=False, **kwargs):
        response = super().send(request, stream=True, **kwargs)
        try:
            content, capped = read_capped(response, self.limit)
        except BaseException:
            response.close()
            raise
        response._content = content  # what `.content`, `.text` and `.json()` read
        response._content_consumed = True
        response.capped = capped
        if capped:
            response.close()  # the rest is never read: the connection goes
        return response


def read_capped(response: requests.Response, limit: int) -> tuple[bytes, bool]:
    """The first `limit` bytes of a streamed answer, and whether there was more."""
    parts, size = [], 0
    for part in response.iter_content(64 * 1024):  # read errors as requests' exceptions
        parts.append(part)
        size += len(part)
        if size > limit:
            return b"".join(parts)[:limit], True
    return b"".join(parts), False


def capped_session(session: requests.Session, limit: int = ANSWER_LIMIT) -> requests.Session:
    """`session` with every answer read up to `limit` bytes."""
    adapter = CappedAdapter(limit)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def capped(response: requests.Response) -> bool:
    """Whether the answer was longer than its session's cap (and so was cut)."""
    return bool(getattr(response, "capped", False))
