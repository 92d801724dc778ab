"""A throwaway PostgreSQL server for the tests and benches: a real server, never a mock.

`initdb` into a fresh temporary directory, start on 127.0.0.1 with a free port, hand
out one empty database per test, stop and delete everything at the end. The binaries
come from ACCESS_TEST_PG_BINDIR, the PATH, or Debian's /usr/lib/postgresql/*/bin (the
Makefile installs Debian's `postgresql` package when none is found). PostgreSQL will
not run as root, so under root the server runs as the `postgres` user the package made.

`ACCESS_TEST_DB_URL` points the tests at a server you already run instead (a user who
may CREATE DATABASE); nothing is started then.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit


class NoServer(Exception):
    """No PostgreSQL server can be had here; the message says why and how to get one."""


def find_bindir() -> Path | None:
    explicit = os.environ.get("ACCESS_TEST_PG_BINDIR")
    if explicit:
        return Path(explicit)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0),
    )
    return candidates[-1].parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throwaway cluster; `database()` makes a fresh empty database and its URL."""

    def __init__(self, bindir: Path, durable: bool = False):
        self.bindir = bindir
        self.durable = durable  # fsync and synchronous commits, as in production (benches)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="accessbot-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise NoServer(
                    "the tests run as root and PostgreSQL refuses to; there is no `postgres` "
                    "user to run it as (install Debian's postgresql package: `make test` does)"
                ) from exc
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._names = itertools.count(1)
        self.admin_url = f"postgresql://accessbot@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        kwargs = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bindir / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=60,
            **kwargs,
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise NoServer(f"{argv[0]} failed: {done.stderr.strip()}\n{log[-2000:]}")

    def halt(self) -> None:
        """Stop the server as a crash or an outage would, keeping its data."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start a halted server again on the same port and data."""
        self._serve()

    def start(self) -> PostgresServer:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "accessbot",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self._serve()
        return self

    def _serve(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=200",
            ]
            # A throwaway cluster for tests: durability costs time and proves nothing there.
            + (
                []
                if self.durable
                else ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            )
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def database(self) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://accessbot@127.0.0.1:{self.port}/{name}"

    def drop(self, url: str) -> None:
        _drop(self.admin_url, url)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class ExistingServer:
    """ACCESS_TEST_DB_URL: a server someone runs; we only create and drop databases."""

    def __init__(self, url: str):
        self.admin_url = url
        self._names = itertools.count(1)

    def database(self) -> str:
        import psycopg

        name = f"accessbot_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return urlsplit(self.admin_url)._replace(path=f"/{name}").geturl()

    def drop(self, url: str) -> None:
        _drop(self.admin_url, url)

    def stop(self) -> None:
        pass


def _drop(admin_url: str, url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(durable: bool = False) -> PostgresServer | ExistingServer:
    """A server to test against, or NoServer saying why there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise NoServer("psycopg is not installed (`make test` installs requirements.txt)") from exc
    url = os.environ.get("ACCESS_TEST_DB_URL")
    if url:
        return ExistingServer(url)
    bindir = find_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise NoServer(
            "no PostgreSQL server binaries (initdb) found: `make test` installs Debian's "
            "postgresql package when it runs as root with apt-get; or set "
            "ACCESS_TEST_PG_BINDIR, or ACCESS_TEST_DB_URL to a server you run"
        )
    server = PostgresServer(bindir, durable)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
