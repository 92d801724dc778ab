"""The Slack fake is tests/slack_fakes.py's FakeSlack (user groups included); this name
stays so that `from tests.fake_slack import FakeSlack, TOKEN` keeps working."""

from tests.slack_fakes import TOKEN, FakeSlack

__all__ = ["TOKEN", "FakeSlack"]
