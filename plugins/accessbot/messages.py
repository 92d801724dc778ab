"""Every text the bot shows, in one place: chat markdown that reads well on any backend.

User-supplied text (reasons, comments) goes through `inert` so that it cannot ping a
channel, break the layout or smuggle control characters onto a card.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta
from functools import singledispatch
from urllib.parse import urlsplit, urlunsplit

from .approvers import same_person_key
from .domain import MAX_DURATION, Request, Status, format_duration, from_iso
from .results import (
    Acknowledged,
    ApprovalCounted,
    Approved,
    AutoExtended,
    AutoGranted,
    Cancelled,
    Denied,
    DeniedByPolicy,
    Notice,
    Outcome,
    Result,
    Retried,
    Revoked,
    Submitted,
    Withdrawn,
)

REASON_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_MASS_MENTION = re.compile(r"([@!])(here|channel|everyone)\b", re.IGNORECASE)
ZWSP = "\u200b"
# Where what people type could become a link: a markdown link's "](" (errbot's Slack
# backend turns `[text](url)` into Slack's `<url|text>`), and "<" opening Slack's own
# `<url|text>`, `<#C…>`, `<@U…>`, `<!here>` or a markdown autolink `<https://…>`.
_LINK_OPENERS = re.compile(r"\]\(|<(?=[\w#@!/])")
# Slack's `<url|label>` shows only the label: inside angle brackets a "|" becomes "¦", so
# no label can hide where a link goes, even where "<" is not read as we expect.
_ANGLED = re.compile(r"<[^<>]*>")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")

STATUS_WORDS = {
    Status.PENDING: "pending approval",
    Status.APPROVED: "approved, granting",
    Status.ACTIVE: "active",
    Status.EXPIRED: "expired",
    Status.REVOKED: "revoked",
    Status.DENIED: "denied",
    Status.CANCELLED: "cancelled",
    Status.TIMED_OUT: "timed out",
    Status.GRANT_FAILED: "grant failed",
    Status.REVOKE_FAILED: "revoke failed, retrying",
    Status.EXTENDED: "approved, added to its grant",
}


def inert(text: str, limit: int = REASON_LIMIT) -> str:
    """Show user text as text: no links (a link's words stay, its syntax is broken by a
    zero-width space), no mass mentions, no control characters, one line, bounded."""
    text = _CONTROL.sub("", str(text)).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    text = _ANGLED.sub(lambda m: m.group(0).replace("|", "\u00a6"), text)
    text = _LINK_OPENERS.sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)
    text = _MASS_MENTION.sub(lambda m: m.group(1) + ZWSP + m.group(2), text)
    text = text.replace("`", "'")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """A URL as scheme://host[:port]/path only: `user:password@`, the query and the
    fragment often carry credentials (`?token=...`), so they are never shown."""
    try:
        parts = urlsplit(str(url).strip())
    except ValueError:
        return "(an unreadable URL)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_urls(text: str) -> str:
    """`text` with every URL in it shown as `redact_url` shows it (errors from a target or
    a library may quote the URL they called)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), str(text))


def too_many_requests(limit: int, again: datetime, now: datetime) -> str:
    """The refusal of a person's request over ACCESS_REQUESTS_PER_HOUR."""
    wait = format_duration(max(again - now, timedelta(minutes=1)))
    return (
        f"You made {limit} requests in the last hour, the most this bot takes from one "
        f"person (ACCESS_REQUESTS_PER_HOUR). You can ask again in {wait} "
        f"({when(again)}); an active grant can be extended with `!access extend <id>`."
    )


def when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "-"


def moment(dt: datetime | None) -> str:
    """A time in a history, to the minute: `2026-11-27 16:51 UTC`."""
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


_ISO_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?")


def readable_times(text: str) -> str:
    """`text` with each ISO 8601 time in it (`2026-11-27T16:51:33.880690Z`, as notes written
    by older versions hold them) shown as `moment` shows it."""

    def shown(match: re.Match) -> str:
        try:
            at = datetime.fromisoformat(match.group(0))
            return moment(at.astimezone(UTC) if at.tzinfo else at)
        except ValueError:
            return match.group(0)

    return _ISO_TIME.sub(shown, text)


def asked(duration: timedelta) -> str:
    """A requested duration in a refusal; one past what any duration may be (`99999d`)
    is "more than 366d"."""
    if duration > MAX_DURATION:
        return f"more than {format_duration(MAX_DURATION)}"
    return format_duration(duration)


def ask_again(resource: str, duration: timedelta, specs=(), values=None) -> str:
    """The command that asks afresh, with every field the person gave (`values`) and a
    placeholder for any other the resource requires:
    `!access request payroll 30m ticket=OPS-12 <reason>`."""
    values = values or {}
    fields = "".join(
        f" {s.name}={inert(values[s.name], 40)}" if s.name in values else f" {s.name}=<{s.name}>"
        for s in specs
        if s.required or s.name in values
    )
    return f"`!access request {resource} {format_duration(duration)}{fields} <reason>`"


def durations_text(durations) -> str:
    """`30m, 1h or 4h`: a resource's fixed durations."""
    shown = [format_duration(d) for d in durations]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def closest(typed: str, names: list[str]) -> str | None:
    """The name someone surely meant: the same but for case, or a small typo away."""
    by_lower = {name.lower(): name for name in names}
    found = difflib.get_close_matches(str(typed).lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[found[0]] if found else None


def who(handle: str) -> str:
    return handle if handle.startswith("@") or "@" in handle else f"@{handle}"


def approvers_text(entries) -> str:
    return ", ".join(_entry(e) for e in entries) or "nobody"


def _entry(entry: str) -> str:
    if entry.startswith(("U", "W")) or ":" in entry:  # a Slack user id, a group-like entry
        return entry
    return who(entry)


def request_approvers(request: Request) -> str:
    """Who may decide: the policy's entries as written, each group with whom it named when
    the request was made (`group:sre (@alice, @bob), @dave`). The requester is left out,
    and said to be, unless they may approve their own request."""
    own = [] if request.self_approval_allowed else request.requester_entries
    mine = {same_person_key(e) for e in own}
    if request.approver_groups:
        text = ", ".join(_entries_without(request, mine)) or "nobody"
    else:
        text = approvers_text([a for a in request.approvers if a not in own])
    if own:
        text += f"; not {approvers_text(own)}, who cannot approve their own request"
    return text


def _entries_without(request: Request, mine: set[str]):
    """The request's approver entries, each group with its members, leaving out `mine`."""
    for entry in request.approver_entries:
        named = request.approver_groups.get(entry)
        if named is None:
            if same_person_key(entry) not in mine:
                yield _entry(entry)
            continue
        members = [m for m in named if same_person_key(m) not in mine]
        yield f"{entry} ({approvers_text(members) if members or not named else 'only the requester'})"


TRACKER_NAMES = {"jira": "Jira", "pagerduty": "PagerDuty", "github_issue": "GitHub"}


def field_hints(specs) -> str:
    """`; give ticket=... (required: Jira key)` for `!access resources`."""
    hints = [
        f"{s.name}=... ({'required' if s.required else 'optional'}"
        + (f": {inert(s.help, 80)}" if s.help else "")
        + (f"; looked up in {TRACKER_NAMES[s.check['type']]}" if s.check else "")
        + (", ends access when it closes" if s.end_with else "")
        + ")"
        for s in specs
    ]
    return f"; give {', '.join(hints)}" if hints else ""


def fields_text(request: Request) -> str:
    return ", ".join(f"{name}={inert(value, 80)}" for name, value in request.fields.items())


def link_text(link: dict) -> str:
    """A checked field as people read it: `OPS-12 "Rotate the DB password" (In Progress
    at request)`; tracker text is shown as text, like anything a user typed."""
    key = inert(str(link.get("key", "")), 80)
    if not link.get("checked", True):
        return f"{key} (not checked: the tracker could not be reached)"
    title = inert(str(link.get("title") or ""), 120)
    state = inert(str(link.get("status") or ""), 40)
    closed = f", since moved to {inert(str(link['closed']), 40)}" if link.get("closed") else ""
    return f'{key} "{title}" ({state} at request{closed})' if title else f"{key} ({state}{closed})"


def links_lines(request: Request) -> list[str]:
    """`!access show`'s lines for checked fields: what the tracker said, and where."""
    return [
        f"Link: {name} {link_text(link)}"
        + (f", assigned to {inert(str(link['assignee']), 80)}" if link.get("assignee") else "")
        + (f" {redact_url(inert(str(link['url']), 200))}" if link.get("url") else "")
        for name, link in request.links.items()
    ]


def links_sentence(request: Request) -> str:
    """The requester's DM about a grant: what justified it, and what ends it with."""
    ending = [link_text(link) for link in request.links.values() if link.get("end_with")]
    other = [link_text(link) for link in request.links.values() if not link.get("end_with")]
    text = f" For {', '.join(other)}." if other else ""
    if ending:
        text += f" It ends sooner if {' or '.join(ending)} closes."
    return text


def audit_links(request: Request) -> dict:
    """The links as the audit log keeps them (what the tracker said at request time)."""
    return {
        name: {k: link.get(k) for k in ("key", "title", "status", "url", "assignee", "checked")}
        for name, link in request.links.items()
    }


def card_title(request: Request) -> str:
    if request.extends:
        return (
            f"Extension request {request.id}: {format_duration(request.duration)} more on "
            f"{request.extends} ({request.resource} for {who(request.requester)})"
        )
    return f"Access request {request.id}: {request.resource} for {who(request.requester)}"


def card_fields(request: Request) -> list[tuple[str, str]]:
    fields = [
        ("Requester", who(request.requester)),
        ("Resource", request.resource),
        ("Duration", format_duration(request.duration)),
        ("Reason", inert(request.reason)),
    ]
    fields += [
        (name, link_text(request.links[name]) if name in request.links else inert(value, 80))
        for name, value in request.fields.items()
    ]
    fields.append(("Approvers", request_approvers(request)))
    if request.approvals_required > 1:
        approved = ", ".join(who(a.by) for a in request.approvals)
        fields.append(
            (
                "Approvals",
                f"{len(request.approvals)} of {request.approvals_required}"
                + (f" ({approved})" if approved else ""),
            )
        )
    return fields


def card_body(request: Request) -> str:
    """The approval card as text: everything an approver needs, and the exact commands."""
    lines = [f"**{card_title(request)}**"]
    lines += [f"{name}: {value}" for name, value in card_fields(request)]
    lines += [f"Note: {inert(note_now(request, n))}" for n in request.notes]
    if request.status is Status.PENDING:
        lines.append(f"Approve: `!approve {request.id}`   Deny: `!deny {request.id} [reason]`")
    else:
        lines.append(f"Status: {STATUS_WORDS[request.status]}")
    return "\n".join(lines)


def length(request: Request) -> str:
    """How long it lasts: what was asked, and what extensions added since (`1h30m (1h,
    extended by 30m)`)."""
    if request.extensions and request.granted_at and request.expires_at:
        total = request.expires_at - request.granted_at
        if total > request.duration:
            return (
                f"{format_duration(total)} ({format_duration(request.duration)}, extended by "
                f"{format_duration(total - request.duration)})"
            )
    return format_duration(request.duration)


def request_line(request: Request, now: datetime) -> str:
    """One line for `!access mine` / `!access list`."""
    base = (
        f"`{request.id}` {request.resource} for {who(request.requester)}, "
        f"{length(request)}: {STATUS_WORDS[request.status]}"
    )
    if request.holds_access and request.expires_at:
        base += f", {time_left(request, now)} (until {when(request.expires_at)})"
    elif request.status is Status.PENDING and request.approvals_required > 1:
        base += f" ({len(request.approvals)} of {request.approvals_required} approvals)"
    return base


def time_left(request: Request, now: datetime) -> str:
    """`29m44s left`, or past the end without a confirmed revoke `none, overdue by 1m50s`."""
    if request.expires_at and now > request.expires_at:
        return f"none, overdue by {format_duration(now - request.expires_at)}"
    return f"{format_duration(request.remaining(now))} left"


def grant_end(request: Request) -> str:
    """When a grant ends, or ended: a revoke before the end says when it was revoked."""
    if request.status is Status.REVOKED and request.ended_at:
        if request.ended_at < request.expires_at:
            return f"revoked: {when(request.ended_at)} (it was to end {when(request.expires_at)})"
        return f"revoked: {when(request.ended_at)}"
    if request.status is Status.EXPIRED and request.ended_at:
        late = request.ended_at - request.expires_at
        removed = f" (removed {when(request.ended_at)})" if late >= timedelta(seconds=1) else ""
        return f"ended: {when(request.expires_at)}{removed}"
    return f"ends: {when(request.expires_at)}"


def show(request: Request, now: datetime) -> str:
    lines = [
        f"**Request {request.id}**: {STATUS_WORDS[request.status]}",
        f"Requester: {who(request.requester)}"
        + (f" ({request.requester_email})" if request.requester_email else ""),
        f"Resource: {request.resource}",
        f"Duration: {length(request)}",
        f"Reason: {inert(request.reason)}",
    ]
    if request.fields:
        lines.append(f"Fields: {fields_text(request)}")
    lines += links_lines(request)
    lines.append(
        f"Approvers: {request_approvers(request)} "
        f"({request.approvals_required} needed) in {request.channel}"
    )
    if request.expires_at:
        lines.append(f"Granted: {when(request.granted_at)}; {grant_end(request)}")
        if request.holds_access:
            left = time_left(request, now)
            lines.append(f"Time left: {left.removesuffix(' left')}")
    if request.sessions:
        lines.append(f"At the revoke:{sessions_said(request)}")
    if request.last_error:
        lines.append(f"Last error: {inert(request.last_error)}")
    if request.review_required:
        lines.append(f"Break-glass review: {review_status(request)}")
    lines += [f"Note: {inert(note_now(request, n))}" for n in request.notes]
    lines.append("History:")
    lines += [history_line(event) for event in request.history]
    return "\n".join(lines)


def note_now(request: Request, note: str) -> str:
    """A note as it reads now: an extension's "which has 29m44s left" was true only while
    it waited, so once decided or withdrawn only the grant it extends is named."""
    if request.extends and request.status is not Status.PENDING:
        head = f"extends grant {request.extends}, which has "
        if note.startswith(head):
            return f"extends grant {request.extends}"
    return note


# Steps the bot takes itself, as a person reads them in a history.
_HISTORY_WORDS = {"nudge": "approvers reminded", "expiry_reminder": "requester reminded of the end"}
_SYSTEM_ACTORS = {"scheduler": "the bot", "bot": "the bot", "policy": "the policy"}


def history_line(event) -> str:
    """One step in `!access show`: `approved by @alice`, `approvers reminded (by the bot)`."""
    note = f": {readable_times(inert(event.note))}" if event.note else ""
    action = _HISTORY_WORDS.get(event.action, event.action.replace("_", " "))
    system = _SYSTEM_ACTORS.get(event.actor)
    by = f" (by {system})" if system else f" by {who(event.actor)}"
    return f"- {moment(event.at)} {action}{by}{note}"


def review_status(request: Request) -> str:
    if request.reviewed_at:
        note = f": {inert(request.review_note)}" if request.review_note else ""
        return f"acknowledged by {who(request.reviewed_by or '?')} at {when(request.reviewed_at)}{note}"
    if request.granted_at is None:
        return "nothing was granted, nothing to review"
    return f"NOT YET REVIEWED; an approver acknowledges it with `!access ack {request.id} [note]`"


def review_line(request: Request) -> str:
    """One unreviewed break-glass grant, for `!access review` and the daily reminder."""
    return (
        f"`{request.id}` {request.resource} for {who(request.requester)}, "
        f"{format_duration(request.duration)} from {when(request.granted_at)} "
        f"({STATUS_WORDS[request.status]}), reason: {inert(request.reason, 120)}; "
        f"policy said: {inert(request.decision_note, 120)}"
    )


def review_list(requests: list[Request]) -> str:
    return (
        f"Break-glass grants waiting for review ({len(requests)}); acknowledge each with "
        "`!access ack <id> [note]`:\n" + "\n".join(f"- {review_line(r)}" for r in requests)
    )


def review_reminder(requests: list[Request]) -> str:
    count = len(requests)
    grants = "grant has" if count == 1 else "grants have"
    return (
        f"Reminder: {count} break-glass {grants} not been reviewed yet. An approver "
        "acknowledges each with `!access ack <id> [note]`:\n"
        + "\n".join(f"- {review_line(r)}" for r in requests)
    )


def audit_line(record: dict) -> str:
    parts = [record.get("ts", "?"), record.get("event", "?")]
    for key in ("request_id", "actor", "user", "resource", "outcome"):
        if record.get(key):
            parts.append(f"{key}={record[key]}")
    if record.get("detail"):
        parts.append(f"detail={inert(str(record['detail']), 120)}")
    return " ".join(str(p) for p in parts)


def where_it_went(to: str, text: str) -> str:
    """`text` headed with its destination, for a terminal that shows every message in one
    place: `(in #access-approvals)` on a line of its own above a card, `(DM to @carol) ...`."""
    where = f"(in {to})" if to.startswith("#") else f"(DM to {who(to)})"
    return f"{where}\n{text}" if "\n" in text else f"{where} {text}"


def checking_policy(resource: str) -> str:
    """Said first when a request's policy check is slow."""
    return f"Checking the policy for {inert(resource, 60)}..."


def audit_not_understood(words: list[str], user: str, resources: list[str]) -> str:
    """`!access audit` with bare words it cannot place: what the filters are."""
    shown = ", ".join(resources[:8]) + (", ..." if len(resources) > 8 else "")
    example = resources[0] if resources else "prod-db"
    return (
        f"`!access audit` did not understand `{inert(' '.join(words), 80)}`: a bare word is a "
        f"resource ({shown or 'none loaded'}), a request id, a duration like 2h, or one user "
        f"(`{inert(user, 40)}` was taken as the user). The filters are user=alice, "
        f"resource={example}, id=k3m9qx, since=2h and limit=20; `!access audit verify` "
        f"checks the log. E.g. `!access audit user=alice resource={example} since=2h`."
    )


def audit_subcommand_misspelt(word: str, meant: str) -> str:
    """`!access audit verfy`: a typo of a subcommand, not a user to filter by."""
    shown = inert(word, 40)
    return (
        f"`{shown}` is not a resource or a request id; did you mean `!access audit {meant}`? "
        f"(For the events of a user called {shown}, type `!access audit user={shown}`.)"
    )


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


def no_longer_approver(request: Request, verb: str, resource) -> str:
    """The answer to an approver of a request whom the policy in force no longer names."""
    if resource is None:
        return (
            f"{request.resource} is no longer in the policies, so nobody can {verb} "
            f"{request.id}; ask an admin."
        )
    return (
        f"You are no longer an approver of {request.resource} (the policy changed since "
        f"{request.id} was made), so you cannot {verb} it; its approvers now: "
        f"{approvers_text(resource.approvers)}."
    )


def vote_refused(verb: str, request_id: str, why: str) -> str:
    """The answer to an approval or denial the policy's on_approve / on_deny refused."""
    what = "approval" if verb == "approve" else "denial"
    return (
        f"Your {what} of {request_id} was not counted: {inert(why, 400)}. "
        f"The request is unchanged; see `!access show {request_id}`."
    )


def follow_up_failed(request: Request, hook: str, error: str) -> str:
    """What the admins are told when an after_grant / after_revoke hook failed."""
    undone = "the grant stands" if hook == "after_grant" else "the access stays removed"
    return (
        f"Access bot: the {hook} hook for request {request.id} ({request.resource} for "
        f"{who(request.requester)}) failed: {inert(error, 400)}. Nothing was undone ({undone}) "
        f"and it is not run again; fix {request.policy_file or 'the policy file'} and do by hand "
        "what it should have done."
    )


def escalation_note(number: int, levels: int, after: str, before: str, approvers) -> str:
    """Why a request was escalated, for its card and history."""
    return (
        f"escalated to level {number} of {levels}: no decision after {after} in {before}, "
        f"so now also asking {approvers_text(approvers)}"
    )


def escalated(request: Request, why: str) -> str:
    """The card of an escalated request, saying why, in the level's channel."""
    return f"Request {request.id} {why}.\n{card_body(request)}"


def escalated_away(request: Request, before: str, after: str) -> str:
    """What the channel a request was escalated away from is told."""
    return (
        f"Request {request.id} ({request.resource} for {who(request.requester)}) had no "
        f"decision after {after}, so it was escalated to {request.channel}. The approvers "
        f"here may still decide: `!approve {request.id}` or `!deny {request.id} <reason>`."
    )


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


def undeliverable(notice, error: str, bot: str = "") -> str:
    """What the admins are told when a notice could not be delivered, and how to fix it
    (`bot`: the bot's own handle on the chat, to name in `/invite @bot`)."""
    where, request = notice.to, notice.request
    about = ""
    if request is not None:
        in_file = f", policy file {request.policy_file}" if request.policy_file else ""
        about = f" (request {request.id}, {request.resource}{in_file})"
    if notice.audience != "channel":
        fix = f"check that {where} is still a member of the chat and can get messages from the bot"
    elif error == "not_in_channel":
        how = f"/invite {who(bot)}" if bot else "/invite and the bot's @name"
        fix = f"invite the bot to {where} (in {where}, type {how})"
    elif error == "channel_not_found":
        fix = (
            f"{where} does not exist or is private: create it or invite the bot to it, or "
            'change the resource\'s "channel" in its policy file'
        )
    elif error == "is_archived":
        fix = (
            f'{where} is archived: unarchive it, or change the resource\'s "channel" in its '
            "policy file"
        )
    else:
        fix = (
            f"check that {where} exists and the bot may post there, or change the resource's "
            '"channel" in its policy file'
        )
    waiting = (
        " Until then nobody there sees these requests; approvers can still use `!access list`."
        if notice.audience == "channel"
        else ""
    )
    return (
        f"Access bot: a message to {where}{about} could not be delivered: {inert(error, 200)}. "
        f"To fix: {fix}.{waiting} You will hear about {where} again only if this happens after "
        "a message there got through."
    )


def mine(own: list[Request], now: datetime) -> str:
    """`!access mine`: the person's own requests and grants."""
    if not own:
        return "You have no pending requests or active grants. Ask with `!access request <resource> [duration] <reason>`; see `!access resources`."
    return "Your requests and grants:\n" + "\n".join(f"- {request_line(r, now)}" for r in own)


def live_list(live: list[Request], now: datetime, scope: list[str] | None = None) -> str:
    """`!access list`: the pending requests and active grants one may see; `scope`, the
    resources an approver approves (None: an admin, who sees every resource)."""
    if scope is None:
        where, note = "on every resource", ""
    else:
        names = ", ".join(inert(n, 60) for n in scope[:8]) + (", ..." if len(scope) > 8 else "")
        where = "on the resources you approve" + (f" ({names})" if names else "")
        note = "; admins see every resource"
    if not live:
        return f"No pending requests or active grants {where}{note}."
    return f"Pending requests and active grants {where}:\n" + "\n".join(
        f"- {request_line(r, now)}" for r in live
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


def audit_events(records: list[dict]) -> str:
    """`!access audit`: the matching events, newest last."""
    if not records:
        return "No audit events match."
    return f"Audit events (newest last, {len(records)} shown):\n" + "\n".join(
        f"- {audit_line(r)}" for r in records
    )


def reloaded(result) -> str:
    """The answer to `!access reload`: what changed, or what to fix."""
    if not result.ok:
        return (
            f"Reload failed, nothing changed ({result.kept}). Fix these and run "
            "`!access reload` again:\n" + "\n".join(f"- {e}" for e in result.errors)
        )
    return f"Reloaded {result.summary}. Requests already made keep the rules they were made under."


# -- the replies and notices of the commands (typed results -> texts) ----------------------


def to_requester(request: Request, text: str) -> Notice:
    """A direct message to the requester about their request."""
    return Notice("user", request.requester_address or request.requester, text, request)


def to_channel(request: Request, text: str, kind: str = "text") -> Notice:
    """A message in the request's approval channel (a "card" or an "alert")."""
    return Notice("channel", request.channel, text, request, kind)


def card(request: Request) -> Notice:
    return to_channel(request, card_body(request), "card")


def needed(request: Request) -> str:
    """Whose decision a request waits for: `an approval from @bob, @carol`."""
    count = (
        f"{request.approvals_required} approvals"
        if request.approvals_required > 1
        else "an approval"
    )
    return f"{count} from {approvers_text(request.deciders)}"


def grant_stays(grant_id: str | None, grant: Request | None) -> str:
    """What a refused extension leaves of its grant."""
    if grant is None or not grant.holds_access:
        return f"Grant {grant_id} has ended."
    return f"Grant {grant_id} stays active until {when(grant.expires_at)}."


def _because(reason: str) -> str:
    return f": {inert(reason)}" if reason else ""


@singledispatch
def outcome(result: Result) -> Outcome:
    """The reply and notices people read for a command's typed result."""
    raise TypeError(f"no text for {type(result).__name__}")


@outcome.register
def _submitted(result: Submitted) -> Outcome:
    request = result.request
    noun = "Extension request" if request.extends else "Request"
    what = (
        f"{format_duration(request.duration)} more on {request.extends}"
        if request.extends
        else f"{request.resource} for {format_duration(request.duration)}"
    )
    reply = (
        f"{noun} {request.id} created: {what}. "
        f"Waiting for {needed(request)} in {request.channel}. "
        f"Withdraw it with `!access cancel {request.id}`; "
        f"see it with `!access show {request.id}`."
    )
    return Outcome(reply, [card(request)], request)


@outcome.register
def _denied_by_policy(result: DeniedByPolicy) -> Outcome:
    request = result.request
    noun = "Extension request" if request.extends else "Request"
    stays = f" {grant_stays(request.extends, result.grant)}" if request.extends else ""
    return Outcome(
        f"{noun} {request.id} for {request.resource} was denied by policy: "
        f"{inert(request.decision_note)}{stays}",
        [],
        request,
    )


@outcome.register
def _auto_extended(result: AutoExtended) -> Outcome:
    request, grant, done = result.request, result.grant, result.done
    if done and done.status is Status.EXTENDED:
        alert = (
            f"BREAK-GLASS EXTENSION: {who(request.requester)} got "
            f"{format_duration(request.duration)} more on {request.resource} (grant "
            f"{grant.id}, now until {when(grant.expires_at)}), reason: "
            f"{inert(request.reason)}. Approved by policy: "
            f"{inert(request.decision_note)}."
        )
        return Outcome(
            f"Extension {request.id} approved by policy: {grant.id} now ends "
            f"{when(grant.expires_at)}.",
            [to_channel(request, alert, "alert")],
            done,
        )
    return Outcome(
        f"Extension {request.id} was approved by policy but not applied: "
        f"{inert(done.last_error if done else '')}",
        [n for n in result.notices if n.audience == "channel"],
        done,
    )


@outcome.register
def _auto_granted(result: AutoGranted) -> Outcome:
    request = result.request
    if request.status is Status.ACTIVE:
        alert = (
            f"BREAK-GLASS: {who(request.requester)} got {request.resource} for "
            f"{format_duration(request.duration)} (until {when(request.expires_at)}), "
            f"reason: {inert(request.reason)}. Approved by policy: "
            f"{inert(request.decision_note)}. Request {request.id}; end it with "
            f"`!access revoke {request.id}`. An approver must review it: "
            f"`!access ack {request.id} [note]`."
        )
        reply = (
            f"Request {request.id} approved by policy ({inert(request.decision_note)}): "
            f"you have {request.resource} until {when(request.expires_at)}. "
            f"End it early with `!access revoke {request.id}`."
        )
        return Outcome(reply, [to_channel(request, alert, "alert")], request)
    if request.status is Status.APPROVED:
        return Outcome(
            f"Request {request.id} was approved by policy, but the bot could not record "
            "the grant, so it took it back; you get it as soon as the bot's disk can be "
            "written. The approvers were told.",
            result.notices,
            request,
        )
    return Outcome(
        f"Request {request.id} was approved by policy, but the grant failed: "
        f"{inert(request.last_error)}. The approvers in {request.channel} were told.",
        [n for n in result.notices if n.audience == "channel"],
        request,
    )


@outcome.register
def _approval_counted(result: ApprovalCounted) -> Outcome:
    request = result.request
    left = request.approvals_required - len(request.approvals)
    reply = (
        f"Your approval of {request.id} is recorded "
        f"({len(request.approvals)} of {request.approvals_required}); "
        f"it needs {left} more."
    )
    return Outcome(reply, [card(request)], request)


@outcome.register
def _approved(result: Approved) -> Outcome:
    request = result.request
    if request.extends:
        reply = _extension_approved(request, result.grant)
    elif result.unrecorded:
        reply = (
            f"Your approval of {request.id} is recorded: it is approved. The bot's "
            f"database stopped answering while the grant was made ({inert(result.unrecorded)}); "
            "the bot finishes the grant as soon as it answers again. Nothing more to do "
            "for you."
        )
    else:
        reply = _grant_approved(request)
    return Outcome(reply, result.notices, request)


def _extension_approved(request: Request, grant: Request | None) -> str:
    if request.status is Status.EXTENDED:
        return (
            f"Approved {request.id}: {who(request.requester)}'s grant {grant.id} on "
            f"{request.resource} now ends {when(grant.expires_at)}."
        )
    return f"Approved {request.id}, but it was not applied: {inert(request.last_error)}"


def _grant_approved(request: Request) -> str:
    if request.status is Status.ACTIVE:
        return (
            f"Approved {request.id}: {who(request.requester)} has {request.resource} "
            f"for {format_duration(request.duration)}, until {when(request.expires_at)}."
        )
    if request.status is Status.APPROVED:
        return (
            f"Your approval of {request.id} is recorded: it is approved. But the bot could "
            "not record the grant, so it took the access back at once; it grants it as "
            "soon as its audit log and store can be written. Nothing more to do for you; "
            "an admin must check the bot's disk."
        )
    return (
        f"Approved {request.id}, but the grant failed: {inert(request.last_error)}. "
        f"{who(request.requester)} was told; they can request again once it is fixed."
    )


@outcome.register
def _denied(result: Denied) -> Outcome:
    request, by, because = result.request, who(result.by), _because(result.reason)
    if request.extends:
        return _extension_denied(result)
    notices = [
        to_requester(
            request,
            f"Your request {request.id} for {request.resource} was denied by {by}{because}.",
        ),
        to_channel(
            request,
            f"Request {request.id} ({request.resource} for {who(request.requester)}) "
            f"denied by {by}{because}.",
        ),
    ]
    reply = f"Denied {request.id}; {who(request.requester)} was told."
    return Outcome(reply + _deny_hook_failed(result), notices, request)


def _deny_hook_failed(result: Denied) -> str:
    """What the denier is told when on_deny failed: the denial stands (fail closed)."""
    if not result.hook_error:
        return ""
    return (
        f" The policy's on_deny check failed ({inert(result.hook_error, 400)}); the denial "
        "stands all the same (fail closed)."
    )


def _extension_denied(result: Denied) -> Outcome:
    """A denied extension leaves its grant as it was: say so, with the grant's end."""
    extension, by, because = result.request, who(result.by), _because(result.reason)
    grant_id = extension.extends
    stays = grant_stays(grant_id, result.grant)
    more = f"{format_duration(extension.duration)} more on grant {grant_id}"
    notices = [
        to_requester(
            extension,
            f"Your extension request {extension.id} ({more}, {extension.resource}) was "
            f"denied by {by}{because}. {stays}",
        ),
        to_channel(
            extension,
            f"Extension request {extension.id} ({more}, {extension.resource} for "
            f"{who(extension.requester)}) denied by {by}{because}. {stays}",
        ),
    ]
    return Outcome(
        f"Denied extension {extension.id}; {who(extension.requester)} was told. {stays}"
        + _deny_hook_failed(result),
        notices,
        extension,
    )


def which_to_cancel(pending: list[Request]) -> str:
    """`!access cancel` without an id, and not exactly one pending request to withdraw."""
    if not pending:
        return "You have no pending request to withdraw; `!access mine` lists yours."
    shown = ", ".join(f"{r.id} ({r.resource})" for r in pending[:10])
    return (
        f"You have {len(pending)} pending requests: {shown}; say which: "
        f"`!access cancel {pending[0].id}`."
    )


@outcome.register
def _withdrawn(result: Withdrawn) -> Outcome:
    """Approving an extension whose grant ended: it was withdrawn (now or before)."""
    request = result.request
    why = withdrawn_extension(request) or f"{WITHDRAWN}{request.extends} has ended"
    return Outcome(withdrawn_reply(request, why), result.notices, request)


def withdrawn_reply(extension: Request, why: str) -> str:
    """To an approver of an extension withdrawn with its grant (`why`: its cancel note)."""
    return (
        f"Extension request {extension.id} was {why}; nothing to approve or deny. Still "
        f"needed? {who(extension.requester)} asks afresh with "
        f"`!access request {extension.resource} <duration> <reason>`."
    )


@outcome.register
def _cancelled(result: Cancelled) -> Outcome:
    request = result.request
    notice = to_channel(
        request,
        f"Request {request.id} ({request.resource} for {who(request.requester)}) "
        "was cancelled by the requester; nothing to approve.",
    )
    return Outcome(f"Cancelled {request.id}.", [notice], request)


def not_yours_to_cancel(request: Request, approver: bool, admin: bool) -> str:
    """Someone else's request: what this person can do about it, in its state."""
    if request.holds_access and (approver or admin):
        return (
            f"{request.id} is an active grant, not a pending request; end it with "
            f"`!access revoke {request.id}`."
        )
    only = f"Only the requester, {who(request.requester)}, can cancel {request.id}"
    if request.holds_access:
        return (
            f"{only}; it is an active grant, which only {who(request.requester)}, "
            f"the approvers of {request.resource} or an admin can end."
        )
    if request.status is Status.PENDING and approver:
        return f"{only}; as an approver you can deny it: `!deny {request.id} <reason>`."
    return f"{only}."


@outcome.register
def _revoked(result: Revoked) -> Outcome:
    request = result.request
    if request.status is Status.REVOKED:
        reply = f"Revoked {request.id}: {who(request.requester)} no longer has {request.resource}."
    else:
        reply = (
            f"The revoke of {request.id} failed: {inert(request.last_error)}. "
            f"It is retried automatically (next at {when(request.next_retry_at)})."
        )
    return Outcome(reply, result.notices, request)


@outcome.register
def _retried(result: Retried) -> Outcome:
    request = result.request
    if request.holds_access:
        reply = (
            f"The retry of {request.id} failed again (attempt {request.revoke_attempts}): "
            f"{inert(request.last_error)}. Next automatic retry at "
            f"{when(request.next_retry_at)}."
        )
    else:
        reply = (
            f"Retried {request.id}: the revoke worked; {who(request.requester)} no "
            f"longer has {request.resource}."
        )
    return Outcome(reply, result.notices, request)


@outcome.register
def _acknowledged(result: Acknowledged) -> Outcome:
    request, by = result.request, who(result.by)
    notice = to_channel(
        request,
        f"Break-glass grant {request.id} ({request.resource} for "
        f"{who(request.requester)}) was reviewed by {by}{_because(result.note)}.",
    )
    return Outcome(
        f"Acknowledged break-glass grant {request.id} ({request.resource} for "
        f"{who(request.requester)}). Thank you.",
        [notice],
        request,
    )


# -- the scheduler's notices (housekeeping) ------------------------------------------------


def timed_out(request: Request, waited: str, ask_again: str) -> list[Notice]:
    return [
        to_requester(
            request,
            f"Your request {request.id} for {request.resource} timed out after {waited} "
            f"without a decision. Ask again with {ask_again}.",
        ),
        to_channel(
            request,
            f"Request {request.id} ({request.resource} for {who(request.requester)}) "
            f"timed out after {waited}; it can no longer be approved.",
        ),
    ]


def nudge(request: Request, waited: str) -> Notice:
    text = f"Reminder: request {request.id} has waited {waited} for a decision.\n" + card_body(
        request
    )
    return to_channel(request, text, "card")


def expiry_reminder(request: Request, left: str) -> Notice:
    return to_requester(
        request,
        f"Your access to {request.resource} (grant {request.id}) ends in {left}, at "
        f"{when(request.expires_at)}. Need more time? "
        f"`!access extend {request.id} {format_duration(request.duration)} <reason>`. "
        f"Done already? `!access revoke {request.id}`.",
    )


def escalation_notices(request: Request, why: str, before: str, after: str) -> list[Notice]:
    """The escalated request's card in its (new) channel, and a word in the old one."""
    text = escalated(request, why)
    if request.channel == before:
        return [to_channel(request, text)]
    return [
        to_channel(request, text, "card"),
        Notice("channel", before, escalated_away(request, before, after), None),
    ]


def database_not_answering() -> str:
    """A command's answer while the database does not answer (within ACCESS_DB_COMMAND_WAIT).
    It names no host, port, user or database: the caller logs the error, for admins."""
    return (
        "The bot's database is not answering, so nothing was decided. "
        "Try again in a minute; an admin has the details in the bot's log."
    )


def database_lost() -> str:
    """The admins' alert; the database and the error are in the bot's log, not in chat."""
    return (
        "Access bot: the scheduler cannot reach its database (the bot's log says which and "
        "why). Until it is back, a bot that cannot reach it revokes, grants and times out "
        "nothing (another bot that reaches it takes over), and commands answer that "
        "nothing was decided. You are told once more when it is back (once for all the "
        "bots: the one that was running the scheduler tells)."
    )


def database_back(seconds: float) -> str:
    return (
        f"Access bot: the scheduler reaches its database again (it was away about "
        f"{seconds:.0f}s); what came due meanwhile is revoked first."
    )


# -- the strategy calls' notices (provisioner.py) -------------------------------------------


def granted(request: Request) -> list[Notice]:
    """The grant was made: the requester's DM and the channel's line."""
    by = (
        ", ".join(who(h) for h in request.decided_by.split(", ") if h)
        if request.decided_by and request.decided_by != "policy"
        else "policy"
    )
    until = when(request.expires_at)
    return [
        to_requester(
            request,
            f"Your request {request.id} was approved by {by}: you have {request.resource} for "
            f"{format_duration(request.duration)}, until {until}.{links_sentence(request)} "
            f"End it early with `!access revoke {request.id}`.",
        ),
        to_channel(
            request,
            f"Request {request.id} approved by {by}: {who(request.requester)} has "
            f"{request.resource} until {until}.",
        ),
    ]


def grant_failed(request: Request, ask_again: str) -> list[Notice]:
    """The target refused the grant (`request.last_error`): nothing was granted."""
    error = inert(request.last_error)
    return [
        to_requester(
            request,
            f"Your request {request.id} for {request.resource} was approved, but the grant "
            f"failed: {error}. Nothing was granted. Ask again with {ask_again} once the "
            "approvers have looked at it.",
        ),
        to_channel(
            request,
            f"GRANT FAILED for request {request.id} ({request.resource} for "
            f"{who(request.requester)}): {error}. Nothing was granted.",
            "alert",
        ),
    ]


def taken_back(request: Request, why: str) -> list[Notice]:
    """The target granted but the bot could not record it, so it took the grant back."""
    text = (
        f"Request {request.id} ({request.resource} for {who(request.requester)}) is "
        f"approved, but the bot could not record the grant ({inert(why)}), so it "
        "took it back at once. It grants it again as soon as the audit log and the store "
        "can be written; an admin must check the bot's disk."
    )
    return [to_channel(request, text, "alert"), to_requester(request, text)]


LINK_CHECK = "link-check"  # who revokes a grant whose ticket or incident closed


def link_closed_text(request: Request) -> str:
    """`OPS-12 moved to Done` for each closed link of the request."""
    return (
        "; ".join(
            f"{inert(str(link.get('key', name)), 80)} moved to {inert(str(link['closed']), 40)}"
            for name, link in request.links.items()
            if link.get("closed")
        )
        or "its ticket closed"
    )


def sessions_said(request: Request) -> str:
    """What became of sessions opened with the access before its revoke (as its strategy
    declared, `Request.sessions`), as a sentence to append with its leading space; "" for
    a grant ended before this was recorded."""
    return sessions_sentence(request.sessions)


def sessions_sentence(said) -> str:
    """`sessions_said` for a recorded statement (the grant's, or a revoke's audit event)."""
    if not isinstance(said, dict):
        return ""
    what = inert(str(said.get("what") or "sessions"), 120)
    what = what[:1].upper() + what[1:]
    fate = said.get("fate")
    if fate == "ended":
        return f" {what} opened before: ended."
    if fate == "may_last" and said.get("until"):
        try:
            until = when(from_iso(str(said["until"])))
        except ValueError:
            until = inert(str(said["until"]), 40)
        return f" {what} opened before: may last until {until}."
    return f" {what} opened before: unknown (the bot cannot end them or tell how long they last)."


def grant_ended(request: Request, actor: str) -> list[Notice]:
    """The revoke worked: the requester's DM and the channel's line (see digest.py)."""
    if request.status is Status.EXPIRED:
        user_text = (
            f"Your access to {request.resource} (request {request.id}) has expired and "
            f"was removed. Need more? `!access request {request.resource} <duration> <reason>`."
        )
        channel_text = expired_in_channel(request)
    elif actor == LINK_CHECK:
        why = link_closed_text(request)
        user_text = (
            f"Your access to {request.resource} (request {request.id}) was revoked: {why}, "
            "and this grant ends with it. Still needed? Ask again with an open one: "
            f"`!access request {request.resource} <duration> <reason>`."
        )
        channel_text = (
            f"Request {request.id}: {who(request.requester)}'s access to {request.resource} "
            f"was revoked: {why}."
        )
    else:
        user_text = f"Your access to {request.resource} (request {request.id}) was revoked" + (
            f" by {who(actor)}." if actor != request.requester else "."
        )
        channel_text = revoked_in_channel(request, actor)
    if request.status is not Status.EXPIRED and actor == LINK_CHECK:
        channel_text += sessions_said(request)
    user_text += sessions_said(request)
    return [to_requester(request, user_text), to_channel(request, channel_text)]


def revoke_failed(request: Request) -> Notice:
    """The revoke failed and is retried: the channel's alert (see digest.py)."""
    return to_channel(request, revoke_failed_in_channel(request), "alert")


def grant_gone(grant: Request) -> str:
    """Why a grant can take no more time: `was revoked by @alice`, `expired`, or `is being
    revoked (its revoke failed and is retried)`."""
    if grant.status is Status.REVOKED:
        by = next((e.actor for e in reversed(grant.history) if e.action == "revoked"), "")
        return f"was revoked by {who(by)}" if by and by not in _SYSTEM_ACTORS else "was revoked"
    if grant.status is Status.EXPIRED:
        return "expired"
    if grant.status is Status.REVOKE_FAILED:
        return "is being revoked (its revoke failed and is retried)"
    return "has ended"


WITHDRAWN = "withdrawn: grant "  # the start of a withdrawn extension's cancel note


def extension_withdrawn_note(grant: Request) -> str:
    """The history note and audit detail of an extension withdrawn with its grant."""
    return f"{WITHDRAWN}{grant.id} {grant_gone(grant)}"


def extension_void(extension: Request, grant: Request) -> list[Notice]:
    """A waiting extension request whose grant ended meanwhile: withdrawn, and both the
    requester and the approvers' channel are told."""
    gone = grant_gone(grant)
    return [
        to_channel(
            extension,
            f"Extension request {extension.id} is void and withdrawn: grant {grant.id} "
            f"{gone}. Nothing to approve.",
        ),
        to_requester(
            extension,
            f"Your extension request {extension.id} ({format_duration(extension.duration)} "
            f"more on {extension.resource}) was withdrawn: grant {grant.id} {gone}. Still "
            f"needed? Ask afresh: `!access request {extension.resource} "
            f"{format_duration(extension.duration)} <reason>`.",
        ),
    ]


def withdrawn_extension(extension: Request) -> str | None:
    """The cancel note of an extension withdrawn with its grant (None for any other)."""
    if not extension.extends or extension.status is not Status.CANCELLED:
        return None
    last = extension.history[-1] if extension.history else None
    if last and last.action == "cancelled" and last.note.startswith(WITHDRAWN):
        return last.note
    return None


def extension_not_applicable(extension: Request, ended: bool) -> str:
    """Why an approved extension cannot be applied to its grant now."""
    if ended:
        return (
            f"grant {extension.extends} had already ended; ask afresh with "
            f"`!access request {extension.resource} {format_duration(extension.duration)} <reason>`"
        )
    return f"grant {extension.extends} is being revoked right now"


def extension_refused(extension: Request) -> Notice:
    return to_requester(
        extension, f"Your extension {extension.id} was not applied: {extension.last_error}."
    )


def extension_applied(grant: Request, extension: Request) -> list[Notice]:
    """The extension's time was added at the target: the grant's new end."""
    ends = when(grant.expires_at)
    return [
        to_requester(
            grant,
            f"Your grant {grant.id} on {grant.resource} was extended by "
            f"{format_duration(extension.duration)} (extension {extension.id}): it now "
            f"ends {ends}.",
        ),
        Notice(
            "channel",
            grant.channel,
            f"Extension {extension.id} approved: {who(grant.requester)}'s grant "
            f"{grant.id} on {grant.resource} now ends {ends}.",
            extension,
        ),
    ]


def extension_failed(grant: Request, extension: Request) -> list[Notice]:
    """The target refused the extension (`extension.last_error`): the grant's end stays."""
    error = inert(extension.last_error)
    return [
        to_requester(
            grant,
            f"Your extension {extension.id} was approved, but the target refused it: "
            f"{error}. Your grant still ends {when(grant.expires_at)}.",
        ),
        Notice(
            "channel",
            grant.channel,
            f"EXTENSION FAILED for {extension.id} (grant {grant.id}): {error}.",
            extension,
            "alert",
        ),
    ]


def follow_up_notices(
    request: Request, told: list[tuple[str, str]], hook: str, failed: str | None
) -> list[Notice]:
    """What an after_grant / after_revoke hook told ("user" or "channel"), and the admins'
    notice when it `failed`."""
    notices = [
        to_requester(request, inert(text, 1000))
        if audience == "user"
        else to_channel(request, inert(text, 1000))
        for audience, text in told
    ]
    if failed is not None:
        notices.append(Notice("admins", "", follow_up_failed(request, hook, failed), request))
    return notices


# -- notices merged for a busy channel (digest.py) --------------------------------------------


def expired_in_channel(request: Request) -> str:
    """The channel's line when a grant ran out and was revoked."""
    return (
        f"Request {request.id}: {who(request.requester)}'s access to "
        f"{request.resource} expired and was revoked." + sessions_said(request)
    )


def revoked_in_channel(request: Request, actor: str) -> str:
    """The channel's line when someone revoked a grant before its end."""
    return (
        f"Request {request.id}: {who(request.requester)}'s access to "
        f"{request.resource} was revoked by {who(actor)}." + sessions_said(request)
    )


def ended_together(requests: list[Request], resource: str, revoked_by: str | None) -> str:
    """One line for many grants to `resource` that ended at once: who held them and which
    request each was, so nothing the single lines said is left out."""
    count = len(requests)
    grants = "1 grant" if count == 1 else f"{count} grants"
    held = ", ".join(f"{who(r.requester)} ({r.id})" for r in requests)
    if revoked_by is None:
        return (
            f"{grants} to {resource} expired and {'was' if count == 1 else 'were'} revoked: {held}."
        ) + _sessions_of_all(requests)
    return (
        f"{grants} to {resource} {'was' if count == 1 else 'were'} revoked by {who(revoked_by)}: "
        f"{held}." + _sessions_of_all(requests)
    )


def _sessions_of_all(requests: list[Request]) -> str:
    """`sessions_said` for many grants of one resource: each different sentence once, the
    latest "may last until" standing for the earlier ones of the same kind."""
    latest: dict[tuple, Request] = {}
    for request in requests:
        said = request.sessions if isinstance(request.sessions, dict) else {}
        key = (said.get("fate"), said.get("what"))
        if key not in latest or str(said.get("until") or "") >= str(
            (latest[key].sessions or {}).get("until") or ""
        ):
            latest[key] = request
    return "".join(dict.fromkeys(sessions_said(r) for r in latest.values()))


def revoke_failed_in_channel(request: Request) -> str:
    """The channel's alert when a revoke failed (`request.last_error`) and will be retried."""
    return (
        f"REVOKE FAILED for request {request.id} ({request.resource} for "
        f"{who(request.requester)}), attempt {request.revoke_attempts}: "
        f"{inert(request.last_error)}. Retrying at {when(request.next_retry_at)}; "
        "the access is still in place until a revoke succeeds."
    )


def revokes_failed_together(requests: list[Request], resource: str) -> str:
    """One alert for many failed revokes of `resource`: each grant, its attempt and error."""
    count = len(requests)
    grants = "1 grant" if count == 1 else f"{count} grants"
    each = "; ".join(
        f"{who(r.requester)} ({r.id}, attempt {r.revoke_attempts}: {inert(r.last_error, 120)}, "
        f"next at {when(r.next_retry_at)})"
        for r in requests
    )
    return (
        f"REVOKE FAILED for {grants} to {resource}; the access is still in place until a "
        f"revoke succeeds, and each is retried automatically: {each}."
    )


# Strategy settings that say which target a grant is on (never a secret: `*_env` keys
# only name variables, and URLs are shown without credentials).
TARGET_KEYS = (
    *("url", "org_url", "group_id", "org", "team", "repo", "group", "account_id", "argv"),
    *("role", "dsn_env"),  # postgres_role: the role, and the variable naming its database
)


def target_of(strategy: dict | None) -> str:
    """Which target a grant is on, for the admins: the strategy type and what names it."""
    if not isinstance(strategy, dict):
        return "unknown target"
    named = []
    for key in TARGET_KEYS:
        value = strategy.get(key)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if isinstance(value, str) and value:
            named.append(f"{key}={redact_url(value) if '://' in value else inert(value, 80)}")
    kind = inert(str(strategy.get("type", "?")), 40)
    return f"{kind} ({', '.join(named)})" if named else kind


def overdue_alarm(request: Request, now: datetime, grace: timedelta, under_way: bool) -> str:
    """The admins' alert, once per grant, when a grant is still not revoked `grace` after
    its end (ACCESS_OVERDUE_GRACE): which grant, which target, what the last attempt said."""
    late = format_duration(timedelta(seconds=int((now - request.expires_at).total_seconds())))
    if request.revoke_attempts:
        last = (
            f"attempt {request.revoke_attempts} failed: {inert(request.last_error)}; "
            f"next try at {when(request.next_retry_at)}"
        )
    else:
        last = "no revoke attempt has finished yet"
    if under_way:
        last += " (a revoke call is under way and has not answered)"
    return (
        f"OVERDUE: grant {request.id} ({request.resource} for {who(request.requester)}) "
        f"ended at {when(request.expires_at)} and is overdue: still not revoked {late} later "
        f"(ACCESS_OVERDUE_GRACE is {format_duration(grace)}). Target: "
        f"{target_of(request.strategy)}. Last attempt: {last}. The access may still be in "
        f"place: check the target by hand; `!access retry {request.id}` tries again now."
    )
