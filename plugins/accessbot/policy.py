"""Load and validate policy files, and run their hooks.

Every `*.py` in the policy directory whose name does not start with `_` is one flow: a
`RESOURCES` dict, an optional `GROUPS` dict (named approver lists, usable from every
file) and optional hooks (`HOOKS`): `get_approvers(request, ctx)`,
`on_request(request, ctx)`, `on_approve(request, approval, ctx)`,
`on_deny(request, denial, ctx)`, `after_grant(request, ctx)`, `after_revoke(request, ctx)`.
Loading is all-or-nothing: any error in any file fails the whole load, with
`file:line: key: message` for each problem, so the policies already running stay.
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
import reprlib
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .approvers import GROUP, GROUP_NAME, entry_problem, is_dynamic, kind_of, static_members
from .domain import (
    MAX_DURATION,
    DurationError,
    DurationTooLong,
    RequestView,
    format_duration,
    parse_duration,
)
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
    "escalation",
    "durations",
    "standing",
    "remove_standing",
)
ALLOWED_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)
# Each hook a policy file may define, with the arguments it is called with.
HOOK_ARGS = {
    "get_approvers": ("request", "ctx"),
    "on_request": ("request", "ctx"),
    "on_approve": ("request", "approval", "ctx"),
    "on_deny": ("request", "denial", "ctx"),
    "after_grant": ("request", "ctx"),
    "after_revoke": ("request", "ctx"),
}
HOOKS = tuple(HOOK_ARGS)
ESCALATION_KEYS = frozenset({"after", "approvers", "channel"})
FIELD_KEYS = frozenset({"pattern", "required", "help"})
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FIELD_VALUE_LIMIT = 200
CONFIG_GROUPS = "ACCESS_GROUPS"  # where groups from the bot's configuration come from


class PolicyError(Exception):
    """The policy directory did not load; `errors` holds one `file:line: message` each,
    `warnings` what would not stop the bot from loading them (see load_policies)."""

    def __init__(self, errors: list[str], warnings: list[str] | None = None):
        self.errors = errors
        self.warnings = list(warnings or [])
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
class EscalationLevel:
    """Who else is asked, and where, when a request is still undecided `after` it was made."""

    after: timedelta
    approvers: tuple[str, ...]
    channel: str

    def to_dict(self) -> dict:
        """As a request keeps it: a reload never changes the levels of a request made."""
        return {
            "after": self.after.total_seconds(),
            "approvers": list(self.approvers),
            "channel": self.channel,
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
    durations: tuple[timedelta, ...] = ()  # when set, the only durations one may ask for
    escalation: tuple[EscalationLevel, ...] = ()
    # Who may hold it without a grant, and whether the standing-access sweep removes others.
    standing: tuple[str, ...] = ()
    remove_standing: bool = False

    def nearest_duration(self, duration: timedelta) -> timedelta:
        """A duration one may ask for instead of `duration`: the longest listed one not
        above it (else the shortest), or within max_duration without a list."""
        if not self.durations:
            return min(duration, self.max_duration)
        shorter = [d for d in self.durations if d <= duration]
        return shorter[-1] if shorter else self.durations[0]

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
            "durations": [format_duration(d) for d in self.durations],
            "escalation": [
                {**level.to_dict(), "after": format_duration(level.after)}
                for level in self.escalation
            ],
            "standing": list(self.standing),
            "remove_standing": self.remove_standing,
        }


@dataclass(frozen=True)
class PolicySet:
    resources: dict[str, Resource]
    files: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> members
    warnings: tuple[str, ...] = ()  # `file:line: message`s that did not stop the load

    def get(self, name: str) -> Resource | None:
        return self.resources.get(name)

    def names(self) -> list[str]:
        return sorted(self.resources)


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str


@dataclass(frozen=True)
class Refusal:
    """What `on_approve` / `on_deny` return to discard one approver's click or command."""

    reason: str


@dataclass(frozen=True)
class Vote:
    """What `on_approve` sees as `approval` and `on_deny` as `denial`: who, and what
    they wrote (the comment of `!approve <id> <comment>`, the reason of a denial)."""

    approver: str  # the handle
    approver_email: str | None
    comment: str = ""
    approver_id: str = ""  # the platform user id (on Slack); the handle elsewhere


class PolicyContext:
    """What hooks receive as `ctx`: decide with `ctx.approve(reason)` / `ctx.deny(reason)`
    (on_request), refuse one approver's decision with `ctx.refuse(reason)` (on_approve,
    on_deny); ask `ctx.pagerduty` and `ctx.history`."""

    def __init__(self, pagerduty, now: datetime, logger: logging.Logger, history=None):
        self.pagerduty = pagerduty
        self.now = now
        self.log = logger
        self.history = history

    @staticmethod
    def approve(reason: str = "approved by policy") -> Decision:
        return Decision(True, str(reason))

    @staticmethod
    def deny(reason: str = "denied by policy") -> Decision:
        return Decision(False, str(reason))

    @staticmethod
    def refuse(reason: str = "refused by policy") -> Refusal:
        return Refusal(str(reason))


class FollowUpContext(PolicyContext):
    """`ctx` of after_grant / after_revoke: also `tell_requester(text)` and
    `tell_channel(text)`, delivered once the hook has returned. Once the hook is given up
    on (`close()`), whatever it still tells is dropped."""

    def __init__(self, pagerduty, now: datetime, logger: logging.Logger, history=None):
        super().__init__(pagerduty, now, logger, history)
        self._told: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._open = True

    def tell_requester(self, text: str) -> None:
        self._tell("user", text)

    def tell_channel(self, text: str) -> None:
        self._tell("channel", text)

    def _tell(self, audience: str, text: str) -> None:
        with self._lock:
            if self._open and str(text).strip():
                self._told.append((audience, str(text)))

    def close(self) -> list[tuple[str, str]]:
        """Stop taking messages; (audience, text) for each one told so far."""
        with self._lock:
            self._open = False
            return list(self._told)


# -- loading ------------------------------------------------------------------------


def load_policies(
    directory: str | Path,
    groups: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    unset_env_is_error: bool = True,
) -> PolicySet:
    """Load every policy file in `directory`; raise PolicyError listing every problem.

    `groups` are the named approver lists from the configuration (ACCESS_GROUPS); a
    policy file's own `GROUPS` add to them, and every group is usable from every file.
    With `environ`, a strategy setting naming an environment variable that is not set
    there (`secret_env`, `token_env`) is an error, or only a warning when
    `unset_env_is_error` is False (`check` in CI, which rarely has the bot's secrets).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError([f"{directory}: the policy directory does not exist"])
    errors: list[str] = []
    warnings: list[str] = []
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
        errors += loaded.across_files(all_groups)
        if environ is not None:
            (errors if unset_env_is_error else warnings).extend(loaded.unset_env(environ))
    if errors:
        raise PolicyError(errors, warnings)
    return PolicySet(resources, tuple(p.name for p in files), all_groups, tuple(warnings))


@dataclass
class _File:
    name: str
    lines: dict[tuple, int]
    resources: dict[str, Resource] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Every resource, loaded or not: which groups its approvers name is checked once
    # every file's GROUPS are known, and its strategy's variables against the environment.
    checked: dict[str, _Checked] = field(default_factory=dict)

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

    def problem(self, resource: str, problem: _KeyProblem) -> str:
        """`db.py:7: prod-db.channel: message`."""
        return f"{self.where(resource, problem.key)}: {resource}.{problem.key}: {problem}"

    def across_files(self, groups: Mapping[str, tuple]) -> list[str]:
        """What needs every file's GROUPS: unknown groups, unreachable quorums."""
        return [
            self.problem(name, p)
            for name, checked in self.checked.items()
            for p in _approver_problems(checked, groups)
        ]

    def unset_env(self, environ: Mapping[str, str]) -> list[str]:
        """Strategy settings naming a variable `environ` lacks."""
        return [
            self.problem(name, p)
            for name, checked in self.checked.items()
            for p in _unset_env(checked, environ)
        ]


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
        if fn is None:
            continue
        problem = _hook_problem(hook, fn)
        if problem:
            line = getattr(getattr(fn, "__code__", None), "co_firstlineno", 1)
            result.errors.append(f"{name}:{line}: {problem}")
        else:
            hooks[hook] = fn

    for res_name, settings in raw.items():
        checked = _resource(res_name, settings, name, hooks)
        result.checked[res_name] = checked
        result.errors += [result.problem(res_name, p) for p in checked.problems]
        if checked.resource is not None:
            result.resources[res_name] = checked.resource
    return result


def _hook_problem(hook: str, fn: Any) -> str | None:
    """Why `fn` cannot be called as `hook`, with the arguments it gets; None if it can."""
    args = HOOK_ARGS[hook]
    wanted = f"{hook} must be a function taking ({', '.join(args)})"
    if not callable(fn):
        return wanted
    try:
        inspect.signature(fn).bind(*args)
    except TypeError:
        return f"{wanted}, like: def {hook}({', '.join(args)}):"
    except ValueError:
        return None  # a builtin without a signature: let it be called
    return None


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


def _approver_problems(checked: _Checked, groups: Mapping[str, tuple]) -> list[_KeyProblem]:
    """Checks that need every file's GROUPS: known group names, and a quorum the
    listed approvers can reach (for a resource that loaded)."""
    known = ", ".join(sorted(groups)) or "none are defined"
    problems = [
        _KeyProblem(
            "approvers",
            f'unknown group "{entry[len(GROUP) :]}" (groups: {known}); define it in a policy '
            f"file's GROUPS or in {CONFIG_GROUPS}",
        )
        for entry in checked.approvers
        if entry.startswith(GROUP) and entry[len(GROUP) :] not in groups
    ]
    resource = checked.resource
    if problems or resource is None:
        return problems
    if "get_approvers" in resource.hooks or any(is_dynamic(e) for e in resource.approvers):
        return []  # who is asked is only known at request time
    people = static_members(resource.approvers, groups)
    if people and resource.approvals_required > len(people):
        return [
            _KeyProblem(
                "approvals_required",
                f"is {resource.approvals_required} but the approvers name only {len(people)} "
                f"person(s): {', '.join(people)}",
            )
        ]
    return []


def _fields(settings: dict, problems: list[_KeyProblem]) -> dict[str, FieldSpec]:
    """The resource's prompt fields; every problem with them goes into `problems`."""
    raw = settings.get("fields", {})
    example = '{"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key"}}'
    if not isinstance(raw, dict):
        problems.append(_KeyProblem("fields", f"must be a dict like {example}"))
        return {}
    specs = {}
    for name, spec in raw.items():
        try:
            specs[name] = _field(name, spec, example)
        except _KeyProblem as problem:
            problems.append(problem)
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


def _field(name: Any, spec: Any, example: str) -> FieldSpec:
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
        raise _KeyProblem(f"fields.{name}.help", 'must be a string, e.g. "Jira key like OPS-12"')
    return FieldSpec(name, compiled, required, help_text.strip())


@dataclass
class _Checked:
    """One resource as far as it got: built, or every problem with it, and the parts
    load_policies checks across files either way."""

    resource: Resource | None
    problems: list[_KeyProblem]
    approvers: tuple[str, ...] = ()  # the well-formed entries
    strategy: Strategy | None = None  # when its settings are valid
    strategy_settings: dict = field(default_factory=dict)


def _resource(name: Any, settings: Any, file: str, hooks: dict) -> _Checked:
    """Build one resource, or say everything wrong with it: each problem names its key."""
    problems: list[_KeyProblem] = []

    def attempt(check: Callable, *args):
        try:
            return check(*args)
        except _KeyProblem as problem:
            problems.append(problem)
            return None

    attempt(check_resource_name, name)
    if not isinstance(settings, dict):
        return _Checked(None, [*problems, _KeyProblem("settings", "must be a dict of settings")])
    allowed = ", ".join(sorted(ALLOWED_KEYS))
    problems += [
        _KeyProblem(str(key), f"unknown key (allowed: {allowed})")
        for key in settings
        if key not in ALLOWED_KEYS
    ]

    max_duration = default_duration = None
    if "max_duration" in settings:
        max_duration = attempt(_duration, settings, "max_duration")
    else:
        problems.append(_KeyProblem("max_duration", 'is required, e.g. "max_duration": "4h"'))
    if "default_duration" in settings:
        default_duration = attempt(_duration, settings, "default_duration")
    elif max_duration is not None:
        default_duration = min(max_duration, timedelta(hours=1))
    if max_duration and default_duration and default_duration > max_duration:
        problems.append(
            _KeyProblem(
                "default_duration",
                f"{format_duration(default_duration)} is longer than max_duration "
                f"{format_duration(max_duration)}",
            )
        )

    approvers = _approvers(settings, hooks, problems)
    channel = attempt(_channel, settings.get("channel"))
    durations = _durations(settings, max_duration, problems)
    if durations and "default_duration" not in settings:
        default_duration = durations[0]  # the first one listed
    elif durations and default_duration is not None and default_duration not in durations:
        problems.append(
            _KeyProblem(
                "default_duration",
                f"{format_duration(default_duration)} is not one of the durations "
                f"({', '.join(format_duration(d) for d in durations)}); list it there or "
                "pick one of them",
            )
        )
    escalation = _escalation(settings, channel, problems)
    # Whether the approvers can reach the quorum needs every file's GROUPS: load_policies.
    approvals_required = attempt(_whole_number, settings, "approvals_required", 1, 1)
    allow_self = attempt(_flag, settings, "allow_self_approval")
    max_extensions = attempt(_whole_number, settings, "max_extensions", 2, 0)
    description = settings.get("description", "")
    if not isinstance(description, str):
        problems.append(_KeyProblem("description", "must be a string"))
    strategy = attempt(_strategy, settings)
    fields = _fields(settings, problems)
    standing = attempt(_standing, settings)
    remove_standing = attempt(_flag, settings, "remove_standing")
    every_approver = approvers + tuple(e for level in escalation for e in level.approvers)
    checked = _Checked(None, problems, every_approver, strategy, settings.get("strategy"))
    if problems:
        return checked

    checked.resource = Resource(
        name=name,
        description=description,
        max_duration=max_duration,
        default_duration=default_duration,
        approvers=approvers,
        channel=channel,
        approvals_required=approvals_required,
        allow_self_approval=allow_self,
        max_extensions=max_extensions,
        strategy_settings=dict(settings["strategy"]),
        strategy=strategy,
        file=file,
        hooks=hooks,
        fields=fields,
        durations=tuple(sorted(set(durations))),
        escalation=escalation,
        standing=standing,
        remove_standing=remove_standing,
    )
    return checked


def _durations(
    settings: dict, max_duration: timedelta | None, problems: list[_KeyProblem]
) -> list[timedelta]:
    """The `durations` one may ask for, in the order listed; problems for bad entries."""
    if "durations" not in settings:
        return []
    raw = settings["durations"]
    example = '["30m", "1h", "4h"]'
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not raw:
        problems.append(_KeyProblem("durations", f"must be a non-empty list like {example}"))
        return []
    found: list[timedelta] = []
    for entry in raw:
        try:
            duration = _duration({"durations": entry}, "durations")
        except _KeyProblem as problem:
            problems.append(problem)
            continue
        if max_duration is not None and duration > max_duration:
            problems.append(
                _KeyProblem(
                    "durations",
                    f"{format_duration(duration)} is longer than max_duration "
                    f"{format_duration(max_duration)}",
                )
            )
        elif duration not in found:
            found.append(duration)
    return found


def _escalation(
    settings: dict, channel: str | None, problems: list[_KeyProblem]
) -> tuple[EscalationLevel, ...]:
    """The escalation levels, in order; problems for each bad one (`escalation[1].after`)."""
    if "escalation" not in settings:
        return ()
    raw = settings["escalation"]
    example = '[{"after": "30m", "approvers": ["@dave"], "channel": "#dba-leads"}]'
    if isinstance(raw, (str, dict)) or not isinstance(raw, (list, tuple)) or not raw:
        problems.append(_KeyProblem("escalation", f"must be a non-empty list like {example}"))
        return ()
    levels: list[EscalationLevel] = []
    before = timedelta(0)
    where = channel
    for number, level in enumerate(raw, start=1):
        key = f"escalation[{number}]"
        if not isinstance(level, dict):
            problems.append(_KeyProblem("escalation", f"{key} must be a dict like {example[1:-1]}"))
            continue
        unknown = sorted(str(k) for k in level if k not in ESCALATION_KEYS)
        if unknown:
            problems.append(
                _KeyProblem(
                    "escalation",
                    f"{key}.{unknown[0]}: unknown key (allowed: "
                    f"{', '.join(sorted(ESCALATION_KEYS))})",
                )
            )
            continue
        count = len(problems)
        after = None
        if "after" not in level:
            problems.append(
                _KeyProblem("escalation", f'{key}.after is required, e.g. "after": "30m"')
            )
        else:
            try:
                after = _duration(level, "after")
            except _KeyProblem as problem:
                problems.append(_KeyProblem("escalation", f"{key}.{problem.key}: {problem}"))
        if after is not None and after <= before:
            problems.append(
                _KeyProblem(
                    "escalation",
                    f"{key}.after {format_duration(after)} must come later than the level "
                    f"before ({format_duration(before)}): each after counts from the request",
                )
            )
        entries = _level_approvers(level, key, problems)
        if "channel" in level:
            try:
                where = _channel(level["channel"])
            except _KeyProblem as problem:
                problems.append(_KeyProblem("escalation", f"{key}.channel: {problem}"))
        if len(problems) == count and after is not None and where is not None:
            levels.append(EscalationLevel(after, entries, where))
            before = after
    return tuple(levels)


def _level_approvers(level: dict, key: str, problems: list[_KeyProblem]) -> tuple[str, ...]:
    approvers = level.get("approvers")
    if isinstance(approvers, str) or not isinstance(approvers, (list, tuple)) or not approvers:
        problems.append(
            _KeyProblem("escalation", f'{key}.approvers must be a list like ["@dave", "group:dba"]')
        )
        return ()
    good = []
    for entry in approvers:
        if not isinstance(entry, str) or not entry.strip():
            problems.append(
                _KeyProblem(
                    "escalation",
                    f"{key}.approvers: every approver must be a handle, user id or e-mail",
                )
            )
            continue
        problem = entry_problem(entry.strip())
        if problem:
            problems.append(_KeyProblem("escalation", f"{key}.approvers: {problem}"))
        else:
            good.append(entry.strip())
    return tuple(good)


def _approvers(settings: dict, hooks: dict, problems: list[_KeyProblem]) -> tuple[str, ...]:
    """The approver entries that are well-formed; one problem for each one that is not."""
    approvers = settings.get("approvers", [])
    if isinstance(approvers, str) or not isinstance(approvers, (list, tuple)):
        problems.append(_KeyProblem("approvers", 'must be a list like ["@alice", "@bob"]'))
        return ()
    good = []
    for entry in approvers:
        if not isinstance(entry, str) or not entry.strip():
            problems.append(
                _KeyProblem("approvers", "every approver must be a handle, user id or e-mail")
            )
            continue
        problem = entry_problem(entry.strip())
        if problem:
            problems.append(_KeyProblem("approvers", problem))
        else:
            good.append(entry.strip())
    if not approvers and "get_approvers" not in hooks:
        problems.append(
            _KeyProblem("approvers", "is required (or define get_approvers in the file)")
        )
    return tuple(good)


CHANNEL_NAME = re.compile(r"^#[^\s#,<>|@]{1,80}$")
SLACK_CHANNEL_ID = re.compile(r"^[CG](?=[A-Z0-9]*[0-9])[A-Z0-9]{6,20}$")
SLACK_CHANNEL_LINK = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
CHANNEL_EXAMPLE = '"#access-approvals" (or, on Slack, a channel id like "C024BE91L")'


def _channel(value: Any) -> str:
    """Where the approval card goes: `#name`, or on Slack a channel id (`C024BE91L`, kept
    as `<#C024BE91L>`, which Slack and errbot's Slack backend both understand) or
    Slack's own `<#C024BE91L|name>`."""
    if not isinstance(value, str) or not value.strip():
        raise _KeyProblem(
            "channel", f"is required: where the approval card goes, e.g. {CHANNEL_EXAMPLE}"
        )
    channel = value.strip()
    if CHANNEL_NAME.match(channel) or SLACK_CHANNEL_LINK.match(channel):
        return channel
    if SLACK_CHANNEL_ID.match(channel):
        return f"<#{channel}>"
    name = re.sub(r"[\s#,<>|@]+", "-", channel.lower()).strip("-")[:80]
    if name:
        starts = "" if channel.startswith("#") else " (a channel name starts with #)"
        instead = f'write "#{name}"{starts}; on Slack a channel id like "C024BE91L" works too'
    else:
        instead = f"write it like {CHANNEL_EXAMPLE}"
    raise _KeyProblem("channel", f'"{channel}" is not a channel: {instead}')


def normalized_channel(value: str) -> str:
    """A channel as a loaded policy holds it (`C024BE91L` is `<#C024BE91L>`), so a
    policy test may write it as the policy does; anything else unchanged."""
    try:
        return _channel(value)
    except _KeyProblem:
        return value


def _standing(settings: dict) -> tuple[str, ...]:
    """Who may hold the resource without a grant: handles, e-mails, or the target's own
    names or account ids (a service account, a break-glass user)."""
    entries = settings.get("standing", [])
    example = '["@alice", "svc-deploy@acme.com"]'
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise _KeyProblem("standing", f"must be a list like {example}")
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise _KeyProblem(
                "standing",
                "every entry must be a handle, an e-mail or the target's account id, "
                f"like {example}",
            )
    return tuple(e.strip() for e in entries)


def _whole_number(settings: dict, key: str, default: int, least: int) -> int:
    value = settings.get(key, default)
    if type(value) is not int or value < least:
        raise _KeyProblem(key, f"must be a whole number of {least} or more")
    return value


def _flag(settings: dict, key: str) -> bool:
    value = settings.get(key, False)
    if not isinstance(value, bool):
        raise _KeyProblem(key, "must be True or False")
    return value


def _strategy(settings: dict) -> Strategy:
    if "strategy" not in settings:
        raise _KeyProblem(
            "strategy", 'is required: how access is granted, e.g. {"type": "webhook", "url": ...}'
        )
    try:
        return build_strategy(settings["strategy"])
    except SettingsError as exc:
        raise _KeyProblem(exc.key, exc.message) from exc


def _unset_env(checked: _Checked, environ: Mapping[str, str]) -> list[_KeyProblem]:
    """The strategy settings that name an environment variable `environ` lacks: the
    strategy would fail at its first grant, after a human approved."""
    strategy = checked.strategy
    if strategy is None:
        return []  # its settings are wrong: that is the problem to report
    return [
        _KeyProblem(
            key,
            f"the environment variable {variable} is not set; the {strategy.kind} "
            f"strategy reads it at every grant and revoke: set {variable} where the bot runs",
        )
        for key, variable in type(strategy).env_names(checked.strategy_settings).items()
        if not str(environ.get(variable, "")).strip()
    ]


def _duration(settings: dict, key: str) -> timedelta:
    value = settings[key]
    if isinstance(value, timedelta):
        duration = value
    else:
        try:
            duration = parse_duration(value)
        except DurationTooLong:
            raise _KeyProblem(
                key,
                f'"{value}" is longer than any access may last (at most {format_duration(MAX_DURATION)})',
            ) from None
        except DurationError:
            raise _KeyProblem(
                key, f'"{value}" is not a duration (try "4h", "30m" or "1h30m")'
            ) from None
    if duration <= timedelta(0):
        raise _KeyProblem(key, "must be longer than 0s")
    if duration > MAX_DURATION:
        raise _KeyProblem(
            key, f"is longer than any access may last (at most {format_duration(MAX_DURATION)})"
        )
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
    *,
    between: tuple = (),
    returns: Callable[[Any], str | None] | None = None,
):
    """Run one hook in a worker thread with a time limit; HookFailed names file:line.

    `between` are the arguments between request and ctx (on_approve's `approval`).
    `returns(value)` says what is wrong with what the hook returned (None: nothing); a
    wrong value fails too, naming the line of the `return` that gave it."""
    fn = resource.hooks.get(hook)
    if fn is None:
        return None
    result: dict[str, Any] = {}

    def returned_at(frame, event, arg):
        if event == "return" and frame.f_code is fn.__code__:
            result["line"] = frame.f_lineno

    def target():
        sys.setprofile(returned_at)  # this thread only: where the hook returned from
        try:
            result["value"] = fn(request, *between, ctx)
        except BaseException as exc:  # noqa: BLE001 - any failure must fail closed
            result["error"] = exc
        finally:
            sys.setprofile(None)

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
    value = result.get("value")
    problem = returns(value) if returns is not None else None
    if problem:
        line = result.get("line") or fn.__code__.co_firstlineno
        shown = reprlib.repr(value)
        raise HookFailed(f"{resource.file}:{line}: {hook} returned {shown}{problem}")
    return value


def approvers_problem(value: Any) -> str | None:
    """What is wrong with what get_approvers returned, as the rest of "returned ...";
    None when it is a list of entries (an empty one means: the listed approvers)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple, set)):
        return ", not a list of approvers like ['@alice', 'group:sre']"
    entries = [str(e).strip() for e in value if str(e).strip()]
    problem = next(filter(None, map(entry_problem, entries)), None)
    return f": {problem}" if problem else None


def refusal_problem(value: Any) -> str | None:
    """What is wrong with what on_approve / on_deny returned; None for a refusal or None."""
    if value is None or isinstance(value, Refusal):
        return None
    return "; it must return ctx.refuse(reason) or None"


def decision_problem(value: Any) -> str | None:
    """What is wrong with what on_request returned; None for a decision or None."""
    if value is None or (hasattr(value, "approve") and hasattr(value, "reason")):
        return None
    return "; it must return ctx.approve(reason), ctx.deny(reason) or None"


def _running_line(worker: threading.Thread, filename: str) -> int | None:
    """The line of `filename` the worker thread is running now (innermost such frame)."""
    frame = sys._current_frames().get(worker.ident)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None
