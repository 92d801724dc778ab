"""Slack's side of the access bot: Block Kit cards and the request modal, decoding of
button clicks and modal submissions into plain data, request signature checks, and who a
Slack user is (`users.info`, cached).

An adapter: it speaks Slack and hands back plain data. It never calls the service; the
plugin passes a decoded click to the same service methods as `!approve` / `!deny`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web import WebClient

from .. import messages
from ..domain import DurationError, Request, Status, format_duration, parse_duration
from .slack_limits import honour_rate_limits

log = logging.getLogger(__name__)

APPROVE = "access_approve"  # action_id of the Approve button; its value is the request id
DENY = "access_deny"
OPEN_FORM = "access_open_request_form"  # the button that opens the request modal
PICK_RESOURCE = "access_pick_resource"  # the modal's resource select
REQUEST_MODAL = "access_request_modal"  # callback_id of the modal
RESOURCE_BLOCK, DURATION_BLOCK, REASON_BLOCK = "resource", "duration", "reason"
DURATION_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "2d", "7d")
SIGNATURE_WINDOW = 5 * 60  # seconds; Slack's documented replay window
SECTION_FIELDS = 10  # Block Kit's most fields in one section block


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, so user text shows as text (no links, no pings)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str) -> str:
    """A bot-written chat text (markdown as errbot writes it) as Slack mrkdwn."""
    return escape(text).replace("**", "*")


def user_text(text: str, limit: int = messages.REASON_LIMIT) -> str:
    return escape(messages.inert(text, limit))


def mention(handle: str) -> str:
    return escape(messages.who(handle))


# -- the approval card ------------------------------------------------------------------


def outcome_text(request: Request) -> str:
    """One line saying where the request stands and who decided."""
    by = (
        "policy"
        if request.decided_by == "policy"
        else ", ".join(mention(h) for h in (request.decided_by or "").split(", ") if h) or "nobody"
    )
    note = f": {user_text(request.decision_note, 200)}" if request.decision_note else ""
    last = request.history[-1] if request.history else None
    status = request.status
    if status is Status.PENDING:
        if request.approvals:
            return (
                f":hourglass_flowing_sand: {len(request.approvals)} of "
                f"{request.approvals_required} approvals so far "
                f"({', '.join(mention(a.by) for a in request.approvals)})"
            )
        return ":hourglass_flowing_sand: Waiting for an approver"
    if status is Status.APPROVED:
        return f":white_check_mark: *Approved* by {by}{note}; granting now"
    if status is Status.ACTIVE:
        return (
            f":white_check_mark: *Approved* by {by}{note}; active until "
            f"{messages.when(request.expires_at)}"
        )
    if status is Status.DENIED:
        return f":no_entry: *Denied* by {by}{note}"
    if status is Status.CANCELLED:
        return ":heavy_multiplication_x: *Cancelled* by the requester"
    if status is Status.TIMED_OUT:
        return ":alarm_clock: *Timed out* without a decision"
    if status is Status.GRANT_FAILED:
        return f":warning: *Approved* by {by}, but the grant *failed*: {user_text(request.last_error, 200)}"
    if status is Status.EXPIRED:
        return (
            f":white_check_mark: Approved by {by}; *expired* at {messages.when(request.ended_at)}"
        )
    if status is Status.REVOKED:
        actor = mention(last.actor) if last else "someone"
        return f":white_check_mark: Approved by {by}; *revoked* by {actor} at {messages.when(request.ended_at)}"
    if status is Status.REVOKE_FAILED:
        return (
            f":rotating_light: Approved by {by}; the *revoke is failing* "
            f"(attempt {request.revoke_attempts}), retrying at {messages.when(request.next_retry_at)}"
        )
    return messages.STATUS_WORDS.get(status, str(status))


def card_fallback(request: Request) -> str:
    """The notification text of a card (and what clients without Block Kit show)."""
    head = messages.card_title(request)
    if request.status is Status.PENDING:
        return escape(f"{head}: `!approve {request.id}` or `!deny {request.id} <reason>`")
    return escape(f"{head}: {messages.STATUS_WORDS[request.status]}")


def approval_card(request: Request) -> list[Block]:
    """The approval card in its current state: buttons while pending, the outcome after."""
    fields = [
        MarkdownTextObject(text=f"*{escape(name)}*\n{user_text(value, 1900)}")
        for name, value in messages.card_fields(request)
        if name != "Reason"
    ]
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=messages.inert(messages.card_title(request), 150))),
        # A section holds at most SECTION_FIELDS fields: many prompt fields take several.
        *(
            SectionBlock(fields=fields[start : start + SECTION_FIELDS])
            for start in range(0, len(fields), SECTION_FIELDS)
        ),
        SectionBlock(text=MarkdownTextObject(text=f"*Reason*\n{user_text(request.reason)}")),
    ]
    notes = [n for n in request.notes if n] + (
        [f"Policy: {request.auto_decision}"] if request.auto_decision else []
    )
    if notes:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(text=f":memo: {user_text(n, 1000)}") for n in notes[:9]
                ]
            )
        )
    blocks.append(SectionBlock(text=MarkdownTextObject(text=outcome_text(request))))
    if request.status is Status.PENDING:
        blocks.append(
            ActionsBlock(
                # A new block_id per state, as Slack asks for updated messages.
                block_id=f"access:{request.id}:{len(request.approvals)}",
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Approve"),
                        action_id=APPROVE,
                        value=request.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text=PlainTextObject(text="Deny"),
                        action_id=DENY,
                        value=request.id,
                        style="danger",
                        confirm=ConfirmObject(
                            title="Deny this request?",
                            text=escape(
                                f"{messages.who(request.requester)} will be told it was "
                                f"denied. To give a reason, type `!deny {request.id} <reason>` "
                                "instead."
                            ),
                            confirm="Deny",
                            deny="Back",
                        ),
                    ),
                ],
            )
        )
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=escape(
                            f"Or type `!approve {request.id} [comment]` / "
                            f"`!deny {request.id} <reason>`"
                        )
                    )
                ]
            )
        )
    else:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"History: `!access show {request.id}`")]
            )
        )
    return blocks


# -- the request modal -------------------------------------------------------------------


def duration_choices(
    max_duration: timedelta, default: timedelta | None = None, allowed: Iterable[timedelta] = ()
) -> list[str]:
    """The usual durations up to `max_duration`, plus the max (and default) themselves;
    for a resource with fixed `durations`, exactly those."""
    allowed = sorted(set(allowed))
    if allowed:
        return [format_duration(d) for d in allowed]
    picks = {parse_duration(c) for c in DURATION_CHOICES if parse_duration(c) <= max_duration}
    picks.add(max_duration)
    if default is not None and default <= max_duration:
        picks.add(default)
    return [format_duration(d) for d in sorted(picks) if d > timedelta(0)]


def request_modal(resources: Iterable, selected: str | None = None) -> View:
    """`!access request` as a form: resource, a duration no longer than its max, a reason.

    `resources` are the policy's resources (name, description, max_duration,
    default_duration). Until one is picked the durations go up to the largest max; picking
    one (the select dispatches an action) narrows them to that resource's max.
    """
    resources = sorted(resources, key=lambda r: r.name)
    chosen = next((r for r in resources if r.name == selected), None)
    if chosen is None and len(resources) == 1:
        chosen = resources[0]
    if chosen is not None:
        durations = duration_choices(
            chosen.max_duration, chosen.default_duration, getattr(chosen, "durations", ())
        )
        initial_duration = format_duration(chosen.default_duration)
    else:
        top = max((r.max_duration for r in resources), default=timedelta(hours=1))
        durations = duration_choices(top)
        initial_duration = None
    resource_options = [
        Option(
            text=PlainTextObject(
                text=messages.inert(f"{r.name} (max {format_duration(r.max_duration)})", 75)
            ),
            value=r.name,
            description=PlainTextObject(text=messages.inert(r.description, 75))
            if r.description
            else None,
        )
        for r in resources[:100]
    ]
    initial_resource = next(
        (o for o in resource_options if chosen and o.value == chosen.name), None
    )
    duration_options = [Option(text=PlainTextObject(text=d), value=d) for d in durations]
    initial_option = next((o for o in duration_options if o.value == initial_duration), None)
    return View(
        type="modal",
        callback_id=REQUEST_MODAL,
        title=PlainTextObject(text="Request access"),
        submit=PlainTextObject(text="Request"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id=RESOURCE_BLOCK,
                label=PlainTextObject(text="Resource"),
                dispatch_action=True,
                element=StaticSelectElement(
                    action_id=PICK_RESOURCE,
                    placeholder=PlainTextObject(text="What do you need?"),
                    options=resource_options,
                    initial_option=initial_resource,
                ),
            ),
            InputBlock(
                block_id=DURATION_BLOCK,
                label=PlainTextObject(text="For how long"),
                hint=PlainTextObject(text=_duration_hint(chosen)),
                element=StaticSelectElement(
                    action_id="duration",
                    placeholder=PlainTextObject(text="Duration"),
                    options=duration_options,
                    initial_option=initial_option,
                ),
            ),
            InputBlock(
                block_id=REASON_BLOCK,
                label=PlainTextObject(text="Why"),
                element=PlainTextInputElement(
                    action_id="reason",
                    placeholder=PlainTextObject(text="e.g. fixing INC-42"),
                    max_length=messages.REASON_LIMIT,
                ),
            ),
        ],
    )


def _duration_hint(chosen) -> str:
    if chosen is None:
        return "Each resource has its own maximum (shown next to its name)"
    if getattr(chosen, "durations", ()):
        return f"{chosen.name} can be asked for {messages.durations_text(chosen.durations)}"
    return f"At most {format_duration(chosen.max_duration)} for {chosen.name}"


def request_form_button() -> list[Block]:
    """What `!access request` without arguments posts: views.open needs a click's trigger_id."""
    return [
        SectionBlock(
            text=MarkdownTextObject(
                text=escape(
                    "Fill in the form, or type `!access request <resource> [duration] <reason>`."
                )
            ),
            accessory=ButtonElement(
                text=PlainTextObject(text="Request access…"), action_id=OPEN_FORM, value="open"
            ),
        )
    ]


def field_error(message: str) -> str:
    """A message as a form field's error: plain, and short (the rest is in the DM)."""
    return messages.inert(message.replace("`", ""), 150)


def modal_errors(message: str) -> dict[str, str]:
    """A refusal from the service, placed on the form field it is about."""
    text = field_error(message)
    lowered = message.lower()
    if "unknown resource" in lowered or "no policies" in lowered:
        return {RESOURCE_BLOCK: text}
    if "duration" in lowered or "at most" in lowered:
        return {DURATION_BLOCK: text}
    return {REASON_BLOCK: text}


# -- decoding what Slack sends -------------------------------------------------------------


class InteractionError(ValueError):
    """A payload that is not shaped like Slack's; answered with 400, never acted on."""


@dataclass(frozen=True)
class Click:
    """An Approve or Deny button press on an approval card."""

    action: str  # "approve" or "deny"
    request_id: str
    user_id: str
    channel_id: str = ""
    message_ts: str = ""
    response_url: str = ""


@dataclass(frozen=True)
class OpenForm:
    """The "Request access…" button: open the modal with this trigger."""

    user_id: str
    trigger_id: str


@dataclass(frozen=True)
class ResourcePicked:
    """A resource chosen in the open modal: narrow the durations to its max."""

    user_id: str
    view_id: str
    view_hash: str
    resource: str


@dataclass(frozen=True)
class RequestSubmission:
    """The request modal, submitted. `field_errors` (block id -> message) are what the
    form itself got wrong, such as a duration that is not one; shown on the form."""

    user_id: str
    resource: str
    duration: timedelta | None
    reason: str
    field_errors: dict[str, str] = field(default_factory=dict)


Interaction = Click | OpenForm | ResourcePicked | RequestSubmission


def check_event_body(body: bytes) -> None:
    """An Events API body is a JSON object, and its `event`, if any, an object with a
    string `type`; InteractionError otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise InteractionError(f"the body is not JSON: {str(exc)[:100]}") from exc
    if not isinstance(data, dict):
        raise InteractionError("the body is not a JSON object")
    if "event" in data:
        event = _member(data, "event", dict)
        if not isinstance(event.get("type"), str):
            raise InteractionError("the event has no type")


def decode_form(body: bytes | str) -> dict:
    """The JSON `payload` field of Slack's form-encoded interactivity POST."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    values = parse_qs(body).get("payload")
    if not values:
        raise InteractionError("no payload field in the form body")
    try:
        payload = json.loads(values[0])
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise InteractionError(f"the payload is not JSON: {str(exc)[:100]}") from exc
    if not isinstance(payload, dict):
        raise InteractionError("the payload is not a JSON object")
    return payload


def _member(data: dict, key: str, kind: type):
    """`data[key]` when it is a `kind` (str, dict or list); missing or null is an empty one.

    Anything else is not a payload Slack sends: InteractionError."""
    value = data.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InteractionError(f"{key!r} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def parse_interaction(payload: dict) -> Interaction | None:
    """What a Slack interactivity payload asks for, or None when it is none of ours.

    Raises InteractionError for any payload not shaped like Slack's, whatever the JSON."""
    if not isinstance(payload, dict):
        raise InteractionError("the payload is not a JSON object")
    kind = _member(payload, "type", str)
    user_id = _member(_member(payload, "user", dict), "id", str)
    if not kind or not user_id:
        raise InteractionError("not a Slack interaction payload (no type or no user id)")
    if kind == "block_actions":
        return _block_action(payload, user_id)
    if kind == "view_submission":
        return _submission(payload, user_id)
    return None


def _block_action(payload: dict, user_id: str) -> Interaction | None:
    for action in _member(payload, "actions", list):
        if not isinstance(action, dict):
            raise InteractionError(f"an action is a {type(action).__name__}, not an object")
        action_id = _member(action, "action_id", str)
        if action_id in (APPROVE, DENY):
            container = _member(payload, "container", dict)
            return Click(
                action="approve" if action_id == APPROVE else "deny",
                request_id=_member(action, "value", str).strip().lower(),
                user_id=user_id,
                channel_id=_member(_member(payload, "channel", dict), "id", str)
                or _member(container, "channel_id", str),
                message_ts=_member(_member(payload, "message", dict), "ts", str)
                or _member(container, "message_ts", str),
                response_url=_member(payload, "response_url", str),
            )
        if action_id == OPEN_FORM and _member(payload, "trigger_id", str):
            return OpenForm(user_id, payload["trigger_id"])
        if action_id == PICK_RESOURCE and _member(payload, "view", dict):
            view = payload["view"]
            picked = _member(_member(action, "selected_option", dict), "value", str)
            return ResourcePicked(
                user_id, _member(view, "id", str), _member(view, "hash", str), picked
            )
    return None


def _submission(payload: dict, user_id: str) -> RequestSubmission | None:
    view = _member(payload, "view", dict)
    if _member(view, "callback_id", str) != REQUEST_MODAL:
        return None
    values = _member(_member(view, "state", dict), "values", dict)

    def state(block: str, action: str) -> dict:
        return _member(_member(values, block, dict), action, dict)

    def selected(block: str, action: str) -> str:
        return _member(_member(state(block, action), "selected_option", dict), "value", str)

    duration_text = selected(DURATION_BLOCK, "duration")
    duration, errors = None, {}
    if duration_text:
        try:
            duration = parse_duration(duration_text)
        except DurationError as exc:
            errors[DURATION_BLOCK] = field_error(str(exc))
    return RequestSubmission(
        user_id=user_id,
        resource=selected(RESOURCE_BLOCK, PICK_RESOURCE),
        duration=duration,
        reason=_member(state(REASON_BLOCK, "reason"), "value", str),
        field_errors=errors,
    )


# -- request signatures ---------------------------------------------------------------------


class SignatureError(Exception):
    """A call that Slack did not sign, or an old one played again: answered with 401."""


class RequestVerifier:
    """Slack's request signing (v0 HMAC of timestamp and body), its 5-minute window, and
    a memory of signatures already seen, so a captured call cannot be replayed in the window."""

    def __init__(self, signing_secret: str, clock: Clock | None = None):
        self.verifier = SignatureVerifier(signing_secret, clock or Clock())
        self.clock = self.verifier.clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, body: bytes, headers) -> None:
        headers = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            raise SignatureError("the request has no Slack signature headers")
        try:
            age = abs(self.clock.now() - int(timestamp))
        except ValueError as exc:
            raise SignatureError("the request timestamp is not a number") from exc
        if age > SIGNATURE_WINDOW:
            raise SignatureError(f"the request timestamp is {int(age)}s old (a replay?)")
        if not self.verifier.is_valid(body, timestamp, signature):
            raise SignatureError("the request signature does not match the signing secret")
        now = self.clock.now()
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if now - t <= SIGNATURE_WINDOW}
            if signature in self._seen:
                raise SignatureError("this exact request was already received (a replay?)")
            self._seen[signature] = now


# -- who a Slack user is --------------------------------------------------------------------


@dataclass(frozen=True)
class SlackUser:
    id: str
    handle: str  # the unique `name`, what `@handle` means in a policy (never a display name)
    email: str | None = None
    display_name: str = ""
    team_id: str = ""  # the user's own workspace: another one's for a Slack Connect user


class SlackLookupError(Exception):
    pass


NOT_CONFIRMED = (
    "Sorry, I could not confirm who you are with Slack, so nothing was done; try again in a moment."
)


class SlackDirectory:
    """`users.info`, cached for `ttl` seconds, so a burst of clicks costs one round trip.

    Only for the names people read: who may do what is decided by the user id, so a
    rename seen up to `ttl` late changes how someone is shown, never what they may do.
    """

    def __init__(
        self,
        client: WebClient,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = honour_rate_limits(client)  # users.info is Tier 4: a 429 waits
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, SlackUser]] = {}
        self._lock = threading.Lock()

    def user(self, user_id: str) -> SlackUser:
        if not re.fullmatch(r"[UW][A-Z0-9]{2,30}", str(user_id)):
            raise SlackLookupError(f"{user_id!r} is not a Slack user id")
        now = self.clock()
        with self._lock:
            hit = self._cache.get(user_id)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        try:
            data = self.client.users_info(user=user_id)["user"]
            if not isinstance(data, dict) or data.get("id", user_id) != user_id:
                raise KeyError("user")
        except Exception as exc:  # noqa: BLE001 - Slack's error, a timeout, a bad answer
            raise SlackLookupError(f"users.info failed for {user_id}: {exc}") from exc
        if data.get("deleted"):
            raise SlackLookupError(f"{user_id} is a deactivated Slack user")
        profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
        name = data.get("name")
        user = SlackUser(
            id=user_id,
            # The unique user name, or the id itself: never the display name, which anyone
            # can set to "alice".
            handle=name if isinstance(name, str) and name.strip() else user_id,
            email=profile.get("email") or None,
            display_name=profile.get("display_name") or "",
            team_id=str(data.get("team_id") or ""),
        )
        with self._lock:
            if len(self._cache) > 5000:
                self._cache.clear()
            self._cache[user_id] = (now, user)
        return user


# -- posting --------------------------------------------------------------------------------


def channel_of(destination: str) -> str:
    """A policy's channel as chat.postMessage takes it: `#name`, or the id in `<#C123|name>`."""
    match = re.fullmatch(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>", destination.strip())
    return match.group(1) if match else destination.strip()


@dataclass(frozen=True)
class CardRef:
    """Where a posted card is: enough to `chat.update` it and reply in its thread."""

    channel: str
    ts: str

    def to_dict(self) -> dict:
        return {"slack_channel": self.channel, "slack_ts": self.ts}

    @classmethod
    def from_dict(cls, data: dict | None) -> CardRef | None:
        if not data or not data.get("slack_channel") or not data.get("slack_ts"):
            return None
        return cls(data["slack_channel"], data["slack_ts"])


class SlackCards:
    """The Web API calls the bot makes for cards, threads, ephemerals and the modal."""

    def __init__(self, client: WebClient):
        self.client = client

    def post_card(self, channel: str, request: Request) -> CardRef:
        response = self.client.chat_postMessage(
            channel=channel, text=card_fallback(request), blocks=approval_card(request)
        )
        return CardRef(response["channel"], response["ts"])

    def update_card(self, ref: CardRef, request: Request) -> None:
        self.client.chat_update(
            channel=ref.channel,
            ts=ref.ts,
            text=card_fallback(request),
            blocks=approval_card(request),
        )

    def reply_in_thread(self, ref: CardRef, text: str, broadcast: bool = False) -> None:
        self.client.chat_postMessage(
            channel=ref.channel, thread_ts=ref.ts, text=slack_text(text), reply_broadcast=broadcast
        )

    def ephemeral(self, channel: str, user_id: str, text: str, blocks=None) -> None:
        self.client.chat_postEphemeral(
            channel=channel, user=user_id, text=slack_text(text), blocks=blocks
        )

    def offer_request_form(self, channel: str, user_id: str) -> None:
        """The "Request access…" button: only to the asker (in a DM, simply posted)."""
        text = "Request access with a form"
        if channel.startswith("D"):
            self.client.chat_postMessage(channel=channel, text=text, blocks=request_form_button())
        else:
            self.ephemeral(channel, user_id, text, request_form_button())

    def open_request_modal(self, trigger_id: str, resources: Iterable) -> None:
        self.client.views_open(trigger_id=trigger_id, view=request_modal(resources))

    def narrow_request_modal(self, picked: ResourcePicked, resources: Iterable) -> None:
        self.client.views_update(
            view_id=picked.view_id,
            hash=picked.view_hash or None,
            view=request_modal(resources, selected=picked.resource),
        )
