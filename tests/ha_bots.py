"""Bot processes on PostgreSQL for the failover and outage tests: `spawn` starts
tests/ha_child.py and waits for its `ready <bot id>`; `own_server` is a cluster a test
may stop (the shared one must never be)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PLUGINS, ROOT
from tests.pgserver import NoServer, PostgresServer, start_server


def spawn(db_url: str, root, tick: float, lease: float, stderr=None):
    """A bot process (tests/ha_child.py) on `db_url`, started: (process, bot id). What it
    logs goes to `stderr` (a file), else to the test's own stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "ha_child.py"), db_url, str(root)]
        + [str(tick), str(lease)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=root,
    )
    ready = process.stdout.readline().split()
    if ready[:1] != ["ready"]:
        logged = Path(stderr.name).read_text() if stderr is not None else ""
        raise AssertionError(f"the bot did not start: {ready} {logged}")
    return process, ready[1]


@pytest.fixture
def own_server():
    """A cluster of its own, durable (what was committed survives `pg_ctl stop -m
    immediate`): the test stops it, which the shared one must never be."""
    try:
        server = start_server(durable=True)
    except NoServer as exc:
        pytest.skip(f"PostgreSQL tests need a server: {exc}")
    if not isinstance(server, PostgresServer):
        pytest.skip("needs a server it may stop (not ACCESS_TEST_DB_URL)")
    yield server
    server.stop()
