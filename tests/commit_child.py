"""A service on PostgreSQL that makes and denies requests as fast as it can, its notices
written to the outbox through unstarted delivery workers (nothing is sent), for
tests/test_notices_in_commit.py to kill with SIGKILL at any moment. Prints `denied <n>`
after each request it denied.

    python tests/commit_child.py DB_URL POLICY_DIR FIRST_USER_NUMBER
"""

import sys
from datetime import UTC, datetime

from accessbot.delivery_workers import DeliveryWorkers
from accessbot.postgres import Database, PostgresAuditLog, PostgresStore
from accessbot.postgres.outbox import PostgresOutbox
from tests.builders import person, wired


def main(db_url: str, policy_dir: str, first: str) -> None:
    def clock():
        return datetime.now(UTC)

    db = Database(db_url, heartbeat=False)
    writer = DeliveryWorkers(PostgresOutbox(db), lambda entry: None, clock)
    service = wired(
        PostgresStore(db), PostgresAuditLog(db, clock), policy_dir, clock, outbox=writer
    )
    number = int(first)
    while True:
        rid = service.request(person(f"user{number}"), "prod-db", None, "INC-1").request.id
        service.deny(person("bob"), rid, "no")
        print(f"denied {number}", flush=True)
        number += 1


if __name__ == "__main__":
    main(*sys.argv[1:4])
