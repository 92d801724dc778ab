"""Access certification: the standing access a policy allows is re-confirmed on a schedule.

A resource with `"certify": {"every", "reviewers", "deadline", "on_missed"}` is reviewed
every `every`: a certification (campaign) lists who holds the resource at its target
without a live grant (the standing-access sweep's listing and rule, standing.py): members
the `standing` list allows and members nothing explains, one item each. Members holding a
live grant are not reviewed: their grant ends by itself. A target that cannot list is
named in the certification and in the report, never skipped silently.

The reviewers (the `reviewers` entries, default the resource's approvers) keep or remove
each item in chat (`!access certify keep|remove <item>`); nobody decides their own item. A
removal is made at the target through the resource's strategy, by the account id the
target listed. At the deadline undecided items follow `on_missed`: "remove" (default),
"keep" (recorded as "not reviewed"), or "escalate" (the admins may decide too, by a new
deadline; missed again, they are removed). Everything is audited
(`certification_opened`, `certification_decided`, `certification_missed`,
`certification_closed`; a failed removal is retried like a revoke, each try audited as
`certification_removal`), and the opened event carries the items, so the report and
`certify export` are built from the hash-chained log alone.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import messages as msg
from .approvers import static_members
from .audit import AuditError
from .certification_store import CertificationStore
from .domain import AccessError, Status, cut_text, from_iso, iso, new_id, retry_delay
from .notices import Notice
from .policy import CertifySettings, Resource
from .policy.lines import key_lines
from .results import Actor, Outcome
from .standing import Explainer, Finding, member_key, norm
from .store import StoreError
from .strategies import Member, SettingsError, StrategyError

log = logging.getLogger(__name__)

# Used by `!access certify start <resource>` for a resource without a `certify` key.
ON_DEMAND = CertifySettings(every=timedelta(days=90), deadline=timedelta(days=7))
GRANTED = (Status.ACTIVE, Status.EXPIRED, Status.REVOKED, Status.REVOKE_FAILED)
EVERY_STATUS = tuple(Status)
# The kind of the outbox notice whose delivery posts a certification's Slack pages (its
# text is the certification id): durable like every notice, so a crash or a refusal from
# Slack right after opening leaves the pages to post, not only the text message. Off
# Slack the text message says it all, and the notice is delivered as done.
PAGES = "certification"
CHECK_EVERY = timedelta(minutes=1)  # how often the scheduler's job looks at deadlines


@dataclass
class Item:
    """One member to keep or remove: who, since when the bot has seen them, what they
    asked for, why they are there, and (once decided) the decision and its outcome."""

    id: str
    certification: str
    resource: str
    position: int
    key: str
    user: str
    user_email: str | None
    account: str | None
    why: str  # "standing" (a `standing` entry allows them) or "unexplained"
    entry: str  # the `standing` entry, when `why` is "standing"
    first_seen: datetime
    history: str
    decision: str | None = None  # "keep", "remove", "not reviewed"
    decided_by: str = ""
    decided_at: datetime | None = None
    note: str = ""
    outcome: str = ""
    attempts: int = 0  # failed removals, retried from `next_try_at` (like a revoke)
    next_try_at: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.decision == "remove" and self.next_try_at is not None

    @property
    def member(self) -> str:
        return "@" + (self.user or self.user_email or self.account or "?")

    @property
    def reason(self) -> str:
        if self.why == "standing":
            return f"allowed by `standing` ({self.entry})"
        return "no grant or `standing` entry explains it"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["first_seen"] = iso(self.first_seen)
        data["decided_at"] = iso(self.decided_at)
        data["next_try_at"] = iso(self.next_try_at)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Item:
        values = dict(data)
        values["first_seen"] = from_iso(data["first_seen"])
        values["decided_at"] = from_iso(data.get("decided_at"))
        values["next_try_at"] = from_iso(data.get("next_try_at"))
        return cls(**values)


@dataclass
class Certification:
    """One review of one resource: opened when, by whom, the reviewers' entries, where
    it is posted, its deadline, and whether its target could be listed."""

    id: str
    resource: str
    opened_at: datetime
    opened_by: str
    deadline_at: datetime
    reviewers: list[str]
    channel: str
    on_missed: str
    deadline: float  # seconds: an escalation's new deadline is as long again
    state: str = "open"
    unlisted: str = ""
    reminded: bool = False
    escalated: bool = False
    closed_at: datetime | None = None
    retrying: bool = False  # a removal failed and is retried (even once it is closed)
    slack_pages: list = field(default_factory=list)  # where its Slack messages are

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("opened_at", "deadline_at", "closed_at"):
            data[key] = iso(getattr(self, key))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Certification:
        values = dict(data)
        for key in ("opened_at", "deadline_at", "closed_at"):
            values[key] = from_iso(data.get(key))
        return cls(**values)


@dataclass
class Opened:
    certification: Certification
    items: list[Item] = field(default_factory=list)


class Certifications:
    """The use cases: open, list, decide, and the scheduler's pass (reminders and
    deadlines). `sweep` is the standing-access sweep, whose listing and rule it reuses."""

    def __init__(
        self,
        service,
        sweep,
        store: CertificationStore,
        max_removals: int = 20,
        address: Callable[[str], str] = lambda name: name.strip().lstrip("@"),
    ):
        self.service = service
        self.sweep = sweep
        self.store = store
        self.max_removals = max_removals
        self.address = address  # a member's or reviewer's name -> where a DM to them goes
        # Told (certification id, item id or None for all) after a certification opens or
        # changes: the plugin's Slack half posts or updates its messages.
        self.on_change: Callable[[str, str | None], None] | None = None
        # One opening, deadline pass or closing at a time (a decision's closing may meet
        # the deadline's): re-entrant, as the deadline pass closes too.
        self.lock = threading.RLock()

    # -- opening ------------------------------------------------------------------------

    def start(self, actor: Actor | None, only: str | None = None, by: str = "") -> Outcome:
        """`!access certify start [resource]` (admins) and the CLI: open a certification
        of `only`, or of every resource with `certify`."""
        if actor is not None and not actor.is_admin:
            raise AccessError(
                "Only bot admins (BOT_ADMINS) can start a certification; the scheduler opens "
                "them every `certify.every` of each resource."
            )
        by = by or (f"@{actor.handle}" if actor else "cli")
        not_now = self.sweep.not_now()
        if not_now:
            raise AccessError(f"No certification can start now: {not_now}.")
        policies = self.service.policies
        if only is not None:
            resource = self.service._resource(only)
            chosen = [resource]
        else:
            chosen = [
                policies.resources[n] for n in policies.names() if policies.resources[n].certify
            ]
            if not chosen:
                raise AccessError(
                    'No resource asks for certification (policy key "certify"); name one: '
                    "`!access certify start prod-db`."
                )
        opened: list[Opened] = []
        refused: list[str] = []
        with self.lock:
            for resource in chosen:
                running = self._open_of(resource.name)
                if running is not None:
                    refused.append(
                        f"{resource.name}: certification {running.id} is still open (until "
                        f"{msg.when(running.deadline_at)})"
                    )
                    continue
                opened.append(self._open(resource, by))
        notices = [notice for o in opened for notice in opened_notices(o)]
        lines = [msg.started_line(o) for o in opened] + [f"Not opened: {r}." for r in refused]
        return Outcome("\n".join(lines), notices)

    def _changed(self, certification_id: str, item_id: str | None = None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(certification_id, item_id)
        except Exception:  # noqa: BLE001 - chat is a view; the store holds the truth
            log.exception("could not show certification %s in chat", certification_id)

    def _open(self, resource: Resource, by: str) -> Opened:
        now = self.service.clock()
        settings = resource.certify or ON_DEMAND
        certification = Certification(
            id=new_id(),
            resource=resource.name,
            opened_at=now,
            opened_by=by,
            deadline_at=now + settings.deadline,
            reviewers=list(settings.reviewers or resource.approvers),
            channel=settings.channel or resource.channel,
            on_missed=settings.on_missed,
            deadline=settings.deadline.total_seconds(),
        )
        sharing = self.sweep._sharing(resource)
        holders_before = self.sweep._holders(sharing)
        members, unlisted = self.sweep._list(resource, now)
        explainer = Explainer(
            holders_before + self.sweep._holders(sharing), self.sweep._allowed(sharing)
        )
        items: list[Item] = []
        if unlisted is not None:
            certification.unlisted = unlisted.reason
        else:
            items = self._items(certification, resource, members, explainer, now)
        event = {
            "actor": by,
            "certification": certification.id,
            "resource": resource.name,
            "reviewers": certification.reviewers,
            "deadline_at": iso(certification.deadline_at),
            "on_missed": certification.on_missed,
            "unlisted": certification.unlisted,
            "items": [_item_summary(i) for i in items],
        }
        self._append([("certification_opened", event)])
        if not items and not certification.unlisted:
            certification.state, certification.closed_at = "closed", now
        self.store.save(certification.to_dict(), [i.to_dict() for i in items])
        if certification.state == "closed":
            self._append([("certification_closed", _closed_event(certification, [], by))])
        return Opened(certification, items)

    def _items(self, certification, resource, members, explainer, now) -> list[Item]:
        seen_before = self._first_seen(resource.name)
        items, keys = [], set()
        for member in members:
            key = member_key(member)
            if key in keys:
                continue
            keys.add(key)
            why = explainer.why(member)
            if why is not None and why.startswith("grant "):
                continue  # a live grant: it ends by itself
            entry = _standing_entry(why)
            items.append(
                Item(
                    id=new_id(),
                    certification=certification.id,
                    resource=resource.name,
                    position=len(items),
                    key=key,
                    user=member.user,
                    user_email=member.user_email,
                    account=member.account,
                    why="standing" if entry else "unexplained",
                    entry=entry,
                    first_seen=seen_before.get(key, now),
                    history=self._history(member, resource.name),
                )
            )
        return items

    def _first_seen(self, resource: str) -> dict[str, datetime]:
        """Since when the bot has seen each member: the sweep's findings, and the items
        of earlier certifications of the resource."""
        seen: dict[str, datetime] = {}
        for doc in self.store.certifications():
            if doc["resource"] == resource:
                for item in self.store.items(doc["id"]):
                    at = from_iso(item["first_seen"])
                    seen[item["key"]] = min(at, seen.get(item["key"], at))
        state = self.service.store.standing().get(resource) or {}
        for finding in state.get("findings") or []:
            f = Finding.from_dict(finding)
            seen[f.key] = min(f.found_at, seen.get(f.key, f.found_at))
        return seen

    def _history(self, member: Member, resource: str) -> str:
        """Their requests and grants of the resource, as the store's indexes count them."""
        for name in (member.user, member.user_email):
            if not name:
                continue
            try:
                asked = self.service.store.history_count(norm(name), resource, EVERY_STATUS, None)
                granted = self.service.store.history_count(norm(name), resource, GRANTED, None)
            except (StoreError, AttributeError, TypeError):
                return "requests unknown"
            if asked:
                return f"{asked} request(s), {granted} granted"
        return "no requests"

    def _open_of(self, resource: str) -> Certification | None:
        for doc in self.store.certifications(open_only=True):
            if doc["resource"] == resource:
                return Certification.from_dict(doc)
        return None

    # -- reading -----------------------------------------------------------------------------

    def listing(self, actor: Actor) -> str:
        """`!access certify list`: one line per open item, beginning with its id."""
        lines, unlisted = [], []
        for certification in self._still_open():
            if not (actor.is_admin or self._reviews(actor, certification)):
                continue
            if certification.unlisted:
                unlisted.append(
                    f"- {certification.resource} (certification {certification.id}): its target "
                    f"could not be listed: {msg.inert(certification.unlisted)}"
                )
            for item in self._items_of(certification):
                if item.decision is None:
                    lines.append(msg.list_line(certification, item, self.service.clock()))
        if not lines and not unlisted:
            return "No certification items are open for you."
        head = [
            "Open certification items (`!access certify keep <item> [note]`, "
            "`!access certify remove <item> [reason]`):"
        ]
        if unlisted:
            unlisted.insert(0, "Targets that could not be listed (review them by hand):")
        return "\n".join(head + lines + unlisted)

    def _still_open(self) -> list[Certification]:
        return [Certification.from_dict(d) for d in self.store.certifications(open_only=True)]

    def _items_of(self, certification: Certification) -> list[Item]:
        return [Item.from_dict(d) for d in self.store.items(certification.id)]

    def _reviews(self, actor: Actor, certification: Certification) -> bool:
        groups = self.service.policies.groups if self.service.policies else {}
        people = static_members(certification.reviewers, groups)
        if any(self.service._names(actor, p) for p in people):
            return True
        return certification.escalated and actor.is_admin

    # -- deciding ------------------------------------------------------------------------

    def may_decide(self, actor: Actor, item_id: str) -> Item:
        """The item `actor` may decide now (Slack's note modal opens only then); AccessError
        saying why not, as `decide` would."""
        return self._decidable(actor, item_id)[1]

    def _decidable(self, actor: Actor, item_id: str) -> tuple[Certification, Item]:
        found = self.store.item(item_id)
        if found is None:
            raise AccessError(
                f"No certification item `{msg.inert(item_id, 20)}`. `!access certify list` "
                "shows the open ones, each line starting with its id."
            )
        item = Item.from_dict(found)
        stored = self.store.certification(item.certification)
        if stored is None:
            raise AccessError(f"Item {item.id} belongs to no certification; nothing was changed.")
        certification = Certification.from_dict(stored)
        if certification.state != "open":
            raise AccessError(f"Certification {certification.id} is closed; nothing was changed.")
        if not self._reviews(actor, certification):
            admins = " (and, since it was escalated, the admins)" if certification.escalated else ""
            raise AccessError(
                f"Only the reviewers of certification {certification.id} decide its items: "
                f"{msg.approvers_text(certification.reviewers)}{admins}."
            )
        if self._is_member(actor, item):
            raise AccessError(
                f"Item {item.id} is your own access to {item.resource}: another reviewer decides it."
            )
        if item.decision is not None:
            raise AccessError(msg.already_text(item))
        return certification, item

    def decide(self, actor: Actor, item_id: str, decision: str, note: str = "") -> Outcome:
        """`!access certify keep|remove <item> [note]`: the reviewers, once per item."""
        certification, item = self._decidable(actor, item_id)
        item.decision = decision
        item.decided_by = f"@{actor.handle}"
        item.decided_at = self.service.clock()
        item.note = cut_text(note.strip(), 300) if note else ""
        if not self.store.decide(item.to_dict()):
            raise AccessError(msg.already_text(Item.from_dict(self.store.item(item.id))))
        notices: list[Notice] = []
        if decision == "remove":
            notices += self._remove(certification, item)
            self._note_failure(certification, item)
        else:
            item.outcome = "kept"
        self.store.save_item(item.to_dict())
        self._append(
            [("certification_decided", _decided_event(certification, item, item.decided_by))]
        )
        notices.insert(
            0, Notice("channel", certification.channel, msg.decided_text(certification, item))
        )
        notices += self._close_if_done(certification, by=item.decided_by)
        self._changed(certification.id, item.id)
        return Outcome(msg.decided_reply(item), notices)

    def _is_member(self, actor: Actor, item: Item) -> bool:
        theirs = {norm(n) for n in (item.user, item.user_email, item.account) if n}
        mine = {norm(n) for n in (actor.handle, actor.email, actor.id) if n}
        if theirs & mine:
            return True
        try:
            return bool(item.user) and self.service._names(actor, item.user)
        except Exception:  # noqa: BLE001 - a failed lookup is not a match
            return False

    def _remove(self, certification: Certification, item: Item) -> list[Notice]:
        """Remove one member at the target by the account id it listed; the outcome goes
        on the item; the member and the channel are told."""
        resource = self.service.policies.get(item.resource) if self.service.policies else None
        if resource is None:
            item.outcome = "not removed: the resource is no longer in the policies"
            return []
        payload = {
            "action": "revoke",
            "grant_id": f"c-{item.id}",
            "request_id": None,
            "user": item.user,
            "user_email": item.user_email,
            "resource": item.resource,
            "expires_at": None,
            "reason": f"removed in access certification {certification.id}",
            "account": item.account,
        }
        try:
            self.service._strategy(resource.strategy_settings).call("revoke", payload)
        except (StrategyError, SettingsError) as exc:
            item.attempts += 1
            item.next_try_at = self.service.clock() + retry_delay(item.attempts)
            item.outcome = f"removal failed (attempt {item.attempts}): {cut_text(str(exc), 200)}"
            if item.attempts > 1:
                return []  # announced at the first failure; retried until it succeeds
            return [
                Notice(
                    "channel",
                    certification.channel,
                    f"REMOVAL FAILED of {item.member}'s access to {item.resource} "
                    f"(certification {certification.id}): {msg.inert(item.outcome, 240)}. "
                    f"The access is still in place; the bot tries again from "
                    f"{msg.when(item.next_try_at)} until it succeeds.",
                    None,
                    "alert",
                )
            ]
        account = f" (account {item.account})" if item.account else ""
        item.next_try_at = None
        item.outcome = f"removed at the target{account}"
        if item.attempts:
            item.outcome += f" after {item.attempts + 1} attempts"
        notices = []
        if item.user:
            notices.append(
                Notice(
                    "user",
                    self.address(item.user),
                    f"Your standing access to {item.resource} was removed in access "
                    f"certification {certification.id} ({item.decided_by}"
                    + (f": {msg.inert(item.note)}" if item.note else "")
                    + f"). Ask with `!access request {item.resource}` when you need it.",
                )
            )
        if item.why == "standing":
            where = self._standing_line(resource, item.entry)
            item.outcome += f"; still allowed by `standing` at {where}"
        return notices

    def _note_failure(self, certification: Certification, item: Item) -> None:
        """A failed removal marks its certification, so the job retries it."""
        if item.failing and not certification.retrying:
            certification = Certification.from_dict(self.store.certification(certification.id))
            certification.retrying = True
            self.store.save(certification.to_dict())

    def retry_removals(self) -> list[Notice]:
        """Remove again what failed to be removed, once its retry time has come; each try
        audited (`certification_removal`), success told like the first removal."""
        now = self.service.clock()
        notices: list[Notice] = []
        for doc in self.store.certifications():
            if not doc.get("retrying"):
                continue
            certification = Certification.from_dict(doc)
            items = self._items_of(certification)
            for item in items:
                if not item.failing or item.next_try_at > now:
                    continue
                notices += self._remove(certification, item)
                self.store.save_item(item.to_dict())
                event = _decided_event(certification, item, "scheduler")
                event.update(attempt=item.attempts + (0 if item.failing else 1))
                self._append([("certification_removal", event)])
                if not item.failing:
                    notices.append(
                        Notice(
                            "channel",
                            certification.channel,
                            f"Certification {certification.id} of {item.resource}, item "
                            f"{item.id}: {msg.inert(item.member, 80)} {item.outcome}.",
                        )
                    )
            if not any(i.failing for i in items):
                certification.retrying = False
                self.store.save(certification.to_dict())
        return notices

    def _standing_line(self, resource: Resource, entry: str) -> str:
        """`db.py:12`: the line of the `standing` entry that still allows a removed member."""
        path = Path(self.service.policy_dir) / resource.file
        try:
            source = path.read_text(encoding="utf-8")
        except OSError:
            return resource.file
        start = key_lines(source).get((resource.name, "standing"))
        if start is None:
            return resource.file
        lines = source.splitlines()
        for number in range(start, min(len(lines), start + 200) + 1):
            text = lines[number - 1]
            if f'"{entry}"' in text or f"'{entry}'" in text:
                return f"{resource.file}:{number}"
        return f"{resource.file}:{start}"

    def _close_if_done(self, certification: Certification, by: str) -> list[Notice]:
        with self.lock:
            items = self._items_of(certification)
            if any(i.decision is None for i in items):
                return []
            certification = Certification.from_dict(self.store.certification(certification.id))
            if certification.state != "open":
                return []
            certification.state, certification.closed_at = "closed", self.service.clock()
            # Closed once, also when two bots' last decisions meet: the write decides.
            if not self.store.close_once(certification.to_dict()):
                return []
            self._append([("certification_closed", _closed_event(certification, items, by))])
        return [
            Notice(
                "channel",
                certification.channel,
                msg.closed_text(certification, _closed_event(certification, items, "")),
            )
        ]

    # -- the scheduler's pass --------------------------------------------------------------

    def due_work(self) -> tuple[list[Notice], list[str]]:
        """Open what is due, remind at half the deadline, apply `on_missed` at it. Returns
        the notices and the alerts for the admins."""
        notices: list[Notice] = []
        alerts: list[str] = []
        if self.sweep.not_now():
            return notices, alerts
        now = self.service.clock()
        policies = self.service.policies
        due = [
            policies.resources[n]
            for n in policies.names()
            if policies.resources[n].certify and self._opening_due(policies.resources[n], now)
        ]
        with self.lock:
            for resource in due:
                notices += opened_notices(self._open(resource, "scheduler"))
            for certification in self._still_open():
                items = self._items_of(certification)
                undecided = [i for i in items if i.decision is None]
                if now >= certification.deadline_at:
                    more, alert = self._deadline(certification, undecided, now)
                    notices += more
                    alerts += [alert] if alert else []
                elif not certification.reminded and undecided and now >= _halfway(certification):
                    certification.reminded = True
                    self.store.save(certification.to_dict())
                    notices += self._reminders(certification, undecided)
            notices += self.retry_removals()
        return notices, alerts

    def _opening_due(self, resource: Resource, now: datetime) -> bool:
        last = None
        for doc in self.store.certifications():
            if doc["resource"] == resource.name:
                if doc["state"] == "open":
                    return False
                last = from_iso(doc["opened_at"])
        return last is None or now >= last + resource.certify.every

    def _reminders(self, certification: Certification, undecided: list[Item]) -> list[Notice]:
        groups = self.service.policies.groups if self.service.policies else {}
        text = (
            f"Reminder: access certification {certification.id} of {certification.resource} "
            f"has {len(undecided)} item(s) undecided; the deadline is "
            f"{msg.when(certification.deadline_at)} (then: {certification.on_missed}). "
            "`!access certify list` shows them."
        )
        people = static_members(certification.reviewers, groups)
        return [Notice("user", self.address(p), text) for p in people] + [
            Notice("channel", certification.channel, text)
        ]

    def _deadline(
        self, certification: Certification, undecided: list[Item], now: datetime
    ) -> tuple[list[Notice], str]:
        """The deadline passed: `on_missed` for each undecided item, then close."""
        notices: list[Notice] = []
        alert = ""
        how = certification.on_missed
        if how == "escalate" and not certification.escalated and undecided:
            certification.escalated = True
            certification.deadline_at = now + timedelta(seconds=certification.deadline)
            events = [
                ("certification_missed", _missed_event(certification, i, "escalated"))
                for i in undecided
            ]
            self._append(events)
            self.store.save(certification.to_dict())
            alert = msg.escalated_text(certification, undecided)
            return [Notice("channel", certification.channel, alert)], alert
        if how == "escalate":
            how = "remove"  # missed again after the escalation: what an auditor expects
        held = how == "remove" and len(undecided) > self.max_removals
        for item in undecided:
            item.decided_by, item.decided_at = "deadline", now
            item.decision = "not reviewed" if how == "keep" else "remove"
            if not self.store.decide(item.to_dict()):
                continue  # decided by someone just now
            if how == "keep":
                item.outcome = "kept (not reviewed)"
            elif held:
                item.outcome = (
                    "not removed: more removals than ACCESS_STANDING_MAX_REMOVALS "
                    f"({self.max_removals}); remove them by hand"
                )
            else:
                notices += self._remove(certification, item)
                self._note_failure(certification, item)
            self.store.save_item(item.to_dict())
            self._append(
                [("certification_missed", _missed_event(certification, item, item.outcome))]
            )
        if undecided:
            notices.append(
                Notice("channel", certification.channel, msg.missed_text(certification, undecided))
            )
        if held:
            alert = (
                f"Access certification {certification.id} of {certification.resource}: "
                f"{len(undecided)} undecided items were due for removal, more than "
                f"ACCESS_STANDING_MAX_REMOVALS ({self.max_removals}), so none was removed."
            )
        notices += self._close_if_done(certification, by="deadline")
        if undecided:
            self._changed(certification.id)
        return notices, alert

    # -- numbers ---------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(open certifications, undecided items past their deadline), for /metrics."""
        now = self.service.clock()
        open_ = self._still_open()
        late = sum(
            1
            for c in open_
            if now >= c.deadline_at
            for i in self._items_of(c)
            if i.decision is None
        )
        return len(open_), late

    def _append(self, events: list[tuple[str, dict]]) -> None:
        try:
            self.service.audit.append_many(events)
        except AuditError as exc:
            raise AccessError(f"Nothing more was done: {exc}. Tell an admin.") from exc


class CertificationJob:
    """The certifications as a scheduler job (the lease holder only): looks every
    CHECK_EVERY by the injected clock, the first time at once."""

    name = "certification"

    def __init__(
        self,
        certifications: Certifications,
        clock: Callable[[], datetime],
        deliver: Callable[[list[Notice]], None],
        tell_admins: Callable[[str], None],
    ):
        self.certifications = certifications
        self.clock = clock
        self.deliver = deliver
        self.tell_admins = tell_admins
        self.next_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.next_at is None or now >= self.next_at

    def run(self) -> None:
        self.next_at = self.clock() + CHECK_EVERY
        notices, alerts = self.certifications.due_work()
        self.deliver(notices)
        for alert in alerts:
            self.tell_admins(alert)


# -- helpers ---------------------------------------------------------------------------------


def _standing_entry(why: str | None) -> str:
    """The entry out of Explainer's "the standing list (<entry>)"; "" for none."""
    prefix = "the standing list ("
    if why and why.startswith(prefix):
        return why[len(prefix) : -1]
    return ""


def _halfway(certification: Certification) -> datetime:
    return certification.opened_at + (certification.deadline_at - certification.opened_at) / 2


def _item_summary(item: Item) -> dict:
    return {
        "item": item.id,
        "user": item.user,
        "user_email": item.user_email,
        "account": item.account,
        "why": item.why,
        "entry": item.entry,
        "first_seen": iso(item.first_seen),
        "history": item.history,
    }


def _decided_event(certification: Certification, item: Item, actor: str) -> dict:
    return {
        "actor": actor,
        "certification": certification.id,
        "resource": item.resource,
        "item": item.id,
        "user": item.user,
        "account": item.account,
        "decision": item.decision,
        "detail": item.note,
        "outcome": item.outcome,
    }


def _missed_event(certification: Certification, item: Item, outcome: str) -> dict:
    return {
        "actor": "scheduler",
        "certification": certification.id,
        "resource": item.resource,
        "item": item.id,
        "user": item.user,
        "account": item.account,
        "on_missed": certification.on_missed,
        "decision": item.decision or "escalated",
        "outcome": outcome,
    }


def _closed_event(certification: Certification, items: list[Item], actor: str) -> dict:
    return {
        "actor": actor,
        "certification": certification.id,
        "resource": certification.resource,
        "kept": sum(1 for i in items if i.decision == "keep"),
        "removed": sum(1 for i in items if i.decision == "remove"),
        "not_reviewed": sum(1 for i in items if i.decision == "not reviewed"),
    }


def opened_notices(opened: Opened) -> list[Notice]:
    """The channel's message of an opened certification, and (with items to decide) the
    notice that posts its Slack pages."""
    certification = opened.certification
    notices = [Notice("channel", certification.channel, msg.opened_text(opened), None, "alert")]
    if certification.state == "open" and opened.items:
        notices.append(Notice("channel", certification.channel, certification.id, None, PAGES))
    return notices


# -- evidence: the report's section and `certify export`, from the audit log ---------------

EXPORT_COLUMNS = (
    "certification",
    "resource",
    "opened_at",
    "opened_by",
    "reviewers",
    "deadline_at",
    "unlisted",
    "item",
    "member",
    "account",
    "why",
    "first_seen",
    "history",
    "decision",
    "decided_by",
    "decided_at",
    "note",
    "outcome",
    "closed_at",
)


def evidence(events: Iterable[dict], since: datetime | None = None) -> list[dict]:
    """Every certification opened at or after `since`, with its items and what became
    of each, as the audit events record them (one dict per certification)."""
    found: dict[str, dict] = {}
    for record in events:
        event = record.get("event", "")
        if not event.startswith("certification_"):
            continue
        cid = record.get("certification")
        if event == "certification_opened":
            at = from_iso(record.get("ts"))
            if since is not None and at is not None and at < since:
                continue
            found[cid] = {
                "certification": cid,
                "resource": record.get("resource"),
                "opened_at": record.get("ts"),
                "opened_by": record.get("actor"),
                "reviewers": list(record.get("reviewers") or []),
                "deadline_at": record.get("deadline_at"),
                "unlisted": record.get("unlisted") or "",
                "closed_at": None,
                "items": {
                    i["item"]: {
                        **i,
                        "decision": None,
                        "decided_by": "",
                        "decided_at": None,
                        "note": "",
                        "outcome": "",
                    }
                    for i in record.get("items") or []
                },
            }
            continue
        certification = found.get(cid)
        if certification is None:
            continue
        if event == "certification_closed":
            certification["closed_at"] = record.get("ts")
            continue
        item = certification["items"].get(record.get("item"))
        if item is None:
            continue
        if event == "certification_removal":  # a failed removal tried again
            item["outcome"] = record.get("outcome") or ""
        elif event == "certification_decided" or record.get("decision") != "escalated":
            item.update(
                decision=record.get("decision"),
                decided_by=record.get("actor") if event == "certification_decided" else "deadline",
                decided_at=record.get("ts"),
                note=record.get("detail") or "",
                outcome=record.get("outcome") or "",
            )
        else:
            item["outcome"] = "escalated to the admins"
    return [{**c, "items": list(c["items"].values())} for c in found.values()]


def export_rows(certifications: list[dict]) -> list[dict]:
    rows = []
    for c in certifications:
        base = {
            k: c[k]
            for k in (
                "certification",
                "resource",
                "opened_at",
                "opened_by",
                "deadline_at",
                "unlisted",
                "closed_at",
            )
        }
        base["reviewers"] = " ".join(c["reviewers"])
        if not c["items"]:
            rows.append({**base})
        for i in c["items"]:
            rows.append(
                {
                    **base,
                    "item": i["item"],
                    "member": i.get("user") or i.get("user_email") or i.get("account"),
                    "account": i.get("account") or "",
                    "why": i.get("why"),
                    "first_seen": i.get("first_seen"),
                    "history": i.get("history"),
                    "decision": i.get("decision") or "",
                    "decided_by": i.get("decided_by") or "",
                    "decided_at": i.get("decided_at") or "",
                    "note": i.get("note") or "",
                    "outcome": i.get("outcome") or "",
                }
            )
    return rows


def export_text(certifications: list[dict], fmt: str) -> str:
    """`certify export`: CSV (one row per item) or JSON (one object per certification)."""
    if fmt == "json":
        return json.dumps(certifications, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in export_rows(certifications):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()
