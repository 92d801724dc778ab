"""The victim of tests/test_crash.py: requests, approves and revokes in a tight loop and
tells `ack <id> <status>` after each call returns, until it is killed.

The test forks it from a forkserver that has imported this module already (`run`: lines
go through a pipe), so each of its many victims starts in milliseconds; run as a script,
it prints the same lines."""

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.builders import build_service, person


def run(root: str, url: str, pipe) -> None:
    """The forked victim: `pipe` is the writing end of a multiprocessing Pipe."""
    os.chdir(root)
    main(root, url, pipe.send)


def main(root: str, url: str, tell: Callable[[str], None] | None = None) -> None:
    tell = tell or (lambda line: print(line, flush=True))
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    service = build_service(Path(root), lambda: datetime.now(UTC), url)
    service.tick()  # like the plugin at start: finish what the last run left half done
    tell("ready")
    number = 0
    while True:
        number += 1
        # A new person each time: one who still holds prod-db may not ask for it again.
        requester = person(f"user{os.getpid()}-{number}")
        rid = service.request(requester, "prod-db", timedelta(hours=1), f"crash {number}")
        rid = rid.request.id
        tell(f"ack {rid} pending")
        if number % 3 == 0:
            service.deny(person("bob"), rid, "no")
            tell(f"ack {rid} denied")
            continue
        service.approve(person("bob"), rid)
        tell(f"ack {rid} active")
        if number % 2 == 0:
            service.revoke(requester, rid)
            tell(f"ack {rid} revoked")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
