"""Merging a busy channel's notices: many "grant ended" lines for one channel become one
message, while each requester's DM and each card's update stay their own notice."""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from accessbot import messages
from accessbot.digest import Merged, merge, merge_entries, settled
from accessbot.domain import Event, Status
from accessbot.service import Notice
from tests.builders import ADMIN, a_request, build_service, person
from tests.conftest import START

CARD = {"channel": "CAPPROVALS", "ts": "1700000000.000001"}
PEOPLE = ["dave", "erin", "frank", "gina", "hank"]


def granted(service, clock, users=PEOPLE, minutes=30):
    ids = []
    for user in users:
        rid = service.request(person(user), "prod-db", timedelta(minutes=minutes), "INC-7")
        service.approve(person("alice"), rid.request.id)
        ids.append(rid.request.id)
    return ids


def ended(rid: str, user: str, status=Status.EXPIRED, by="scheduler", card=False, **fields):
    request = a_request(id=rid, requester=user, status=status, card_ref=CARD if card else None)
    request.history.append(Event(START, status.value, by))
    for name, value in fields.items():
        setattr(request, name, value)
    if status is Status.EXPIRED:
        text = messages.expired_in_channel(request)
    else:
        text = messages.revoked_in_channel(request, by)
    return Notice("channel", request.channel, text, request)


# What a webhook's revoke says of sessions opened before (issue 32): once per merged line.
UNKNOWN_SESSIONS = (
    " Sessions opened before: unknown (the bot cannot end them or tell how long they last)."
)


def texts(merged: list[Merged], audience="channel") -> list[str]:
    return [m.notice.text for m in merged if m.notice.audience == audience]


def test_grants_that_expire_in_one_tick_are_one_line_in_the_channel(tmp_path, clock, webhook):
    service = build_service(tmp_path, clock, webhook.url)
    ids = granted(service, clock)
    clock.advance(minutes=31)

    merged = merge(service.tick())

    assert texts(merged) == [
        "5 grants to prod-db expired and were revoked: "
        + ", ".join(f"@{user} ({rid})" for user, rid in zip(PEOPLE, ids, strict=True))
        + "."
        + UNKNOWN_SESSIONS
    ]  # by name, whatever order the revokes finished in


def test_each_requester_still_gets_their_own_dm(tmp_path, clock, webhook):
    service = build_service(tmp_path, clock, webhook.url)
    ids = granted(service, clock)
    clock.advance(minutes=31)
    notices = service.tick()

    merged = merge(notices)

    dms = [n for n in notices if n.audience == "user"]
    assert len(dms) == 5
    assert [m.notice for m in merged if m.notice.audience == "user"] == dms
    assert {rid for rid in ids for text in texts(merged, "user") if rid in text} == set(ids)


def test_grants_revoked_by_one_admin_are_one_line(tmp_path, clock, webhook):
    service = build_service(tmp_path, clock, webhook.url)
    ids = granted(service, clock, PEOPLE[:3])
    notices = [n for rid in ids for n in service.revoke(ADMIN, rid).notices]

    merged = merge(notices)

    assert texts(merged) == [
        "3 grants to prod-db were revoked by @admin: "
        + ", ".join(f"@{u} ({rid})" for u, rid in zip(PEOPLE, ids, strict=False))
        + "."
        + UNKNOWN_SESSIONS
    ]


def test_revokes_failing_together_are_one_alert_naming_each_error(tmp_path, clock, webhook):
    service = build_service(tmp_path, clock, webhook.url)
    ids = granted(service, clock, PEOPLE[:4])
    webhook.set_status(500)
    clock.advance(minutes=31)
    notices = service.tick()

    merged = merge(notices)

    alerts = [m.notice for m in merged if m.notice.kind == "alert"]
    [alert] = [m.notice.text for m in merged if m.notice.audience == "channel"]
    assert len([n for n in notices if n.kind == "alert"]) == 4 and alerts == []
    assert alert.startswith(
        "REVOKE FAILED for 4 grants to prod-db; the access is still in place until a revoke "
        "succeeds, and each is retried automatically: @dave ("
    )
    assert all(f"({rid}, attempt 1: " in alert for rid in ids)


def test_a_few_lines_are_left_as_they_are():
    notices = [ended("aaaaaa", "dave"), ended("bbbbbb", "erin")]

    assert merge(notices) == [Merged(notices[0], (0,)), Merged(notices[1], (1,))]


def test_each_card_is_still_updated_without_a_line_in_its_thread():
    notices = [ended(rid, user, card=True) for rid, user in [("a1", "dave"), ("b2", "erin")]]
    notices.append(ended("c3", "frank"))  # no card (break-glass, or not on Slack)

    merged = merge(notices)

    cards = [m for m in merged if m.notice.kind == "card"]
    assert [(m.notice.request.id, m.sources) for m in cards] == [("a1", (0,)), ("b2", (1,))]
    assert merged[0].notice.request is None and merged[0].sources == (0, 1, 2)


def test_lines_of_different_channels_resources_or_revokers_stay_apart():
    notices = [
        *(ended(f"a{n}", "dave") for n in range(3)),
        *(ended(f"b{n}", "dave", resource="prod-shell") for n in range(3)),
        *(ended(f"c{n}", "dave", channel="#other") for n in range(3)),
        *(ended(f"d{n}", "dave", Status.REVOKED, "alice") for n in range(3)),
        *(ended(f"e{n}", "dave", Status.REVOKED, "bob") for n in range(3)),
    ]

    assert len(texts(merge(notices))) == 5


def test_a_line_the_merge_does_not_know_goes_out_unchanged():
    odd = ended("a1", "dave")
    odd = Notice(odd.audience, odd.to, odd.text + " (and something new)", odd.request)
    notices = [odd, ended("b2", "erin"), ended("c3", "frank"), ended("d4", "gina")]

    merged = merge(notices)

    assert merged[0] == Merged(odd, (0,))
    assert texts(merged)[1].startswith("3 grants to prod-db expired")


def test_a_huge_run_is_split_into_messages_of_a_hundred_names():
    notices = [ended(f"r{n:05d}", f"user{n}") for n in range(250)]

    lines = texts(merge(notices))

    assert [line.split(" ", 1)[0] for line in lines] == ["100", "100", "50"]
    assert all(f"(r{n:05d})" in "".join(lines) for n in range(250))


def test_a_notice_is_settled_once_every_part_of_it_is_delivered():
    notices = [ended(f"r{n}", "dave", card=True) for n in range(3)]
    merged = merge(notices)  # the line (0, 1, 2), then a card update each

    assert settled(merged, [1, 2, 3]) == set()  # the line is not out yet
    assert settled(merged, [0, 1]) == {0}
    assert settled(merged, range(len(merged))) == {0, 1, 2}


# -- whatever the batch: nothing lost ------------------------------------------------------


@st.composite
def a_notice(draw):
    n = draw(st.integers(0, 10_000))
    user = draw(st.sampled_from(PEOPLE))
    kind = draw(
        st.sampled_from(["expired", "revoked", "revoke_failed", "dm", "card", "alert", "admins"])
    )
    card = draw(st.booleans())
    channel = draw(st.sampled_from(["#access-approvals", "#other"]))
    rid = f"r{n:05d}"
    if kind in ("expired", "revoked"):
        status = Status.EXPIRED if kind == "expired" else Status.REVOKED
        by = draw(st.sampled_from(["scheduler", "alice", user]))
        return ended(rid, user, status, by, card, channel=channel)
    request = a_request(id=rid, requester=user, card_ref=CARD if card else None)
    if kind == "revoke_failed":
        request.status, request.revoke_attempts, request.last_error = (
            Status.REVOKE_FAILED,
            draw(st.integers(1, 9)),
            draw(st.sampled_from(["HTTP 500", "timed out <!channel>"])),
        )
        text = messages.revoke_failed_in_channel(request)
        return Notice("channel", channel, text, request, "alert")
    if kind == "dm":
        return Notice("user", f"@{user}", f"Your access to prod-db ({rid}) has expired.", request)
    if kind == "admins":
        return Notice("admins", "", "an alert for the admins")
    return Notice("channel", channel, f"Request {rid}: news", request, kind)


def mergeable(notice: Notice) -> bool:
    """A channel's line, or a REVOKE FAILED alert."""
    if notice.audience != "channel" or notice.request is None:
        return False
    failed = notice.request.status is Status.REVOKE_FAILED
    return notice.kind == "text" or (notice.kind == "alert" and failed)


@settings(max_examples=300, deadline=None)
@given(st.lists(a_notice(), max_size=60), st.integers(1, 5))
def test_merging_loses_no_notice_and_keeps_every_dm_and_card(notices, at_least):
    merged = merge(notices, at_least)
    out = [m.notice for m in merged]

    # Every notice is delivered by something.
    assert {p for m in merged for p in m.sources} == set(range(len(notices)))
    assert settled(merged, range(len(merged))) == set(range(len(notices)))
    # Only channel lines are merged; everything else goes out as it came, in order.
    others = [p for p, n in enumerate(notices) if not mergeable(n)]
    untouched = [m.sources[0] for m in merged if m.notice is notices[m.sources[0]]]
    assert untouched == sorted(untouched)
    assert set(others) <= set(untouched)
    for position, notice in enumerate(notices):
        if notice.audience == "channel" and notice.request is not None:
            rid = notice.request.id
            # The request is named in a line of its channel, or its notice went as it was.
            carried = [m for m in merged if position in m.sources]
            assert any(
                m.notice == notice
                or (m.notice.to == notice.to and re.search(rf"\({rid}[),]", m.notice.text))
                for m in carried
            )
            if notice.request.card_ref:  # and its card is still updated
                assert any(m.notice.request is notice.request for m in carried)
    assert len(out) <= len(notices) + sum(1 for n in notices if n.request and n.request.card_ref)


# -- in the delivery workers: one channel's queued outbox entries --------------------------


def test_queued_entries_become_card_updates_then_one_line_standing_for_every_source():
    from accessbot.outbox import new_entry, notice_of

    notices = [
        ended("a1", "ann", card=True),
        ended("b2", "bob"),
        ended("c3", "cat", card=True),
        Notice("channel", "#access-approvals", "someone else's line"),
    ]
    entries = [new_entry(n, i, START) for i, n in enumerate(notices, start=1)]

    out = merge_entries(entries, notice_of)

    kinds = [(e.id, e.kind, e.merged) for e in out]
    # The unknown line as it was; the carded grants' cards updated (no thread line); one
    # line naming all three that stands for the card-less one.
    assert kinds == [(4, "text", ()), (1, "card", ()), (3, "card", ()), (2, "text", ())]
    assert out[-1].text.startswith("3 grants to prod-db expired") and out[-1].request is None
    assert {i for e in out for i in e.covers} == {1, 2, 3, 4}  # nothing left unaccounted


def test_a_batch_merge_leaves_alone_is_handed_back_as_it_was():
    from accessbot.outbox import new_entry, notice_of

    entries = [new_entry(ended(f"r{i}", f"u{i}"), i, START) for i in (1, 2)]
    assert merge_entries(entries, notice_of) is entries
