"""The victim of tests/test_crash.py: requests, approves and revokes in a tight loop and
prints `ack <id> <status>` after each call returns, until it is killed."""

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.builders import build_service, person


def main(root: str, url: str) -> None:
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    service = build_service(Path(root), lambda: datetime.now(UTC), url)
    service.tick()  # like the plugin at start: finish what the last run left half done
    print("ready", flush=True)
    number = 0
    while True:
        number += 1
        # A new person each time: one who still holds prod-db may not ask for it again.
        requester = person(f"user{os.getpid()}-{number}")
        rid = service.request(requester, "prod-db", timedelta(hours=1), f"crash {number}")
        rid = rid.request.id
        print(f"ack {rid} pending", flush=True)
        if number % 3 == 0:
            service.deny(person("bob"), rid, "no")
            print(f"ack {rid} denied", flush=True)
            continue
        service.approve(person("bob"), rid)
        print(f"ack {rid} active", flush=True)
        if number % 2 == 0:
            service.revoke(requester, rid)
            print(f"ack {rid} revoked", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
