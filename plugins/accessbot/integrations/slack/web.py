"""The Web API calls the bot makes: post and update approval cards, reply in their
threads, ephemerals, and open or narrow the request modal."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from slack_sdk.web import WebClient

from ...domain import Request
from .cards import approval_card, card_fallback
from .modal import request_form_button, request_modal
from .mrkdwn import slack_text
from .payloads import ResourcePicked


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
