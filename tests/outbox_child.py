"""One bot's delivery workers on PostgreSQL, without chat, for tests/test_outbox.py: it
"sends" each entry by printing `sent <id>` (taking `pause` seconds, as a chat would),
until killed or until stdin closes."""

import sys
import threading
from datetime import UTC, datetime

from accessbot.delivery_workers import DeliveryWorkers
from accessbot.postgres import Database
from accessbot.postgres.outbox import PostgresOutbox


def main(db_url: str, lease: str, pause: str) -> None:
    db = Database(db_url, lease_seconds=float(lease))
    printing = threading.Lock()

    def send(entry) -> None:
        threading.Event().wait(float(pause))
        with printing:
            print(f"sent {entry.id}", flush=True)

    workers = DeliveryWorkers(
        PostgresOutbox(db), send, lambda: datetime.now(UTC), owner=db.bot_id, batch=5, poll=0.1
    )
    workers.start()
    print(f"ready {db.bot_id}", flush=True)
    sys.stdin.read()
    workers.stop(drain=0)
    db.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
