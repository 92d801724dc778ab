"""What the use cases hand back: who asked (`Actor`), what to tell whom (`Outcome`, with
the `Notice`s of notices.py), and the typed results of each command, which
`messages.outcome` turns into the texts people read. No text is written here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .domain import Request, normalize_handle
from .identity import entry_kind
from .notices import Notice


@dataclass(frozen=True)
class Actor:
    """Who typed a command: chat handle, platform user id, e-mail, and how to reach them."""

    handle: str
    id: str = ""
    email: str | None = None
    address: str = ""
    is_admin: bool = False

    def __post_init__(self):
        object.__setattr__(self, "handle", normalize_handle(self.handle))
        if not self.id:  # a backend without user ids (Text): the handle is the id
            object.__setattr__(self, "id", self.handle)

    def matches(self, entry: str) -> bool:
        """Does an approver entry (`@bob`, `bob`, `U024BE7LH`, `bob@acme.com`) name me?
        Only by its own kind: an id entry only matches my id, never my handle. For display
        and dry runs; authorisation compares the ids a request recorded (see identity.py)."""
        entry = str(entry).strip()
        kind = entry_kind(entry)
        if kind == "email":
            return bool(self.email) and entry.lower() == self.email.lower()
        if kind == "id":
            return bool(self.id) and entry == self.id
        return normalize_handle(entry) == self.handle


@dataclass
class Outcome:
    reply: str
    notices: list[Notice] = field(default_factory=list)
    request: Request | None = None


# -- typed results of the commands (rendered by messages.outcome) ----------------------


@dataclass
class Result:
    """A command's result: the request as it now stands, and the notices the strategy
    calls made on the way (already texts: the provisioner's)."""

    request: Request
    notices: list[Notice] = field(default_factory=list)
    # `notices` are final: announced in the commits of the changes they report (see
    # UnitOfWork.announce), so the reply's rendering must not make them anew.
    told: bool = False


@dataclass
class Submitted(Result):
    """A new request (or extension request) waits for the approvers."""


@dataclass
class DeniedByPolicy(Result):
    grant: Request | None = None  # for an extension: the grant it would have extended


@dataclass
class AutoGranted(Result):
    """A policy approved it (break-glass): the request as the grant left it."""


@dataclass
class AutoExtended(Result):
    """A policy approved an extension (`request`, as it was asked): `done`, the extension
    as the attempt left it, and `grant` as it now stands."""

    grant: Request | None = None
    done: Request | None = None


@dataclass
class ApprovalCounted(Result):
    """One approval of a quorum recorded; more are needed."""


@dataclass
class Approved(Result):
    """The quorum is reached; the grant (or extension) was attempted."""

    grant: Request | None = None  # for an extension: its grant
    unrecorded: str = ""  # the store stopped answering while the grant was recorded


@dataclass
class Denied(Result):
    by: str = ""
    reason: str = ""
    grant: Request | None = None  # for an extension: the grant it would have extended
    hook_error: str = ""  # on_deny failed; the denial stands all the same (fail closed)


@dataclass
class Cancelled(Result):
    pass


@dataclass
class Withdrawn(Result):
    """An extension whose grant ended (or is being revoked): withdrawn, nothing to approve
    (`notices` say so if it was withdrawn just now)."""

    grant: Request | None = None


@dataclass
class Revoked(Result):
    """A revoke was asked for and attempted (the request says whether it worked)."""


@dataclass
class Retried(Result):
    """A failed revoke was tried again (the request says whether it worked)."""


@dataclass
class Acknowledged(Result):
    by: str = ""
    note: str = ""
