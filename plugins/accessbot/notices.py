"""What the service and the provisioner tell people besides a command's reply: a notice
for a channel, a person or the admins. The drivers (the plugin, through the outbox) deliver them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .domain import Request


@dataclass(frozen=True)
class Notice:
    audience: str  # "channel", "user", or "admins" (BOT_ADMINS; `to` is empty)
    to: str  # channel name or user address
    text: str
    request: Request | None = None
    kind: str = "text"  # "card" for an approval card, "alert" for a loud one
    # In the outbox already, written in the commit of the change it reports (see
    # UnitOfWork.announce): the drivers must not put it there again.
    stored: bool = field(default=False, compare=False)
