"""Slack's side of the access bot: Block Kit cards and the request modal, decoding of
button clicks and modal submissions into plain data, request signature checks, and who a
Slack user is (`users.info`, cached).

An adapter: it speaks Slack and hands back plain data. It never calls the service; the
plugin passes a decoded click to the same service methods as `!approve` / `!deny`.

One module a concern: `mrkdwn` (escaping), `ids` (the action and block ids), `cards`
(the approval card), `modal` (the request form), `payloads` (decoding what Slack sends),
`signing` (request signatures), `directory` (users.info), `web` (the Web API calls),
`certify` (an access certification's pages with Keep / Remove buttons, and their clicks).
This package re-exports the names the plugin and the tests use.
"""

from .cards import SECTION_FIELDS, approval_card, card_fallback, outcome_text
from .certify import KEEP as CERTIFY_KEEP
from .certify import NOTE_BLOCK as CERTIFY_NOTE_BLOCK
from .certify import NOTE_MODAL as CERTIFY_NOTE_MODAL
from .certify import REMOVE as CERTIFY_REMOVE
from .certify import (
    CertifyClick,
    CertifySubmission,
    certification_page,
    certify_click,
    certify_submission,
    note_modal,
    page_count,
    page_of,
)
from .directory import NOT_CONFIRMED, SlackDirectory, SlackLookupError, SlackUser
from .ids import (
    APPROVE,
    DENY,
    DURATION_BLOCK,
    OPEN_FORM,
    PICK_RESOURCE,
    REASON_BLOCK,
    REQUEST_MODAL,
    RESOURCE_BLOCK,
)
from .modal import (
    DURATION_CHOICES,
    duration_choices,
    field_error,
    modal_errors,
    request_form_button,
    request_modal,
)
from .mrkdwn import escape, mention, slack_text, user_text
from .payloads import (
    Click,
    Interaction,
    InteractionError,
    OpenForm,
    RequestSubmission,
    ResourcePicked,
    check_event_body,
    decode_form,
    parse_interaction,
)
from .signing import SIGNATURE_WINDOW, RequestVerifier, SignatureError
from .web import CardRef, SlackCards, channel_of

__all__ = [
    "APPROVE",
    "DENY",
    "DURATION_BLOCK",
    "DURATION_CHOICES",
    "NOT_CONFIRMED",
    "OPEN_FORM",
    "PICK_RESOURCE",
    "REASON_BLOCK",
    "REQUEST_MODAL",
    "RESOURCE_BLOCK",
    "SECTION_FIELDS",
    "SIGNATURE_WINDOW",
    "CERTIFY_KEEP",
    "CERTIFY_NOTE_BLOCK",
    "CERTIFY_NOTE_MODAL",
    "CERTIFY_REMOVE",
    "CardRef",
    "CertifyClick",
    "CertifySubmission",
    "Click",
    "Interaction",
    "InteractionError",
    "OpenForm",
    "RequestSubmission",
    "RequestVerifier",
    "ResourcePicked",
    "SignatureError",
    "SlackCards",
    "SlackDirectory",
    "SlackLookupError",
    "SlackUser",
    "approval_card",
    "card_fallback",
    "certification_page",
    "certify_click",
    "certify_submission",
    "channel_of",
    "check_event_body",
    "decode_form",
    "duration_choices",
    "escape",
    "field_error",
    "mention",
    "modal_errors",
    "note_modal",
    "outcome_text",
    "page_count",
    "page_of",
    "parse_interaction",
    "request_form_button",
    "request_modal",
    "slack_text",
    "user_text",
]
