"""Decoding what Slack sends (button clicks, modal submissions, Events API bodies) into
plain data; anything not shaped like Slack's payloads is an InteractionError."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs

from ...domain import DurationError, parse_duration
from ...errors import AccessBotError
from .ids import (
    APPROVE,
    DENY,
    DURATION_BLOCK,
    FIELD_BLOCK,
    OPEN_FORM,
    PICK_RESOURCE,
    REASON_BLOCK,
    REQUEST_MODAL,
    RESOURCE_BLOCK,
)
from .modal import field_error


class InteractionError(AccessBotError, ValueError):
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
    fields: dict[str, str] = field(default_factory=dict)  # the prompt fields filled in


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
    fields = {
        block[len(FIELD_BLOCK) :]: value.strip()
        for block in values
        if isinstance(block, str) and block.startswith(FIELD_BLOCK)
        for value in [_member(state(block, "value"), "value", str)]
        if value.strip()
    }
    return RequestSubmission(
        user_id=user_id,
        resource=selected(RESOURCE_BLOCK, PICK_RESOURCE),
        duration=duration,
        reason=_member(state(REASON_BLOCK, "reason"), "value", str),
        field_errors=errors,
        fields=fields,
    )
