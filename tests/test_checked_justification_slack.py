"""Checked justification on the Slack harness: the request form asks for the resource's
fields (saying a ticket is looked up in Jira), a closed ticket is refused on that field,
and the card shows the ticket as Jira told it, escaped for mrkdwn."""

import pytest

from accessbot.integrations import slack
from tests.fake_trackers import FakeJira
from tests.slack_fakes import submission_payload
from tests.slack_fixtures import CHANNEL, shown
from tests.test_checked_justification import ticket_field


@pytest.fixture
def jira():
    fake = FakeJira()
    yield fake
    fake.close()


@pytest.fixture
def bot(start_bot, jira, monkeypatch):
    monkeypatch.setenv("JIRA_USER", "bot@acme.com")
    monkeypatch.setenv("JIRA_TOKEN", "jira-token-123")
    return start_bot("http", fields=ticket_field(jira))


def test_the_form_asks_for_the_ticket_and_says_where_it_is_looked_up(bot, fake):
    bot.interact(
        {
            "type": "block_actions",
            "user": {"id": "UCAROL"},
            "trigger_id": "42.42.abc",
            "actions": [{"action_id": slack.OPEN_FORM, "value": "open"}],
        }
    )
    (opened,) = fake.wait(lambda: fake.views, "views.open")
    blocks = opened["view"]["blocks"]
    assert [b["block_id"] for b in blocks] == ["resource", "duration", "field:ticket", "reason"]
    ticket = blocks[2]
    assert ticket["label"]["text"] == "ticket" and not ticket.get("optional")
    assert ticket["hint"]["text"] == (
        "Jira key like OPS-12 (looked up in Jira; access ends when it closes)"
    )


def test_a_closed_ticket_is_refused_on_its_field(bot, fake, jira):
    jira.add("OPS-12", "Done")
    payload = submission_payload("UCAROL", "prod-db", "1h", "rotating", {"ticket": "OPS-12"})
    answer = bot.interact(payload).json()
    assert answer["response_action"] == "errors"
    assert answer["errors"]["field:ticket"].startswith("OPS-12 is Done; give an open ticket")
    assert fake.cards(CHANNEL) == []


def test_the_card_shows_the_ticket_as_jira_told_it(bot, fake, jira):
    jira.add("OPS-12", "In Progress", "Rotate <!channel> & the <b> key")
    payload = submission_payload("UCAROL", "prod-db", "1h", "rotating", {"ticket": "OPS-12"})
    response = bot.interact(payload)
    assert response.status_code == 200 and response.text == ""
    (card,) = fake.wait(lambda: fake.cards(CHANNEL), "the approval card")
    blocks = shown(card)
    assert 'OPS-12 "Rotate' in blocks and "(In Progress at request)" in blocks
    assert "&amp; the &lt;b&gt; key" in blocks and "<!channel>" not in blocks
