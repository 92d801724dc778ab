"""Adapters to the outside: PagerDuty, Slack."""
