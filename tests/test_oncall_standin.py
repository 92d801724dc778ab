"""Break-glass tried offline (issue 29 items 5 and 6): scripts/fake_pagerduty.py, the
local on-call stand-in the README walks through, run as a process, and the bot's real
break-glass flow on the shipped policies/break_glass.py against it; the README's
`whatif` example is what that file and the stand-in print."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys

import pytest

from tests.conftest import ROOT, request_id
from tests.test_readme_tour import TIME

WHATIF = "### Dry runs: `!access whatif`"


@pytest.fixture
def stand_in():
    """scripts/fake_pagerduty.py as the README starts it (on any free port): its settings."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_pagerduty.py"), "--port", "0",
         "--on-call", "carol@example.com", "--user", "bob@example.com"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        settings = dict(process.stdout.readline().strip().split("=", 1) for _ in range(2))
        yield settings
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def shipped(bot_factory, stand_in, tmp_path, monkeypatch):
    """The bot on the shipped policies, asking the stand-in who is on call."""
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path / "demo"))  # scripts/grant.py's records
    monkeypatch.chdir(ROOT)  # the shipped policies name scripts/grant.py from here
    return bot_factory(
        ACCESS_POLICY_DIR=str(ROOT / "policies"),
        ACCESS_PAGERDUTY_TIMEOUT=5,  # generous: a loaded machine is not PagerDuty down
        # The e-mails `make run` knows people by (config.py): the stand-in finds them so.
        ACCESS_USER_EMAILS=runpy.run_path(str(ROOT / "config.py"))["ACCESS_USER_EMAILS"],
        **stand_in,
    )


def test_the_stand_in_prints_the_settings_that_point_the_bot_at_it(stand_in):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", stand_in["ACCESS_PAGERDUTY_URL"])
    assert stand_in["ACCESS_PAGERDUTY_TOKEN"]


def test_break_glass_from_make_run_grants_the_on_call_engineer_and_asks_for_anyone_else(
    shipped, tmp_path
):
    said = shipped.say("carol", "!access request prod-shell 30m INC-1 database down")
    assert "approved by policy (break-glass: requester is on call): you have prod-shell" in said[0]
    rid = request_id(said[0])
    alert = shipped.to("#access-approvals")[-1]
    assert alert.startswith("BREAK-GLASS: @carol got prod-shell") and f"!access ack {rid}" in alert
    assert (tmp_path / "demo" / "grants" / "prod-shell" / "carol.json").exists()

    reply = shipped.reply("bob", "!access request prod-shell 30m INC-1 looking too")
    assert "Waiting for an approval from @alice in #access-approvals" in reply, reply
    readme = (ROOT / "README.md").read_text()
    assert "approved by policy (break-glass: requester is on call): you have prod-shell" in readme
    assert "Waiting for an approval from @alice in #access-approvals" in readme


def readme_whatif() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{WHATIF}\n")
    return re.search(r"```\n(.*?)```", text[start:], re.S).group(1).splitlines()


def test_the_readme_whatif_example_is_what_the_shipped_policy_says(shipped):
    prompt, *shown = readme_whatif()
    user, command = re.fullmatch(r"\[@(\w+)\] >>> (.*)", prompt).groups()

    printed = shipped.reply(user, command)

    assert TIME.sub("<time>", printed).splitlines() == [TIME.sub("<time>", s) for s in shown]
