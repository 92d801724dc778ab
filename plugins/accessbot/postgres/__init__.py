"""PostgreSQL behind the same ports as TinyDB and the audit file, for several bots on one
database (ACCESS_DB_URL).

- `Database`: a psycopg 3 connection pool, the schema's versioned migrations (applied at
  start), the thread's transaction, and this bot's heartbeat.
- `PostgresStore`: the request store port (`accessbot.store.RequestStore`).
- `PostgresAuditLog`: the hash-chained audit log in a table, one chain for every bot.
- `LeaderLease`: which bot runs the scheduler, a lease row renewed every tick.

How the bots stay out of each other's way:
- Every decision (the service's `with self.lock:` blocks) is one transaction that first
  takes a transaction-level advisory lock, so decisions of all bots are serialised the
  way one bot's threads always were, and a decision's audit event and its store write
  commit together or not at all. A write also checks the row's version.
- A strategy call is claimed in the `claims` table; a claim counts while its bot's
  heartbeat lease is fresh, so the claims of a bot that died lapse after the lease time.
- One bot at a time holds the `scheduler` lease and ticks; the others try every tick.
"""

from .audit import PostgresAuditLog
from .database import Database, DatabaseError
from .leader import LeaderLease
from .store import PostgresStore

__all__ = ["Database", "DatabaseError", "LeaderLease", "PostgresAuditLog", "PostgresStore"]
