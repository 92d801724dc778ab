"""The security helpers for text live apart from the texts (issue 33): `safe_text` loads
nothing of the bot, and the modules that only redact URLs or make text inert no longer
load the texts package (and everything it imports) to do it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from accessbot import messages, safe_text

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def loaded_after_import(module: str) -> list[str]:
    """The accessbot modules a fresh interpreter holds after importing `module`."""
    code = (
        f"import json, sys, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'accessbot')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(PLUGINS), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out)


def test_safe_text_loads_nothing_of_the_bot():
    loaded = loaded_after_import("accessbot.safe_text")
    assert loaded == ["accessbot", "accessbot.pyversion", "accessbot.safe_text"]


@pytest.mark.parametrize(
    "module",
    [
        "accessbot.settings",
        "accessbot.strategies",
        "accessbot.cli",
        "accessbot.rebuild",
        "accessbot.commands",
        "accessbot.unit_of_work",
    ],
)
def test_a_module_that_only_redacts_or_makes_text_inert_does_not_load_the_texts(module):
    assert "accessbot.messages" not in loaded_after_import(module)


def test_the_texts_package_still_offers_the_helpers_by_their_old_names():
    assert messages.redact_url is safe_text.redact_url
    assert messages.redact_urls is safe_text.redact_urls
    assert messages.inert is safe_text.inert
    assert messages.redact_url("https://u:pw@db.example:5432/x?token=s#f") == (
        "https://db.example:5432/x"
    )
