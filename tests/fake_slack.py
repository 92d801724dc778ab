"""The user-group side of the one Slack fake (tests/slack_fakes.FakeSlack), under the name
and constructor the user-group tests use: `FakeSlack(token=TOKEN)` checks the token
by default and gives its API's base URL as `url`. No second implementation lives here."""

from tests import slack_fakes
from tests.slack_fakes import TOKEN

__all__ = ["TOKEN", "FakeSlack"]


class FakeSlack(slack_fakes.FakeSlack):
    def __init__(self, token: str = TOKEN):
        super().__init__(token=token)
        self.url = self.base_url
