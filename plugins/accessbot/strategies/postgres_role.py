"""PostgreSQL strategy: membership of an existing role, for the requester's database login.

`{"type": "postgres_role", "dsn_env": "PROD_DB_ADMIN_DSN", "role": "prod_rw"}`. The DSN
is read from the environment variable `dsn_env` names at call time and never shown: an
error that would quote it names the variable instead. The login is the requester's entry
in ACCESS_USER_DB (chat handle -> login), or else the local part of their e-mail, lower
case (alice.smith@acme.com -> alice.smith).

Grant: `GRANT role TO login`, and the login's OID is recorded as the grant's account.
Revoke: the login's current name is looked up by that OID in `pg_roles` (a login renamed
since the grant is still found), then `REVOKE role FROM login`, then every session of that
login opened before the REVOKE is terminated (`pg_terminate_backend` over `pg_stat_activity`
where `usesysid` is the OID), with those of logins that held the role only through it (its
own members, who could SET ROLE to it), and the revoke waits until none is left. Every
session, not only the ones that ran `SET ROLE`: with INHERIT (the default) the role's
privileges apply in every session of a member without any SET ROLE, a session that did
SET ROLE keeps the role after the REVOKE, and from outside PostgreSQL cannot tell which
session used them. Sessions opened after the REVOKE cannot take the role and are left. A role or login that does not exist is a failure naming it: the bot never creates one.
Identifiers are always quoted by psycopg (`sql.Identifier`), never formatted into SQL.

Memberships do not expire, so `extend` needs no call. `members()` lists the role's direct
members (`pg_auth_members`), by OID, for the standing-access sweep and certification.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from .base import Done, Member, Sessions, SettingsError, Strategy, StrategyError
from .deadline import time_left

NAME_BYTES = 63  # PostgreSQL cuts longer identifiers; a cut name would grant another role
TERMINATE_ROUNDS = 3  # looks at the sessions opened before the REVOKE, until none is left

# Every session of the login is ended, not only those that ran SET ROLE (module doc).
ENDED = Sessions("ended", "the login's database sessions")


def _identifier(name: str, what: str) -> str:
    if len(name.encode("utf-8")) > NAME_BYTES:
        raise StrategyError(f"the {what} {name!r} is longer than PostgreSQL's {NAME_BYTES} bytes")
    return name


class PostgresRoleStrategy(Strategy):
    kind = "postgres_role"
    allowed_keys = frozenset({"type", "dsn_env", "role", "timeout"})

    def __init__(self, dsn_env: str, role: str, timeout: float):
        self.dsn_env = dsn_env
        self.role = role
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: dict) -> PostgresRoleStrategy:
        cls.check_keys(settings)
        dsn_env = cls.env_setting(settings, "dsn_env", "PROD_DB_ADMIN_DSN")
        role = cls.text_setting(settings, "role", "prod_rw")
        if len(role.encode("utf-8")) > NAME_BYTES:
            raise SettingsError(
                "strategy.role", f"{role!r} is longer than PostgreSQL's {NAME_BYTES}-byte names"
            )
        return cls(dsn_env, role, cls.timeout_setting(settings, "10s"))

    # -- connection ---------------------------------------------------------------------

    def _scrub(self, text: str, dsn: str) -> str:
        """A driver's error without the DSN or its password (libpq may quote either)."""
        import psycopg.conninfo

        secrets = [dsn]
        try:
            password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        except psycopg.Error:
            password = None
        if password:
            secrets.append(str(password))
        for secret in secrets:
            text = text.replace(secret, f"<the DSN in {self.dsn_env}>")
        return " ".join(text.split())[:300]

    @contextmanager
    def _connection(self) -> Iterator:
        """A connection to the target with the DSN from the environment, statements bounded
        by what is left of the call's deadline; every driver error a StrategyError."""
        import psycopg

        dsn = self.secret(self.dsn_env, "the PostgreSQL DSN")
        left = time_left(self.timeout)
        try:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=max(2, math.ceil(left)))
        except psycopg.Error as exc:
            raise StrategyError(
                f"could not connect to PostgreSQL ({self.dsn_env}): {self._scrub(str(exc), dsn)}"
            ) from None
        try:
            with conn:
                millis = max(1, int(time_left(self.timeout) * 1000))
                conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(millis),))
                yield conn
        except psycopg.Error as exc:
            raise StrategyError(
                f"PostgreSQL ({self.dsn_env}): {self._scrub(str(exc), dsn)}"
            ) from None

    # -- look-ups -----------------------------------------------------------------------

    @staticmethod
    def _oid(conn, name: str) -> int | None:
        row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        return int(row[0]) if row else None

    @staticmethod
    def _name_of(conn, oid: int) -> str | None:
        row = conn.execute("SELECT rolname FROM pg_roles WHERE oid = %s", (oid,)).fetchone()
        return str(row[0]) if row else None

    def _role_oid(self, conn) -> int:
        oid = self._oid(conn, self.role)
        if oid is None:
            raise StrategyError(
                f"PostgreSQL has no role {self.role} ({self.dsn_env}): the bot grants "
                "membership of an existing role and never creates one; create it, or fix "
                "the policy's strategy.role"
            )
        return oid

    def _login(self, payload: dict) -> str:
        """The requester's database login: ACCESS_USER_DB, else their e-mail's local part."""
        found = (self.accounts.find("db", payload["user"]) if self.accounts else None) or ""
        if not found and payload.get("user_email") and "@" in payload["user_email"]:
            found = payload["user_email"].split("@", 1)[0].strip().lower()
        if not found:
            raise StrategyError(
                f"no database login for @{payload['user']}: add it to ACCESS_USER_DB "
                "(or give them an e-mail, whose local part is the login)"
            )
        return _identifier(found, "database login")

    def _login_oid(self, conn, login: str) -> int:
        oid = self._oid(conn, login)
        if oid is None:
            raise StrategyError(
                f"PostgreSQL has no login {login} ({self.dsn_env}): the bot never creates "
                "logins; create it, or map the requester to theirs in ACCESS_USER_DB"
            )
        return oid

    # -- the calls ----------------------------------------------------------------------

    def call(self, action: str, payload: dict) -> Done:
        if action == "extend":
            return Done("PostgreSQL role memberships do not expire; nothing to extend")
        if action not in ("grant", "revoke"):
            raise StrategyError(f"postgres_role cannot {action!r}")
        from psycopg import sql

        with self._connection() as conn:
            role_oid = self._role_oid(conn)
            if action == "grant":
                login = self._login(payload)
                login_oid = self._login_oid(conn, login)
                if login_oid == role_oid:
                    raise StrategyError(f"the login {login} is the role {self.role} itself")
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(self.role), sql.Identifier(login)
                    )
                )
                return Done(
                    f"PostgreSQL: {login} (OID {login_oid}) made a member of {self.role}",
                    account=str(login_oid),
                )
            return self._revoke(conn, role_oid, payload)

    def _revoke(self, conn, role_oid: int, payload: dict) -> Done:
        from psycopg import sql

        account = payload.get("account")
        if account:
            if not str(account).isdigit():
                raise StrategyError(f"the recorded login OID {account!r} is not a number")
            login_oid = int(account)
            login = self._name_of(conn, login_oid)  # its name now: it may have been renamed
        else:  # granted before accounts were recorded: the login as it is named now
            login = self._login(payload)
            login_oid = self._login_oid(conn, login)
        if login is not None:
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(self.role), sql.Identifier(login)
                )
            )
            still = conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.grantor "
                "WHERE m.roleid = %s AND m.member = %s",
                (role_oid, login_oid),
            ).fetchall()
            if still:
                grantors = ", ".join(sorted({str(r[0]) for r in still}))
                raise StrategyError(
                    f"{login} is still a member of {self.role} after the REVOKE (granted by "
                    f"{grantors}, which the bot's user cannot undo); the revoke is retried"
                )
        ended = self._terminate(conn, role_oid, login_oid)
        who = f"{login} (OID {login_oid})" if login else f"the dropped login with OID {login_oid}"
        return Done(
            f"PostgreSQL: {who} removed from {self.role}; {ended} session(s) terminated",
            account=str(login_oid),
            sessions=ENDED,
        )

    def _terminate(self, conn, role_oid: int, login_oid: int) -> int:
        """End the sessions that may have the role in effect, and wait until they are gone:
        every session of the login, and of the logins that held the role only through it
        (members of the login, who could SET ROLE to it), opened before the REVOKE was
        committed. A session opened after it cannot take the role, so a client that
        reconnects at once is left alone. How many were ended."""
        before = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        ended = 0
        for _ in range(TERMINATE_ROUNDS):
            wait = max(1, int(min(5.0, time_left(self.timeout)) * 1000))
            rows = conn.execute(
                "WITH RECURSIVE below(oid) AS ("
                "  SELECT %(login)s::oid"
                "  UNION SELECT m.member FROM pg_auth_members m JOIN below b ON m.roleid = b.oid"
                ") "
                "SELECT a.pid, pg_terminate_backend(a.pid, %(wait)s) FROM pg_stat_activity a "
                "WHERE a.usesysid IN (SELECT oid FROM below WHERE oid = %(login)s "
                "  OR NOT pg_has_role(oid, %(role)s::oid, 'MEMBER')) "
                "AND a.backend_start < %(before)s AND a.pid <> pg_backend_pid()",
                {"login": login_oid, "role": role_oid, "wait": wait, "before": before},
            ).fetchall()
            if not rows:
                return ended
            refused = [str(pid) for pid, gone in rows if not gone]
            ended += len(rows) - len(refused)
            if refused:
                raise StrategyError(
                    f"the membership of {self.role} is removed, but PostgreSQL did not end the "
                    f"login's session(s) {', '.join(refused)} in time (the bot's user needs "
                    "pg_signal_backend); the revoke is retried"
                )
        raise StrategyError(
            f"the membership of {self.role} is removed, but sessions opened before it are "
            "still listed after being ended; the revoke is retried"
        )

    def members(self, resource: str) -> list[Member]:
        with self._connection() as conn:
            role_oid = self._role_oid(conn)
            rows = conn.execute(
                "SELECT DISTINCT r.oid, r.rolname, r.rolcanlogin FROM pg_auth_members m "
                "JOIN pg_roles r ON r.oid = m.member WHERE m.roleid = %s ORDER BY r.rolname",
                (role_oid,),
            ).fetchall()
        return [
            Member(str(name), None, str(oid), "" if can_login else "a role, not a login")
            for oid, name, can_login in rows
        ]

    def sessions_at_revoke(self) -> Sessions:
        return ENDED

    def target_key(self) -> tuple:
        # The DSN is a secret read at call time: the variable naming it stands for it.
        return (self.kind, self.dsn_env, self.role)

    def describe(self) -> str:
        return f"postgres_role (role {self.role}, DSN in {self.dsn_env})"
