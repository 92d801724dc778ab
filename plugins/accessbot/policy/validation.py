"""Checking what a policy file says: one resource's settings (built into a Resource
when nothing is wrong) and the named approver groups. Every problem is a KeyProblem
naming its key, so the loader can point at its line."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..approvers import GROUP, GROUP_NAME, entry_problem, is_dynamic, kind_of, static_members
from ..domain import (
    MAX_DURATION,
    DurationError,
    DurationTooLong,
    format_duration,
    parse_duration,
)
from ..errors import AccessBotError
from ..integrations import trackers
from ..strategies import Strategy, strategy_problems
from .model import ON_MISSED, CertifySettings, EscalationLevel, FieldSpec, Resource

REQUIRED_KEYS = ("max_duration", "strategy")
OPTIONAL_KEYS = (
    "description",
    "default_duration",
    "min_duration",
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
    "require_one_of",
    "certify",
)
ALLOWED_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)
ESCALATION_KEYS = frozenset({"after", "approvers", "channel"})
CERTIFY_KEYS = frozenset({"every", "reviewers", "deadline", "on_missed", "channel"})
FIELD_KEYS = frozenset({"pattern", "required", "help", "check", "end_with"})
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_DURATIONS = 100  # Block Kit's most options in one select (the request form)
CONFIG_GROUPS = "ACCESS_GROUPS"  # where groups from the bot's configuration come from


class KeyProblem(AccessBotError):
    """What is wrong with one key of a resource or group; the loader adds `file:line`."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def group_members(name: Any, members: Any) -> tuple[str, ...]:
    """One named approver list (ACCESS_GROUPS or a file's GROUPS): people only."""
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        raise KeyProblem(
            "name", f"{name!r} is not a group name: letters, digits, '-', '_' and '.', e.g. sre"
        )
    if isinstance(members, str) or not isinstance(members, (list, tuple)) or not members:
        raise KeyProblem(name, 'must be a non-empty list like ["@alice", "@bob"]')
    for member in members:
        if not isinstance(member, str) or not member.strip():
            raise KeyProblem(name, "every member must be a handle, user id or e-mail")
        if kind_of(member.strip()) or ":" in member:
            raise KeyProblem(
                name,
                f'"{member}" is not a person: a group lists handles, user ids or e-mails; put '
                "group:, slack-group: and pagerduty: entries straight into a resource's approvers",
            )
    return tuple(m.strip() for m in members)


def approver_problems(checked: Checked, groups: Mapping[str, tuple]) -> list[KeyProblem]:
    """Checks that need every file's GROUPS: known group names, and a quorum the
    listed approvers can reach (for a resource that loaded)."""
    known = ", ".join(sorted(groups)) or "none are defined"
    problems = [
        KeyProblem(
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
            KeyProblem(
                "approvals_required",
                f"is {resource.approvals_required} but the approvers name only {len(people)} "
                f"person(s): {', '.join(people)}",
            )
        ]
    return []


def _fields(settings: dict, problems: list[KeyProblem]) -> dict[str, FieldSpec]:
    """The resource's prompt fields; every problem with them goes into `problems`."""
    raw = settings.get("fields", {})
    example = '{"ticket": {"pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key"}}'
    if not isinstance(raw, dict):
        problems.append(KeyProblem("fields", f"must be a dict like {example}"))
        return {}
    specs = {}
    for name, spec in raw.items():
        try:
            specs[name] = _field(name, spec, example)
        except KeyProblem as problem:
            problems.append(problem)
    return specs


# Typed in commands, carried as a Slack option value (at most 150 characters) and shown
# on cards and in reports: short, lower-case, and nothing that is markup anywhere.
RESOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_resource_name(name: Any) -> None:
    """A KeyProblem unless `name` is 1 to 64 characters of a-z, 0-9, '.', '_' and '-',
    starting with a letter or digit; the message suggests a name that would do."""
    if isinstance(name, str) and RESOURCE_NAME.fullmatch(name):
        return
    if not isinstance(name, str):
        raise KeyProblem("name", f"{name!r} is not a string; a resource name is, e.g. 'prod-db'")
    shown = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"
    instead = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).lstrip("-._")[:64].rstrip("-._")
    raise KeyProblem(
        "name",
        f"{shown} is not a resource name: use 1 to 64 characters of a-z, 0-9, '.', '_' "
        f"and '-', starting with a letter or digit; write {instead or 'prod-db'!r}",
    )


def _field(name: Any, spec: Any, example: str) -> FieldSpec:
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise KeyProblem(
            "fields",
            f"{name!r} is not a field name: lower-case letters, digits and _, e.g. ticket",
        )
    if not isinstance(spec, dict):
        raise KeyProblem(f"fields.{name}", f"must be a dict like {example[12:-1]}")
    for key in spec:
        if key not in FIELD_KEYS:
            raise KeyProblem(
                f"fields.{name}.{key}",
                f"unknown key (allowed: {', '.join(sorted(FIELD_KEYS))})",
            )
    pattern = spec.get("pattern")
    compiled = None
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern:
            raise KeyProblem(f"fields.{name}.pattern", "must be a regular expression string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise KeyProblem(
                f"fields.{name}.pattern",
                f"{pattern!r} is not a valid regular expression: {exc}",
            ) from None
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise KeyProblem(f"fields.{name}.required", "must be True or False")
    help_text = spec.get("help", "")
    if not isinstance(help_text, str):
        raise KeyProblem(f"fields.{name}.help", 'must be a string, e.g. "Jira key like OPS-12"')
    check = spec.get("check")
    if check is not None:
        for key, message in trackers.check_problems(name, check):
            raise KeyProblem(key, message)
    end_with = spec.get("end_with", False)
    if not isinstance(end_with, bool):
        raise KeyProblem(f"fields.{name}.end_with", "must be True or False")
    if end_with and check is None:
        raise KeyProblem(
            f"fields.{name}.end_with",
            "needs a check: the grant can only end with a ticket the bot looks up, e.g. "
            f'"check": {trackers.EXAMPLES["jira"]}',
        )
    return FieldSpec(
        name, compiled, required, help_text.strip(), dict(check) if check else None, end_with
    )


def _require_one_of(settings: dict, fields: Any) -> tuple[str, ...]:
    """`require_one_of`: two or more of the resource's fields, at least one given."""
    fields = fields if isinstance(fields, dict) else {}
    raw = settings.get("require_one_of", [])
    example = '["ticket", "incident"]'
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        raise KeyProblem("require_one_of", f"must be a list of field names like {example}")
    if raw and len(set(raw)) < 2:
        raise KeyProblem("require_one_of", f"must name two or more fields, like {example}")
    unknown = [str(name) for name in raw if name not in fields]
    if unknown:
        known = ", ".join(sorted(fields)) or "none are defined"
        raise KeyProblem(
            "require_one_of", f"{unknown[0]!r} is not one of the resource's fields ({known})"
        )
    return tuple(raw)


@dataclass
class Checked:
    """One resource as far as it got: built, or every problem with it, and the parts
    load_policies checks across files either way."""

    resource: Resource | None
    problems: list[KeyProblem]
    approvers: tuple[str, ...] = ()  # the well-formed entries
    strategy: Strategy | None = None  # when its settings are valid
    strategy_settings: dict = field(default_factory=dict)


def check_resource(name: Any, settings: Any, file: str, hooks: dict) -> Checked:
    """Build one resource, or say everything wrong with it: each problem names its key."""
    problems: list[KeyProblem] = []

    def attempt(check: Callable, *args):
        try:
            return check(*args)
        except KeyProblem as problem:
            problems.append(problem)
            return None

    attempt(check_resource_name, name)
    if not isinstance(settings, dict):
        return Checked(None, [*problems, KeyProblem("settings", "must be a dict of settings")])
    allowed = ", ".join(sorted(ALLOWED_KEYS))
    problems += [
        KeyProblem(str(key), f"unknown key (allowed: {allowed})")
        for key in settings
        if key not in ALLOWED_KEYS
    ]

    max_duration = default_duration = None
    if "max_duration" in settings:
        max_duration = attempt(_duration, settings, "max_duration")
    else:
        problems.append(KeyProblem("max_duration", 'is required, e.g. "max_duration": "4h"'))
    if "default_duration" in settings:
        default_duration = attempt(_duration, settings, "default_duration")
    elif max_duration is not None:
        default_duration = min(max_duration, timedelta(hours=1))
    if max_duration and default_duration and default_duration > max_duration:
        problems.append(
            KeyProblem(
                "default_duration",
                f"{format_duration(default_duration)} is longer than max_duration "
                f"{format_duration(max_duration)}",
            )
        )

    approvers = _approvers(settings, hooks, problems)
    channel = attempt(_channel, settings.get("channel"))
    durations = _durations(settings, max_duration, problems)
    min_duration = _min_duration(settings, max_duration, default_duration, durations, problems)
    if durations and "default_duration" not in settings:
        default_duration = durations[0]  # the first one listed
    elif durations and default_duration is not None and default_duration not in durations:
        problems.append(
            KeyProblem(
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
        problems.append(KeyProblem("description", "must be a string"))
    strategy = _strategy(settings, problems)
    fields = _fields(settings, problems)
    require_one_of = attempt(_require_one_of, settings, settings.get("fields"))
    standing = attempt(_standing, settings)
    remove_standing = attempt(_flag, settings, "remove_standing")
    certify = _certify(settings, problems)
    every_approver = approvers + tuple(e for level in escalation for e in level.approvers)
    every_approver += certify.reviewers if certify else ()
    checked = Checked(None, problems, every_approver, strategy, settings.get("strategy"))
    if problems:
        return checked

    checked.resource = Resource(
        name=name,
        description=description,
        max_duration=max_duration,
        default_duration=default_duration,
        min_duration=min_duration,
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
        require_one_of=require_one_of,
        certify=certify,
    )
    return checked


def _durations(
    settings: dict, max_duration: timedelta | None, problems: list[KeyProblem]
) -> list[timedelta]:
    """The `durations` one may ask for, in the order listed; problems for bad entries."""
    if "durations" not in settings:
        return []
    raw = settings["durations"]
    example = '["30m", "1h", "4h"]'
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not raw:
        problems.append(KeyProblem("durations", f"must be a non-empty list like {example}"))
        return []
    found: list[timedelta] = []
    for entry in raw:
        try:
            duration = _duration({"durations": entry}, "durations")
        except KeyProblem as problem:
            problems.append(problem)
            continue
        if max_duration is not None and duration > max_duration:
            problems.append(
                KeyProblem(
                    "durations",
                    f"{format_duration(duration)} is longer than max_duration "
                    f"{format_duration(max_duration)}",
                )
            )
        elif duration not in found:
            found.append(duration)
    if len(found) > MAX_DURATIONS:
        problems.append(
            KeyProblem(
                "durations",
                f"lists {len(found)} durations; Slack's request form offers at most "
                f"{MAX_DURATIONS} (a select's most options): list fewer",
            )
        )
    return found


def _min_duration(
    settings: dict,
    max_duration: timedelta | None,
    default_duration: timedelta | None,
    durations: list[timedelta],
    problems: list[KeyProblem],
) -> timedelta | None:
    """The shortest one may ask for, when the resource sets it (else ACCESS_MIN_DURATION
    applies at request time); it must leave the default and every listed duration
    requestable."""
    if "min_duration" not in settings:
        return None
    try:
        floor = _duration(settings, "min_duration")
    except KeyProblem as problem:
        problems.append(problem)
        return None
    if max_duration is not None and floor > max_duration:
        problems.append(
            KeyProblem(
                "min_duration",
                f"{format_duration(floor)} is longer than max_duration "
                f"{format_duration(max_duration)}",
            )
        )
        return floor
    shorter = [d for d in durations if d < floor]
    if shorter:
        problems.append(
            KeyProblem(
                "durations",
                f"{format_duration(shorter[0])} is shorter than min_duration "
                f"{format_duration(floor)}",
            )
        )
    elif default_duration is not None and default_duration < floor:
        problems.append(
            KeyProblem(
                "default_duration",
                f"{format_duration(default_duration)} is shorter than min_duration "
                f"{format_duration(floor)}",
            )
        )
    return floor


def _escalation(
    settings: dict, channel: str | None, problems: list[KeyProblem]
) -> tuple[EscalationLevel, ...]:
    """The escalation levels, in order; problems for each bad one (`escalation[1].after`)."""
    if "escalation" not in settings:
        return ()
    raw = settings["escalation"]
    example = '[{"after": "30m", "approvers": ["@dave"], "channel": "#dba-leads"}]'
    if isinstance(raw, (str, dict)) or not isinstance(raw, (list, tuple)) or not raw:
        problems.append(KeyProblem("escalation", f"must be a non-empty list like {example}"))
        return ()
    levels: list[EscalationLevel] = []
    before = timedelta(0)
    where = channel
    for number, level in enumerate(raw, start=1):
        key = f"escalation[{number}]"
        if not isinstance(level, dict):
            problems.append(KeyProblem("escalation", f"{key} must be a dict like {example[1:-1]}"))
            continue
        unknown = sorted(str(k) for k in level if k not in ESCALATION_KEYS)
        if unknown:
            problems.append(
                KeyProblem(
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
                KeyProblem("escalation", f'{key}.after is required, e.g. "after": "30m"')
            )
        else:
            try:
                after = _duration(level, "after")
            except KeyProblem as problem:
                problems.append(KeyProblem("escalation", f"{key}.{problem.key}: {problem}"))
        if after is not None and after <= before:
            problems.append(
                KeyProblem(
                    "escalation",
                    f"{key}.after {format_duration(after)} must come later than the level "
                    f"before ({format_duration(before)}): each after counts from the request",
                )
            )
        entries = _level_approvers(level, key, problems)
        if "channel" in level:
            try:
                where = _channel(level["channel"])
            except KeyProblem as problem:
                problems.append(KeyProblem("escalation", f"{key}.channel: {problem}"))
        if len(problems) == count and after is not None and where is not None:
            levels.append(EscalationLevel(after, entries, where))
            before = after
    return tuple(levels)


def _level_approvers(level: dict, key: str, problems: list[KeyProblem]) -> tuple[str, ...]:
    approvers = level.get("approvers")
    if isinstance(approvers, str) or not isinstance(approvers, (list, tuple)) or not approvers:
        problems.append(
            KeyProblem("escalation", f'{key}.approvers must be a list like ["@dave", "group:dba"]')
        )
        return ()
    good = []
    for entry in approvers:
        if not isinstance(entry, str) or not entry.strip():
            problems.append(
                KeyProblem(
                    "escalation",
                    f"{key}.approvers: every approver must be a handle, user id or e-mail",
                )
            )
            continue
        problem = entry_problem(entry.strip())
        if problem:
            problems.append(KeyProblem("escalation", f"{key}.approvers: {problem}"))
        else:
            good.append(entry.strip())
    return tuple(good)


def _approvers(settings: dict, hooks: dict, problems: list[KeyProblem]) -> tuple[str, ...]:
    """The approver entries that are well-formed; one problem for each one that is not."""
    approvers = settings.get("approvers", [])
    if isinstance(approvers, str) or not isinstance(approvers, (list, tuple)):
        problems.append(KeyProblem("approvers", 'must be a list like ["@alice", "@bob"]'))
        return ()
    good = []
    for entry in approvers:
        if not isinstance(entry, str) or not entry.strip():
            problems.append(
                KeyProblem("approvers", "every approver must be a handle, user id or e-mail")
            )
            continue
        problem = entry_problem(entry.strip())
        if problem:
            problems.append(KeyProblem("approvers", problem))
        else:
            good.append(entry.strip())
    if not approvers and "get_approvers" not in hooks:
        problems.append(
            KeyProblem("approvers", "is required (or define get_approvers in the file)")
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
        raise KeyProblem(
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
    raise KeyProblem("channel", f'"{channel}" is not a channel: {instead}')


def normalized_channel(value: str) -> str:
    """A channel as a loaded policy holds it (`C024BE91L` is `<#C024BE91L>`), so a
    policy test may write it as the policy does; anything else unchanged."""
    try:
        return _channel(value)
    except KeyProblem:
        return value


def _standing(settings: dict) -> tuple[str, ...]:
    """Who may hold the resource without a grant: handles, e-mails, or the target's own
    names or account ids (a service account, a break-glass user)."""
    entries = settings.get("standing", [])
    example = '["@alice", "svc-deploy@acme.com"]'
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise KeyProblem("standing", f"must be a list like {example}")
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise KeyProblem(
                "standing",
                "every entry must be a handle, an e-mail or the target's account id, "
                f"like {example}",
            )
    return tuple(e.strip() for e in entries)


def _certify(settings: dict, problems: list[KeyProblem]) -> CertifySettings | None:
    """`certify`: the periodic access certification of the resource's standing access;
    each bad value a problem naming its key (`certify.every`)."""
    if "certify" not in settings:
        return None
    raw = settings["certify"]
    example = '{"every": "90d", "deadline": "7d", "on_missed": "remove"}'
    if not isinstance(raw, dict):
        problems.append(KeyProblem("certify", f"must be a dict like {example}"))
        return None
    count = len(problems)
    problems += [
        KeyProblem(f"certify.{key}", f"unknown key (allowed: {', '.join(sorted(CERTIFY_KEYS))})")
        for key in raw
        if key not in CERTIFY_KEYS
    ]
    found: dict[str, timedelta] = {}
    for key, sample in (("every", "90d"), ("deadline", "7d")):
        if key not in raw:
            problems.append(KeyProblem(f"certify.{key}", f'is required, e.g. "{key}": "{sample}"'))
            continue
        try:
            found[key] = _duration({f"certify.{key}": raw[key]}, f"certify.{key}")
        except KeyProblem as problem:
            problems.append(problem)
    if len(found) == 2 and found["deadline"] >= found["every"]:
        problems.append(
            KeyProblem(
                "certify.deadline",
                f"{format_duration(found['deadline'])} must be shorter than every "
                f"({format_duration(found['every'])}): one certification closes before the next opens",
            )
        )
    on_missed = raw.get("on_missed", "remove")
    if on_missed not in ON_MISSED:
        problems.append(
            KeyProblem(
                "certify.on_missed",
                f"{on_missed!r} is not one of {', '.join(repr(o) for o in ON_MISSED)} "
                '(what happens to items nobody decided by the deadline; "remove" is the default)',
            )
        )
    reviewers: list[str] = []
    raw_reviewers = raw.get("reviewers", [])
    if isinstance(raw_reviewers, str) or not isinstance(raw_reviewers, (list, tuple)):
        problems.append(
            KeyProblem(
                "certify.reviewers",
                'must be a list like ["@alice", "group:sre-leads"] (leave it out: the approvers)',
            )
        )
        raw_reviewers = []
    for entry in raw_reviewers:
        problem = (
            "every reviewer must be a handle, user id, e-mail or group:"
            if not isinstance(entry, str) or not entry.strip()
            else entry_problem(entry.strip())
        )
        if problem:
            problems.append(KeyProblem("certify.reviewers", problem))
        else:
            reviewers.append(entry.strip())
    channel = None
    if "channel" in raw:
        try:
            channel = _channel(raw["channel"])
        except KeyProblem as problem:
            problems.append(KeyProblem("certify.channel", str(problem)))
    if len(problems) > count:
        return None
    return CertifySettings(found["every"], found["deadline"], tuple(reviewers), on_missed, channel)


def _whole_number(settings: dict, key: str, default: int, least: int) -> int:
    value = settings.get(key, default)
    if type(value) is not int or value < least:
        raise KeyProblem(key, f"must be a whole number of {least} or more")
    return value


def _flag(settings: dict, key: str) -> bool:
    value = settings.get(key, False)
    if not isinstance(value, bool):
        raise KeyProblem(key, "must be True or False")
    return value


def _strategy(settings: dict, problems: list[KeyProblem]) -> Strategy | None:
    """The resource's strategy; else each problem of its settings goes on `problems`."""
    if "strategy" not in settings:
        problems.append(
            KeyProblem(
                "strategy",
                'is required: how access is granted, e.g. {"type": "webhook", "url": ...}',
            )
        )
        return None
    strategy, errors = strategy_problems(settings["strategy"])
    problems += [KeyProblem(error.key, error.message) for error in errors]
    return strategy


def unset_variables(checked: Checked, environ: Mapping[str, str]) -> list[KeyProblem]:
    """The strategy settings that name an environment variable `environ` lacks: the
    strategy would fail at its first grant, after a human approved."""
    strategy = checked.strategy
    if strategy is None:
        return []  # its settings are wrong: that is the problem to report
    return _unset_check_variables(checked, environ) + [
        KeyProblem(
            key,
            f"the environment variable {variable} is not set; the {strategy.kind} "
            f"strategy reads it at every grant and revoke: set {variable} where the bot runs",
        )
        for key, variable in type(strategy).env_names(checked.strategy_settings).items()
        if not str(environ.get(variable, "")).strip()
    ]


def _unset_check_variables(checked: Checked, environ: Mapping[str, str]) -> list[KeyProblem]:
    """A field's check naming a variable `environ` lacks: every look-up would fail."""
    resource = checked.resource
    if resource is None:
        return []
    return [
        KeyProblem(
            key,
            f"the environment variable {variable} is not set; the {spec.check['type']} check "
            f"of {spec.name} reads it at every request: set {variable} where the bot runs",
        )
        for spec in resource.fields.values()
        if spec.check
        for key, variable in trackers.env_names(spec.name, spec.check).items()
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
            raise KeyProblem(
                key,
                f'"{value}" is longer than any access may last (at most {format_duration(MAX_DURATION)})',
            ) from None
        except DurationError:
            raise KeyProblem(
                key, f'"{value}" is not a duration (try "4h", "30m" or "1h30m")'
            ) from None
    if duration <= timedelta(0):
        raise KeyProblem(key, "must be longer than 0s")
    if duration > MAX_DURATION:
        raise KeyProblem(
            key, f"is longer than any access may last (at most {format_duration(MAX_DURATION)})"
        )
    return duration
