"""The store at scale: live writes go to a journal, the indexes agree with a full scan,
and a crash at any step of folding the journal loses nothing."""

from __future__ import annotations

import base64
import json
import random
import shutil
from array import array
from datetime import timedelta

import pytest

from accessbot import integrity
from accessbot.domain import EVER_GRANTED, Status
from accessbot.store import StoreError, TinyDBStore
from tests.conftest import START
from tests.test_domain import make_request


def active(request_id, minutes=30, requester="carol", **overrides):
    request = make_request(
        id=request_id, requester=requester, duration=timedelta(minutes=minutes), **overrides
    )
    request.add_approval("alice", START)
    request.activate(START)
    return request


def journal_lines(tmp_path) -> int:
    path = tmp_path / "access.journal.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_a_live_write_appends_one_line_and_leaves_the_db_file_alone(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("first2"))
    store.compact()
    before = (tmp_path / "access.json").read_bytes()

    for number in range(20):
        store.save(active(f"more{number:02d}", requester=f"user{number}"))

    assert (tmp_path / "access.json").read_bytes() == before
    assert journal_lines(tmp_path) == 20
    assert len(TinyDBStore(tmp_path / "access.json").live()) == 21


def test_the_journal_is_folded_into_the_db_file_once_it_outgrows_the_live_set(tmp_path):
    store = TinyDBStore(tmp_path / "access.json", compact_after=10)
    grants = [active(f"grant{n}", requester=f"user{n}") for n in range(5)]
    for round_ in range(5):  # 25 writes of 5 live grants
        for grant in grants:
            grant.record(START, "note", "bot", f"round {round_}")
            store.save(grant)

    assert journal_lines(tmp_path) <= 10
    hot = json.loads((tmp_path / "access.json").read_text())
    assert sorted(doc["id"] for doc in hot["_default"].values()) == [f"grant{n}" for n in range(5)]
    again = TinyDBStore(tmp_path / "access.json")
    assert [len(again.get(f"grant{n}").history) for n in range(5)] == [len(grants[0].history)] * 5


def test_a_crash_between_the_new_db_file_and_emptying_the_journal_loses_nothing(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    grant = active("grant2")
    store.save(grant)
    grant.reminder_sent = True
    store.save(grant)
    store.save(make_request(id="pend22", requester="dave"))
    journal = tmp_path / "access.journal.jsonl"
    shutil.copy(journal, tmp_path / "journal.saved")
    store.compact()
    shutil.copy(tmp_path / "journal.saved", journal)  # as if the crash came before truncation

    again = TinyDBStore(tmp_path / "access.json")
    assert sorted(r.id for r in again.live()) == ["grant2", "pend22"]
    assert again.get("grant2").reminder_sent is True  # the later version, not the first


def test_a_finished_request_leaves_the_live_set_even_before_the_journal_is_folded(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    grant = active("grant2")
    store.save(grant)
    grant.move(Status.EXPIRED, START + timedelta(minutes=30), "scheduler")
    store.save(grant)  # one archive line; the journal still holds the active version

    again = TinyDBStore(tmp_path / "access.json")
    assert again.live() == []
    assert again.get("grant2").status is Status.EXPIRED
    assert again.due_for_revocation(START + timedelta(days=1)) == []


def test_a_torn_journal_tail_is_cut_so_the_next_line_is_whole(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("first2"))
    with open(tmp_path / "access.journal.jsonl", "ab") as handle:
        handle.write(b'{"id":"torn')  # a crash mid-append
    again = TinyDBStore(tmp_path / "access.json")
    again.save(active("secnd2", requester="dave"))
    assert sorted(r.id for r in TinyDBStore(tmp_path / "access.json").live()) == [
        "first2",
        "secnd2",
    ]


def test_bytes_left_by_a_failed_append_are_cut_before_the_next_one(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("first2"))
    for name in ("access.journal.jsonl", "access.archive.jsonl"):
        with open(tmp_path / name, "ab") as handle:
            handle.write(b'{"id":"half-written')  # what a write that then failed left
    store.save(active("secnd2", requester="dave"))
    done = active("third2", requester="erin")
    done.move(Status.REVOKED, START, "erin")
    store.save(done)

    again = TinyDBStore(tmp_path / "access.json")
    assert sorted(r.id for r in again.live()) == ["first2", "secnd2"]
    assert again.get("third2").status is Status.REVOKED
    assert [r.id for r in again.archived()] == ["third2"]


def test_a_damaged_journal_line_refuses_to_start_and_names_the_file(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save(active("first2"))
    store.save(active("secnd2", requester="dave"))
    journal = tmp_path / "access.journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b'{"id": "first2", "status": "act\n' + lines[1])
    with pytest.raises(StoreError, match=r"access.journal.jsonl has a damaged line at byte 0"):
        TinyDBStore(tmp_path / "access.json")


def test_save_many_writes_live_and_finished_requests_in_one_go(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    done = active("done22")
    done.move(Status.EXPIRED, START, "scheduler")
    store.save_many([active("live22"), done, make_request(id="pend22", requester="dave")])
    again = TinyDBStore(tmp_path / "access.json")
    assert sorted(r.id for r in again.live()) == ["live22", "pend22"]
    assert again.get("done22").status is Status.EXPIRED


# -- every index agrees with a scan of everything live ---------------------------------


HISTORY = {  # ctx.history's questions: (requester, resource, statuses, minutes back)
    "carol-granted-ever": ("carol", "prod-db", EVER_GRANTED, None),
    "dave-granted-hour": ("dave", "prod-db", EVER_GRANTED, 60),
    "erin-cancelled": ("erin", "prod-shell", {Status.CANCELLED}, None),
    "carol-any-hour": ("carol", "prod-shell", set(Status) - {Status.EXTENDED}, 60),
}


def scan(store, now):
    """The answers the indexes give, worked out the slow way from live() and archived()."""
    live = store.live()
    everything = live + list(store.archived())

    def ids(requests):
        return sorted(r.id for r in requests)

    def counted(who, resource, statuses, minutes):
        since = now - timedelta(minutes=minutes) if minutes is not None else None
        return sum(
            1
            for r in everything
            if r.requester == who
            and r.resource == resource
            and not r.extends
            and r.status in statuses
            and (since is None or r.created_at >= since)
        )

    return {
        "history": {name: counted(*question) for name, question in HISTORY.items()},
        "follow_ups": ids(r for r in everything if r.follow_ups_due),
        "escalate": ids(
            r
            for r in live
            if r.status is Status.PENDING and r.next_escalation_at and r.next_escalation_at <= now
        ),
        "due": ids(r for r in live if r.revoke_due_at and r.revoke_due_at <= now),
        "remind": ids(
            r
            for r in live
            if r.status is Status.ACTIVE
            and not r.reminder_sent
            and r.expires_at <= now + timedelta(minutes=10)
        ),
        "timed_out": ids(
            r
            for r in live
            if r.status is Status.PENDING and r.waits_since <= now - timedelta(minutes=30)
        ),
        "nudge": ids(
            r
            for r in live
            if r.status is Status.PENDING and r.next_nudge_at and r.next_nudge_at <= now
        ),
        "approved": ids(r for r in live if r.status is Status.APPROVED),
        "carol": ids(r for r in live if r.requester == "carol"),
        "ext": ids(r for r in live if r.extends == "base22"),
        "next": min((r.revoke_due_at for r in live if r.revoke_due_at), default=None),
    }


def indexed(store, now):
    def ids(requests):
        return sorted(r.id for r in requests)

    def counted(who, resource, statuses, minutes):
        since = now - timedelta(minutes=minutes) if minutes is not None else None
        return store.history_count(who, resource, statuses, since)

    return {
        "history": {name: counted(*question) for name, question in HISTORY.items()},
        "follow_ups": ids(store.follow_ups_due()),
        "escalate": ids(store.escalations_due(now)),
        "due": ids(store.due_for_revocation(now)),
        "remind": ids(store.expiring_unreminded(now + timedelta(minutes=10))),
        "timed_out": ids(store.pending_created_before(now - timedelta(minutes=30))),
        "nudge": ids(store.nudges_due(now)),
        "approved": ids(store.live_in([Status.APPROVED])),
        "carol": ids(store.live_of("carol")),
        "ext": ids(store.extensions_of("base22")),
        "next": store.next_revocation_at(),
    }


def check_indexes_through_random_changes(open_store, seed, count, steps, reopen_every):
    """Random requests moving through their life, with restarts (`open_store()` opens
    the same data again); after every step each index must agree with a scan."""
    rng = random.Random(seed)
    store = open_store()
    ids = [f"req{n:03d}" for n in range(count)]
    for step in range(steps):
        rid = rng.choice(ids)
        request = store.get(rid)
        at = START + timedelta(minutes=rng.randint(0, 120))
        if request is None:
            levels = rng.choice(
                [[], [], [{"after": 600.0, "approvers": ["@dave"], "channel": "#x"}]]
            )
            request = make_request(
                id=rid,
                requester=rng.choice(["carol", "dave", "erin"]),
                resource=rng.choice(["prod-db", "prod-shell"]),
                created_at=at,
                duration=timedelta(minutes=rng.choice([5, 30, 90])),
                extends=rng.choice([None, None, "base22"]),
                next_nudge_at=at + timedelta(minutes=rng.randint(1, 30)),
                escalation=levels,
                next_escalation_at=at + timedelta(minutes=10) if levels else None,
            )
        elif request.is_final:
            if not request.follow_ups_due:
                continue
            request.follow_ups_due.clear()  # the hook ran (a finished request saved again)
        elif request.status is Status.PENDING:
            choice = rng.random()
            if choice < 0.1 and request.escalation_level < len(request.escalation):
                request.escalate(at, ["@dave"], ["dave"], {}, "no decision")
            elif choice < 0.5:
                request.add_approval("alice", at)
            elif choice < 0.7:
                request.next_nudge_at = at + timedelta(minutes=rng.randint(1, 30))
            else:
                request.move(Status.CANCELLED, at, "carol")
        elif request.status is Status.APPROVED:
            request.activate(at)
            if rng.random() < 0.5:
                request.follow_ups_due.append("after_grant")
        elif request.status is Status.ACTIVE:
            choice = rng.random()
            if choice < 0.3:
                request.reminder_sent = True
            elif choice < 0.5:
                request.ending = "revoked"
            elif choice < 0.7:
                request.move(Status.REVOKE_FAILED, at, "scheduler", "500")
                request.next_retry_at = rng.choice([None, at + timedelta(minutes=2)])
            else:
                request.move(Status.EXPIRED, at, "scheduler")
                if rng.random() < 0.5:
                    request.follow_ups_due.append("after_revoke")
        elif request.status is Status.REVOKE_FAILED:
            request.move(Status.EXPIRED, at, "scheduler")
        store.save(request)
        if step % reopen_every == reopen_every - 1:
            store = open_store()  # a restart
        now = START + timedelta(minutes=rng.randint(0, 150))
        assert indexed(store, now) == scan(store, now), f"step {step}"


def test_the_indexes_give_the_same_answers_as_a_scan_through_random_changes(tmp_path):
    check_indexes_through_random_changes(
        lambda: TinyDBStore(tmp_path / "access.json", compact_after=15),
        seed=7,
        count=60,
        steps=400,
        reopen_every=20,
    )


def test_a_db_file_of_the_layout_keyed_by_request_id_is_upgraded(tmp_path):
    grant = active("old222")
    (tmp_path / "access.json").write_text(
        json.dumps({"requests": {"old222": grant.to_dict()}}, indent=2)
    )
    store = TinyDBStore(tmp_path / "access.json")
    assert [r.id for r in store.live()] == ["old222"]
    store.close()
    assert [r.id for r in TinyDBStore(tmp_path / "access.json").live()] == ["old222"]
    written = json.loads((tmp_path / "access.json").read_text())
    assert set(written.pop("_digest")["1"]) == {"sha256"}  # the digest of its content
    assert written == {"_default": {"1": grant.to_dict()}}


def test_a_damaged_or_cut_db_file_refuses_to_start_and_names_the_line(tmp_path):
    store = TinyDBStore(tmp_path / "access.json")
    store.save_many([active("first2"), active("secnd2", requester="dave")])
    store.compact()
    good = (tmp_path / "access.json").read_bytes()

    (tmp_path / "access.json").write_bytes(good.replace(b'"status":"active"', b'"status":act', 1))
    with pytest.raises(StoreError, match=r"access.json is not valid JSON \(line 3"):
        TinyDBStore(tmp_path / "access.json")  # line 1 is the digest, 2 the table's name
    second = good.index(b"\n", good.index(b"\n") + 1)
    (tmp_path / "access.json").write_bytes(good[: second + 1])  # cut short
    with pytest.raises(StoreError, match=r"not valid JSON \(line 2: the file ends early"):
        TinyDBStore(tmp_path / "access.json")


# -- the archive's index file: a cache of where each finished request is ----------------


def finished(request_id, requester="carol", **overrides):
    request = active(request_id, requester=requester, **overrides)
    request.move(Status.EXPIRED, START + timedelta(minutes=30), "scheduler")
    return request


def archive_with_index(tmp_path):
    """A store whose archive index file covers ten finished requests (one a break-glass
    grant nobody has acknowledged), then two more archived after it was written."""
    store = TinyDBStore(tmp_path / "access.json")
    store.index_archive_after = 0
    store.save_many([finished(f"old{n:03d}") for n in range(9)])
    store.save(finished("glass2", review_required=True))
    store.save(finished("owed22", follow_ups_due=["after_revoke"]))
    store.compact()  # a fold writes the index file
    store.save_many([finished("new001"), finished("new002", requester="dave")])
    store.save(finished("owed33", requester="dave", follow_ups_due=["after_revoke"]))
    store.save(active("live22"))
    return store


def answers(store):
    return {
        "ids": sorted(r.id for r in store.archived()),
        "found": {i: store.get(i).requester for i in ("old004", "glass2", "new002")},
        "exists": [store.exists(i) for i in ("old008", "new001", "nope22")],
        "review": [r.id for r in store.awaiting_review()],
        "live": [r.id for r in store.live()],
        "follow_ups": [r.id for r in store.follow_ups_due()],
        "history": [
            store.history_count(who, "prod-db", EVER_GRANTED, None) for who in ("carol", "dave")
        ],
    }


def test_a_restart_reads_the_archive_index_file_and_only_the_lines_after_it(tmp_path):
    expected = answers(archive_with_index(tmp_path))
    assert expected["review"] == ["glass2"] and expected["exists"] == [True, True, False]
    assert expected["follow_ups"] == ["owed22", "owed33"]
    assert expected["history"] == [13, 2]  # live22 is active: granted too
    assert (tmp_path / "access.archive.index.json").exists()

    again = TinyDBStore(tmp_path / "access.json")
    assert 0 < again._archive_indexed_to < (tmp_path / "access.archive.jsonl").stat().st_size
    assert answers(again) == expected
    # Acknowledging the archived break-glass grant appends it again; a restart agrees.
    glass = again.get("glass2")
    glass.reviewed_at, glass.reviewed_by = START, "alice"
    again.save(glass)
    assert answers(TinyDBStore(tmp_path / "access.json"))["review"] == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda index, archive: index.write_text("{not json"),
        lambda index, archive: index.write_text('{"covers": 5, "ids": {}}'),
        # The archive was replaced by another copy (a restore): the index does not match.
        lambda index, archive: archive.write_bytes(
            b"".join(reversed(archive.read_bytes().splitlines(keepends=True)))
        ),
        lambda index, archive: archive.write_bytes(archive.read_bytes()[:300]),
    ],
    ids=["garbage", "fields missing", "archive changed", "archive shorter"],
)
def test_an_unusable_archive_index_file_means_reading_the_whole_archive(tmp_path, spoil, caplog):
    archive_with_index(tmp_path)
    archive = tmp_path / "access.archive.jsonl"
    spoil(tmp_path / "access.archive.index.json", archive)
    (tmp_path / "access.json").unlink()  # only the archive counts in this test
    (tmp_path / "access.journal.jsonl").unlink()

    store = TinyDBStore(tmp_path / "access.json")

    assert store._archive_indexed_to == 0
    assert "reading the whole archive" in caplog.text
    on_disk = sorted({line.split('"')[3] for line in archive.read_text().splitlines()})
    assert sorted(r.id for r in store.archived()) == on_disk
    assert all(store.get(i).id == i for i in on_disk)


# -- the history index reads archive lines without parsing all of them ------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"reason": 'tricky ","status":"active","extends":null text'},
        {"requester": "zoë"},  # escaped in JSON: read the slow way, same answer
        {"grant_result": {"status": "denied", "extends": "x", "requester_id": "y"}},
        {"strategy": {"type": "webhook", "url": 'https://x/"status":"pending"'}},
        {"extends": "base22"},
    ],
    ids=["plain", "quotes in the reason", "non-ascii handle", "answer keys", "url", "extension"],
)
def test_an_archive_line_is_counted_as_its_full_parse_says(overrides):
    from accessbot.store import _history_entry

    request = finished("tricky", **overrides)
    line = json.dumps(request.to_dict(), separators=(",", ":")).encode()
    record = json.loads(line)

    expected = (
        None
        if record["extends"]
        else (record["requester"], record["resource"], START.timestamp(), Status.EXPIRED)
    )
    assert _history_entry(line) == expected


def test_history_counts_survive_a_restart_that_reads_the_whole_archive(tmp_path):
    store = archive_with_index(tmp_path)
    (tmp_path / "access.archive.index.json").unlink()  # an older bot's, or lost

    again = TinyDBStore(tmp_path / "access.json")

    assert again._archive_indexed_to == 0
    assert answers(again) == answers(store)


def test_the_history_index_is_saved_packed_and_an_older_list_form_still_loads(tmp_path):
    """Issue 28: the history index file holds packed arrays (base64), not a list of a
    number and a status word per finished request; an index an older bot wrote (lists)
    is still read, and both give the same counts."""
    expected = answers(archive_with_index(tmp_path))
    path = tmp_path / "access.archive.index.json"
    saved = json.loads(path.read_text())
    history = saved["history"]
    assert isinstance(history, dict) and history["statuses"][0] == list(Status)[0].value
    assert all(isinstance(field, str) for entry in history["entries"] for field in entry)

    again = TinyDBStore(tmp_path / "access.json")
    assert again._archive_indexed_to > 0 and answers(again) == expected
    again.close()

    # The same index as an older bot wrote it: times and status words, as lists.
    older = []
    for who, what, times, codes in history["entries"]:
        times = array("d", base64.b64decode(times))
        words = [history["statuses"][c] for c in base64.b64decode(codes)]
        older.append([who, what, list(times), words])
    saved["history"] = older
    saved.pop(integrity.LINE_KEY, None)  # sealed again, as the older bot's own save did
    path.write_text(integrity.seal_line(json.dumps(saved, separators=(",", ":"))))
    third = TinyDBStore(tmp_path / "access.json")
    assert third._archive_indexed_to > 0 and answers(third) == expected
