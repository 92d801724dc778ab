"""Standing access as people read it: the channel's message about new findings, removals
and failed removals, the admins' alert when a sweep holds back, and `!access standing`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..domain import format_duration
from ..safe_text import inert
from ..standing import ResourceState
from .basics import when

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..policy import Resource
    from ..standing import Finding, Unlisted

SHOWN = 20  # members named in one channel message; the rest are counted


def found_text(resource: Resource, found: list[Finding], held: bool = False) -> str:
    """The channel's one message about a sweep's new findings on one resource; `held`:
    the sweep wanted more removals than its limit, so it made none."""
    count = f"{len(found)} accounts hold" if len(found) > 1 else "1 account holds"
    lines = [
        f"STANDING ACCESS on {resource.name}: {count} it at the target and no grant "
        f"explains it (found {when(found[0].found_at)}):"
    ]
    lines += [f"- {f.who}" for f in found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"- and {len(found) - SHOWN} more: `!access standing {resource.name}`")
    if resource.remove_standing and held:
        lines.append(
            "The policy says remove_standing, but this sweep wanted more removals than "
            "ACCESS_STANDING_MAX_REMOVALS, so it removed none; the admins are told."
        )
    elif resource.remove_standing:
        lines.append("The bot removes them now (the policy says remove_standing).")
    else:
        lines.append(
            "Remove them at the target, or, if they should hold it without a grant, add "
            f"them to `standing` of {resource.name} in {resource.file}. "
            f"`!access standing {resource.name}` lists what is found."
        )
    return "\n".join(lines)


def removed_text(resource: Resource, removed: list[Finding]) -> str:
    names = ", ".join(f.who for f in removed[:SHOWN])
    more = f" and {len(removed) - SHOWN} more" if len(removed) > SHOWN else ""
    return f"Removed standing access to {resource.name} (no grant explained it): {names}{more}."


def removal_failed_text(resource: Resource, finding: Finding) -> str:
    return (
        f"REMOVAL FAILED of standing access to {resource.name} for {finding.who}, attempt "
        f"{finding.attempts}: {inert(finding.last_error)}. Retrying at "
        f"{when(finding.next_try_at)}; the access is still in place."
    )


def held_text(counts: Mapping[str, int], limit: int) -> str:
    """For the admins: a sweep wanted more removals than ACCESS_STANDING_MAX_REMOVALS."""
    where = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))
    return (
        f"Standing-access sweep: {sum(counts.values())} accounts would be removed ({where}), "
        f"more than ACCESS_STANDING_MAX_REMOVALS ({limit}), so none was removed. A target "
        "listing the wrong group, or a `standing` list gone missing, looks like this: check "
        "them with `!access standing`. If the removals are right, remove them with "
        "`ACCESS_STANDING_MAX_REMOVALS=<n> python -m accessbot standing --resource "
        "<resource> --remove`, or raise the limit."
    )


def render_report(
    resources: list[Resource],
    states: Mapping[str, ResourceState],
    now: datetime,
    every: timedelta | None = None,
    not_now: str = "",
) -> str:
    """`!access standing`: the findings of these resources with since when, and which
    targets cannot be listed."""
    found: list[str] = []
    quiet, unlisted, unchecked = [], [], []
    for resource in resources:
        state = states.get(resource.name) or ResourceState()
        if state.unlisted is not None:
            unlisted.append(_unlisted_line(resource.name, state.unlisted))
        elif state.swept_at is None:
            unchecked.append(resource.name)
        elif not state.findings:
            quiet.append(resource.name)
        if state.findings:
            found += _findings_lines(resource, state, now)
    sweep = f"every {format_duration(every)}" if every else "on demand"
    lines = [
        "Standing access: accounts at the targets that no grant or `standing` entry "
        f"explains (checked {sweep})."
    ]
    if not_now:
        lines.append(f"The sweep is not running: {not_now}.")
    lines += found or ["Nothing found."]
    if quiet:
        lines.append("Nothing found on: " + ", ".join(quiet) + ".")
    if unlisted:
        lines += ["Targets that cannot be checked:", *unlisted]
    if unchecked:
        lines.append("Not checked yet: " + ", ".join(unchecked) + ".")
    return "\n".join(lines)


def _unlisted_line(name: str, unlisted: Unlisted) -> str:
    what = "cannot be listed" if unlisted.cannot else "could not be listed"
    return f"- {name} {what} (since {when(unlisted.since)}): {inert(unlisted.reason)}"


def _findings_lines(resource: Resource, state: ResourceState, now: datetime) -> list[str]:
    checked = f"listed {_ago(state.swept_at, now)}" if state.swept_at else "not listed yet"
    removes = "; the bot removes them (remove_standing)" if resource.remove_standing else ""
    lines = [f"{resource.name} ({checked}{removes}):"]
    for f in sorted(state.findings, key=lambda f: f.found_at):
        line = f"- {f.who} since {when(f.found_at)} ({_ago(f.found_at, now)})"
        if f.attempts:
            line += (
                f"; removal attempt {f.attempts} failed ({inert(f.last_error, 120)}), "
                f"next try {when(f.next_try_at)}"
            )
        lines.append(line)
    return lines


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    delta = now - then
    return "just now" if delta < timedelta(seconds=1) else f"{format_duration(delta)} ago"
