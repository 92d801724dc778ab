"""/metrics answers in the format asked (issue 29 item 21): it said `text/plain;
version=1.0.0` to everyone, where Prometheus's docs name `version=0.0.4` for the text
format. It now answers what prometheus_client's `choose_encoder` picks for the Accept
header, body and Content-Type together."""

import pytest
import requests
from prometheus_client.exposition import choose_encoder

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    "accept",
    [None, "text/plain;version=0.0.4", "*/*", PROMETHEUS_ACCEPT, "text/plain;version=1.0.0"],
)
def test_metrics_answer_the_format_the_scraper_asked_for(start_bot, accept):
    bot = start_bot("http")
    headers = {"Accept": accept} if accept is not None else {}

    response = requests.get(bot.url("/metrics"), headers=headers, timeout=10)

    assert response.status_code == 200
    _, content_type = choose_encoder(accept or "")
    assert response.headers["Content-Type"] == content_type
    if "openmetrics" in content_type:
        assert response.text.endswith("# EOF\n")
    else:
        assert "# EOF" not in response.text
    assert "accessbot_active_grants" in response.text


def test_a_plain_scrape_says_version_0_0_4(start_bot):
    response = requests.get(start_bot("http").url("/metrics"), timeout=10)

    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_the_readme_shows_the_health_body_the_bot_answers(start_bot):
    """Issue 29 item 2: the README said `{"status": "ok"}`; the bot adds its reason."""
    from tests.helpers import ROOT

    bot = start_bot("http")
    response = requests.get(bot.url("/health"), timeout=10)

    assert response.status_code == 200
    readme = (ROOT / "README.md").read_text()
    assert f"`GET /health`: `200 {response.text}`" in readme
