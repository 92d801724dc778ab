"""The README's tour, typed into the real Text backend as `make run` starts it: the bot
prints what the README shows, each notice saying where it went. And on Slack, where each
message lands where it is sent, no notice says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.slack_fixtures import request_card

TOUR = "## A request, from typing to revocation"
PROMPT = re.compile(r"^\[@(\w+) ➡ @accessbot\] >>> (.*)$")
LATER = re.compile(r"^\.\.\. (\d+) minutes later")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? UTC")
PROMPT_ANYWHERE = re.compile(r"\[@\w+ ➡ @accessbot\] >>> ")


def tour() -> list[str]:
    """The lines of the tour's transcript in the README."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{TOUR}\n")
    block = re.search(r"```\n(.*?)```", text[start:], re.S).group(1)
    return block.splitlines()


def said(lines: list[str]) -> list[str]:
    """What the bot printed, among transcript lines (no prompts, no narration)."""
    return [line for line in lines if not PROMPT.match(line) and not line.strip().startswith("...")]


def normalized(text: str, ids: list[str]) -> str:
    """Words only: request ids and times as placeholders, every run of spaces one space."""
    for request_id in ids:
        text = text.replace(request_id, "<id>")
    return " ".join(TIME.sub("<time>", text).split())


CONFIG = """
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, {root!r})
from config import *  # noqa: F403 - the project's own config, as `make run` uses it

_AHEAD = Path(__file__).with_name("clock_ahead")


def ACCESS_CLOCK():
    # The README's "30 minutes later", without waiting half an hour: the test moves it.
    try:
        ahead = float(_AHEAD.read_text())
    except (OSError, ValueError):
        ahead = 0.0
    return datetime.now(UTC) + timedelta(seconds=ahead)
"""


class TextBot:
    """`errbot -c config.py` on the Text backend in a subprocess, typed into line by line."""

    def __init__(self, folder: Path):
        errbot = Path(sys.executable).with_name("errbot")
        if not errbot.exists():
            pytest.skip("errbot's command is not installed next to this Python")
        self.folder = folder
        config = folder / "tour_config.py"
        config.write_text(textwrap.dedent(CONFIG.format(root=str(ROOT))))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESS_", "SLACK_"))}
        env.update(
            ACCESS_DATA_DIR=str(folder / "data"),
            ACCESS_LOG_FILE=str(folder / "errbot.log"),
            PYTHONUNBUFFERED="1",
        )
        self.process = subprocess.Popen(
            [str(errbot), "-c", str(config)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.output = ""
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda out: PROMPT_ANYWHERE.search(out), "the first prompt")

    def _read(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            with self.changed:
                self.output += ANSI.sub("", chunk.decode(errors="replace"))
                self.changed.notify_all()

    def wait_for(self, found, what: str, timeout: float = 30):
        with self.changed:
            if not self.changed.wait_for(lambda: found(self.output), timeout):
                raise AssertionError(f"never printed {what}:\n{self.output}")
            return found(self.output)

    def type(self, line: str) -> None:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def move_clock(self, seconds: float) -> None:
        ahead = self.folder / "clock_ahead"
        (self.folder / "clock_ahead.new").write_text(str(seconds))
        os.replace(self.folder / "clock_ahead.new", ahead)

    def transcript(self) -> str:
        """What the bot printed after its intro, without prompts and `!asuser` answers."""
        after_intro = self.output[PROMPT_ANYWHERE.search(self.output).start() :]
        text = PROMPT_ANYWHERE.sub("\n", after_intro)
        return "\n".join(line for line in text.splitlines() if not line.startswith("You are now:"))

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def text_bot(tmp_path):
    bot = TextBot(tmp_path)
    yield bot
    bot.stop()


def test_the_readme_tour_is_what_make_run_prints(text_bot):
    lines = tour()
    readme_ids = sorted(set(re.findall(r"Request (\w{6}) created", "\n".join(lines))))
    ids: list[str] = []
    user, done = "admin", 0
    steps = [n for n, line in enumerate(lines) if PROMPT.match(line) or LATER.match(line.strip())]
    for number, at in enumerate(steps):
        prompt, later = PROMPT.match(lines[at]), LATER.match(lines[at].strip())
        if prompt:
            if prompt.group(1) != user:
                user = prompt.group(1)
                text_bot.type(f"!asuser {user}")
                text_bot.wait_for(lambda out, u=user: f"You are now: @{u}." in out, "!asuser")
            command = prompt.group(2)
            for readme_id, real_id in zip(readme_ids, ids):
                command = command.replace(readme_id, real_id)
            text_bot.type(command)
        else:
            text_bot.move_clock(int(later.group(1)) * 60 + 60)
        # Wait until the bot has printed everything the README shows up to the next step.
        upto = steps[number + 1] if number + 1 < len(steps) else len(lines)
        expected = normalized("\n".join(said(lines[:upto])), readme_ids)

        def printed_so_far(out, expected=expected):
            ids[:] = list(dict.fromkeys(re.findall(r"Request (\w{6}) created", out)))
            return normalized(text_bot.transcript(), ids).startswith(expected)

        text_bot.wait_for(printed_so_far, f"what the README shows up to line {upto}")
        done = upto

    assert done == len(lines)
    assert normalized(text_bot.transcript(), ids) == normalized("\n".join(said(lines)), readme_ids)


def test_on_slack_no_notice_says_where_it_went(start_bot, fake):
    bot = start_bot("socket")
    rid, card = request_card(bot, fake)

    bot.type("UBOB", "CAPPROVALS", f"!approve {rid}")

    dm = fake.wait(lambda: fake.dms("UCAROL"), "carol's DM")[0]
    assert dm.startswith(f"Your request {rid} was approved by @bob")
    assert not card["text"].startswith("(in ")
