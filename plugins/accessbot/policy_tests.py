"""Table-driven policy tests: `python -m accessbot test POLICY_DIR TESTS.yaml`.

Each case says who asks for what (and what PagerDuty and Slack would answer), and what
should happen. The cases run through the bot's own dry run (`AccessService.evaluate`,
the code behind `!access whatif`) with fake on-call and Slack answers, so a policy
change and its tests are reviewed together in one pull request. The format:

    defaults:                 # optional: every case starts from these
      duration: 30m
      reason: testing the policy
      now: "2026-11-24T09:00:00Z"   # what hooks see as ctx.now (default: the real now)
    emails:                   # optional: handle -> e-mail (else ACCESS_USER_EMAILS)
      carol: carol@example.com
    cases:
      - name: the on-call engineer breaks glass
        user: carol
        resource: prod-shell
        on_call: {PABC123: [carol@example.com]}   # schedule/escalation id -> e-mails
        expect:
          decision: approve    # approve | deny (by on_request), human, refused
          reason: break-glass  # a piece of the policy's reason (or of the refusal)
      - name: anyone else waits for a person
        user: dave
        resource: prod-shell
        expect: {decision: human, approvers: ["@alice", "@bob"], channel: "#access-approvals"}

      - name: a deploy approver outside the list is refused by on_approve
        user: carol
        resource: deploy-prod
        approve_as: mallory          # mallory approves; deny_as: someone denies
        expect: {approval: refused, refusal: not on the deploy list}
      - name: a first-timer needs the lead
        user: carol
        resource: prod-db-admin
        history: {prod-db-admin: 0}  # or [{resource: ..., status: granted, count: 3}]
        incidents: [{email: carol@example.com, service: PDB0001}]
        expect: {approvers: ["@dba-lead"]}

Case keys: name, user (required), email, resource (required), duration, reason, fields
(dict), on_call (dict of id -> e-mails, each an e-mail at level 1 or {email, level};
without it nobody is on call), incidents (list of {email, service, status}), pagerduty
("down" makes every lookup fail), slack_groups (handle -> user ids), history (what
ctx.history.count answers: {resource: count} of the user's granted requests, or a list
of {user, resource, status, count}), approve_as / deny_as (an approver's `!approve` /
`!deny` of the request, through on_approve / on_deny) with comment, tickets (what the
trackers of checked fields answer: {OPS-12: {status: In Progress, title: ..., assignee:
carol@example.com}}, "down" for unreachable; a value not listed is unknown), now, expect
(required). Expect keys: decision, approvers (compared as a set, `@bob` = `bob`),
channel, reason, note (a piece of one of the card's notes), approval / denial (counted
or refused), refusal (a piece of why it was refused).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .approvers import same_person_key
from .audit import AuditLog
from .bootstrap import bootstrap
from .domain import DurationError, from_iso, parse_duration
from .errors import AccessBotError
from .history import StaticHistory, statuses_for
from .identity import EntryPeople
from .integrations.pagerduty import INCIDENT_STATUSES, StaticOnCall
from .integrations.slack_groups import StaticSlackGroups
from .integrations.trackers import StaticLinks
from .memory_store import MemoryStore
from .policy import PolicyError, normalized_channel
from .service import Actor, Evaluation
from .settings import Settings

CASE_KEYS = {
    "name",
    "user",
    "email",
    "resource",
    "duration",
    "reason",
    "fields",
    "on_call",
    "pagerduty",
    "slack_groups",
    "now",
    "expect",
    "approve_as",
    "deny_as",
    "comment",
    "history",
    "incidents",
    "tickets",
}
EXPECT_KEYS = {
    "decision",
    "approvers",
    "channel",
    "reason",
    "note",
    "approval",
    "denial",
    "refusal",
}
VOTES = ("counted", "refused")
DECISIONS = ("approve", "deny", "human", "refused")
TOP_KEYS = {"defaults", "emails", "cases"}


class TestFileError(AccessBotError):
    """The tests file is not valid; `errors` holds `file:line: message` lines."""

    __test__ = False  # not a pytest class

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class Case:
    index: int
    line: int
    name: str
    user: str
    email: str | None
    resource: str
    duration: Any
    reason: str
    fields: dict[str, str]
    on_call: dict[str, list[str]]
    pagerduty_down: bool
    slack_groups: dict[str, list[str]]
    now: datetime | None
    expect: dict[str, Any]
    on_call_levels: dict[str, list] = field(default_factory=dict)
    incidents: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    # "approve" / "deny" -> (handle, e-mail) of who approves or denies the request
    votes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    comment: str = ""
    tickets: dict | str | None = None  # what the trackers answer for checked fields


@dataclass
class Result:
    case: Case
    evaluation: Evaluation | None
    failures: list[str] = field(default_factory=list)
    refusals: dict[str, str | None] = field(default_factory=dict)  # verb -> why, or None

    @property
    def passed(self) -> bool:
        return not self.failures


# -- reading the file ------------------------------------------------------------------


def read_cases(path: Path, user_emails: Mapping[str, str] | None = None) -> list[Case]:
    """Parse and check the tests file; raise TestFileError listing every problem."""
    data, lines = _load_yaml(path)
    where = lambda *keys: f"{path}:{lines.get(keys, lines.get(keys[:1], 1))}"  # noqa: E731
    if isinstance(data, list):
        data = {"cases": data}
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list) or not data["cases"]:
        raise TestFileError(
            [
                f"{path}:1: {path.name} needs a non-empty list of cases: "
                "`cases: [{user: ..., ...}]`"
            ]
        )
    errors = [
        f"{where(key)}: unknown top-level key {key!r} (allowed: {', '.join(sorted(TOP_KEYS))})"
        for key in data
        if key not in TOP_KEYS
    ]
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        errors.append(f"{where('defaults')}: defaults must be a mapping of case keys")
        defaults = {}
    emails = _emails(data, user_emails, where, errors)
    cases = []
    for index, raw in enumerate(data["cases"], start=1):
        at = lambda *keys, i=index: where(i, *keys)  # noqa: E731
        if not isinstance(raw, dict):
            errors.append(f"{at()}: case {index} must be a mapping with user, resource, expect")
            continue
        merged = {**defaults, **raw}
        label = f"case {index}" + (f" ({merged['name']})" if merged.get("name") else "")
        problems = _case_problems(merged)
        if problems:
            errors += [f"{at(key)}: {label}: {message}" for key, message in problems]
            continue
        cases.append(_case(index, lines.get((index,), 1), merged, emails))
    if errors:
        raise TestFileError(errors)
    return cases


def _load_yaml(path: Path) -> tuple[object, dict]:
    """The file's data and the line of each key path; a file that cannot be read or is
    not YAML is one TestFileError naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError([f"{path}:1: cannot be read: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise TestFileError([f"{path}:{line}: not valid YAML: {problem}"]) from None
    return data, _lines(root)


def _emails(data: dict, user_emails, where, errors: list[str]) -> dict[str, str]:
    """handle -> e-mail: the caller's, then the file's `emails` mapping."""
    emails = {str(k).lstrip("@").lower(): str(v) for k, v in (user_emails or {}).items()}
    raw_emails = data.get("emails") or {}
    if not isinstance(raw_emails, dict):
        errors.append(f"{where('emails')}: emails must map handles to e-mails, e.g. carol: c@x.io")
    else:
        emails.update({str(k).lstrip("@").lower(): str(v) for k, v in raw_emails.items()})
    return emails


def _case(index: int, line: int, merged: dict, emails: Mapping[str, str]) -> Case:
    """A checked case (defaults merged in) as the runner needs it."""
    user = str(merged["user"]).lstrip("@")
    return Case(
        index=index,
        line=line,
        name=str(merged.get("name") or f"{user} asks for {merged['resource']}"),
        user=user,
        email=str(merged["email"]) if merged.get("email") else emails.get(user.lower()),
        resource=str(merged["resource"]),
        duration=merged.get("duration"),
        reason=str(merged.get("reason") or "policy test"),
        fields={str(k): str(v) for k, v in (merged.get("fields") or {}).items()},
        on_call={},
        on_call_levels={str(k): list(v) for k, v in (merged.get("on_call") or {}).items()},
        incidents=[dict(i) for i in merged.get("incidents") or []],
        history=_history_entries(merged.get("history"), user, str(merged["resource"])),
        votes={
            verb: _voter(str(merged[key]), emails)
            for verb, key in (("approve", "approve_as"), ("deny", "deny_as"))
            if merged.get(key)
        },
        comment=str(merged.get("comment") or ""),
        pagerduty_down=merged.get("pagerduty") == "down",
        slack_groups={
            str(k): [str(u) for u in v] for k, v in (merged.get("slack_groups") or {}).items()
        },
        now=_moment(merged.get("now")),
        expect=dict(merged["expect"]),
        tickets=merged.get("tickets"),
    )


def _voter(who: str, emails: Mapping[str, str]) -> tuple[str, str | None]:
    handle = who.strip().lstrip("@")
    return handle, emails.get(handle.lower())


def _history_entries(raw, user: str, resource: str) -> list[dict]:
    """A case's `history`: {resource: count} (the user's granted requests) or a list of
    {user, resource, status, count}; user and resource default to the case's."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return [{"user": user, "resource": str(k), "count": int(v)} for k, v in raw.items()]
    return [
        {
            "user": str(entry.get("user") or user).lstrip("@"),
            "resource": str(entry.get("resource") or resource),
            "status": str(entry.get("status") or "granted"),
            "count": int(entry["count"]),
        }
        for entry in raw
    ]


def _case_problems(case: dict) -> list[tuple[str, str]]:
    """Every (key, message) wrong with one case, in the order a reader meets them."""
    checks = (
        _key_problems,
        _value_problems,
        _mapping_problems,
        _history_problems,
        _incident_problems,
        _vote_problems,
        _pagerduty_problems,
        _ticket_problems,
        _expect_problems,
    )
    return [problem for check in checks for problem in check(case)]


def _key_problems(case: dict) -> list[tuple[str, str]]:
    problems = [
        (key, f"unknown key {key!r} (allowed: {', '.join(sorted(CASE_KEYS))})")
        for key in case
        if key not in CASE_KEYS
    ]
    return problems + [
        (key, f"{key} is required") for key in ("user", "resource", "expect") if not case.get(key)
    ]


def _value_problems(case: dict) -> list[tuple[str, str]]:
    problems = []
    if case.get("duration") is not None:
        try:
            parse_duration(str(case["duration"]))
        except DurationError as exc:
            problems.append(("duration", str(exc)))
    if case.get("now") is not None and _moment(case["now"]) is None:
        problems.append(("now", f"{case['now']!r} is not a time like 2026-11-24T03:00:00Z"))
    return problems


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _on_call_entries(value) -> bool:
    return isinstance(value, list) and all(_on_call_entry(x) for x in value)


# key -> (what each value must be, the message when one is not)
_MAPPINGS = {
    "fields": (lambda value: True, ""),
    "on_call": (
        _on_call_entries,
        "on_call must map each id to a list of e-mails (level 1) or {email: ..., level: 2}",
    ),
    "slack_groups": (_strings, "slack_groups must map each id or handle to a list of strings"),
}


def _mapping_problems(case: dict) -> list[tuple[str, str]]:
    problems = []
    for key, (good, message) in _MAPPINGS.items():
        value = case.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append((key, f"{key} must be a mapping"))
        elif not all(good(v) for v in value.values()):
            problems.append((key, message))
    return problems


def _on_call_entry(entry) -> bool:
    if isinstance(entry, str):
        return "@" in entry
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("email"), str)
        and set(entry) <= {"email", "level"}
        and type(entry.get("level", 1)) is int
        and entry.get("level", 1) >= 1
    )


def _history_entry_ok(entry) -> bool:
    return (
        isinstance(entry, dict)
        and set(entry) <= {"user", "resource", "status", "count"}
        and type(entry.get("count")) is int
        and entry["count"] >= 0
    )


def _history_problems(case: dict) -> list[tuple[str, str]]:
    history = case.get("history")
    if history is None:
        return []
    if isinstance(history, dict):
        good = all(type(v) is int and v >= 0 for v in history.values())
    else:
        good = isinstance(history, list) and all(_history_entry_ok(e) for e in history)
    if not good:
        return [
            (
                "history",
                "history must be {resource: count} or a list of "
                "{user, resource, status, count} with whole counts",
            )
        ]
    problems = []
    for entry in history if isinstance(history, list) else ():
        try:
            statuses_for(entry.get("status", "granted"))
        except ValueError as exc:
            problems.append(("history", str(exc)))
    return problems


def _incident_ok(incident) -> bool:
    return (
        isinstance(incident, dict)
        and isinstance(incident.get("email"), str)
        and set(incident) <= {"email", "service", "status"}
        and incident.get("status", "triggered") in INCIDENT_STATUSES
    )


def _incident_problems(case: dict) -> list[tuple[str, str]]:
    incidents = case.get("incidents")
    if incidents is None or (
        isinstance(incidents, list) and all(_incident_ok(i) for i in incidents)
    ):
        return []
    return [
        ("incidents", "incidents must be a list of {email: ..., service: P..., status: triggered}")
    ]


def _vote_problems(case: dict) -> list[tuple[str, str]]:
    """approve_as / deny_as, and the expectations about votes that need them."""
    problems = [
        (key, f"{key} must be the handle of an approver, e.g. bob")
        for key in ("approve_as", "deny_as")
        if key in case and (not isinstance(case[key], str) or not case[key].strip())
    ]
    expect = case.get("expect")
    if not isinstance(expect, dict):
        return problems
    for key, needs in (("approval", "approve_as"), ("denial", "deny_as")):
        if key in expect and expect[key] not in VOTES:
            problems.append(("expect", f"{key} must be counted or refused, not {expect[key]!r}"))
        elif key in expect and not case.get(needs):
            problems.append(("expect", f"expect.{key} needs {needs}: who approves or denies"))
    if "refusal" in expect and not (case.get("approve_as") or case.get("deny_as")):
        problems.append(("expect", "expect.refusal needs approve_as or deny_as"))
    return problems


def _pagerduty_problems(case: dict) -> list[tuple[str, str]]:
    if case.get("pagerduty") in (None, "ok", "down"):
        return []
    return [("pagerduty", 'pagerduty must be "ok" or "down"')]


TICKET_KEYS = {"status", "title", "assignee", "project", "service", "url", "open"}


def _ticket_problems(case: dict) -> list[tuple[str, str]]:
    tickets = case.get("tickets")
    if tickets is None or tickets == "down":
        return []
    if isinstance(tickets, dict) and all(
        isinstance(v, dict) and set(v) <= TICKET_KEYS for v in tickets.values()
    ):
        return []
    return [
        (
            "tickets",
            'tickets must be "down" or map each ticket or incident to {status: "In Progress", '
            f"title: ..., assignee: ...}} (keys: {', '.join(sorted(TICKET_KEYS))})",
        )
    ]


def _expect_problems(case: dict) -> list[tuple[str, str]]:
    expect = case.get("expect")
    if expect and not isinstance(expect, dict):
        return [("expect", "expect must be a mapping, e.g. {decision: human}")]
    if not expect:
        return []
    problems = [
        ("expect", f"unknown expect key {key!r} (allowed: {', '.join(sorted(EXPECT_KEYS))})")
        for key in expect
        if key not in EXPECT_KEYS
    ]
    if "decision" in expect and expect["decision"] not in DECISIONS:
        problems.append(
            (
                "expect",
                f"decision must be one of {', '.join(DECISIONS)}, not {expect['decision']!r}",
            )
        )
    if "approvers" in expect and not isinstance(expect["approvers"], list):
        problems.append(("expect", 'approvers must be a list like ["@alice", "@bob"]'))
    if not set(expect) & EXPECT_KEYS:
        problems.append(
            ("expect", "expect needs at least one of " + ", ".join(sorted(EXPECT_KEYS)))
        )
    return problems


def _moment(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        moment = from_iso(str(value))
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _lines(root) -> dict[tuple, int]:
    """(key,), (case index,) and (case index, key) -> 1-based line in the YAML file."""
    lines: dict[tuple, int] = {}
    if root is None:
        return lines
    cases = None
    if isinstance(root, yaml.SequenceNode):
        cases = root
    elif isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            lines[(key.value,)] = key.start_mark.line + 1
            if key.value == "cases" and isinstance(value, yaml.SequenceNode):
                cases = value
    for index, item in enumerate(cases.value if cases else [], start=1):
        lines[(index,)] = item.start_mark.line + 1
        if isinstance(item, yaml.MappingNode):
            for key, _ in item.value:
                lines[(index, key.value)] = key.start_mark.line + 1
    return lines


# -- running ---------------------------------------------------------------------------


def run_cases(policy_dir: Path, cases: list[Case], groups=None, hook_timeout=10.0) -> list[Result]:
    """Run every case through the bot's dry run; raises PolicyError if the policies do
    not load. Nothing is stored: the store is in memory, the audit log in a temporary
    directory."""
    with tempfile.TemporaryDirectory(prefix="accessbot-test-") as scratch:
        now = {"at": datetime.now(UTC)}
        service = bootstrap(
            Settings(policy_dir=str(policy_dir), hook_timeout=hook_timeout, groups=groups or {}),
            clock=lambda: now["at"],
            store=MemoryStore(),
            audit=AuditLog(Path(scratch) / "audit.jsonl", lambda: now["at"]),
            people=EntryPeople(),
            check_env=False,  # no strategy is called; CI rarely has the bot's secrets
        )
        if service.policy_error:
            raise service.policy_error
        results = []
        for case in cases:
            now["at"] = case.now or datetime.now(UTC)
            service.pagerduty = StaticOnCall(
                case.on_call_levels,
                down="PagerDuty is down (the test says so)" if case.pagerduty_down else None,
                incidents=case.incidents,
            )
            service.slack_groups = StaticSlackGroups(case.slack_groups)
            service.history_counts = StaticHistory(case.history)
            service.links = StaticLinks(case.tickets)  # no network: unlisted is unknown
            duration = parse_duration(str(case.duration)) if case.duration is not None else None
            evaluation = service.evaluate(
                Actor(case.user, email=case.email),
                case.resource,
                duration,
                case.reason,
                case.fields,
            )
            refusals = {
                verb: service.evaluate_vote(evaluation, Actor(who, email=email), verb, case.comment)
                for verb, (who, email) in case.votes.items()
            }
            failures = compare(case.expect, evaluation) + compare_votes(case.expect, refusals)
            results.append(Result(case, evaluation, failures, refusals))
        return results


def compare_votes(expect: dict, refusals: dict[str, str | None]) -> list[str]:
    """What differs for the approvals and denials a case made (approve_as, deny_as)."""
    failures = []
    for key, verb in (("approval", "approve"), ("denial", "deny")):
        if key in expect and verb in refusals:
            got = "counted" if refusals[verb] is None else "refused"
            if got != expect[key]:
                why = f" ({refusals[verb]})" if refusals[verb] else ""
                failures.append(f"{key}: expected {expect[key]}, got {got}{why}")
    if "refusal" in expect:
        said = [r for r in refusals.values() if r]
        if not any(str(expect["refusal"]).lower() in r.lower() for r in said):
            failures.append(
                f"refusal: expected one containing {expect['refusal']!r}, got {said or 'none'}"
            )
    return failures


def compare(expect: dict, got: Evaluation) -> list[str]:
    """What differs between the expectation and the dry run, one line each."""
    failures = []
    request = got.request
    if "decision" in expect and expect["decision"] != got.outcome:
        failures.append(
            f"decision: expected {expect['decision']}, got {got.outcome} ({got.explanation})"
        )
    if "approvers" in expect:
        wanted = {same_person_key(str(a)) for a in expect["approvers"]}
        have = {same_person_key(a) for a in (request.approvers if request else [])}
        if wanted != have:
            failures.append(
                f"approvers: expected {', '.join(sorted(wanted)) or 'nobody'}, "
                f"got {', '.join(sorted(have)) or 'nobody'}"
            )
    if "channel" in expect:
        channel = request.channel if request else None
        if normalized_channel(str(expect["channel"])) != channel:
            failures.append(f"channel: expected {expect['channel']}, got {channel}")
    if "reason" in expect and str(expect["reason"]).lower() not in got.explanation.lower():
        failures.append(
            f"reason: expected it to contain {expect['reason']!r}, got {got.explanation!r}"
        )
    if "note" in expect:
        notes = (request.notes if request else []) + got.notes
        if not any(str(expect["note"]).lower() in n.lower() for n in notes):
            failures.append(
                f"note: expected one containing {expect['note']!r}, got {notes or 'none'}"
            )
    return failures


def report(path: Path, results: list[Result]) -> list[str]:
    """The pass/fail table, with `file:line:` on each failure for CI annotations."""
    width = max((len(r.case.name) for r in results), default=10)
    lines = []
    for result in results:
        case = result.case
        got = result.evaluation.outcome if result.evaluation else "?"
        for verb, why in result.refusals.items():
            who = case.votes[verb][0]
            got += f", {verb} by {who} {'refused' if why else 'counted'}"
        status = "PASS" if result.passed else "FAIL"
        lines.append(
            f"{status}  {case.index:>3}  {case.name:<{width}}  {case.user} -> {case.resource}: {got}"
        )
        lines += [
            f"{path}:{case.line}: case {case.index} ({case.name}): {f}" for f in result.failures
        ]
    failed = sum(1 for r in results if not r.passed)
    lines.append(f"{len(results)} case(s): {len(results) - failed} passed, {failed} failed")
    return lines


__all__ = ["PolicyError", "TestFileError", "read_cases", "report", "run_cases"]
