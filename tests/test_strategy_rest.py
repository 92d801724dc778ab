"""How long a rate-limited REST target asks us to wait."""

from datetime import UTC, datetime

import pytest
import requests

from accessbot.strategies.rest import rate_limit_wait

NOW = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)


def answer(status: int, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return response


@pytest.mark.parametrize(
    ("response", "wait"),
    [
        (answer(429, Retry_After="7"), 7.0),
        (answer(429, Retry_After="Tue, 24 Nov 2026 09:00:30 GMT"), 30.0),
        (answer(429, X_Rate_Limit_Reset=str(int(NOW.timestamp()) + 12)), 12.0),
        (answer(429), 1.0),
        (answer(403, Retry_After="60"), 60.0),
        (
            answer(403, x_ratelimit_remaining="0", x_ratelimit_reset=str(int(NOW.timestamp()) + 5)),
            5.0,
        ),
        (answer(403), None),
        (answer(404, Retry_After="5"), None),
        (answer(200), None),
    ],
)
def test_rate_limit_wait_reads_what_the_target_says(response, wait):
    assert rate_limit_wait(response, now=NOW) == wait
