"""Many notices of one kind queued for one channel become one message.

When a thousand grants end in the same second, a thousand "Request x: @a's access to
prod-db expired and was revoked." lines in one channel would take a quarter of an hour at
Slack's one message a second, and nobody reads them. `merge` turns a channel's run of
such lines into one ("12 grants to prod-db expired and were revoked: @a (k3m9qx), ..."),
and a target's outage's "REVOKE FAILED" alerts into one alert, and keeps what must stay
one per person or card: each requester's DM, and each card's update (as a card-only
notice, which updates the card without a thread reply).

Pure: no chat, no clock. A line is merged only when it is exactly the text
`messages.expired_in_channel` / `revoked_in_channel` / `revoke_failed_in_channel` gives
for its request, so a notice this module does not know goes out unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from . import messages
from .domain import Request, Status
from .service import Notice

MERGE_AT = 3  # this many lines of one kind in one batch are merged
PER_MESSAGE = 100  # people named in one merged message; more go in the next one


@dataclass(frozen=True)
class Merged:
    """A notice to deliver and the positions (in the batch given to `merge`) of the
    notices it delivers, wholly or in part. A notice of the batch is delivered once
    every `Merged` naming it is."""

    notice: Notice
    sources: tuple[int, ...]


def merge(notices: Sequence[Notice], at_least: int = MERGE_AT) -> list[Merged]:
    """The notices to send for `notices`, in their order, with runs of the same kind of
    channel line merged (see the module's doc). Nothing is dropped: every position is
    in at least one `Merged`."""
    groups: dict[tuple, list[int]] = {}
    for position, notice in enumerate(notices):
        key = _mergeable(notice)
        if key is not None:
            groups.setdefault(key, []).append(position)
    merged_at: dict[int, list[Merged]] = {}  # first position of a group -> what replaces it
    replaced: set[int] = set()
    for key, positions in groups.items():
        if len(positions) < at_least:
            continue
        replaced.update(positions)
        merged_at[positions[0]] = _merged(key, positions, notices)
    out: list[Merged] = []
    for position, notice in enumerate(notices):
        out.extend(merged_at.get(position, ()))
        if position not in replaced:
            out.append(Merged(notice, (position,)))
    return out


def settled(merged: Iterable[Merged], delivered: Iterable[int]) -> set[int]:
    """Positions of the batch whose every part is delivered, given the indexes (into
    `merged`) of the `Merged` notices that were."""
    merged = list(merged)
    done = set(delivered)
    sources = {p for m in merged for p in m.sources}
    pending = {p for i, m in enumerate(merged) if i not in done for p in m.sources}
    return sources - pending


def _mergeable(notice: Notice) -> tuple | None:
    """(channel, resource, what happened) for a channel's "grant ended" line or "revoke
    failed" alert; what happened is "expired", "revoke_failed" or ("revoked", by whom)."""
    request = notice.request
    if notice.audience != "channel" or request is None:
        return None
    if notice.kind == "alert":
        failed = request.status is Status.REVOKE_FAILED
        if failed and notice.text == messages.revoke_failed_in_channel(request):
            return (notice.to, request.resource, "revoke_failed")
        return None
    if notice.kind != "text":
        return None
    if request.status is Status.EXPIRED and notice.text == messages.expired_in_channel(request):
        return (notice.to, request.resource, "expired")
    if request.status is Status.REVOKED:
        actor = _revoked_by(request)
        if actor is not None and notice.text == messages.revoked_in_channel(request, actor):
            return (notice.to, request.resource, ("revoked", actor))
    return None


def _revoked_by(request: Request) -> str | None:
    for event in reversed(request.history):
        if event.action == Status.REVOKED.value:
            return event.actor
    return None


def _merged(key: tuple, positions: list[int], notices: Sequence[Notice]) -> list[Merged]:
    """For each part of a group (a hundred at a time): the line, then its cards' updates.

    A round cut short after the line (Slack's pace) leaves the cards to go on their own
    (`delivery.Round.remaining`), so nobody is named in a second line.
    """
    channel, resource, happened = key
    out = []
    positions = sorted(positions, key=lambda p: (notices[p].request.requester, p))
    for start in range(0, len(positions), PER_MESSAGE):
        part = positions[start : start + PER_MESSAGE]
        requests = [notices[p].request for p in part]
        if happened == "revoke_failed":
            line = Notice("channel", channel, messages.revokes_failed_together(requests, resource))
        else:
            by = happened[1] if isinstance(happened, tuple) else None
            line = Notice("channel", channel, messages.ended_together(requests, resource, by))
        out.append(Merged(line, tuple(part)))
        for position in part:
            notice = notices[position]
            if notice.request.card_ref:  # the card shows it; no line in its thread
                card = Notice("channel", channel, notice.text, notice.request, "card")
                out.append(Merged(card, (position,)))
    return out


def merge_entries(entries: list, notice_of: Callable) -> list:
    """`merge` for the delivery workers: one destination's batch of outbox entries in,
    the entries to send out (`DeliveryWorkers(merge=...)`). A merged group becomes its
    cards' updates (each the source entry itself, now card-only), then one line that
    stands for the sources without a card (or, when all have one, for the first of them,
    whose update went just before). Anything `merge` leaves alone is sent as it was."""
    notices = [notice_of(entry) for entry in entries]
    parts = merge(notices)
    kept = [p for p in parts if p.notice is notices[p.sources[0]]]
    if len(kept) == len(parts):
        return entries
    cards = [p for p in parts if p not in kept and p.notice.kind == "card"]
    lines = [p for p in parts if p not in kept and p.notice.kind != "card"]
    carded = {p.sources[0] for p in cards}
    out = [entries[p.sources[0]] for p in kept]
    out += [replace(entries[p.sources[0]], kind="card") for p in cards]
    for line in lines:
        bare = [p for p in line.sources if p not in carded] or [line.sources[0]]
        out.append(
            replace(
                entries[bare[0]],
                text=line.notice.text,
                kind=line.notice.kind,
                request=None,
                merged=tuple(entries[p].id for p in bare[1:]),
            )
        )
    return out
