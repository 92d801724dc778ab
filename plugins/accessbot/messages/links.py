"""A request's fields and checked links (a ticket, an incident) as people read them."""

from __future__ import annotations

from ..domain import Request
from ..safe_text import inert, redact_url

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
