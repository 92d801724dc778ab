"""Load and validate policy files, and run their hooks.

Every `*.py` in the policy directory whose name does not start with `_` is one flow: a
`RESOURCES` dict, an optional `GROUPS` dict (named approver lists, usable from every
file) and optional `get_approvers(request, ctx)` and `on_request(request, ctx)` hooks.
Loading is all-or-nothing: any error in any file fails the whole load, with
`file:line: key: message` for each problem, so the policies already running stay.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .approvers import GROUP, GROUP_NAME, entry_problem, is_dynamic, kind_of, static_members
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
    "fields",
)
ALLOWED_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)
HOOKS = ("get_approvers", "on_request")
FIELD_KEYS = frozenset({"pattern", "required", "help"})
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FIELD_VALUE_LIMIT = 200
CONFIG_GROUPS = "ACCESS_GROUPS"  # where groups from the bot's configuration come from


class PolicyError(Exception):
    """The policy directory did not load; `errors` holds one `file:line: message` each."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class FieldSpec:
    """One prompt field a request must (or may) carry: `ticket=OPS-12`."""

    name: str
    pattern: re.Pattern | None
    required: bool
    help: str

    def problem(self, value: str) -> str | None:
        """Why `value` is not acceptable, with the help text; None when it is."""
        if len(value) > FIELD_VALUE_LIMIT:
            return f"{self.name} is longer than {FIELD_VALUE_LIMIT} characters"
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return f"{self.name}={value} is not valid" + (f": {self.help}" if self.help else "")
        return None

    def summary(self) -> dict:
        return {
            "pattern": self.pattern.pattern if self.pattern else None,
            "required": self.required,
            "help": self.help,
        }


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
    fields: dict[str, FieldSpec] = field(default_factory=dict)

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
            "fields": {name: spec.summary() for name, spec in self.fields.items()},
        }


@dataclass(frozen=True)
class PolicySet:
    resources: dict[str, Resource]
    files: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> members
    group_sources: dict[str, str] = field(default_factory=dict)  # name -> file or ACCESS_GROUPS

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


def load_policies(directory: str | Path, groups: Mapping[str, Any] | None = None) -> PolicySet:
    """Load every policy file in `directory`; raise PolicyError listing every problem.

    `groups` are the named approver lists from the configuration (ACCESS_GROUPS); a
    policy file's own `GROUPS` add to them, and every group is usable from every file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError([f"{directory}: the policy directory does not exist"])
    errors: list[str] = []
    all_groups: dict[str, tuple[str, ...]] = {}
    sources: dict[str, str] = {}
    for name, members in (groups or {}).items():
        try:
            all_groups[name] = _group(name, members)
            sources[name] = CONFIG_GROUPS
        except _KeyProblem as problem:
            errors.append(f"{CONFIG_GROUPS}: {name}: {problem}")

    loaded_files: list[_File] = []
    resources: dict[str, Resource] = {}
    files = sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
    for path in files:
        loaded = _load_file(path)
        loaded_files.append(loaded)
        errors.extend(loaded.errors)
        for name, members in loaded.groups.items():
            if name in sources:
                errors.append(
                    f"{loaded.where('<GROUPS>', name)}: GROUPS.{name}: group {name!r} is already "
                    f"defined in {sources[name]}; each group is defined once and usable from "
                    "every policy file"
                )
            else:
                all_groups[name] = members
                sources[name] = path.name
        for name, resource in loaded.resources.items():
            if name in resources:
                errors.append(
                    f"{loaded.where(name)}: resource {name!r} is already defined in "
                    f"{resources[name].file}; each resource lives in one file"
                )
            else:
                resources[name] = resource
    for loaded in loaded_files:
        for resource in loaded.resources.values():
            problem = _approver_problem(resource, all_groups)
            if problem:
                errors.append(
                    f"{loaded.where(resource.name, problem.key)}: {resource.name}.{problem.key}: "
                    f"{problem}"
                )
    if errors:
        raise PolicyError(errors)
    return PolicySet(resources, tuple(p.name for p in files), all_groups, sources)


@dataclass
class _File:
    name: str
    lines: dict[tuple, int]
    resources: dict[str, Resource] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def where(self, *keys: str) -> str:
        """`file:line` of the most specific known key: (res, "fields.ticket.pattern")
        falls back to (res, "fields.ticket"), (res, "fields"), (res,) and line 1."""
        keys = tuple(str(k) for k in keys)
        candidates = [keys]
        if len(keys) == 2:
            parts = keys[1].split(".")
            candidates += [(keys[0], ".".join(parts[:n])) for n in range(len(parts) - 1, 0, -1)]
        candidates += [keys[:1], ()]
        for candidate in candidates:
            if candidate in self.lines:
                return f"{self.name}:{self.lines[candidate]}"
        return f"{self.name}:1"


def _load_file(path: Path) -> _File:
    name = path.name
    result = _File(name, {})
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.errors.append(f"{name}:1: cannot be read: {exc}")
        return result
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        result.errors.append(f"{name}:{exc.lineno}: syntax error: {exc.msg}")
        return result
    namespace: dict[str, Any] = {"__name__": f"accessbot_policy_{path.stem}", "__file__": str(path)}
    try:
        exec(code, namespace)  # noqa: S102 - policy files are reviewed code, like config.py
    except BaseException as exc:  # noqa: BLE001 - SystemExit in a policy must not stop us
        result.errors.append(f"{name}:{_line_in(path, exc)}: error while loading: {_describe(exc)}")
        return result

    result.lines = _key_lines(source)
    where = result.where
    raw = namespace.get("RESOURCES")
    if raw is None:
        result.errors.append(
            f"{name}:1: RESOURCES is missing; a policy file defines RESOURCES = {{...}}"
        )
        return result
    if not isinstance(raw, dict) or not raw:
        result.errors.append(
            f"{where()}: RESOURCES must be a non-empty dict of resource name -> settings"
        )
        return result

    raw_groups = namespace.get("GROUPS", {})
    if not isinstance(raw_groups, dict):
        result.errors.append(
            f"{where('<GROUPS>')}: GROUPS must be a dict of group name -> approvers, "
            'e.g. GROUPS = {"sre": ["@alice", "@bob"]}'
        )
        raw_groups = {}
    for group_name, members in raw_groups.items():
        try:
            result.groups[group_name] = _group(group_name, members)
        except _KeyProblem as problem:
            result.errors.append(
                f"{where('<GROUPS>', str(group_name))}: GROUPS.{group_name}: {problem}"
            )

    hooks = {}
    for hook in HOOKS:
        fn = namespace.get(hook)
        if fn is not None and not callable(fn):
            result.errors.append(f"{name}:1: {hook} must be a function taking (request, ctx)")
        elif fn is not None:
            hooks[hook] = fn

    for res_name, settings in raw.items():
        try:
            result.resources[res_name] = _resource(res_name, settings, name, hooks)
        except _KeyProblem as problem:
            result.errors.append(
                f"{where(res_name, problem.key)}: {res_name}.{problem.key}: {problem}"
            )
    return result


class _KeyProblem(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _group(name: Any, members: Any) -> tuple[str, ...]:
    """One named approver list (ACCESS_GROUPS or a file's GROUPS): people only."""
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        raise _KeyProblem(
            "name", f"{name!r} is not a group name: letters, digits, '-', '_' and '.', e.g. sre"
        )
    if isinstance(members, str) or not isinstance(members, (list, tuple)) or not members:
        raise _KeyProblem(name, 'must be a non-empty list like ["@alice", "@bob"]')
    for member in members:
        if not isinstance(member, str) or not member.strip():
            raise _KeyProblem(name, "every member must be a handle, user id or e-mail")
        if kind_of(member.strip()) or ":" in member:
            raise _KeyProblem(
                name,
                f'"{member}" is not a person: a group lists handles, user ids or e-mails; put '
                "group:, slack-group: and pagerduty: entries straight into a resource's approvers",
            )
    return tuple(m.strip() for m in members)


def _approver_problem(resource: Resource, groups: Mapping[str, tuple]) -> _KeyProblem | None:
    """Checks that need every file's GROUPS: known group names, and a quorum the
    listed approvers can reach."""
    for entry in resource.approvers:
        if entry.startswith(GROUP) and entry[len(GROUP) :] not in groups:
            known = ", ".join(sorted(groups)) or "none are defined"
            return _KeyProblem(
                "approvers",
                f'unknown group "{entry[len(GROUP) :]}" (groups: {known}); define it in a policy '
                f"file's GROUPS or in {CONFIG_GROUPS}",
            )
    if "get_approvers" in resource.hooks or any(is_dynamic(e) for e in resource.approvers):
        return None  # who is asked is only known at request time
    people = static_members(resource.approvers, groups)
    if people and resource.approvals_required > len(people):
        return _KeyProblem(
            "approvals_required",
            f"is {resource.approvals_required} but the approvers name only {len(people)} "
            f"person(s): {', '.join(people)}",
        )
    return None


def _fields(settings: dict) -> dict[str, FieldSpec]:
    raw = settings.get("fields", {})
    example = '{"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key"}}'
    if not isinstance(raw, dict):
        raise _KeyProblem("fields", f"must be a dict like {example}")
    specs = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            raise _KeyProblem(
                "fields",
                f"{name!r} is not a field name: lower-case letters, digits and _, e.g. ticket",
            )
        if not isinstance(spec, dict):
            raise _KeyProblem(f"fields.{name}", f"must be a dict like {example[12:-1]}")
        for key in spec:
            if key not in FIELD_KEYS:
                raise _KeyProblem(
                    f"fields.{name}.{key}",
                    f"unknown key (allowed: {', '.join(sorted(FIELD_KEYS))})",
                )
        pattern = spec.get("pattern")
        compiled = None
        if pattern is not None:
            if not isinstance(pattern, str) or not pattern:
                raise _KeyProblem(f"fields.{name}.pattern", "must be a regular expression string")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise _KeyProblem(
                    f"fields.{name}.pattern",
                    f"{pattern!r} is not a valid regular expression: {exc}",
                ) from None
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise _KeyProblem(f"fields.{name}.required", "must be True or False")
        help_text = spec.get("help", "")
        if not isinstance(help_text, str):
            raise _KeyProblem(
                f"fields.{name}.help", 'must be a string, e.g. "Jira key like OPS-12"'
            )
        specs[name] = FieldSpec(name, compiled, required, help_text.strip())
    return specs


# Typed in commands, carried as a Slack option value (at most 150 characters) and shown
# on cards and in reports: short, lower-case, and nothing that is markup anywhere.
RESOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_resource_name(name: Any) -> None:
    """A _KeyProblem unless `name` is 1 to 64 characters of a-z, 0-9, '.', '_' and '-',
    starting with a letter or digit; the message suggests a name that would do."""
    if isinstance(name, str) and RESOURCE_NAME.fullmatch(name):
        return
    if not isinstance(name, str):
        raise _KeyProblem("name", f"{name!r} is not a string; a resource name is, e.g. 'prod-db'")
    shown = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"
    instead = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).lstrip("-._")[:64].rstrip("-._")
    raise _KeyProblem(
        "name",
        f"{shown} is not a resource name: use 1 to 64 characters of a-z, 0-9, '.', '_' "
        f"and '-', starting with a letter or digit; write {instead or 'prod-db'!r}",
    )


def _resource(name: Any, settings: Any, file: str, hooks: dict) -> Resource:
    check_resource_name(name)
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
    for entry in approvers:
        problem = entry_problem(entry.strip())
        if problem:
            raise _KeyProblem("approvers", problem)
    if not approvers and "get_approvers" not in hooks:
        raise _KeyProblem("approvers", "is required (or define get_approvers in the file)")

    channel = settings.get("channel")
    if not isinstance(channel, str) or not channel.strip():
        raise _KeyProblem("channel", 'is required: where the approval card goes, e.g. "#access"')

    approvals_required = settings.get("approvals_required", 1)
    if type(approvals_required) is not int or approvals_required < 1:
        raise _KeyProblem("approvals_required", "must be a whole number of 1 or more")
    # Whether the approvers can reach the quorum needs every file's GROUPS: load_policies.
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
    fields = _fields(settings)

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
        fields=fields,
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
    """Map (resource,) and (resource, "key.sub.key") to their line in the RESOURCES
    literal, and ("<GROUPS>", name) to the line of a group in GROUPS."""
    lines: dict[tuple, int] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
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
        # The thread cannot be killed; it is a daemon, and whatever it returns is ignored.
        line = _running_line(worker, fn.__code__.co_filename) or fn.__code__.co_firstlineno
        raise HookFailed(
            f"{resource.file}:{line}: {hook} took longer than {timeout:g}s (ACCESS_HOOK_TIMEOUT)"
        )
    if "error" in result:
        exc = result["error"]
        path = Path(fn.__code__.co_filename)
        raise HookFailed(f"{resource.file}:{_line_in(path, exc)}: {hook} raised {_describe(exc)}")
    return result.get("value")


def _running_line(worker: threading.Thread, filename: str) -> int | None:
    """The line of `filename` the worker thread is running now (innermost such frame)."""
    frame = sys._current_frames().get(worker.ident)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None
