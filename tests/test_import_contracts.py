"""The layers of ARCHITECTURE.md are checked, not a convention: import-linter's contracts
(.importlinter) hold on the code, and a wrong import breaks them. `make lint` runs the
same `lint-imports`."""

from __future__ import annotations

import configparser
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLUGINS, ROOT

pytest.importorskip(
    "importlinter",
    reason="import-linter is not installed: pip install -r requirements-dev.txt (make test does)",
)

# `lint-imports` itself (the script pip puts in the venv's bin runs exactly this).
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
)


def lint_imports(plugins: Path, config: Path = ROOT / ".importlinter"):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugins), *sys.path]))
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    done = lint_imports(PLUGINS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("gc_pause.py", "import errbot", "accessbot never imports errbot"),
        ("domain.py", "from . import settings", "domain (the state machine) imports nothing"),
        ("outbox.py", "from .service import Notice", "ports (outbox, store, audit, notices"),
        ("strategies/okta.py", "from .. import postgres", "know nothing"),
        ("integrations/slack/ids.py", "from . import web", "ids and mrkdwn at the bottom"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    copy = tmp_path / "plugins"
    shutil.copytree(
        PLUGINS / "accessbot", copy / "accessbot", ignore=shutil.ignore_patterns("__pycache__")
    )
    path = copy / "accessbot" / module
    path.write_text(path.read_text() + f"\n{line}\n")

    done = lint_imports(copy)

    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in " ".join(broken.split()), done.stdout


def test_the_pure_domain_contract_names_every_other_module():
    """A module added under accessbot is forbidden to the domain too: the list is whole."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    listed = set(config["importlinter:contract:pure-domain"]["forbidden_modules"].split())
    present = {
        f"accessbot.{info.name}" for info in pkgutil.iter_modules([str(PLUGINS / "accessbot")])
    } - {"accessbot.domain", "accessbot.errors"}
    assert present - listed == set(), "add these to .importlinter's pure-domain contract"
    assert listed - present == set(), "these are gone: take them out of .importlinter"
