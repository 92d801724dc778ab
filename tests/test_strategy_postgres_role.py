"""postgres_role against the real throwaway PostgreSQL server the suite starts (tests/pgserver.py):
GRANT and REVOKE of a real role, real sessions of real logins that did SET ROLE, and the
whole bot granting and revoking through errbot."""

from __future__ import annotations

import itertools
import json
import os
import time
from urllib.parse import urlsplit

import psycopg
import pytest

from accessbot.audit import AuditLog
from accessbot.messages import target_of
from accessbot.service import Actor
from accessbot.standing_sweep import StandingSweep
from accessbot.store import TinyDBStore
from accessbot.strategies import Accounts, StrategyError, build_strategy, strategy_problems
from tests.builders import person, wired
from tests.conftest import policy_file, request_id
from tests.helpers import accessbot
from tests.strategy_helpers import payload

DSN_ENV = "TEST_DB_ADMIN_DSN"
_names = itertools.count(1)


class Cluster:
    """Roles and logins made for one test on the shared test server (roles are cluster-wide,
    so each test's names are its own), and sessions opened as those logins."""

    def __init__(self, url: str):
        self.url = url
        self.n = f"{os.getpid()}_{next(_names)}"
        self.role = f"prod_rw_{self.n}"
        self.sessions: list[psycopg.Connection] = []
        self.admin = psycopg.connect(url, autocommit=True)
        self.admin.execute(f'CREATE ROLE "{self.role}" NOLOGIN')
        self.admin.execute(f'CREATE TABLE "secrets_{self.n}" (v text)')
        self.admin.execute(f'GRANT SELECT ON "secrets_{self.n}" TO "{self.role}"')

    def login(self, name: str) -> str:
        login = f"{name}_{self.n}"
        self.admin.execute(f'CREATE ROLE "{login}" LOGIN')
        return login

    def made(self) -> list[str]:
        """The roles this test made (by their names now: a test may rename one)."""
        rows = self.admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"%\\_{self.n}",)
        ).fetchall()
        return [r[0] for r in rows]

    def oid(self, name: str) -> int:
        return self.admin.execute(
            "SELECT oid FROM pg_roles WHERE rolname = %s", (name,)
        ).fetchone()[0]

    def exists(self, name: str) -> bool:
        return (
            self.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            is not None
        )

    def members(self) -> set[str]:
        rows = self.admin.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s",
            (self.role,),
        ).fetchall()
        return {r[0] for r in rows}

    def connect_as(self, login: str) -> psycopg.Connection:
        parts = urlsplit(self.url)
        url = parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}").geturl()
        conn = psycopg.connect(url, autocommit=True)
        self.sessions.append(conn)
        return conn

    def close(self) -> None:
        """Close the sessions and drop what the test made: roles outlive a database, and
        ACCESS_TEST_DB_URL may point at a server that is not thrown away."""
        for conn in self.sessions:
            conn.close()
        self.admin.execute(f'DROP TABLE IF EXISTS "secrets_{self.n}"')
        for name in self.made():
            self.admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        self.admin.close()


def alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture
def cluster(pg_url, monkeypatch):
    monkeypatch.setenv(DSN_ENV, pg_url)
    made = Cluster(pg_url)
    yield made
    made.close()


def strategy(cluster, logins=None, **overrides):
    settings = {"type": "postgres_role", "dsn_env": DSN_ENV, "role": cluster.role, **overrides}
    return build_strategy(settings, Accounts(db=logins or {}))


def test_grant_makes_the_requesters_login_a_member_and_records_its_oid(cluster):
    carol = cluster.login("carol")

    done = strategy(cluster, {"carol": carol}).call("grant", payload())

    assert cluster.members() == {carol}
    assert done.account == str(cluster.oid(carol))
    assert f"{carol} (OID {done.account}) made a member of {cluster.role}" in done.note


def test_without_an_access_user_db_entry_the_login_is_the_emails_local_part(cluster, pg_url):
    local = f"carol_{cluster.n}"
    cluster.admin.execute(f'CREATE ROLE "{local}" LOGIN')

    strategy(cluster).call("grant", payload(email=f"Carol_{cluster.n}@acme.com"))

    assert cluster.members() == {local}


def test_revoke_ends_the_membership_and_the_session_that_did_set_role_but_not_another_logins(
    cluster,
):
    carol, dave = cluster.login("carol"), cluster.login("dave")
    logins = {"carol": carol, "dave": dave}
    granted = strategy(cluster, logins).call("grant", payload())
    strategy(cluster, logins).call("grant", payload(user="dave", email=None))
    carols = cluster.connect_as(carol)
    carols.execute(f'SET ROLE "{cluster.role}"')
    carols.execute(f'SELECT * FROM "secrets_{cluster.n}"')  # the role is in effect
    daves = cluster.connect_as(dave)

    started = time.monotonic()
    done = strategy(cluster, logins).call("revoke", payload("revoke", account=granted.account))
    print(f"revoke to session terminated: {time.monotonic() - started:.3f}s")

    assert cluster.members() == {dave}
    assert not alive(carols)
    assert alive(daves)
    assert "1 session(s) terminated" in done.note
    assert done.sessions.fate == "ended"


def test_a_session_living_on_inherited_privileges_is_ended_too(cluster):
    carol = cluster.login("carol")
    granted = strategy(cluster, {"carol": carol}).call("grant", payload())
    session = cluster.connect_as(carol)
    session.execute(f'SELECT * FROM "secrets_{cluster.n}"')  # no SET ROLE: INHERIT

    strategy(cluster, {"carol": carol}).call("revoke", payload("revoke", account=granted.account))

    assert not alive(session)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        cluster.connect_as(carol).execute(f'SELECT * FROM "secrets_{cluster.n}"')


def test_a_login_renamed_after_the_grant_is_still_revoked_by_its_oid(cluster):
    carol = cluster.login("carol")
    granted = strategy(cluster, {"carol": carol}).call("grant", payload())
    session = cluster.connect_as(carol)
    renamed = f"caroline_{cluster.n}"
    cluster.admin.execute(f'ALTER ROLE "{carol}" RENAME TO "{renamed}"')

    done = strategy(cluster, {"carol": carol}).call(
        "revoke", payload("revoke", account=granted.account)
    )

    assert cluster.members() == set()
    assert not alive(session)
    assert renamed in done.note


def test_revoking_twice_succeeds(cluster):
    carol = cluster.login("carol")
    granted = strategy(cluster, {"carol": carol}).call("grant", payload())
    revoke = payload("revoke", account=granted.account)
    strategy(cluster, {"carol": carol}).call("revoke", revoke)
    strategy(cluster, {"carol": carol}).call("revoke", revoke)
    assert cluster.members() == set()


def test_a_login_that_does_not_exist_is_a_clear_failure_and_is_not_created(cluster):
    ghost = f"ghost_{cluster.n}"
    with pytest.raises(StrategyError, match=f"PostgreSQL has no login {ghost}.*never creates"):
        strategy(cluster, {"carol": ghost}).call("grant", payload())
    assert not cluster.exists(ghost)


def test_a_role_that_does_not_exist_is_a_clear_failure_and_is_not_created(cluster):
    carol = cluster.login("carol")
    missing = f"nope_{cluster.n}"
    with pytest.raises(StrategyError, match=f"PostgreSQL has no role {missing}.*never creates"):
        strategy(cluster, {"carol": carol}, role=missing).call("grant", payload())
    assert not cluster.exists(missing)


def test_a_name_made_to_inject_sql_is_only_ever_an_identifier(cluster):
    evil = f'x_{cluster.n}" TO public; --'
    with pytest.raises(StrategyError, match="has no login"):
        strategy(cluster, {"carol": evil}).call("grant", payload())
    assert cluster.members() == set()


def test_members_lists_the_roles_members_by_oid(cluster):
    carol, dave = cluster.login("carol"), cluster.login("dave")
    logins = {"carol": carol, "dave": dave}
    strategy(cluster, logins).call("grant", payload())
    strategy(cluster, logins).call("grant", payload(user="dave", email=None))

    members = strategy(cluster).members("prod-db")

    assert [(m.user, m.account) for m in members] == [
        (carol, str(cluster.oid(carol))),
        (dave, str(cluster.oid(dave))),
    ]


def test_no_login_for_the_requester_says_which_key_to_fill_in(cluster):
    with pytest.raises(
        StrategyError, match="no database login for @carol: add it to ACCESS_USER_DB"
    ):
        strategy(cluster).call("grant", payload(email=None))


def test_the_dsn_and_its_password_never_appear_in_an_error(cluster, monkeypatch):
    monkeypatch.setenv(DSN_ENV, "postgresql://admin:hunter2@127.0.0.1:1/nodb")
    with pytest.raises(StrategyError) as caught:
        strategy(cluster, {"carol": "carol"}).call("grant", payload())
    assert "hunter2" not in str(caught.value)
    assert DSN_ENV in str(caught.value)

    monkeypatch.setenv(DSN_ENV, "host=127.0.0.1 password=hunter2 bogus_option=1")
    with pytest.raises(StrategyError) as caught:
        strategy(cluster, {"carol": "carol"}).call("grant", payload())
    assert "hunter2" not in str(caught.value)


def test_an_unset_dsn_variable_is_a_failure_naming_it(monkeypatch):
    monkeypatch.delenv(DSN_ENV, raising=False)
    built = build_strategy({"type": "postgres_role", "dsn_env": DSN_ENV, "role": "prod_rw"})
    with pytest.raises(StrategyError, match=f"{DSN_ENV} .*is not set"):
        built.call("grant", payload())


def test_settings_problems_name_each_key():
    _, problems = strategy_problems({"type": "postgres_role", "dsn": "postgres://x", "role": ""})
    keys = [p.key for p in problems]
    assert keys[0] == "strategy.dsn"
    assert "strategy.role" in keys and "strategy.dsn_env" in keys
    _, problems = strategy_problems({"type": "postgres_role", "dsn_env": "X", "role": "r" * 64})
    assert "63" in str(problems[0])


def test_check_names_file_line_and_key_and_strict_refuses_an_unset_dsn_variable(
    tmp_path, policy_dir, monkeypatch
):
    monkeypatch.delenv(DSN_ENV, raising=False)
    policy_file(policy_dir, "db.py", postgres_policy("prod_rw"))

    code, out, _ = accessbot("check", "policies", cwd=tmp_path)
    assert code == 0
    assert out.splitlines()[0].startswith(
        f"policies/db.py:6: warning: prod-db.strategy.dsn_env: the environment variable {DSN_ENV} "
        "is not set"
    )
    code, out, _ = accessbot("check", "--strict", "policies", cwd=tmp_path)
    assert code == 1

    policy_file(policy_dir, "db.py", postgres_policy("prod_rw").replace('"role"', '"rolename"'))
    code, out, _ = accessbot("check", "policies", cwd=tmp_path, env={DSN_ENV: "x"})
    assert code == 1
    assert out.splitlines()[0].startswith("policies/db.py:6: prod-db.strategy.rolename:")


def test_the_overdue_alert_names_the_role_and_the_variable_naming_the_database():
    assert target_of(
        {"type": "postgres_role", "dsn_env": "PROD_DB_ADMIN_DSN", "role": "prod_rw"}
    ) == ("postgres_role (role=prod_rw, dsn_env=PROD_DB_ADMIN_DSN)")


# -- the whole bot --------------------------------------------------------------------


def postgres_policy(role: str) -> str:
    return f"""
RESOURCES = {{
    "prod-db": {{
        "approvers": ["alice"],
        "max_duration": "4h",
        "channel": "#prod-access",
        "strategy": {{"type": "postgres_role", "dsn_env": "{DSN_ENV}", "role": "{role}"}},
    }},
}}
"""


def test_the_bot_grants_the_role_and_at_expiry_revokes_it_and_ends_the_session(
    cluster, bot_factory, policy_dir, clock, tmp_path
):
    carol = cluster.login("carol")
    policy_file(policy_dir, "db.py", postgres_policy(cluster.role))
    chat = bot_factory(ACCESS_USER_DB={"carol": carol})
    rid = request_id(chat.reply("carol", "!access request prod-db 1h fixing INC-42"))
    assert chat.say("alice", f"!approve {rid}")[0].startswith(f"Approved {rid}")
    assert cluster.members() == {carol}
    session = cluster.connect_as(carol)
    session.execute(f'SET ROLE "{cluster.role}"')

    started = time.monotonic()
    clock.advance(hours=1, seconds=1)

    told = chat.wait_for("carol", "expired")
    print(f"grant's end to session terminated and told: {time.monotonic() - started:.3f}s")
    assert cluster.members() == set()
    assert not alive(session)
    assert told.endswith("The login's database sessions opened before: ended.")
    channel = chat.wait_for("#prod-access", "expired and was revoked")
    assert channel.endswith("The login's database sessions opened before: ended.")
    shown = chat.reply("carol", f"!access show {rid}")
    assert "At the revoke: The login's database sessions opened before: ended." in shown
    audit = [
        json.loads(line) for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    ]
    expired = next(e for e in audit if e.get("event") == "expired")
    assert expired["sessions"] == {"fate": "ended", "what": "the login's database sessions"}


def test_a_login_that_held_the_role_only_through_the_revoked_login_loses_its_sessions_too(cluster):
    carol, erin, dave = cluster.login("carol"), cluster.login("erin"), cluster.login("dave")
    cluster.admin.execute(f'GRANT "{carol}" TO "{erin}"')  # erin may SET ROLE to carol
    cluster.admin.execute(f'GRANT "{carol}" TO "{dave}"')
    cluster.admin.execute(f'GRANT "{cluster.role}" TO "{dave}"')  # dave holds it himself too
    granted = strategy(cluster, {"carol": carol}).call("grant", payload())
    erins = cluster.connect_as(erin)
    erins.execute(f'SET ROLE "{cluster.role}"')
    daves = cluster.connect_as(dave)
    daves.execute(f'SET ROLE "{cluster.role}"')

    strategy(cluster, {"carol": carol}).call("revoke", payload("revoke", account=granted.account))

    assert not alive(erins)
    assert alive(daves)


# -- the standing-access sweep ----------------------------------------------------------


def test_the_sweep_finds_a_login_granted_by_hand_and_removes_it_ending_its_sessions(
    cluster, tmp_path, clock
):
    carol, mallory, svc = cluster.login("carol"), cluster.login("mallory"), cluster.login("svc")
    for login in (mallory, svc):
        cluster.admin.execute(f'GRANT "{cluster.role}" TO "{login}"')  # by hand
    policy = postgres_policy(cluster.role).replace(
        '"channel"', f'"standing": ["{svc}"], "remove_standing": True, "channel"'
    )
    policy_file(tmp_path / "policies", "db.py", policy)
    service = wired(
        TinyDBStore(tmp_path / "data" / "access.json"),
        AuditLog(tmp_path / "data" / "audit.jsonl", clock),
        tmp_path / "policies",
        clock,
        user_db={"carol": carol},
    )
    rid = service.request(Actor("carol"), "prod-db", None, "INC-7").request.id
    assert service.approve(person("alice"), rid).request.status == "active"
    mallorys = cluster.connect_as(mallory)
    mallorys.execute(f'SET ROLE "{cluster.role}"')

    result = StandingSweep(service).sweep()

    assert [f.user for f in result.found] == [mallory]
    assert cluster.members() == {carol, svc}
    assert not alive(mallorys)
