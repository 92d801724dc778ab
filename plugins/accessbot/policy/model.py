"""What a loaded policy is: its resources (with their prompt fields and escalation
levels), the set of them with the groups, and PolicyError for a directory that did not load."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ..domain import format_duration
from ..errors import AccessBotError
from ..strategies import Strategy

FIELD_VALUE_LIMIT = 200


class PolicyError(AccessBotError):
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
    # Checked justification: the tracker the value is looked up in (integrations/
    # trackers.py), and whether the grant ends when what it names closes.
    check: dict | None = field(default=None, compare=False)
    end_with: bool = False

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
            **({"check": dict(self.check), "end_with": self.end_with} if self.check else {}),
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


ON_MISSED = ("remove", "keep", "escalate")


@dataclass(frozen=True)
class CertifySettings:
    """`certify`: how often the standing access of a resource is re-confirmed (access
    certification, certification.py), by whom, how long they have, what happens to the
    items nobody decided, and where the certification is posted (None: the resource's
    channel). `reviewers` empty: the resource's approvers."""

    every: timedelta
    deadline: timedelta
    reviewers: tuple[str, ...] = ()
    on_missed: str = "remove"
    channel: str | None = None

    def summary(self) -> dict:
        return {
            "every": format_duration(self.every),
            "deadline": format_duration(self.deadline),
            "reviewers": list(self.reviewers),
            "on_missed": self.on_missed,
            **({"channel": self.channel} if self.channel else {}),
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
    require_one_of: tuple[str, ...] = ()  # at least one of these fields must be given
    min_duration: timedelta | None = None  # None: the bot's ACCESS_MIN_DURATION
    certify: CertifySettings | None = None  # periodic access certification, if asked for

    def floor(self, default: timedelta) -> tuple[timedelta, str]:
        """The shortest duration one may ask for, and where it comes from: the resource's
        `min_duration`, else the bot's `default` (ACCESS_MIN_DURATION), which never rises
        above the resource's own default or shortest listed duration."""
        if self.min_duration is not None:
            return self.min_duration, "its min_duration"
        return min(default, self.default_duration, *self.durations), "ACCESS_MIN_DURATION"

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
            **({"min_duration": format_duration(self.min_duration)} if self.min_duration else {}),
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
            **({"require_one_of": list(self.require_one_of)} if self.require_one_of else {}),
            **({"certify": self.certify.summary()} if self.certify else {}),
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
