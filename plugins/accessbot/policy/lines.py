"""Where a mistake is, as `file:line`: the line of each key in a policy file's
RESOURCES and GROUPS literals, the line an exception was raised at, and the line a hook
is running now."""

from __future__ import annotations

import ast
import sys
import threading
import traceback
from pathlib import Path

from .. import gc_pause


def locate(name: str, lines: dict[tuple, int], keys: tuple) -> str:
    """`file:line` of the most specific known key: (res, "fields.ticket.pattern")
    falls back to (res, "fields.ticket"), (res, "fields"), (res,) and line 1."""
    keys = tuple(str(k) for k in keys)
    candidates = [keys]
    if len(keys) == 2:
        parts = keys[1].split(".")
        candidates += [(keys[0], ".".join(parts[:n])) for n in range(len(parts) - 1, 0, -1)]
    candidates += [keys[:1], ()]
    for candidate in candidates:
        if candidate in lines:
            return f"{name}:{lines[candidate]}"
    return f"{name}:1"


# CPython 3.11 counts ast.parse's recursion per interpreter, not per thread: two threads
# parsing at once (a reload beside the watcher, two bots in one process) may get a
# spurious "AST constructor recursion depth mismatch" SystemError (werkzeug parses too,
# when errbot routes a plugin's webhooks: the plugin holds PARSING for that). Ours take
# turns, and
# a parse that still fails so is tried again; line numbers are never worth a failed load.
PARSING = threading.Lock()  # also held by the plugin while errbot routes its webhooks
PARSE_TRIES = 3


def _parse(source: str) -> ast.Module | None:
    """`source` parsed, or None when it cannot be (a syntax error is reported elsewhere)."""
    for _ in range(PARSE_TRIES):
        try:
            with PARSING:
                return ast.parse(source)
        except SyntaxError:
            return None
        except SystemError:  # the race above, with a thread that is not ours
            continue
    return None


def key_lines(source: str) -> dict[tuple, int]:
    """Map (resource,) and (resource, "key.sub.key") to their line in the RESOURCES
    literal, and ("<GROUPS>", name) to the line of a group in GROUPS."""
    lines: dict[tuple, int] = {}
    tree = _parse(source)
    if tree is None:
        return lines

    def walk(resource, prefix: str, node: ast.Dict) -> None:
        for key, val in zip(node.keys, node.values):
            if isinstance(key, ast.Constant):
                path = f"{prefix}{key.value}"
                lines[(resource, path)] = key.lineno
                if isinstance(val, ast.Dict):
                    walk(resource, f"{path}.", val)

    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if "GROUPS" in names:
            lines[("<GROUPS>",)] = node.lineno
            if isinstance(value, ast.Dict):
                for key in value.keys:
                    if isinstance(key, ast.Constant):
                        lines[("<GROUPS>", str(key.value))] = key.lineno
        if "RESOURCES" not in names:
            continue
        lines[()] = node.lineno
        if not isinstance(value, ast.Dict):
            continue
        for key, val in zip(value.keys, value.values):
            if isinstance(key, ast.Constant):
                lines[(str(key.value),)] = key.lineno
                if isinstance(val, ast.Dict):
                    walk(str(key.value), "", val)
    return lines


def line_in(path: Path, exc: BaseException) -> int | str:
    """The line of `path` where `exc` was raised (the innermost frame in that file)."""
    line: int | str = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return line


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def running_line(worker: threading.Thread, filename: str) -> int | None:
    """The line of `filename` the worker thread is running now (innermost such frame)."""
    with gc_pause.paused():  # CPython 3.11 can hang for good otherwise (see gc_pause)
        frame = sys._current_frames().get(worker.ident)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None
