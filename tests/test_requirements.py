"""What `make run` installs: only what the bot imports (requirements.txt); the test tools,
the AWS SDK and the report's chart library come from the other requirement files."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLUGINS, ROOT

# Imported only where an optional feature needs it, and installed from its own file.
OPTIONAL = {
    "boto3": ("requirements-aws.txt", {"accessbot/strategies/aws.py"}),
    "botocore": ("requirements-aws.txt", {"accessbot/strategies/aws.py"}),
    "matplotlib": ("requirements-report.txt", {"accessbot/report.py"}),
}
DEV_TOOLS = (
    "pytest",
    "hypothesis",
    "ruff",
    "import-linter",
    "moto",
    "boto3",
    "botocore",
    "matplotlib",
)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(path: Path) -> set[str]:
    """The distributions a requirements file names, following `-r other.txt`."""
    names = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
            continue
        names.add(normalized(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def third_party_imports(root: Path) -> dict[str, set[str]]:
    """Top-level module -> the files under `root` that import it (stdlib and our own
    modules left out), lazy imports inside functions included."""
    ours = {p.stem for p in root.rglob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ours:
                    found.setdefault(top, set()).add(path.relative_to(root).as_posix())
    return found


def test_every_module_the_bot_imports_comes_from_the_runtime_requirements():
    runtime = requirement_names(ROOT / "requirements.txt")
    distributions = importlib.metadata.packages_distributions()
    imports = third_party_imports(PLUGINS)
    assert {"errbot", "tinydb", "slack_sdk", "psycopg", "yaml"} <= imports.keys()
    for module, files in sorted(imports.items()):
        names = {normalized(d) for d in distributions.get(module, [module])}
        if module in OPTIONAL:
            extra, allowed = OPTIONAL[module]
            assert files <= allowed, f"{module} is optional; imported from {sorted(files)}"
            assert names & requirement_names(ROOT / extra), f"{module} is not in {extra}"
            assert not names & runtime, f"{module} is optional, yet in requirements.txt"
        else:
            assert names & runtime, f"{sorted(files)} import {module}: add it to requirements.txt"


def test_the_runtime_requirements_hold_no_test_tools_and_the_dev_set_holds_them_all():
    runtime = requirement_names(ROOT / "requirements.txt")
    dev = requirement_names(ROOT / "requirements-dev.txt")
    assert not runtime & set(DEV_TOOLS)
    assert runtime <= dev and set(DEV_TOOLS) <= dev


def test_every_requirement_is_pinned():
    for path in ROOT.glob("requirements*.txt"):
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-r"):
                assert "==" in line, f"{path.name}: pin {line!r} with =="


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make <target>` would run on a fresh clone (no .venv yet)."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    for name in ["Makefile", "pyproject.toml", *(p.name for p in ROOT.glob("requirements*.txt"))]:
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run(
        ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_run_on_a_fresh_clone_installs_only_the_runtime_requirements(tmp_path):
    assert make_dry_run("run", tmp_path) == [
        ".venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt"
    ]


def test_make_test_adds_the_development_requirements(tmp_path):
    installs = make_dry_run("test", tmp_path)
    assert [line.split(" -r ", 1)[1] for line in installs] == [
        "requirements.txt",
        "requirements-dev.txt",
    ]
