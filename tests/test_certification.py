"""Access certification in the running bot (Text backend): a webhook target lists who
holds prod-db, the scheduler opens a certification, reviewers keep and remove in chat, the
deadline removes what nobody decided, and the report and the export show all of it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from accessbot.policy import PolicyError, load_policies
from tests.conftest import policy_file, webhook_policy
from tests.helpers import accessbot, eventually, request_id

CAROL = {"user": "carol", "user_email": "carol@acme.com", "account": "db-carol"}
MALLORY = {"user": "mallory", "user_email": "mallory@acme.com", "account": "db-mallory"}
DAVE = {"user": "dave", "user_email": "dave@acme.com", "account": "db-dave"}
CERTIFY = {"every": "90d", "deadline": "7d", "on_missed": "remove"}


def certify_policy(url: str, **certify) -> str:
    """prod-db with carol on its `standing` list (on a line of her own) and `certify`."""
    text = webhook_policy(url, certify={**CERTIFY, **certify})
    return text.replace(
        "'prod-db': {", "'prod-db': {\n    'standing': [\n        '@carol',\n    ],\n"
    )


def item_ids(listing: str) -> dict[str, str]:
    """`!access certify list` -> member -> item id (each line starts with the id)."""
    found = {}
    for line in listing.splitlines()[1:]:
        item, resource, member = line.split()[:3]
        assert resource == "prod-db"
        found[member.rstrip(":")] = item
    return found


def revokes(webhook) -> list[dict]:
    return [c for c in webhook.calls if c["action"] == "revoke"]


@pytest.fixture
def started(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", certify_policy(webhook.url))
    webhook.members = [CAROL, MALLORY, DAVE]
    chat = bot_factory()
    opened = chat.wait_for("#access-approvals", "ACCESS CERTIFICATION")
    return chat, opened


def test_a_certification_is_kept_removed_and_closed_at_the_deadline_with_evidence(
    started, webhook, clock, bot_factory, tmp_path, policy_dir
):
    chat, opened = started
    assert "3 account(s) hold it without a grant" in opened
    assert "allowed by standing (@carol)" in opened
    assert "mallory (mallory@acme.com; account db-mallory): no grant or standing entry" in opened

    listing = chat.reply("alice", "!access certify list")
    ids = item_ids(listing)
    assert set(ids) == {"@carol", "@mallory", "@dave"}

    kept = chat.say("alice", f"!access certify keep {ids['@carol']} still on the DB team")
    assert kept[0].startswith("Kept @carol on prod-db")
    assert any(
        "@carol kept by @alice: still on the DB team" in t for t in chat.to("#access-approvals")
    )

    removed = chat.say("bob", f"!access certify remove {ids['@mallory']} left the team")
    assert removed[0].startswith("Removed @mallory on prod-db")
    [revoke] = revokes(webhook)
    assert (revoke["account"], revoke["user"], revoke["grant_id"]) == (
        "db-mallory",
        "mallory",
        f"c-{ids['@mallory']}",
    )
    assert any(
        "@mallory removed by @bob: left the team" in t and "account db-mallory" in t
        for t in chat.to("#access-approvals")
    )
    assert any("was removed in access certification" in t for t in chat.to("mallory"))

    # Only dave is left; at the deadline he is removed (on_missed: remove).
    assert list(item_ids(chat.reply("alice", "!access certify list"))) == ["@dave"]
    clock.advance(days=7, minutes=1)
    chat.wait_for("#access-approvals", "the deadline passed")
    closed = chat.wait_for("#access-approvals", "closed: 1 kept, 2 removed, 0 not reviewed")
    assert closed
    assert [r["account"] for r in revokes(webhook)] == ["db-mallory", "db-dave"]
    assert "No certification items are open" in chat.reply("alice", "!access certify list")

    bot_factory.stop_last()
    env = {
        "ACCESS_POLICY_DIR": str(policy_dir),
        "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
        "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
    }
    code, out, err = accessbot("certify", "export", "--format", "csv", cwd=tmp_path, env=env)
    assert code == 0, err
    rows = {r["member"]: r for r in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"carol", "mallory", "dave"}
    assert (rows["carol"]["decision"], rows["carol"]["decided_by"]) == ("keep", "@alice")
    assert rows["carol"]["note"] == "still on the DB team"
    assert (rows["mallory"]["decision"], rows["mallory"]["decided_by"]) == ("remove", "@bob")
    assert rows["mallory"]["outcome"] == "removed at the target (account db-mallory)"
    assert (rows["dave"]["decision"], rows["dave"]["decided_by"]) == ("remove", "deadline")
    assert rows["dave"]["outcome"] == "removed at the target (account db-dave)"
    assert rows["dave"]["closed_at"]

    code, out, err = accessbot("certify", "export", "--format", "json", cwd=tmp_path, env=env)
    [certification] = json.loads(out)
    assert certification["resource"] == "prod-db" and len(certification["items"]) == 3

    report = tmp_path / "report.html"
    code, out, err = accessbot(
        "report", "--since", "365d", "--out", str(report), cwd=tmp_path, env=env
    )
    assert code == 0, err
    page = report.read_text()
    assert "<h2>Access certifications</h2>" in page
    for needle in (
        "carol",
        "mallory",
        "dave",
        "@alice",
        "@bob",
        "deadline",
        "still on the DB team",
    ):
        assert needle in page


def test_only_reviewers_decide_and_nobody_decides_their_own_item(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", certify_policy(webhook.url))
    webhook.members = [{"user": "alice", "account": "db-alice"}, MALLORY]
    chat = bot_factory()
    chat.wait_for("#access-approvals", "ACCESS CERTIFICATION")
    ids = item_ids(chat.reply("bob", "!access certify list"))

    assert "Only the reviewers of certification" in chat.reply(
        "carol", f"!access certify keep {ids['@mallory']}"
    )
    assert "your own access to prod-db" in chat.reply(
        "alice", f"!access certify keep {ids['@alice']} I need it"
    )
    assert chat.reply("bob", f"!access certify keep {ids['@alice']}").startswith("Kept @alice")
    assert "was already decided: keep by @bob" in chat.reply(
        "bob", f"!access certify remove {ids['@alice']}"
    )
    assert "No certification items are open for you" in chat.reply("carol", "!access certify list")
    assert revokes(webhook) == []


def test_removing_a_standing_member_names_the_file_and_line_that_still_allows_them(
    started, webhook
):
    chat, _ = started
    ids = item_ids(chat.reply("alice", "!access certify list"))
    chat.say("alice", f"!access certify remove {ids['@carol']} moved teams")
    text = eventually(
        lambda: next((t for t in chat.to("#access-approvals") if "@carol removed by" in t), None),
        "the removal announced",
    )
    assert "still allowed by 'standing' at db.py:3" in text
    assert [r["account"] for r in revokes(webhook)] == ["db-carol"]


def test_a_member_with_a_live_grant_is_not_reviewed_and_start_is_for_admins(
    bot_factory, policy_dir, webhook
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))  # no `certify`
    webhook.members = [MALLORY]
    chat = bot_factory()
    assert "Only bot admins" in chat.reply("alice", "!access certify start prod-db")
    rid = request_id(chat.reply("carol", "!access request prod-db 30m INC-1"))
    chat.say("alice", f"!approve {rid}")
    webhook.members = [MALLORY, CAROL]

    said = chat.reply("admin", "!access certify start prod-db")

    assert said.startswith("Certification ") and "1 item(s)" in said
    assert list(item_ids(chat.reply("admin", "!access certify list"))) == ["@mallory"]
    assert "is still open" in chat.reply("admin", "!access certify start prod-db")


def test_a_target_that_cannot_list_is_named_never_skipped(bot_factory, policy_dir, webhook):
    policy_file(policy_dir, "db.py", certify_policy(webhook.url))
    webhook.members = None  # answers 501 to list
    chat = bot_factory()
    text = chat.wait_for("#access-approvals", "ACCESS CERTIFICATION")
    assert "its target could not be listed" in text
    assert "could not be listed" in chat.reply("alice", "!access certify list")


def test_on_missed_keep_records_not_reviewed_and_removes_nothing(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", certify_policy(webhook.url, on_missed="keep"))
    webhook.members = [MALLORY]
    chat = bot_factory()
    chat.wait_for("#access-approvals", "ACCESS CERTIFICATION")
    clock.advance(days=3, hours=13)  # past half the deadline: the reviewers are reminded
    chat.wait_for("alice", "Reminder: access certification")
    clock.advance(days=3, hours=12)
    chat.wait_for("#access-approvals", "closed: 0 kept, 0 removed, 1 not reviewed")
    assert revokes(webhook) == []


def test_on_missed_escalate_lets_the_admins_decide_by_a_new_deadline(
    bot_factory, policy_dir, webhook, clock
):
    policy_file(policy_dir, "db.py", certify_policy(webhook.url, on_missed="escalate"))
    webhook.members = [MALLORY]
    chat = bot_factory()
    chat.wait_for("#access-approvals", "ACCESS CERTIFICATION")
    [item] = item_ids(chat.reply("alice", "!access certify list")).values()
    assert "Only the reviewers" in chat.reply("admin", f"!access certify keep {item}")

    clock.advance(days=7, minutes=1)
    chat.wait_for("admin", "escalated")
    assert chat.reply("admin", f"!access certify keep {item} service owner").startswith("Kept")
    assert revokes(webhook) == []


@pytest.mark.parametrize(
    ("certify", "error"),
    [
        (
            {"every": "often", "deadline": "7d"},
            'db.py:8: prod-db.certify.every: "often" is not a duration',
        ),
        ({"every": "90d"}, "prod-db.certify.deadline: is required"),
        ({"every": "7d", "deadline": "7d"}, "certify.deadline: 7d must be shorter than every"),
        (
            {"every": "90d", "deadline": "7d", "on_missed": "ignore"},
            "certify.on_missed: 'ignore' is not one of",
        ),
        (
            {"every": "90d", "deadline": "7d", "reviewers": "@alice"},
            "certify.reviewers: must be a list",
        ),
        ({"every": "90d", "deadline": "7d", "reviewers": ["group:nope"]}, 'unknown group "nope"'),
        (
            {"every": "90d", "deadline": "7d", "channel": "ops"},
            'certify.channel: "ops" is not a channel',
        ),
        ({"every": "90d", "deadline": "7d", "when": "x"}, "certify.when: unknown key"),
    ],
)
def test_bad_certify_values_are_load_errors_naming_file_line_and_key(tmp_path, certify, error):
    lines = ["RESOURCES = {", "    'prod-db': {", "        'max_duration': '4h',"]
    lines += ["        'approvers': ['@alice'],", "        'channel': '#db',"]
    lines += ["        'strategy': {'type': 'none'},", "        'certify': {"]
    lines += [f"            {k!r}: {v!r}," for k, v in certify.items()]
    lines += ["        },", "    },", "}"]
    policy_file(tmp_path, "db.py", "\n".join(lines) + "\n")
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path)
    assert error in str(raised.value)


# -- the store: a restart keeps everything; on PostgreSQL each decision counts once ----------


def _certifications(store, audit, policy_dir, clock, make_store):
    from accessbot.certification import Certifications
    from accessbot.standing_sweep import StandingSweep
    from tests.builders import wired

    service = wired(store, audit, policy_dir, clock)
    return Certifications(service, StandingSweep(service), make_store(service))


def test_on_postgresql_two_bots_share_a_certification_and_count_each_decision_once(
    tmp_path, clock, webhook, pg_url, monkeypatch
):
    import threading

    from accessbot.certification_store import PostgresCertifications
    from accessbot.domain import AccessError
    from accessbot.postgres import Database, PostgresAuditLog, PostgresStore
    from tests.builders import ADMIN, person

    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    policy_file(tmp_path / "policies", "db.py", certify_policy(webhook.url))
    webhook.members = [MALLORY, DAVE]
    dbs = [Database(pg_url, heartbeat=False) for _ in range(2)]
    try:
        bots = [
            _certifications(
                PostgresStore(db), PostgresAuditLog(db, clock), tmp_path / "policies", clock,
                lambda service, db=db: PostgresCertifications(db),
            )
            for db in dbs
        ]  # fmt: skip
        opened = bots[0].start(ADMIN, "prod-db")
        assert "2 item(s)" in opened.reply
        ids = item_ids(bots[1].listing(person("alice")))  # the other bot sees it
        results: list = []

        def decide(bot, who):
            try:
                results.append(bot.decide(person(who), ids["@mallory"], "remove", "gone"))
            except AccessError as exc:
                results.append(str(exc))

        threads = [
            threading.Thread(target=decide, args=(bot, who))
            for bot, who in zip(bots, ("alice", "bob"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert sum(isinstance(r, str) and "already decided" in r for r in results) == 1
        assert [r["account"] for r in revokes(webhook)] == ["db-mallory"]
        events = [e["event"] for e in bots[0].service.audit.events()]
        assert events.count("certification_decided") == 1
        assert events.count("certification_opened") == 1
    finally:
        for db in dbs:
            db.close()


def test_certifications_and_items_survive_a_restart_on_tinydb(
    tmp_path, clock, webhook, monkeypatch
):
    from accessbot.audit import AuditLog
    from accessbot.certification_store import TinyDBCertifications
    from accessbot.store import TinyDBStore
    from tests.builders import ADMIN, person

    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    policy_file(tmp_path / "policies", "db.py", certify_policy(webhook.url))
    webhook.members = [MALLORY]
    data = tmp_path / "data"

    def open_bot():
        store = TinyDBStore(data / "access.json")
        bot = _certifications(
            store, AuditLog(data / "audit.jsonl", clock), tmp_path / "policies", clock,
            lambda service: TinyDBCertifications.beside(data / "access.json"),
        )  # fmt: skip
        return store, bot

    store, bot = open_bot()
    bot.start(ADMIN, "prod-db")
    bot.store.close()
    store.close()

    store, again = open_bot()
    [item] = item_ids(again.listing(person("alice"))).values()
    assert again.decide(person("alice"), item, "keep", "needed").reply.startswith("Kept @mallory")
    assert (data / "access.certifications.json").exists()
    again.store.close()
    store.close()


def test_backup_and_restore_bring_back_an_open_certification_and_its_items(
    tmp_path, clock, webhook, monkeypatch
):
    import shutil
    import tarfile

    from accessbot.audit import AuditLog
    from accessbot.backup import BackupError, restore_backup
    from accessbot.certification_store import TinyDBCertifications
    from accessbot.store import TinyDBStore
    from tests.builders import ADMIN, person

    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    policy_file(tmp_path / "policies", "db.py", certify_policy(webhook.url))
    webhook.members = [MALLORY, DAVE]
    data = tmp_path / "data"
    env = {
        "ACCESS_DB_PATH": str(data / "access.json"),
        "ACCESS_AUDIT_PATH": str(data / "audit.jsonl"),
    }

    def open_bot():
        store = TinyDBStore(data / "access.json")
        bot = _certifications(
            store, AuditLog(data / "audit.jsonl", clock), tmp_path / "policies", clock,
            lambda service: TinyDBCertifications.beside(data / "access.json"),
        )  # fmt: skip
        return store, bot

    store, bot = open_bot()
    bot.start(ADMIN, "prod-db")
    ids = item_ids(bot.listing(person("alice")))
    bot.decide(person("alice"), ids["@dave"], "keep", "on call this quarter")
    bot.store.close()
    store.close()

    code, said, err = accessbot("backup", "--out", "b.tar.gz", cwd=tmp_path, env=env)
    assert code == 0, err
    assert "1 certification(s) with 2 item(s)" in said
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert "store/access.certifications.json" in manifest["files"]  # with its checksum

    shutil.rmtree(data)
    code, said, err = accessbot("restore", "b.tar.gz", cwd=tmp_path, env=env)
    assert code == 0, err
    assert "1 certification(s) with 2 item(s)" in said

    store, again = open_bot()
    assert item_ids(again.listing(person("alice"))) == {"@mallory": ids["@mallory"]}
    kept = again.store.item(ids["@dave"])
    assert (kept["decision"], kept["note"]) == ("keep", "on call this quarter")
    removed = again.decide(person("alice"), ids["@mallory"], "remove", "left")
    assert removed.reply.startswith("Removed @mallory")
    again.store.close()
    store.close()

    # The certifications file is checked like the others: a changed copy is refused.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(tmp_path / "b.tar.gz") as source, tarfile.open(damaged, "w:gz") as copy:
        for member in source.getmembers():
            body = source.extractfile(member).read()
            if member.name == "store/access.certifications.json":
                body = body.replace(b'"keep"', b'"kept"')
            member.size = len(body)
            copy.addfile(member, io.BytesIO(body))
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(BackupError, match="access.certifications.json is damaged"):
        restore_backup(
            damaged, elsewhere / "access.json", elsewhere / "audit.jsonl", False, clock()
        )
    assert not (elsewhere / "access.certifications.json").exists()


# -- numbers, help, the command line, a failed removal ------------------------------------------


def test_metrics_count_open_certifications_and_items_past_the_deadline(started, clock):
    from tests.conftest import access_plugin

    chat, _ = started
    plugin = access_plugin(chat.backend)

    def gauges() -> dict[str, float]:
        text = plugin.metrics.exposition("text/plain")[0].decode()
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("accessbot_certification")
        }

    assert gauges() == {
        "accessbot_certifications_open": 1.0,
        "accessbot_certification_items_past_deadline": 0.0,
    }
    plugin.certifications.store.save(
        {**plugin.certifications.store.certifications()[0], "deadline_at": "2026-01-01T00:00:00Z"}
    )  # as if the deadline had passed while the scheduler was away
    assert gauges()["accessbot_certification_items_past_deadline"] == 3.0
    assert chat.reply("alice", "!access certify list").count("PAST ITS DEADLINE") == 3
    assert "!access certify list" in chat.reply("carol", "!access")


def test_a_removal_the_target_refuses_is_announced_and_retried_until_it_succeeds(
    started, webhook, clock
):
    chat, _ = started
    ids = item_ids(chat.reply("alice", "!access certify list"))
    webhook.set_status(500)

    said = chat.say("alice", f"!access certify remove {ids['@dave']} left")

    assert "removal failed" in said[0]
    assert any(
        "REMOVAL FAILED of @dave's access to prod-db" in t and "still in place" in t
        for t in chat.to("#access-approvals")
    )
    assert chat.to("dave") == []  # not told of a removal that did not happen

    webhook.set_status(200)
    clock.advance(minutes=1)  # the certification job's next look; the retry is due by then
    done = chat.wait_for("#access-approvals", "removed at the target (account db-dave) after 2")
    assert "@dave" in done
    assert any("was removed in access certification" in t for t in chat.to("dave"))
    assert revokes(webhook)[-1]["account"] == "db-dave"


def test_the_command_line_opens_a_certification_with_the_bot_stopped(tmp_path, policy_dir, webhook):
    policy_file(policy_dir, "db.py", certify_policy(webhook.url))
    webhook.members = [MALLORY]
    env = {
        "ACCESS_POLICY_DIR": str(policy_dir),
        "ACCESS_DB_PATH": str(tmp_path / "data" / "access.json"),
        "ACCESS_AUDIT_PATH": str(tmp_path / "data" / "audit.jsonl"),
        "TEST_HOOK_SECRET": "s3cret",
    }
    code, out, err = accessbot("certify", "start", "--resource", "prod-db", cwd=tmp_path, env=env)
    assert code == 0, err
    assert "opened: 1 item(s)" in out and "ACCESS CERTIFICATION" in out
    code, out, err = accessbot("certify", "start", "--resource", "nope", cwd=tmp_path, env=env)
    assert code == 2 and "Unknown resource" in err
    code, out, err = accessbot("certify", "export", "--format", "json", cwd=tmp_path, env=env)
    [certification] = json.loads(out)
    assert certification["opened_by"] == "cli"
    assert [i["user"] for i in certification["items"]] == ["mallory"]


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Use `!access certify list`"),
        ("approve k3m9qx", "Use `!access certify list`"),
        ("keep", "Which item? `!access certify keep <item> [note]`"),
        ("remove ../x", "is not an item id"),
        ("list all", "`!access certify list` takes nothing more"),
        ("start a b", "Name one resource"),
    ],
)
def test_a_mistyped_certify_command_says_what_to_type(typed, says):
    from accessbot.commands import CommandSyntaxError, parse_certify_args

    with pytest.raises(CommandSyntaxError) as raised:
        parse_certify_args(typed)
    assert says in str(raised.value)


def test_certify_arguments_are_parsed_with_the_note_whole():
    from accessbot.commands import parse_certify_args

    assert parse_certify_args("keep K3M9QX still on the DB team") == (
        "keep",
        "k3m9qx",
        "still on the DB team",
    )
    assert parse_certify_args("start") == ("start", None, "")


def test_on_postgresql_only_the_bot_holding_the_lease_opens_certifications(
    tmp_path, clock, webhook, pg_url, monkeypatch
):
    from accessbot.certification import CertificationJob
    from accessbot.certification_store import PostgresCertifications
    from accessbot.postgres import Database, LeaderLease, PostgresAuditLog, PostgresStore
    from accessbot.scheduler import Scheduler

    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    policy_file(tmp_path / "policies", "db.py", certify_policy(webhook.url))
    webhook.members = [MALLORY]
    bots = []
    try:
        for _ in range(2):
            db = Database(pg_url, lease_seconds=5)
            certifications = _certifications(
                PostgresStore(db), PostgresAuditLog(db, clock), tmp_path / "policies", clock,
                lambda service, db=db: PostgresCertifications(db),
            )  # fmt: skip
            said: list = []
            job = CertificationJob(certifications, clock, said.extend, print)
            service = certifications.service
            scheduler = Scheduler(service.tick, 3600, LeaderLease(db), clock=clock, jobs=[job])
            bots.append((scheduler, said, db, certifications))
        for scheduler, *_ in bots:
            scheduler.run_once()  # the first takes the lease; the second does not
        for scheduler, *_ in bots:
            for thread in scheduler.start_due_jobs():
                thread.join(30)

        (_, first_said, _, first), (_, second_said, _, _) = bots
        assert [n.text.split(":")[0] for n in first_said if "CERTIFICATION" in n.text] == [
            f"ACCESS CERTIFICATION {first.store.certifications()[0]['id']} of prod-db"
        ]
        assert second_said == []
        assert len(first.store.certifications()) == 1
    finally:
        for scheduler, _, db, _ in bots:
            scheduler.stop()
            db.close()


def test_migrate_copies_certifications_and_items_into_postgresql(
    tmp_path, clock, webhook, pg_url, monkeypatch
):
    from accessbot.audit import AuditLog
    from accessbot.certification_store import PostgresCertifications, TinyDBCertifications
    from accessbot.postgres import Database
    from accessbot.postgres.migrate import migrate_tinydb
    from accessbot.store import TinyDBStore
    from tests.builders import ADMIN

    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    policy_file(tmp_path / "policies", "db.py", certify_policy(webhook.url))
    webhook.members = [MALLORY, DAVE]
    data = tmp_path / "data"
    store = TinyDBStore(data / "access.json")
    bot = _certifications(
        store, AuditLog(data / "audit.jsonl", clock), tmp_path / "policies", clock,
        lambda service: TinyDBCertifications.beside(data / "access.json"),
    )  # fmt: skip
    bot.start(ADMIN, "prod-db")
    bot.store.close()
    store.close()

    migrate_tinydb(data / "access.json", data / "audit.jsonl", pg_url)

    db = Database(pg_url, heartbeat=False)
    try:
        moved = PostgresCertifications(db)
        [certification] = moved.certifications(open_only=True)
        assert [i["user"] for i in moved.items(certification["id"])] == ["mallory", "dave"]
    finally:
        db.close()


def test_a_certification_is_closed_once_whichever_store_and_bot(tmp_path, pg_url):
    from accessbot.certification_store import PostgresCertifications, TinyDBCertifications
    from accessbot.postgres import Database

    db = Database(pg_url, heartbeat=False)
    try:
        for store in (TinyDBCertifications(tmp_path / "c.json"), PostgresCertifications(db)):
            opened = {"id": "c1", "resource": "prod-db", "state": "open"}
            store.save({**opened, "opened_at": "2026-11-24T09:00:00Z"})
            closed = {**opened, "opened_at": "2026-11-24T09:00:00Z", "state": "closed"}
            assert store.close_once(closed) is True
            assert store.close_once(closed) is False
            assert store.certifications(open_only=True) == []
            store.close()
    finally:
        db.close()
