"""`users.list` paging that ends (issue 29 item 18): Slack answering the same cursor
again (as its own example answer does) made 9,442 calls in 8 s. The paging stops on a
repeated cursor and after a page cap, and says so in the log."""

import logging

import pytest
from slack_sdk import WebClient

from accessbot.identity import SlackPeople
from tests.slack_fakes import TOKEN, FakeSlack

USERS = {f"U0{n:04d}": (f"user{n}", f"user{n}@example.com") for n in range(9)}


@pytest.fixture
def slack():
    fake = FakeSlack(USERS, token=TOKEN)
    yield fake
    fake.close()


def people(slack, **options) -> SlackPeople:
    return SlackPeople(WebClient(token=TOKEN, base_url=slack.base_url), **options)


def test_every_page_is_read_while_the_cursor_moves_on(slack):
    assert people(slack).user_id("@user8") == "U00008"
    assert slack.calls.count("users.list") == 5  # 10 members (the bot too), 2 a page


def test_a_repeated_cursor_stops_the_paging_and_is_logged(slack, caplog):
    slack.stuck_cursor = "dXNlcjpVMEc5V0ZYTlo="

    with caplog.at_level(logging.WARNING, logger="accessbot.identity"):
        found = people(slack).user_id("@user0")

    assert slack.calls.count("users.list") == 2  # the second answer repeats the cursor
    assert found == "U00000"  # what the pages held is kept
    assert any(
        "users.list answered the same cursor again" in r.getMessage() for r in caplog.records
    )


def test_paging_stops_after_the_page_cap_and_is_logged(slack, caplog):
    slack.page_size = 1

    with caplog.at_level(logging.WARNING, logger="accessbot.identity"):
        found = people(slack, max_pages=3).user_id("@user0")

    assert slack.calls.count("users.list") == 3
    assert found == "U00000"  # the bot sorts first, user0 is on page 2
    assert any("users.list stopped after 3 pages" in r.getMessage() for r in caplog.records)
