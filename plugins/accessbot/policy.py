"""Load and validate policy files, and run their hooks.

Every `*.py` in the policy directory whose name does not start with `_` is one flow: a
`RESOURCES` dict plus optional `get_approvers(request, ctx)` and `on_request(request,
ctx)` hooks. Loading is all-or-nothing: any error in any file fails the whole load, with
`file:line: key: message` for each problem, so the policies already running stay.
"""

from __future__ import annotations

import ast
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .domain import DurationError, RequestView, format_duration, parse_duration
from .strategies import SettingsError, Strategy, build_strategy

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("max_duration", "strategy")
OPTIONAL_KEYS = (
    "description",
    "default_duration",
    "approvers",
    "channel",
    "approvals_required",
    "allow_self_approval",
    "max_extensions",
)
ALLOWED_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)
HOOKS = ("get_approvers", "on_request")


class PolicyError(Exception):
    """The policy directory did not load; `errors` holds one `file:line: message` each."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class Resource:
    name: str
    description: str
    max_duration: timedelta
    default_duration: timedelta
    approvers: tuple[str, ...]
    channel: str
    approvals_required: int
    allow_self_approval: bool
    max_extensions: int
    strategy_settings: dict
    strategy: Strategy
    file: str
    hooks: dict[str, Callable] = field(default_factory=dict, compare=False)

    def summary(self) -> dict:
        return {
            "description": self.description,
            "max_duration": format_duration(self.max_duration),
            "default_duration": format_duration(self.default_duration),
            "approvers": list(self.approvers),
            "channel": self.channel,
            "approvals_required": self.approvals_required,
            "allow_self_approval": self.allow_self_approval,
            "max_extensions": self.max_extensions,
            "strategy": self.strategy_settings,
            "hooks": sorted(self.hooks),
        }


@dataclass(frozen=True)
class PolicySet:
    resources: dict[str, Resource]
    files: tuple[str, ...]

    def get(self, name: str) -> Resource | None:
        return self.resources.get(name)

    def names(self) -> list[str]:
        return sorted(self.resources)


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str


class PolicyContext:
    """What hooks receive as `ctx`: decide with `ctx.approve(reason)` / `ctx.deny(reason)`."""

    def __init__(self, pagerduty, now: datetime, logger: logging.Logger):
        self.pagerduty = pagerduty
        self.now = now
        self.log = logger

    @staticmethod
    def approve(reason: str = "approved by policy") -> Decision:
        return Decision(True, str(reason))

    @staticmethod
    def deny(reason: str = "denied by policy") -> Decision:
        return Decision(False, str(reason))


# -- loading ------------------------------------------------------------------------


def load_policies(directory: str | Path) -> PolicySet:
    """Load every policy file in `directory`; raise PolicyError listing every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError([f"{directory}: the policy directory does not exist"])
    errors: list[str] = []
    resources: dict[str, Resource] = {}
    files = sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
    for path in files:
        loaded, file_errors = _load_file(path)
        errors.extend(file_errors)
        for name, resource in loaded.items():
            if name in resources:
                errors.append(
                    f"{path.name}: resource {name!r} is already defined in "
                    f"{resources[name].file}; each resource lives in one file"
                )
            else:
                resources[name] = resource
    if errors:
        raise PolicyError(errors)
    return PolicySet(resources, tuple(p.name for p in files))


def _load_file(path: Path) -> tuple[dict[str, Resource], list[str]]:
    name = path.name
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{name}: cannot be read: {exc}"]
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        return {}, [f"{name}:{exc.lineno}: syntax error: {exc.msg}"]
    namespace: dict[str, Any] = {"__name__": f"accessbot_policy_{path.stem}", "__file__": str(path)}
    try:
        exec(code, namespace)  # noqa: S102 - policy files are reviewed code, like config.py
    except BaseException as exc:  # noqa: BLE001 - SystemExit in a policy must not stop us
        return {}, [f"{name}:{_line_in(path, exc)}: error while loading: {_describe(exc)}"]

    lines = _key_lines(source)
    where = lambda *keys: f"{name}:{lines.get(keys, lines.get(keys[:1], 1))}"  # noqa: E731
    raw = namespace.get("RESOURCES")
    if raw is None:
        return {}, [f"{name}:1: RESOURCES is missing; a policy file defines RESOURCES = {{...}}"]
    if not isinstance(raw, dict) or not raw:
        return {}, [f"{where()}: RESOURCES must be a non-empty dict of resource name -> settings"]

    hooks = {}
    errors = []
    for hook in HOOKS:
        fn = namespace.get(hook)
        if fn is not None and not callable(fn):
            errors.append(f"{name}:1: {hook} must be a function taking (request, ctx)")
        elif fn is not None:
            hooks[hook] = fn

    resources = {}
    for res_name, settings in raw.items():
        try:
            resources[res_name] = _resource(res_name, settings, name, hooks)
        except _KeyProblem as problem:
            errors.append(f"{where(res_name, problem.key)}: {res_name}.{problem.key}: {problem}")
    return resources, errors


class _KeyProblem(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _resource(name: Any, settings: Any, file: str, hooks: dict) -> Resource:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise _KeyProblem("name", "a resource name must be a string without spaces, e.g. prod-db")
    if not isinstance(settings, dict):
        raise _KeyProblem("settings", "must be a dict of settings")
    for key in settings:
        if key not in ALLOWED_KEYS:
            allowed = ", ".join(sorted(ALLOWED_KEYS))
            raise _KeyProblem(str(key), f"unknown key (allowed: {allowed})")
    if "max_duration" not in settings:
        raise _KeyProblem("max_duration", 'is required, e.g. "max_duration": "4h"')

    max_duration = _duration(settings, "max_duration")
    default_duration = (
        _duration(settings, "default_duration")
        if "default_duration" in settings
        else min(max_duration, timedelta(hours=1))
    )
    if default_duration > max_duration:
        raise _KeyProblem(
            "default_duration",
            f"{format_duration(default_duration)} is longer than max_duration "
            f"{format_duration(max_duration)}",
        )

    approvers = settings.get("approvers", [])
    if isinstance(approvers, str) or not isinstance(approvers, (list, tuple)):
        raise _KeyProblem("approvers", 'must be a list like ["@alice", "@bob"]')
    if not all(isinstance(a, str) and a.strip() for a in approvers):
        raise _KeyProblem("approvers", "every approver must be a handle, user id or e-mail")
    if not approvers and "get_approvers" not in hooks:
        raise _KeyProblem("approvers", "is required (or define get_approvers in the file)")

    channel = settings.get("channel")
    if not isinstance(channel, str) or not channel.strip():
        raise _KeyProblem("channel", 'is required: where the approval card goes, e.g. "#access"')

    approvals_required = settings.get("approvals_required", 1)
    if type(approvals_required) is not int or approvals_required < 1:
        raise _KeyProblem("approvals_required", "must be a whole number of 1 or more")
    if approvers and approvals_required > len(approvers) and "get_approvers" not in hooks:
        raise _KeyProblem(
            "approvals_required",
            f"is {approvals_required} but only {len(approvers)} approver(s) are listed",
        )
    allow_self = settings.get("allow_self_approval", False)
    if not isinstance(allow_self, bool):
        raise _KeyProblem("allow_self_approval", "must be True or False")
    max_extensions = settings.get("max_extensions", 2)
    if type(max_extensions) is not int or max_extensions < 0:
        raise _KeyProblem("max_extensions", "must be a whole number of 0 or more")
    description = settings.get("description", "")
    if not isinstance(description, str):
        raise _KeyProblem("description", "must be a string")

    if "strategy" not in settings:
        raise _KeyProblem(
            "strategy", 'is required: how access is granted, e.g. {"type": "webhook", "url": ...}'
        )
    try:
        strategy = build_strategy(settings["strategy"])
    except SettingsError as exc:
        raise _KeyProblem(exc.key, exc.message) from exc

    return Resource(
        name=name,
        description=description,
        max_duration=max_duration,
        default_duration=default_duration,
        approvers=tuple(a.strip() for a in approvers),
        channel=channel.strip(),
        approvals_required=approvals_required,
        allow_self_approval=allow_self,
        max_extensions=max_extensions,
        strategy_settings=dict(settings["strategy"]),
        strategy=strategy,
        file=file,
        hooks=hooks,
    )


def _duration(settings: dict, key: str) -> timedelta:
    value = settings[key]
    if isinstance(value, timedelta):
        duration = value
    else:
        try:
            duration = parse_duration(value)
        except DurationError:
            raise _KeyProblem(
                key, f'"{value}" is not a duration (try "4h", "30m" or "1h30m")'
            ) from None
    if duration <= timedelta(0):
        raise _KeyProblem(key, "must be longer than 0s")
    return duration


def _key_lines(source: str) -> dict[tuple, int]:
    """Map (resource,) and (resource, key) to their line in the RESOURCES literal."""
    lines: dict[tuple, int] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return lines
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if not any(isinstance(t, ast.Name) and t.id == "RESOURCES" for t in targets):
            continue
        lines[()] = node.lineno
        if not isinstance(value, ast.Dict):
            continue
        for key, val in zip(value.keys, value.values):
            if isinstance(key, ast.Constant):
                lines[(key.value,)] = key.lineno
                if isinstance(val, ast.Dict):
                    for sub_key in val.keys:
                        if isinstance(sub_key, ast.Constant):
                            lines[(key.value, sub_key.value)] = sub_key.lineno
                    for sub_key, sub_val in zip(val.keys, val.values):
                        if (
                            isinstance(sub_key, ast.Constant)
                            and sub_key.value == "strategy"
                            and isinstance(sub_val, ast.Dict)
                        ):
                            for s_key in sub_val.keys:
                                if isinstance(s_key, ast.Constant):
                                    lines[(key.value, f"strategy.{s_key.value}")] = s_key.lineno
    return lines


def _line_in(path: Path, exc: BaseException) -> int | str:
    """The line of `path` where `exc` was raised (the innermost frame in that file)."""
    line: int | str = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return line


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- running hooks ------------------------------------------------------------------


class HookFailed(Exception):
    """A hook raised, overran its time limit or returned nonsense; it never approves."""


def run_hook(
    resource: Resource,
    hook: str,
    request: RequestView,
    ctx: PolicyContext,
    timeout: float,
):
    """Run one hook in a worker thread with a time limit; HookFailed names file:line."""
    fn = resource.hooks.get(hook)
    if fn is None:
        return None
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = fn(request, ctx)
        except BaseException as exc:  # noqa: BLE001 - any failure must fail closed
            result["error"] = exc

    worker = threading.Thread(target=target, name=f"policy-{hook}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HookFailed(f"{resource.file}: {hook} took longer than {timeout:g}s")
    if "error" in result:
        exc = result["error"]
        path = Path(fn.__code__.co_filename)
        raise HookFailed(f"{resource.file}:{_line_in(path, exc)}: {hook} raised {_describe(exc)}")
    return result.get("value")
