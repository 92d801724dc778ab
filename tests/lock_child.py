"""A process of its own on a data folder, for tests/test_data_lock.py.

python tests/lock_child.py bot ROOT
    A real errbot (TestBot) with the real Access plugin on ROOT/data and the policies
    in ROOT/policies. Prints `started`, `degraded <why>` or `refused <message>` once
    the plugin has finished starting, then waits until stdin closes (or it is killed).

python tests/lock_child.py audit PATH COUNT
    An AuditLog on PATH: appends one event (so it has read the tail), prints `ready`,
    waits for a line on stdin, appends COUNT events as fast as it can, prints `done`.
"""

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import PLUGINS, stop_test_bot


def bot(root: str) -> None:
    from errbot.backends.test import TestBot

    data = Path(root) / "data"
    testbot = TestBot(
        extra_plugin_dir=str(PLUGINS),
        loglevel=logging.CRITICAL,
        extra_config={
            "BOT_ADMINS": ("admin",),
            "BOT_ASYNC": False,
            "ACCESS_POLICY_DIR": str(Path(root) / "policies"),
            "ACCESS_DB_PATH": str(data / "access.json"),
            "ACCESS_AUDIT_PATH": str(data / "audit.jsonl"),
            "ACCESS_TICK_SECONDS": 0.05,
            "ACCESS_STANDING_SWEEP": 0,
        },
    )
    testbot.start(timeout=30)
    plugin = testbot.bot.plugin_manager.get_plugin_obj_by_name("Access")
    plugin.started.wait(60)
    if plugin.startup_error:
        print("refused " + " ".join(plugin.startup_error.split()), flush=True)
    elif plugin.degraded:
        print("degraded " + " ".join(plugin.degraded.split()), flush=True)
    else:
        print("started", flush=True)
    sys.stdin.read()
    stop_test_bot(testbot)


def audit(path: str, count: str) -> None:
    from accessbot.audit import AuditLog

    log = AuditLog(path, lambda: datetime.now(UTC))
    log.append("hello", actor="child")
    print("ready", flush=True)
    sys.stdin.readline()
    for number in range(int(count)):
        log.append("busy", actor="child", detail=str(number))
    print("done", flush=True)


if __name__ == "__main__":
    {"bot": bot, "audit": audit}[sys.argv[1]](*sys.argv[2:])
