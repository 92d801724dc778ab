"""The connection pool, the migrations, the thread's transaction and this bot's heartbeat."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from ..store import StoreError
from .schema import MIGRATIONS, NEWEST

log = logging.getLogger(__name__)

# Keys of PostgreSQL advisory locks (any 64-bit numbers, the same in every bot).
DECISION_LOCK = 0x61636365737301  # held by each decision's transaction until it commits
MIGRATION_LOCK = 0x61636365737302  # one bot migrates at a time

DEFAULT_LEASE_SECONDS = 10.0
DEFAULT_COMMAND_WAIT = 1.5  # seconds a command waits for a connection (ACCESS_DB_COMMAND_WAIT)


class DatabaseError(StoreError):
    """PostgreSQL refused or could not be reached; the message says where, never a password."""


DEAD_AFTER_LEASES = 10  # a bot silent this many lease times is gone: its rows are cleared
RECONNECT_EVERY = 0.5  # seconds between attempts to reach a database that went away
CONNECT_TIMEOUT = 3  # seconds one attempt to connect may take (libpq's least is 2)
MIN_STATEMENT_TIMEOUT = 5.0  # seconds; a query waits at most max(this, the lease)


class _Retry(AttemptWithBackoff):
    """The pool's reconnect attempts at a steady pace, not doubling: psycopg_pool's own
    backoff (1 s, 2 s, 4 s, ...) left a bot blind for up to half the outage again after
    the database came back."""

    INITIAL_DELAY = RECONNECT_EVERY
    DELAY_BACKOFF = 1.0


class _Connection(psycopg.Connection):
    """A connection on which no exchange with the server waits longer than `answer_within`
    seconds (a little over the statement timeout, which the server applies first): past
    that the server is taken for hung (stopped, or cut off without a word) and the
    connection is closed, so the query fails like one to a database that is gone."""

    answer_within: float = 60.0

    def wait(self, gen, interval=0.1, timeout=None):
        try:
            return super().wait(gen, interval, self.answer_within if timeout is None else timeout)
        except psycopg.errors._WaitTimeout:
            self.pgconn.finish()  # the exchange is cut mid-way: this connection is done
            raise psycopg.OperationalError(
                f"the database did not answer within {self.answer_within:g}s"
            ) from None


class _Pool(ConnectionPool):
    """A pool whose reconnect attempts come every RECONNECT_EVERY seconds, however long
    the database was away: a bot sees it again within about that of its return."""

    def _add_connection(self, attempt, growing: bool = False) -> None:
        super()._add_connection(attempt or _Retry(timeout=self.reconnect_timeout), growing)


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured database"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def renew_lease(conn, name: str, holder: str, seconds: float) -> bool:
    """Take the lease `name` for `seconds` if it is free, expired or ours; True if ours.

    The database's clock decides, so the bots' clocks need not agree. Two bots racing for
    an expired lease both reach the same row; the second re-checks it after the first
    commits, finds it taken, and gets no row back.
    """
    row = conn.execute(
        """
        INSERT INTO leases (name, holder, expires_at, renewed_at, host, pid)
        VALUES (%(name)s, %(holder)s, now() + make_interval(secs => %(seconds)s), now(),
                %(host)s, %(pid)s)
        ON CONFLICT (name) DO UPDATE
           SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
               renewed_at = EXCLUDED.renewed_at, host = EXCLUDED.host, pid = EXCLUDED.pid
         WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
        RETURNING holder
        """,
        {
            "name": name,
            "holder": holder,
            "seconds": seconds,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    ).fetchone()
    return row is not None


class Database:
    """One bot's way into the shared database: a pool of short-lived uses of connections.

    Opening it checks the connection (with PostgreSQL's own words on failure), applies the
    migrations this version knows and the database lacks, and starts the heartbeat that
    keeps this bot's claims alive. `close()` ends all of it and hands its claims back.
    """

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        heartbeat: bool = True,
        command_wait: float = DEFAULT_COMMAND_WAIT,
    ):
        """`heartbeat=False` for tools that only read or copy (the CLI): no lease row, no
        thread, so such a tool never looks like a bot to the others. `command_wait`: how
        long a thread inside `for_command()` waits for a connection (others wait
        `connect_timeout`), so a person gets an answer while the database is away."""
        self.url = url
        self.command_wait = command_wait
        self.where = safe_url(url)
        self.lease_seconds = lease_seconds
        self.bot_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._local = threading.local()
        try:
            # One plain connection first: PostgreSQL's own words if it refuses us.
            with psycopg.connect(url, connect_timeout=max(2, int(connect_timeout))) as conn:
                migrate(conn, self.where)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot use PostgreSQL at {self.where}: {_reason(exc)}. Check ACCESS_DB_URL "
                "(postgresql://user@host/dbname; the password in PGPASSWORD or ~/.pgpass) "
                "and that the database exists and is reachable"
            ) from exc
        # Every query gives up after the statement timeout, so a database that hangs is
        # noticed (and told) like one that is gone, instead of holding a thread for good.
        self.statement_timeout = max(MIN_STATEMENT_TIMEOUT, lease_seconds)
        connection_class = type(
            "Connection", (_Connection,), {"answer_within": self.statement_timeout + 2.0}
        )
        self.pool = _Pool(
            url,
            connection_class=connection_class,
            min_size=1,
            max_size=max_connections,
            kwargs={
                "autocommit": True,
                "application_name": "accessbot",
                "connect_timeout": CONNECT_TIMEOUT,
                "options": _with_statement_timeout(url, self.statement_timeout),
            },
            configure=_configure,
            check=ConnectionPool.check_connection,
            open=False,
            name="accessbot",
            timeout=connect_timeout,
            # Never give up reconnecting: the attempts stay RECONNECT_EVERY apart.
            reconnect_timeout=365 * 24 * 3600.0,
        )
        self.pool.open(wait=True, timeout=connect_timeout)
        # An outage is logged once when it starts and once when it ends (by the heartbeat),
        # not once per attempt: the pool's own line per failed reconnect is silenced.
        self.away_since: float | None = None
        pool_log = logging.getLogger("psycopg.pool")
        if pool_log.level == logging.NOTSET:
            pool_log.setLevel(logging.ERROR)
        self._stop = threading.Event()
        # What this process is calling a strategy for right now (see postgres.store.Claims):
        # a claim row of this bot's that is not here outlived its call, and the heartbeat
        # deletes it, so no claim outlives its reason by more than a beat.
        self.claimed: set[str] = set()
        self.claimed_lock = threading.Lock()
        # Other leases to renew at every heartbeat (the scheduler's, while this bot holds
        # it), so a tick longer than the lease never lets another bot take over mid-tick.
        self.renewals: list[Callable[[], None]] = []
        self._heartbeat = threading.Thread(
            target=self._beat, name="accessbot-heartbeat", daemon=True
        )
        if heartbeat:
            self.beat()  # registered before the first claim
            self._heartbeat.start()

    # -- using it --------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """One decision: a transaction holding the decision lock until it commits.

        Nested uses (and every `connection()` on this thread meanwhile) join it.
        """
        joined = getattr(self._local, "conn", None)
        if joined is not None:
            with self._errors():
                yield joined
            return
        try:
            with self.pool.connection(timeout=self._decision_wait()) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))
                self._local.conn = conn
                try:
                    yield conn
                finally:
                    self._local.conn = None
        except psycopg.Error as exc:
            raise DatabaseError(
                f"PostgreSQL at {self.where}: {_reason(exc)}; nothing was changed"
            ) from exc

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """The thread's open transaction, or a pooled connection in autocommit."""
        joined = getattr(self._local, "conn", None)
        if joined is not None:
            with self._errors():
                yield joined
            return
        with self._errors(), self.pool.connection(timeout=self._wait()) as conn:
            yield conn

    @contextmanager
    def for_command(self) -> Iterator[None]:
        """While a person's command runs on this thread: wait at most `command_wait` for a
        connection, then fail (DatabaseError) rather than keep them waiting."""
        with self.waiting_at_most(self.command_wait):
            yield

    @contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """While the block runs on this thread: wait at most `seconds` for a connection
        (or less, inside a shorter wait), then fail (DatabaseError)."""
        before = getattr(self._local, "wait", None)
        self._local.wait = seconds if before is None else min(before, seconds)
        try:
            yield
        finally:
            self._local.wait = before

    def _wait(self) -> float | None:
        return getattr(self._local, "wait", None)  # None: the pool's own timeout

    def _decision_wait(self) -> float:
        """How long a decision waits for a connection: the thread's bound, else what the
        scheduler waits (half the lease). Whoever opens a decision holds this process's
        decision lock while it waits, so a strategy worker recording its call during an
        outage must not keep commands and the other workers behind it for the pool's 10 s
        (a batch of three in-flight revokes held them for 30 s)."""
        bound = max(1.0, self.lease_seconds / 2)
        wait = self._wait()
        return bound if wait is None else min(wait, bound)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise DatabaseError(f"PostgreSQL at {self.where}: {_reason(exc)}") from exc

    # -- liveness ----------------------------------------------------------------------

    def beat(self) -> bool:
        """Renew this bot's lease; while it is fresh, its claims hold. Delete this bot's
        claim rows whose call is no longer under way here (their record or hand-back
        failed while the database was away). Also clear what bots long dead left
        behind: their lease rows and their (lapsed) claims."""
        with self.connection() as conn:
            held = renew_lease(conn, f"bot:{self.bot_id}", self.bot_id, self.lease_seconds)
            # Under the lock, so no claim is taken between the look and the delete; rows
            # another transaction holds are skipped (it is handing them back or taking them).
            with self.claimed_lock:
                conn.execute(
                    "DELETE FROM claims WHERE request_id IN (SELECT request_id FROM claims "
                    "WHERE owner = %s AND NOT request_id = ANY(%s) FOR UPDATE SKIP LOCKED)",
                    (self.bot_id, list(self.claimed)),
                )
            conn.execute(
                "DELETE FROM leases WHERE name LIKE 'bot:%%' "
                "AND expires_at < now() - make_interval(secs => %s)",
                (DEAD_AFTER_LEASES * self.lease_seconds,),
            )
            conn.execute(
                "DELETE FROM claims c WHERE NOT EXISTS "
                "(SELECT 1 FROM leases l WHERE l.name = 'bot:' || c.owner)"
            )
            return held

    def _beat(self) -> None:
        every = max(0.05, self.lease_seconds / 3)
        while not self._stop.wait(every):
            try:
                self.beat()
                for renew in list(self.renewals):
                    renew()
            except StoreError as exc:
                self.seen(str(exc))
            else:
                self.seen(None)

    def seen(self, error: str | None) -> None:
        """The heartbeat reached the database (`error` None) or not: one log line when that
        changes, none while it stays so."""
        if error is not None and self.away_since is None:
            self.away_since = time.monotonic()
            log.error(
                "the database is away (%s); this bot decides, grants and revokes nothing "
                "until it is back, and its claims lapse",
                error,
            )
        elif error is None and self.away_since is not None:
            away, self.away_since = time.monotonic() - self.away_since, None
            log.warning("the database at %s answers again, after about %.0fs", self.where, away)

    def close(self) -> None:
        """Stop the heartbeat, hand back this bot's claims and leases, close the pool."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join(5)
        try:
            with self.connection() as conn:
                conn.execute("DELETE FROM claims WHERE owner = %s", (self.bot_id,))
                conn.execute("DELETE FROM leases WHERE holder = %s", (self.bot_id,))
        except StoreError as exc:
            log.warning("could not hand back claims and leases at close: %s", exc)
        self.pool.close()

    # -- schema ------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.connection() as conn:
            return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]


def migrate(conn: psycopg.Connection, where: str, upto: int = NEWEST) -> None:
    """Apply the migrations the database lacks (up to `upto`), in one transaction, one
    bot at a time; refuse a database that a newer bot has migrated further."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                description text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        current = current.fetchone()[0]
        if current > NEWEST:
            raise DatabaseError(
                f"the database at {where} has schema version {current}, newer than this bot "
                f"knows ({NEWEST}): another bot was upgraded; upgrade this one too"
            )
        for migration in MIGRATIONS:
            if current < migration.version <= upto:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                    (migration.version, migration.description),
                )
                log.info(
                    "database migrated to version %s: %s", migration.version, migration.description
                )


def _configure(conn: psycopg.Connection) -> None:
    # A bot whose host vanished holds nothing for long: its session is dropped after
    # about 20 s of silence instead of TCP's default two hours.
    conn.execute(
        "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 3; "
        "SET tcp_keepalives_count = 3; SET TIME ZONE 'UTC'"
    )


def _with_statement_timeout(url: str, seconds: float) -> str:
    """The URL's own `options` (if it has any), with the statement timeout added."""
    given = conninfo_to_dict(url).get("options") or ""
    return f"{given} -c statement_timeout={int(seconds * 1000)}".strip()


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
