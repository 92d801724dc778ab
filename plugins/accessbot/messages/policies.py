"""The policies as people read them: `!access resources`, `!access whatif`, and reloads
(by `!access reload` or the file watcher)."""

from __future__ import annotations

from datetime import timedelta

from ..domain import format_duration
from ..safe_text import inert
from .basics import approvers_text, durations_text, request_approvers, who
from .links import field_hints, fields_text


def whatif(evaluation) -> str:
    """`!access whatif`: what a request would do, and that nothing was done."""
    e = evaluation
    duration = f" for {format_duration(e.duration)}" if e.duration else ""
    lines = [
        f"**What if {who(e.user)} asked for {inert(e.resource_name, 60)}{duration}?** "
        "(a dry run: nothing was created, no strategy was called)"
    ]
    resource, request = e.resource, e.request
    if resource is not None:
        lines.append(
            f"Policy: {resource.file}, resource {resource.name} (max "
            f"{format_duration(resource.max_duration)}, default "
            f"{format_duration(resource.default_duration)}; hooks: "
            f"{', '.join(sorted(resource.hooks)) or 'none'})"
        )
    if request is not None:
        needed = f"; {request.approvals_required} approvals needed"
        lines.append(
            f"Approvers: {request_approvers(request)}{needed if request.approvals_required > 1 else ''}"
        )
        lines.append(f"Channel: {request.channel}")
        if request.fields:
            lines.append(f"Fields: {fields_text(request)}")
    lines.append(f"Decision: {_verdict(e.outcome, e.explanation)}")
    if e.if_fixed is not None:
        lines.append(f"Once that is fixed: {_verdict(*e.if_fixed)}")
    if resource is not None and resource.durations:
        lines.append(f"Durations: {durations_text(resource.durations)} only")
    lines += [inert(line, 300) for line in e.hooks]
    lines += [f"Lookup: {inert(line, 200)}" for line in e.lookups]
    notes = (request.notes if request is not None else []) + e.notes
    lines += [f"Note: {inert(n, 400)}" for n in notes]
    return "\n".join(lines)


def hooks_that_run(resource, outcome: str, pending_timeout: timedelta) -> list[str]:
    """For `!access whatif`: each policy hook and escalation level the request would go
    through, and when."""
    if resource is None or outcome == "refused":
        return []
    hooks = resource.hooks
    ran = [
        ("get_approvers", "ran now, to choose the approvers (above)"),
        ("on_request", "ran now (the decision above)"),
    ]
    lines = [f"Hook: {hook}: {when}" for hook, when in ran if hook in hooks]
    waits = outcome == "human"
    later = [
        ("on_approve", waits, "would run at each approval, before it counts (it may refuse it)"),
        ("on_deny", waits, "would run at each denial, before it counts (it may refuse it)"),
        ("after_grant", outcome != "deny", "would run once the grant is recorded"),
        ("after_revoke", outcome != "deny", "would run once the access has ended"),
    ]
    lines += [f"Hook: {hook}: {when}" for hook, runs, when in later if runs and hook in hooks]
    if waits and resource.escalation:
        for number, level in enumerate(resource.escalation, start=1):
            lines.append(
                f"Escalation {number}: if undecided after {format_duration(level.after)}, "
                f"also ask {approvers_text(level.approvers)} in {level.channel}"
            )
        total = resource.escalation[-1].after + pending_timeout
        lines.append(f"Time-out: after {format_duration(total)} without a decision")
    return lines


_VERDICTS = {
    "approve": "would be APPROVED at once by on_request (break-glass, reviewed afterwards)",
    "deny": "would be DENIED at once by on_request",
    "human": "would wait for the approvers",
    "refused": "would be REFUSED",
}


def _verdict(outcome: str, explanation: str) -> str:
    # A hook's reason is policy text; a refusal is the bot's own (already safe) message.
    why = inert(explanation, 400) if outcome in ("approve", "deny") else explanation
    return f"{_VERDICTS[outcome]}: {why}"


def watcher_reload(result) -> str:
    """What the admins are told when the watcher reloaded changed policy files."""
    if result.ok:
        return (
            f"Policy files changed on disk and were reloaded: {result.summary}. Requests and "
            "grants already made keep the rules they were made under."
        )
    return (
        f"Policy files changed on disk but did NOT load, so nothing changed ({result.kept}). "
        "Fix these and save again (or run `!access reload`):\n"
        + "\n".join(f"- {e}" for e in result.errors)
    )


def resources(policies) -> str:
    """`!access resources`: what can be asked for, one line each."""
    lines = ["Requestable resources (`!access request <resource> [duration] <reason>`):"]
    lines += [resource_line(policies.resources[name]) for name in policies.names()]
    return "\n".join(lines)


def resource_line(res) -> str:
    approvers = approvers_text(res.approvers) if res.approvers else "chosen by policy"
    if "get_approvers" in res.hooks and res.approvers:
        approvers += " (or chosen by policy)"
    return (
        f"- {res.name}: {res.description or 'no description'}. Max "
        f"{format_duration(res.max_duration)}, default "
        f"{format_duration(res.default_duration)}"
        + (f", min {format_duration(res.min_duration)}" if res.min_duration else "")
        + f"; approvers: {approvers}"
        + (f" ({res.approvals_required} needed)" if res.approvals_required > 1 else "")
        + f"; channel {res.channel}; grants via {res.strategy.describe()}"
        + ("; can auto-approve" if "on_request" in res.hooks else "")
        + (f"; durations: {durations_text(res.durations)}" if res.durations else "")
        + (
            f"; escalates after {format_duration(res.escalation[0].after)}"
            if res.escalation
            else ""
        )
        + field_hints(res.fields.values())
    )


def reloaded(result) -> str:
    """The answer to `!access reload`: what changed, or what to fix."""
    if not result.ok:
        return (
            f"Reload failed, nothing changed ({result.kept}). Fix these and run "
            "`!access reload` again:\n" + "\n".join(f"- {e}" for e in result.errors)
        )
    return f"Reloaded {result.summary}. Requests already made keep the rules they were made under."
