"""The store port's contract: the same behaviour from every RequestStore. Each test
here runs against the TinyDB store (files in tmp_path), the in-memory store, and
PostgreSQL when tests/pgserver.py can start a server (as in test_postgres.py). What
only the TinyDB files can get wrong is in test_store.py and test_store_indexes.py."""

from datetime import timedelta

import pytest

from accessbot.domain import EVER_GRANTED, Status
from accessbot.memory_store import MemoryStore
from accessbot.store import ConflictError, SinkCursor, TinyDBStore
from tests.conftest import START
from tests.test_domain import make_request
from tests.test_store import active


class Backend:
    """Opens the store under test, and opens it again as a restarted bot would."""

    def __init__(self, kind, tmp_path, request):
        self.kind = kind
        self.tmp_path = tmp_path
        self.request = request
        self.opened = []
        self.url = request.getfixturevalue("pg_url") if kind == "postgresql" else None

    def open(self):
        if self.kind == "tinydb":
            store = TinyDBStore(self.tmp_path / "access.json")
        elif self.kind == "memory":
            store = MemoryStore()
        else:
            from accessbot.postgres import Database, PostgresStore

            store = PostgresStore(Database(self.url, lease_seconds=5))
        self.opened.append(store)
        return store

    def reopen(self):
        if self.kind == "memory":  # what a restart finds: what was saved, no claims
            store = self.opened[-1].reopen()
            self.opened.append(store)
            return store
        for store in self.opened:
            store.close()
        return self.open()

    def close(self):
        for store in self.opened:
            store.close()


@pytest.fixture(params=["tinydb", "memory", "postgresql"])
def backend(request, tmp_path):
    opened = Backend(request.param, tmp_path, request)
    yield opened
    opened.close()


def finished(request, status=Status.REVOKED, at=START):
    request.move(status, at, "alice")
    return request


def test_saved_requests_are_there_after_reopening(backend):
    store = backend.open()
    store.save(make_request(id="pend22"))
    store.save(active("actv22"))
    again = backend.reopen()
    assert {r.id for r in again.live()} == {"pend22", "actv22"}
    assert again.get("actv22").status is Status.ACTIVE
    assert again.get("actv22").expires_at == START + timedelta(minutes=30)
    assert again.get("nope22") is None


def test_live_is_oldest_first(backend):
    store = backend.open()
    store.save(make_request(id="later2", created_at=START + timedelta(minutes=1)))
    store.save(make_request(id="first2"))
    assert [r.id for r in store.live()] == ["first2", "later2"]


def test_finished_requests_leave_live_and_are_still_found(backend):
    store = backend.open()
    request = active()
    store.save(request)
    request.move(Status.EXPIRED, START + timedelta(minutes=30), "scheduler")
    store.save(request)
    assert store.live() == []
    reopened = backend.reopen()
    assert reopened.get("abc234").status is Status.EXPIRED
    assert reopened.exists("abc234") and not reopened.exists("zzz999")
    assert [r.id for r in reopened.archived()] == ["abc234"]


def test_archived_lists_each_finished_request_once_in_its_latest_version(backend):
    store = backend.open()
    first, second = active("first2"), active("secnd2", review_required=True)
    for request in (first, second):
        store.save(request)
        store.save(finished(request))
    second.acknowledge("bob", START + timedelta(hours=1), "seen")  # saved again, archived
    store.save(second)
    archived = list(backend.reopen().archived())
    assert [r.id for r in archived] == ["first2", "secnd2"]
    assert archived[1].reviewed_by == "bob"


def test_due_for_revocation_finds_only_grants_past_their_end(backend):
    store = backend.open()
    store.save(active("short2", minutes=5))
    store.save(active("long22", minutes=60))
    store.save(make_request(id="pend22"))
    assert store.due_for_revocation(START + timedelta(minutes=4)) == []
    assert [r.id for r in store.due_for_revocation(START + timedelta(minutes=5))] == ["short2"]
    assert [r.id for r in store.due_for_revocation(START + timedelta(hours=2))] == [
        "short2",
        "long22",
    ]


def test_a_failed_revoke_is_due_again_only_at_its_retry_time(backend):
    store = backend.open()
    request = active()
    request.move(Status.REVOKE_FAILED, START + timedelta(minutes=30), "scheduler", "500")
    request.next_retry_at = START + timedelta(minutes=31)
    store.save(request)
    assert store.due_for_revocation(START + timedelta(minutes=30, seconds=30)) == []
    assert len(store.due_for_revocation(START + timedelta(minutes=31))) == 1


def test_awaiting_review_lists_unacknowledged_break_glass_grants_live_and_finished(backend):
    store = backend.open()
    ended = active("ended2", review_required=True)
    store.save(ended)
    store.save(finished(ended))
    running = active("runs22", review_required=True, created_at=START + timedelta(minutes=1))
    store.save(running)
    store.save(active("human2"))  # a person approved it: nothing to review
    acked = active("acked2", review_required=True)
    acked.acknowledge("bob", START, "fine")
    store.save(acked)
    assert [r.id for r in backend.reopen().awaiting_review()] == ["ended2", "runs22"]


def test_a_write_of_a_stale_copy_is_refused_and_changes_nothing(backend):
    store = backend.open()
    store.save(make_request(id="race22"))
    mine, theirs = store.get("race22"), store.get("race22")
    theirs.move(Status.DENIED, START, "bob", "no")
    store.save(theirs)
    mine.add_approval("alice", START)
    with pytest.raises(ConflictError, match="race22 was changed by"):
        store.save(mine)
    assert store.get("race22").status is Status.DENIED
    assert store.get("race22").version == 2


def test_a_new_request_with_a_taken_id_is_refused(backend):
    store = backend.open()
    store.save(make_request(id="same22", reason="first"))
    with pytest.raises(ConflictError):
        store.save(make_request(id="same22", reason="second"))
    assert store.get("same22").reason == "first"


def test_saving_bumps_the_version_so_the_same_copy_can_be_saved_again(backend):
    store = backend.open()
    request = make_request(id="again2")
    store.save(request)
    request.add_approval("alice", START)
    store.save(request)
    request.activate(START)
    store.save(request)
    assert request.version == 3 and store.get("again2").version == 3


def test_claims_are_taken_seen_and_handed_back(backend):
    store = backend.open()
    store.save(make_request(id="clm222"))
    claims = store.claims()
    assert "clm222" not in claims
    claims.add("clm222")
    assert "clm222" in claims
    claims.discard("clm222")
    assert "clm222" not in claims
    claims.discard("clm222")  # handing back twice is harmless


# -- the scheduler's look-ups: indexes on TinyDB, indexed columns on PostgreSQL ----------


def test_save_many_writes_live_and_finished_requests_in_one_go(backend):
    store = backend.open()
    done = active("done22")
    store.save(done)
    done.move(Status.EXPIRED, START, "scheduler")
    live, pending = active("live22"), make_request(id="pend22", requester="dave")
    store.save_many([live, done, pending])
    assert (live.version, done.version, pending.version) == (1, 2, 1)
    again = backend.reopen()
    assert sorted(r.id for r in again.live()) == ["live22", "pend22"]
    assert again.get("done22").status is Status.EXPIRED


def test_save_many_with_one_stale_copy_writes_none_of_them(backend):
    store = backend.open()
    store.save(make_request(id="taken2"))
    stale, fresh = make_request(id="taken2"), make_request(id="fresh2")
    with pytest.raises(ConflictError, match="taken2"):
        store.save_many([fresh, stale])
    assert fresh.version == 0 and not store.exists("fresh2")
    assert [r.id for r in store.live()] == ["taken2"]


def test_an_asked_for_revoke_is_due_at_once_and_a_failed_one_at_its_retry(backend):
    store = backend.open()
    assert store.next_revocation_at() is None
    asked = active("asked2", minutes=60)
    asked.ending = "revoked"
    failed = active("faild2", minutes=5, requester="dave")
    failed.move(Status.REVOKE_FAILED, START + timedelta(minutes=5), "scheduler", "500")
    failed.next_retry_at = START + timedelta(minutes=6)
    store.save_many([asked, failed, active("later2", minutes=60, requester="erin")])

    assert [r.id for r in store.due_for_revocation(START)] == ["asked2"]
    assert [r.id for r in store.due_for_revocation(START + timedelta(minutes=6))] == [
        "asked2",
        "faild2",
    ]
    assert store.next_revocation_at() < START


def test_the_look_ups_give_the_same_answers_as_a_scan_through_random_changes(backend):
    from tests.test_store_indexes import check_indexes_through_random_changes

    opened = iter([backend.open])

    def open_store():  # the first call opens, each later one is a restart
        return next(opened, backend.reopen)()

    check_indexes_through_random_changes(open_store, seed=11, count=30, steps=150, reopen_every=50)


def test_an_archived_request_is_found_in_its_latest_version_after_a_restart(backend):
    store = backend.open()
    glass = finished(active("glass2", review_required=True))
    store.save(glass)
    assert [r.id for r in store.awaiting_review()] == ["glass2"]
    glass.reviewed_at, glass.reviewed_by = START, "alice"
    store.save(glass)  # a finished request saved again
    again = backend.reopen()
    assert again.get("glass2").reviewed_by == "alice" and again.get("glass2").version == 2
    assert again.awaiting_review() == [] and again.live() == []
    assert [r.id for r in again.archived()] == ["glass2"]
    stale = again.get("glass2")
    stale.version = 1
    with pytest.raises(ConflictError, match="glass2"):
        again.save(stale)


def test_the_live_look_ups_by_requester_status_and_grant(backend):
    store = backend.open()
    grant = active("grant2")
    extension = make_request(id="exte22", extends="grant2")
    other = make_request(id="othr22", requester="dave", created_at=START + timedelta(minutes=1))
    store.save_many([grant, extension, other])
    assert [r.id for r in store.live_of("carol")] == ["exte22", "grant2"]  # by time, then id
    assert [r.id for r in store.live_in([Status.PENDING])] == ["exte22", "othr22"]
    assert [r.id for r in store.extensions_of("grant2")] == ["exte22"]
    assert store.live_counts() == {Status.ACTIVE: 1, Status.PENDING: 2}
    assert [r.id for r in store.pending_created_before(START)] == ["exte22"]
    assert store.exists("othr22") and not store.exists("nope22")


def test_history_counts_live_and_finished_requests_but_not_extensions(backend):
    store = backend.open()
    old = finished(active("old222", created_at=START - timedelta(days=40)), Status.EXPIRED)
    recent = finished(active("rcnt22"), Status.REVOKED)
    denied = finished(make_request(id="deny22"), Status.DENIED)
    live = active("live22")
    extension = finished(make_request(id="exte22", extends="live22"), Status.DENIED)
    elsewhere = active("else22", resource="prod-shell")
    store.save_many([old, recent, denied, live, extension, elsewhere])
    for restart in (False, True):
        current = backend.reopen() if restart else store
        ever = current.history_count("carol", "prod-db", EVER_GRANTED, None)
        assert ever == 3
        since = START - timedelta(days=30)
        assert current.history_count("carol", "prod-db", EVER_GRANTED, since) == 2
        assert current.history_count("carol", "prod-db", [Status.DENIED], None) == 1
        assert current.history_count("dave", "prod-db", EVER_GRANTED, None) == 0


def test_follow_ups_owed_are_found_live_and_finished(backend):
    store = backend.open()
    owed_live = active("owel22", follow_ups_due=["after_grant"])
    owed_done = finished(active("owed22", follow_ups_due=["after_revoke"]))
    store.save_many([owed_live, owed_done, active("none22")])
    again = backend.reopen()
    assert [r.id for r in again.follow_ups_due()] == ["owed22", "owel22"]  # by time, then id
    owed_done = again.get("owed22")
    owed_done.follow_ups_due = []
    again.save(owed_done)
    assert [r.id for r in again.follow_ups_due()] == ["owel22"]


def test_standing_documents_are_replaced_forgotten_and_kept_over_a_restart(backend):
    store = backend.open()
    store.save_standing("prod-db", {"findings": [{"user": "mallory"}]})
    store.save_standing("prod-shell", {"findings": []})
    store.save_standing("prod-db", {"findings": [{"user": "eve"}]})
    store.save_standing("prod-shell", None)
    copy = store.standing()
    copy["prod-db"]["findings"].clear()  # a copy: the store keeps its own
    again = backend.reopen()
    assert again.standing() == {"prod-db": {"findings": [{"user": "eve"}]}}


def test_a_sink_cursor_never_moves_back_and_is_kept_over_a_restart(backend):
    store = backend.open()
    assert store.sink_cursor("splunk") is None
    store.save_sink_cursor(SinkCursor("splunk", 12, "h12", "2026-11-24T09:00:00Z"))
    store.save_sink_cursor(SinkCursor("splunk", 7, "h7", None, "HTTP 503", "2026-11-24T10:00:00Z"))
    again = backend.reopen()
    cursor = again.sink_cursor("splunk")
    assert (cursor.seq, cursor.hash, cursor.error) == (12, "h12", "HTTP 503")
    assert again.sink_cursor("other") is None


def test_a_transaction_lets_its_exception_through(backend):
    store = backend.open()
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError("a decision that failed")
    store.save(make_request(id="aftr22"))  # the store is usable afterwards
    assert store.exists("aftr22")


def test_a_grants_checked_links_are_kept_live_and_archived(backend):
    link = {
        "field": "ticket",
        "type": "jira",
        "key": "OPS-12",
        "title": "Rotate",
        "status": "In Progress",
        "url": "https://acme.atlassian.net/browse/OPS-12",
        "assignee": "carol@acme.com",
        "open": True,
        "checked": True,
    }
    store = backend.open()
    request = active("link22", links={"ticket": dict(link)})
    store.save(request)
    assert backend.reopen().get("link22").links == {"ticket": link}
    request = backend.opened[-1].get("link22")
    request.close_link("ticket", "Done", True, START + timedelta(minutes=5))
    backend.opened[-1].save(finished(request))
    archived = list(backend.reopen().archived())
    assert archived[0].links["ticket"]["closed"] == "Done"
    assert archived[0].view().links["ticket"]["key"] == "OPS-12"
