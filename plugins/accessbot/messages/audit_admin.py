"""`!access audit`, and what the admins are told: undeliverable notices, the database
gone and back, grants overdue for their revoke (with the target they are on)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain import Request, format_duration
from ..safe_text import inert, redact_url
from .basics import when, who


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


def audit_events(records: list[dict]) -> str:
    """`!access audit`: the matching events, newest last."""
    if not records:
        return "No audit events match."
    return f"Audit events (newest last, {len(records)} shown):\n" + "\n".join(
        f"- {audit_line(r)}" for r in records
    )


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
