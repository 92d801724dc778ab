"""The request modal (`!access request` as a form) and the button that opens it, and
where on the form an error is shown."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from ... import messages
from ...domain import format_duration, parse_duration
from .ids import (
    DURATION_BLOCK,
    FIELD_BLOCK,
    OPEN_FORM,
    PICK_RESOURCE,
    REASON_BLOCK,
    REQUEST_MODAL,
    RESOURCE_BLOCK,
)
from .mrkdwn import escape

DURATION_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "2d", "7d")


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
            *_field_inputs(chosen),
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


def _field_inputs(chosen) -> list[Block]:
    """The picked resource's prompt fields (`ticket`), each a text input with its help;
    a checked one says where it is looked up. Optional when one of several will do."""
    if chosen is None:
        return []
    one_of = set(getattr(chosen, "require_one_of", ()))
    inputs = []
    for spec in getattr(chosen, "fields", {}).values():
        hint = spec.help
        if spec.check:
            hint += f" (looked up in {messages.TRACKER_NAMES[spec.check['type']]}"
            hint += "; access ends when it closes)" if spec.end_with else ")"
        if spec.name in one_of:
            hint += f" ({' or '.join(sorted(one_of))}: one is needed)"
        inputs.append(
            InputBlock(
                block_id=f"{FIELD_BLOCK}{spec.name}",
                label=PlainTextObject(text=spec.name),
                optional=not spec.required or spec.name in one_of,
                hint=PlainTextObject(text=messages.inert(hint, 150)) if hint.strip() else None,
                element=PlainTextInputElement(action_id="value", max_length=200),
            )
        )
    return inputs


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


def modal_errors(
    message: str, field: str | None = None, fields: Iterable[str] = ()
) -> dict[str, str]:
    """A refusal from the service, placed on the form field it is about: the error's
    `field` (see AccessError; "fields" goes on the first prompt field the form had,
    `fields`); anything else goes under the reason."""
    block = {"resource": RESOURCE_BLOCK, "duration": DURATION_BLOCK}.get(field or "")
    if field == "fields" and fields:
        block = f"{FIELD_BLOCK}{next(iter(fields))}"
    return {block or REASON_BLOCK: field_error(message)}
