"""The schema, as numbered migrations applied in order at start (never edit one that
shipped: add the next). `schema_migrations` records which ran, and when."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS = (
    Migration(
        1,
        "requests: live and finished, the request as JSON beside the columns queries use",
        (
            """
            CREATE TABLE requests (
                id            text PRIMARY KEY,
                status        text NOT NULL,
                final         boolean NOT NULL,
                requester     text NOT NULL,
                resource      text NOT NULL,
                created_at    timestamptz NOT NULL,
                expires_at    timestamptz,
                next_retry_at timestamptz,
                awaits_review boolean NOT NULL DEFAULT false,
                version       integer NOT NULL,
                saved_seq     bigint NOT NULL,
                data          jsonb NOT NULL
            )
            """,
            "CREATE SEQUENCE requests_saved_seq",
            "CREATE INDEX requests_live ON requests (created_at) WHERE NOT final",
            """
            CREATE INDEX requests_due ON requests (expires_at)
                WHERE status IN ('active', 'revoke_failed')
            """,
            "CREATE INDEX requests_review ON requests (created_at) WHERE awaits_review",
            "CREATE INDEX requests_archive ON requests (saved_seq) WHERE final",
        ),
    ),
    Migration(
        2,
        "audit: one hash chain for every bot; `line` is exactly the text that was hashed",
        (
            """
            CREATE TABLE audit (
                seq        bigint PRIMARY KEY,
                ts         timestamptz,
                event      text NOT NULL,
                request_id text,
                hash       text NOT NULL,
                line       text NOT NULL
            )
            """,
            "CREATE INDEX audit_request ON audit (request_id) WHERE request_id IS NOT NULL",
        ),
    ),
    Migration(
        3,
        "leases (bot heartbeats, the scheduler) and claims on strategy calls",
        (
            """
            CREATE TABLE leases (
                name       text PRIMARY KEY,
                holder     text NOT NULL,
                expires_at timestamptz NOT NULL,
                renewed_at timestamptz NOT NULL DEFAULT now(),
                host       text,
                pid        integer
            )
            """,
            """
            CREATE TABLE claims (
                request_id text PRIMARY KEY,
                owner      text NOT NULL,
                claimed_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ),
    ),
)

NEWEST = MIGRATIONS[-1].version
