"""ARCHITECTURE.md stays true: every module its layout block names exists and is named
once, the modules a package's line mentions are in that package, and every package and
top-level module under plugins/accessbot is in the block."""

from __future__ import annotations

import re
from collections import Counter

from tests.conftest import ROOT

DOC = ROOT / "ARCHITECTURE.md"
# A name column entry: `  store.py`, `  policy/`, `  cli.py, report.py,` (at most 8 spaces in;
# descriptions start further right).
ENTRY = re.compile(r"^( {0,8})((?:[\w.]+(?:\.py|/),? ?)+?)(?=\s{2,}|$)")
MENTIONED = re.compile(r"\b(\w+\.py)\b")


def layout() -> tuple[list[str], dict[str, str]]:
    """The paths the layout block names (relative to the project, packages ending in /)
    and, for each package, the text beside it."""
    section = DOC.read_text().split("## Layers and the direction of imports", 1)[1]
    block = section.split("```", 2)[1]
    stack: list[tuple[int, str]] = []  # (indent, package path)
    named: list[str] = []
    described: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        entry = ENTRY.match(line)
        if entry is None:
            if current is not None:
                described[current] += " " + line.strip()
            continue
        indent = len(entry.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        current = None
        for name in filter(None, (n.strip() for n in entry.group(2).split(","))):
            named.append(parent + name)
            if name.endswith("/"):
                stack.append((indent, parent + name))
                current = parent + name
                described[current] = line[entry.end() :].strip()
    return named, described


def test_the_layout_block_is_read_whole():
    named, described = layout()
    assert "plugins/access/access.py" in named
    assert "plugins/accessbot/domain.py" in named
    assert "plugins/accessbot/integrations/slack/signing.py" in named
    assert "pagerduty.py" in described["plugins/accessbot/integrations/"]


def test_every_module_the_layout_names_exists_once():
    named, _ = layout()
    assert [p for p in named if not (ROOT / p).exists()] == []
    assert [p for p, n in Counter(named).items() if n > 1] == []


def test_the_modules_a_package_line_mentions_are_in_that_package():
    _, described = layout()
    missing = [
        f"{package}{module}"
        for package, text in described.items()
        for module in MENTIONED.findall(text)
        if not (ROOT / package / module).exists()
    ]
    assert missing == []


def test_every_package_and_top_level_module_is_in_the_layout():
    named, _ = layout()
    core = ROOT / "plugins" / "accessbot"
    packages = {
        f"{p.parent.relative_to(ROOT).as_posix()}/"
        for p in core.rglob("__init__.py")
        if p.parent != core
    }
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in core.glob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    assert sorted((packages | modules) - set(named)) == []
