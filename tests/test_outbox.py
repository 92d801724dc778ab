"""The chat outbox and its delivery workers (issue 17, item 1): every notice is written
first and sent by workers of its own, so a slow chat never delays a revocation or a
command; notices survive a restart; a notice refused for good is told to the admins once;
with two bots on PostgreSQL, one sends each notice."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from accessbot.delivery import RATE_LIMITED, Attempt
from accessbot.delivery_workers import MAX_ATTEMPTS, RETRY_FIRST, DeliveryWorkers, backoff
from accessbot.domain import Request
from accessbot.integrations import slack
from accessbot.outbox import Entry, FileOutbox, MemoryOutbox, outbox_path
from accessbot.service import Notice
from tests.conftest import START, FakeClock, access_plugin, policy_file, request_id, webhook_policy
from tests.helpers import eventually
from tests.slack_fakes import click_payload
from tests.slack_fixtures import CHANNEL, current, has_buttons, request_card
from tests.test_domain import make_request

# -- the port: MemoryOutbox, FileOutbox, PostgresOutbox ------------------------------------


@pytest.fixture(params=["memory", "file", "postgres"])
def make_outbox(request, tmp_path):
    """Open outboxes of one kind on shared state (the same file, the same database)."""
    opened = []
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None

    def open_():
        if request.param == "memory":
            box = opened[0] if opened else MemoryOutbox()
        elif request.param == "file":
            box = FileOutbox(tmp_path / "access.outbox.jsonl")
        else:
            from accessbot.postgres import Database
            from accessbot.postgres.outbox import PostgresOutbox

            box = PostgresOutbox(Database(url, lease_seconds=5))
        opened.append(box)
        return box

    yield open_
    for box in opened:
        db = getattr(box, "db", None)
        if db is not None:
            db.close()


def owner(box) -> str:
    """Who claims: on PostgreSQL a claim holds only while its bot's lease is fresh."""
    db = getattr(box, "db", None)
    return db.bot_id if db is not None else "bot-a"


def notice(to: str, text: str, request: Request | None = None, audience="channel", kind="text"):
    return Notice(audience, to, text, request, kind)


def test_entries_of_one_request_in_one_place_go_out_in_order_and_others_do_not_wait(
    make_outbox,
):
    box = make_outbox()
    carol, dave = make_request(id="carol1"), make_request(id="dave22")
    box.put(
        [
            notice("#ops", "carol's card", carol, kind="card"),
            notice("<@UCAROL>", "carol's DM", carol, audience="user"),
            notice("#ops", "carol approved", carol),
            notice("#ops", "dave's card", dave, kind="card"),
        ],
        START,
    )

    # Each destination a worker claims is busy until its batch ends, as in DeliveryWorkers.
    busy = {"channel:#ops"}
    first = box.claim(owner(box), START)
    # One destination at a time; of each request there, only the first entry.
    assert [e.text for e in first] == ["carol's card", "dave's card"]
    assert [e.text for e in box.claim(owner(box), START, busy=busy)] == ["carol's DM"]
    busy.add("user:<@UCAROL>")
    assert box.claim(owner(box), START, busy=busy) == []  # "carol approved" waits its turn

    box.retry([first[0].id], "fatal_error", START + timedelta(seconds=10))
    box.delivered([first[1].id], START)
    busy = {"user:<@UCAROL>"}  # the channel's batch is done; the DM is still going out
    assert box.claim(owner(box), START + timedelta(seconds=9), busy=busy) == []  # not due yet
    [again] = box.claim(owner(box), START + timedelta(seconds=10), busy=busy)
    assert (again.text, again.attempts, again.last_error) == ("carol's card", 1, "fatal_error")
    box.delivered([again.id], START)
    [after] = box.claim(owner(box), START, busy=busy)
    assert after.text == "carol approved"
    assert after.snapshot().id == "carol1" and after.request_id == "carol1"


def test_held_busy_and_claimed_entries_are_not_handed_out(make_outbox):
    box = make_outbox()
    [card, update, dm] = box.put(
        [
            notice("#ops", "card", make_request(id="carol1"), kind="card"),
            notice("#ops", "update", make_request(id="carol1")),
            notice("<@UDAVE>", "dm", None, audience="user"),
        ],
        START,
    )
    assert [e.text for e in box.claim(owner(box), START, held={card.id})] == ["dm"]
    sending = {dm.destination}  # a worker is sending it
    # The update waits behind the held card.
    assert box.claim(owner(box), START, held={card.id}, busy=sending) == []
    assert box.claim(owner(box), START, busy={"channel:#ops", *sending}) == []
    assert box.due(START, held={card.id}, busy=sending) is False
    assert box.due(START, busy=sending) is True
    box.release([dm.id])
    assert [e.text for e in box.claim(owner(box), START)] == ["card"]
    assert box.depth().pending == 3 and box.depth().oldest == START


def test_admin_and_alert_notices_go_ahead_of_a_users_600_queued_notices(make_outbox):
    box = make_outbox()
    cycles = [make_request(id=f"c{n:05d}") for n in range(300)]  # request, cancel, again
    box.put(
        [notice("#ops", f"{r.id} {what}", r) for r in cycles for what in ("card", "cancelled")],
        START,
    )
    failing = make_request(id="dave22")
    box.put([notice("#ops", "REVOKE FAILED for dave22", failing, kind="alert")], START)
    box.put([notice("", "the store is damaged", None, audience="admins")], START)

    first = box.claim(owner(box), START)
    second = box.claim(owner(box), START, busy={"channel:#ops"})

    assert first[0].text == "REVOKE FAILED for dave22"
    assert [e.text for e in first[1:3]] == ["c00000 card", "c00001 card"]  # then in order
    assert [e.text for e in second] == ["the store is damaged"]


def test_pending_entries_survive_reopening_and_delivered_ones_are_gone(make_outbox):
    box = make_outbox()
    carol = make_request(id="carol1")
    entries = box.put(
        [notice("#ops", f"notice {i}", carol if i % 2 else None) for i in range(4)], START
    )
    box.delivered([entries[0].id], START)
    box.failed([entries[1].id], "is_archived", START)
    box.retry([entries[2].id], "timeout", START + timedelta(minutes=1))

    again = make_outbox()
    left = [(e.text, e.attempts, e.next_at) for e in again.pending()]
    assert left == [
        ("notice 2", 1, START + timedelta(minutes=1)),
        ("notice 3", 0, START),
    ]
    [claimed] = again.claim(owner(again), START)  # notice 2 is not due
    assert claimed.text == "notice 3" and claimed.snapshot().id == "carol1"
    assert again.depth().pending == 2


def test_the_outbox_file_cuts_a_torn_line_and_folds_what_was_delivered(tmp_path):
    path = outbox_path(tmp_path / "access.json")
    assert path.name == "access.outbox.jsonl"
    box = FileOutbox(path, fold_after=10)
    for i in range(8):
        [entry] = box.put([notice("#ops", f"n{i}")], START)
        box.delivered([entry.id], START)
    assert len(path.read_text().splitlines()) < 10  # folded: only what is pending stays
    box.put([notice("#ops", "left")], START)
    with open(path, "ab") as handle:
        handle.write(b'{"put":{"id":99,"crea')  # a crash mid-append

    again = FileOutbox(path, fold_after=10)
    assert [e.text for e in again.pending()] == ["left"]
    assert again.pending()[0].id == 9  # ids go on from before the fold
    [entry] = again.put([notice("#ops", "after")], START)
    assert entry.id > again.pending()[0].id
    assert [e.text for e in FileOutbox(path).pending()] == ["left", "after"]


# -- the workers -------------------------------------------------------------------------


class Chat:
    """Stands for the chat platform: records what it was sent, or answers an error."""

    def __init__(self):
        self.sent: list[Entry] = []
        self.errors: dict[str, str] = {}  # destination -> error
        self.lock = threading.Lock()

    def send(self, entry: Entry) -> str | None:
        with self.lock:
            error = self.errors.get(entry.to)
            if error is None:
                self.sent.append(entry)
            return error

    def texts(self) -> list[str]:
        with self.lock:
            return [e.text for e in self.sent]


@pytest.fixture
def workers():
    started: list[DeliveryWorkers] = []

    def start(box, chat, clock, **options) -> DeliveryWorkers:
        pool = DeliveryWorkers(box, chat.send, clock, **options)
        pool.start()
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.stop(drain=0)


def test_a_failure_is_tried_again_after_a_backoff_and_a_permanent_one_never(workers):
    clock, chat, box = FakeClock(), Chat(), MemoryOutbox()
    pool = workers(box, chat, clock)
    chat.errors = {"#gone": "is_archived", "#flaky": "fatal_error"}
    box.put([notice("#gone", "lost"), notice("#flaky", "late"), notice("#ok", "now")], clock())
    pool.wake()
    assert pool.wait_idle()
    assert chat.texts() == ["now"]
    assert [(e.text, e.attempts) for e in box.pending()] == [("late", 1)]  # #gone: failed

    chat.errors = {}
    clock.advance(seconds=9)
    pool.wake()
    assert pool.wait_idle() and chat.texts() == ["now"]
    clock.advance(seconds=1)
    pool.wake()
    assert pool.wait_idle()
    assert chat.texts() == ["now", "late"] and box.pending() == []
    assert backoff(0) == RETRY_FIRST and backoff(10) == timedelta(minutes=5)


def test_a_rate_limited_channel_waits_its_retry_after_and_is_never_failed_for_it(workers):
    clock, chat, box = FakeClock(), Chat(), MemoryOutbox()
    refusals = {"left": MAX_ATTEMPTS + 5}  # more 429s than a failing notice may have

    def send(entry: Entry):
        if entry.to == "#busy" and refusals["left"] > 0:
            refusals["left"] -= 1
            return Attempt(RATE_LIMITED, 0.01)  # Slack's Retry-After (or the pacer's wait)
        return chat.send(entry)

    box.put([notice("#busy", "one"), notice("#busy", "two"), notice("#ok", "at once")], clock())
    pool = DeliveryWorkers(box, send, clock, workers=1, poll=0.01)
    pool.start()
    try:
        pool.wake()
        eventually(lambda: "at once" in chat.texts(), "the other channel's notice")
        eventually(lambda: {"one", "two"} <= set(chat.texts()), "the paced channel's notices")
    finally:
        pool.stop(drain=0)
    assert chat.texts().index("one") < chat.texts().index("two")  # in order
    assert box.pending() == [] and refusals["left"] == 0  # every 429 waited out, none failed


def test_an_alert_put_while_a_channels_batch_goes_out_is_sent_next(workers):
    clock, chat, box = FakeClock(), Chat(), MemoryOutbox()
    box.put(
        [notice("#ops", f"update {n}", make_request(id=f"c{n:05d}")) for n in range(50)], clock()
    )
    alert = notice("#ops", "REVOKE FAILED for dave22", make_request(id="dave22"), kind="alert")

    def send(entry: Entry):
        if entry.text == "update 0":
            pool.put([alert], clock())  # the scheduler's alert, mid-batch
        return chat.send(entry)

    pool = DeliveryWorkers(box, send, clock, workers=1, poll=0.01)
    pool.start()
    try:
        pool.wake()
        eventually(lambda: len(chat.texts()) == 51, "every notice")
    finally:
        pool.stop(drain=0)

    assert chat.texts()[:2] == ["update 0", "REVOKE FAILED for dave22"]


def test_the_merge_hook_gets_one_channels_batch_and_may_send_one_message_for_many(workers):
    clock, chat, box = FakeClock(), Chat(), MemoryOutbox()
    batches: list[list[str]] = []

    def merge(entries: list[Entry]) -> list[Entry]:
        batches.append([e.text for e in entries])
        if len(entries) < 2:
            return entries
        first, rest = entries[0], entries[1:]
        text = f"{len(entries)} grants expired"
        return [replace(first, text=text, merged=tuple(e.id for e in rest))]

    box.put(
        [notice("#ops", f"{who}'s grant expired", make_request(id=who)) for who in "abc"]
        + [notice("<@UDAVE>", "dave's DM", audience="user")],
        clock(),
    )
    pool = workers(box, chat, clock, merge=merge, workers=1)
    pool.wake()
    assert pool.wait_idle()
    assert batches == [
        ["a's grant expired", "b's grant expired", "c's grant expired"],
        ["dave's DM"],
    ]
    assert chat.texts() == ["3 grants expired", "dave's DM"]
    assert box.pending() == []


def test_a_commands_notices_wait_while_held_then_go(workers):
    clock, chat, box = FakeClock(), Chat(), MemoryOutbox()
    pool = workers(box, chat, clock)
    with pool.holding(lambda: box.put([notice("#ops", "card", make_request(id="c1"))], clock())):
        pool.wake()
        assert pool.wait_idle() and chat.texts() == []
    assert pool.wait_idle() and chat.texts() == ["card"]


# -- through the bot ---------------------------------------------------------------------


def chat_calls(fake) -> int:
    return sum(1 for m in fake.calls if m.startswith("chat."))


def granted(bot, fake, user: str, text: str) -> tuple[str, dict]:
    before = len(fake.cards(CHANNEL))
    bot.type(user, CHANNEL, text)
    card = fake.wait(lambda: fake.cards(CHANNEL)[before:], "the approval card")[0]
    rid = re.search(r"Access request (\w+)", card["text"]).group(1)
    bot.interact(click_payload(slack.APPROVE, rid, "UBOB", card))
    fake.wait(lambda: not has_buttons(current(fake, card)), "the grant")
    return rid, card


def test_a_slack_answering_in_3s_does_not_delay_the_next_revocation(
    start_bot, fake, webhook, clock
):
    """The scheduler puts its notices in the outbox and goes on (Slack answering chat.*
    in seconds delayed an unrelated expiry by 30 s when the scheduler sent them itself)."""
    bot = start_bot("socket")
    carol, _ = granted(bot, fake, "UCAROL", "!access request prod-db 30m fixing INC-42")
    mallory, _ = granted(bot, fake, "UMALLORY", "!access request prod-db 40m checking a report")
    assert bot.plugin.deliveries.wait_idle()
    seen: dict[str, int] = {}

    def on_call(call):
        if call["action"] == "revoke" and call["request_id"] == mallory:
            seen["chat calls"] = chat_calls(fake)

    webhook.on_call = on_call
    fake.chat_delay = 3.0
    before = chat_calls(fake)

    clock.advance(minutes=30, seconds=1)
    fake.wait(lambda: webhook.count("revoke", carol) == 1, "carol's revoke")
    clock.advance(minutes=10)
    fake.wait(lambda: webhook.count("revoke", mallory) == 1, "mallory's revoke")

    # Carol's expiry notices (card update, thread reply, DM) were still going out, 3 s
    # each, when mallory's access was taken away.
    assert seen["chat calls"] - before < 3
    fake.chat_delay = 0.0
    fake.wait(lambda: any("has expired" in t for t in fake.dms("UMALLORY")), "mallory's DM")
    fake.wait(lambda: any("has expired" in t for t in fake.dms("UCAROL")), "carol's DM")


def test_a_slack_answering_in_3s_does_not_hold_the_command_thread_past_the_reply(
    start_bot, fake, webhook
):
    """With one errbot command thread: bob's `!approve` is answered, and carol's next
    command is answered while the approval's notices are still going out, 3 s each (the
    command thread used to send them itself after the reply)."""
    bot = start_bot("socket", config={"BOT_ASYNC_POOLSIZE": 1})
    rid, card = request_card(bot, fake)  # carol's
    assert bot.plugin.deliveries.wait_idle()
    fake.chat_delay = 3.0

    bot.type("UBOB", CHANNEL, f"!approve {rid}")
    fake.wait(lambda: [m for m in fake.posted() if m["text"].startswith("Approved")], "his reply")
    bot.type("UCAROL", CHANNEL, "!access mine")
    fake.wait(lambda: [m for m in fake.posted() if "Your requests" in m["text"]], "her reply", 30)
    assert webhook.count("grant", rid) == 1
    # Posted by then: at most the DM (sent beside her reply); the card's thread reply
    # comes 3 s after its card update, both after bob's reply.
    told = fake.posted(CHANNEL, card["ts"]) + [
        m for m in fake.posted("DCAROL") if "was approved" in m["text"]
    ]
    assert len(told) < 2
    fake.chat_delay = 0.0
    fake.wait(lambda: any("was approved" in t for t in fake.dms("UCAROL")), "carol's DM")
    fake.wait(lambda: fake.posted(CHANNEL, card["ts"]), "the thread reply")


def test_notices_a_stopped_bot_could_not_send_go_out_once_after_the_restart(
    bot_factory, policy_dir, webhook, clock, tmp_path
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    first = bot_factory()
    rid = request_id(first.reply("carol", "!access request prod-db 30m fixing INC-42"))
    first.refuse("carol", "connection reset by peer")
    assert first.reply("bob", f"!approve {rid}").startswith(f"Approved {rid}")
    assert not any("was approved" in t for t in first.to("carol"))
    [waiting] = access_plugin(first.backend).outbox.pending()
    assert (waiting.to, waiting.attempts) == ("carol", 1)
    bot_factory.stop_last()

    second = bot_factory()
    clock.advance(seconds=11)  # the retry's time comes
    second.wait_for("carol", f"Your request {rid} was approved")
    second.delivered()
    clock.advance(minutes=5)
    second.delivered()
    assert sum(f"{rid} was approved" in t for t in second.to("carol")) == 1
    bot_factory.stop_last()

    third = bot_factory()
    clock.advance(minutes=5)
    third.delivered()
    assert not any(f"{rid} was approved" in t for t in third.to("carol"))
    assert access_plugin(third.backend).outbox.pending() == []
    assert (tmp_path / "data" / "access.outbox.jsonl").exists()


def test_a_channel_that_refuses_for_good_is_told_to_the_admins_once_and_counted(start_bot, fake):
    from prometheus_client.parser import text_string_to_metric_families

    fake.users["UADMIN"] = ("admin", "admin@acme.com")
    fake.not_member.add(CHANNEL)
    bot = start_bot("socket", config={"BOT_ADMINS_NOTIFICATIONS": ("<@UADMIN>",)})
    bot.type("UCAROL", "DCAROL", "!access request prod-db 30m fixing INC-42")
    [told] = fake.wait(lambda: fake.dms("UADMIN"), "the admin being told")
    assert "could not be delivered: not_in_channel" in told
    bot.type("UMALLORY", "DMALLORY", "!access request prod-db 30m fixing INC-43")
    fake.wait(lambda: len(re.findall(r"Request \w+", " ".join(fake.dms("UMALLORY")))), "reply")
    plugin = bot.plugin
    assert plugin.deliveries.wait_idle()
    assert fake.dms("UADMIN") == [told]  # once
    assert plugin.outbox.pending() == []  # failed, not retried
    body, _ = plugin.metrics.exposition()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("accessbot_outbox_deliveries_total", (("outcome", "failed"),))] == 2
    assert samples[("accessbot_outbox_pending", ())] == 0


# -- two bots on PostgreSQL ----------------------------------------------------------------


def test_with_two_bots_on_postgresql_each_notice_is_sent_by_one(pg_url, workers):
    from accessbot.postgres import Database
    from accessbot.postgres.outbox import PostgresOutbox

    clock = FakeClock()
    bots = [Database(pg_url, lease_seconds=5) for _ in range(2)]
    try:
        boxes = [PostgresOutbox(db) for db in bots]
        chats = [Chat(), Chat()]
        requests = [make_request(id=f"req{i:03d}") for i in range(12)]
        put = boxes[0].put(
            [notice(f"#room{n % 3}", f"notice {n}", requests[n % 12]) for n in range(120)],
            clock(),
        )
        pools = [
            workers(box, chat, clock, owner=db.bot_id, batch=5)
            for box, chat, db in zip(boxes, chats, bots, strict=True)
        ]
        for pool in pools:
            pool.wake()
        for _ in range(3):  # one bot's idle may come before the other's last batch ends
            assert all(pool.wait_idle(30) for pool in pools)
        sent = [e for chat in chats for e in chat.sent]
        assert sorted(e.id for e in sent) == [e.id for e in put]  # each once
        for chat in chats:  # and in order for each request in each room
            for key in {e.key for e in chat.sent}:
                ids = [e.id for e in chat.sent if e.key == key]
                assert ids == sorted(ids)
        assert boxes[1].depth().pending == 0
    finally:
        for db in bots:
            db.close()


def test_a_dead_bots_claims_lapse_and_another_bot_sends_them(pg_url):
    from accessbot.postgres import Database
    from accessbot.postgres.outbox import PostgresOutbox

    dying, living = Database(pg_url, lease_seconds=5), Database(pg_url, lease_seconds=5)
    try:
        box, other = PostgresOutbox(dying), PostgresOutbox(living)
        box.put([notice("#ops", "card", make_request(id="carol1"))], START)
        [claimed] = box.claim(dying.bot_id, START)
        assert other.claim(living.bot_id, START) == []  # taken while its bot lives
        dying.close()  # its lease row goes with it, as a dead bot's runs out
        [taken] = other.claim(living.bot_id, START)
        assert taken.id == claimed.id and taken.claimed_by == living.bot_id
        # A claim this bot could not give back (the database was away) is its own to
        # take again once none of its workers is sending there.
        assert other.claim(living.bot_id, START, busy={"channel:#ops"}) == []
        [again] = other.claim(living.bot_id, START)
        assert again.id == claimed.id
    finally:
        living.close()


def test_a_notice_goes_out_while_a_held_put_waits_for_its_fsync(tmp_path, monkeypatch):
    """Issue 28: no lock is held across an outbox fsync. While one command's held put is
    stuck in its fsync (a slow disk), a worker still claims and sends what is due
    elsewhere, and the held notices wait for their release."""
    import os

    box = FileOutbox(tmp_path / "access.outbox.jsonl")
    chat, clock = Chat(), FakeClock()
    box.put([notice("#ops", "already due")], clock())
    stuck, going = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd):
        if threading.current_thread().name == "command":
            stuck.set()
            going.wait(60)  # the disk takes its time for this one (longer than a wait)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    pool = DeliveryWorkers(box, chat.send, clock)  # started below, after the put began
    held: set[int] = set()

    def command():
        with pool.holding_puts(held):
            pool.put([notice("#access", "card")], clock())

    thread = threading.Thread(target=command, name="command")
    thread.start()
    assert stuck.wait(10)
    pool.start()
    workers_started = [pool]
    try:
        pool.wake()
        eventually(lambda: chat.texts() == ["already due"], "the due notice goes out")
        going.set()
        thread.join(10)
        assert chat.texts() == ["already due"] and held  # the card waits for its release
        pool.release(held)
        eventually(lambda: chat.texts() == ["already due", "card"], "the card follows")
    finally:
        going.set()
        for started in workers_started:
            started.stop(drain=0)


# -- a crash ----------------------------------------------------------------------------

CHILD = """
import sys
from datetime import UTC, datetime
from accessbot.outbox import FileOutbox
from accessbot.service import Notice
box = FileOutbox(sys.argv[1], fold_after=50)
print("ready", flush=True)
n = 0
while True:
    n += 1
    [entry] = box.put([Notice("channel", "#ops", f"n{n}")], datetime.now(UTC))
    print("put", entry.id, flush=True)
    if n % 2:
        box.delivered([entry.id], datetime.now(UTC))
        print("sent", entry.id, flush=True)
"""


def test_an_outbox_killed_mid_write_keeps_every_acknowledged_put_and_delivery(tmp_path):
    """SIGKILL while writing and folding: each notice whose put returned is there at the
    next start, unless its delivery was recorded; a torn line is cut."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import PLUGINS, ROOT

    path = tmp_path / "access.outbox.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    put: set[int] = set()
    sent: set[int] = set()
    unsure: set[int] = set()
    for kill in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout.readline().strip() == "ready"
        for _ in range(40 + 17 * kill):
            what, entry_id = child.stdout.readline().split()
            (put if what == "put" else sent).add(int(entry_id))
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout:  # acknowledged before the kill landed
            what, entry_id = line.split()
            (put if what == "put" else sent).add(int(entry_id))
        # The last one put may have been recorded as delivered just before the kill, unsaid.
        unsure.add(max(put))
        left = {e.id for e in FileOutbox(path).pending()}
        assert (put - sent) - left <= unsure
        assert not left & sent


def test_two_bot_processes_send_each_notice_once_and_the_survivor_sends_what_a_killed_one_held(
    pg_url,
):
    """Two processes on one database; one is killed with SIGKILL mid-delivery. Every
    notice is sent; twice only the few a killed worker had sent but not yet marked."""
    import os
    import signal
    import subprocess
    import sys
    from datetime import UTC, datetime

    from accessbot.postgres import Database
    from accessbot.postgres.outbox import PostgresOutbox
    from tests.conftest import PLUGINS, ROOT

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    tool = Database(pg_url, heartbeat=False)
    children = []
    try:
        for _ in range(2):
            child = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "outbox_child.py"), pg_url, "2", "0.01"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert child.stdout.readline().startswith("ready ")
            children.append(child)
        requests = [make_request(id=f"req{i:03d}") for i in range(20)]
        put = PostgresOutbox(tool).put(
            [notice(f"#room{n % 4}", f"n{n}", requests[n % 20]) for n in range(400)],
            datetime.now(UTC),
        )
        sent: list[list[int]] = [[], []]
        for _ in range(60):  # the first one sends a while, then dies
            sent[0].append(int(children[0].stdout.readline().split()[1]))
        children[0].send_signal(signal.SIGKILL)
        children[0].wait()
        sent[0] += [int(line.split()[1]) for line in children[0].stdout]
        reader = threading.Thread(
            target=lambda: sent[1].extend(int(x.split()[1]) for x in children[1].stdout)
        )
        reader.start()
        pause = threading.Event()
        for _ in range(1500):  # the survivor takes over the dead one's claims after its lease
            if PostgresOutbox(tool).depth().pending == 0:
                break
            pause.wait(0.02)
        assert PostgresOutbox(tool).depth().pending == 0
        children[1].stdin.close()
        children[1].wait(15)
        reader.join(15)
        every = sent[0] + sent[1]
        assert set(every) == {e.id for e in put}
        twice = [i for i in set(every) if every.count(i) > 1]
        assert len(twice) <= 4  # at most one in flight per killed worker
        assert sent[1] and sent[0]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        tool.close()


def test_metrics_show_the_outbox_depth_and_how_long_the_oldest_notice_waited():
    from prometheus_client.parser import text_string_to_metric_families

    from accessbot.metrics import Metrics

    clock, box, metrics = FakeClock(), MemoryOutbox(), Metrics()
    metrics.watch_outbox(box.depth, clock)

    def gauges() -> dict[str, float]:
        body, _ = metrics.exposition()
        return {
            s.name: s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
            if s.name.startswith("accessbot_outbox_") and "deliveries" not in s.name
        }

    assert gauges() == {
        "accessbot_outbox_pending": 0,
        "accessbot_outbox_oldest_pending_seconds": 0,
    }
    box.put([notice("#ops", "first")], clock())
    clock.advance(seconds=30)
    box.put([notice("#ops", "second")], clock())
    clock.advance(seconds=15)
    assert gauges() == {
        "accessbot_outbox_pending": 2,
        "accessbot_outbox_oldest_pending_seconds": 45,
    }
