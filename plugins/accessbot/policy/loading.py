"""Loading the policy directory: run each file, gather its RESOURCES, GROUPS and hooks,
then check what needs every file (groups, quorums, unset variables). All-or-nothing:
any problem fails the whole load with `file:line: key: message` for each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hooks import HOOKS, hook_problem
from .lines import describe, key_lines, line_in, locate
from .model import PolicyError, PolicySet, Resource
from .validation import (
    CONFIG_GROUPS,
    Checked,
    KeyProblem,
    approver_problems,
    check_resource,
    group_members,
    unset_variables,
)


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
            all_groups[name] = group_members(name, members)
            sources[name] = CONFIG_GROUPS
        except KeyProblem as problem:
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
    checked: dict[str, Checked] = field(default_factory=dict)

    def where(self, *keys: str) -> str:
        """`file:line` of the most specific known key (see lines.locate)."""
        return locate(self.name, self.lines, keys)

    def problem(self, resource: str, problem: KeyProblem) -> str:
        """`db.py:7: prod-db.channel: message`."""
        return f"{self.where(resource, problem.key)}: {resource}.{problem.key}: {problem}"

    def across_files(self, groups: Mapping[str, tuple]) -> list[str]:
        """What needs every file's GROUPS: unknown groups, unreachable quorums."""
        return [
            self.problem(name, p)
            for name, checked in self.checked.items()
            for p in approver_problems(checked, groups)
        ]

    def unset_env(self, environ: Mapping[str, str]) -> list[str]:
        """Strategy settings naming a variable `environ` lacks."""
        return [
            self.problem(name, p)
            for name, checked in self.checked.items()
            for p in unset_variables(checked, environ)
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
        result.errors.append(f"{name}:{line_in(path, exc)}: error while loading: {describe(exc)}")
        return result

    result.lines = key_lines(source)
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
            result.groups[group_name] = group_members(group_name, members)
        except KeyProblem as problem:
            result.errors.append(
                f"{where('<GROUPS>', str(group_name))}: GROUPS.{group_name}: {problem}"
            )

    hooks = {}
    for hook in HOOKS:
        fn = namespace.get(hook)
        if fn is None:
            continue
        problem = hook_problem(hook, fn)
        if problem:
            line = getattr(getattr(fn, "__code__", None), "co_firstlineno", 1)
            result.errors.append(f"{name}:{line}: {problem}")
        else:
            hooks[hook] = fn

    for res_name, settings in raw.items():
        checked = check_resource(res_name, settings, name, hooks)
        result.checked[res_name] = checked
        result.errors += [result.problem(res_name, p) for p in checked.problems]
        if checked.resource is not None:
            result.resources[res_name] = checked.resource
    return result
