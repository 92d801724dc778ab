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
    Migration(
        4,
        "requests: columns and indexes for the scheduler's look-ups (revocations due, "
        "reminders, time-outs, nudges, a requester's and a grant's live requests)",
        (
            """
            ALTER TABLE requests
                ADD COLUMN revoke_due_at timestamptz,
                ADD COLUMN extends       text,
                ADD COLUMN next_nudge_at timestamptz,
                ADD COLUMN reminder_sent boolean NOT NULL DEFAULT false
            """,
            # Rows written before this migration: the same values `_row` writes now.
            """
            UPDATE requests SET
                extends = data->>'extends',
                next_nudge_at = (data->>'next_nudge_at')::timestamptz,
                reminder_sent = coalesce((data->>'reminder_sent')::boolean, false),
                revoke_due_at = CASE
                    WHEN status = 'active' AND data->>'ending' = 'revoked'
                        THEN timestamptz '1970-01-01 00:00:00+00'
                    WHEN status = 'active' THEN expires_at
                    WHEN status = 'revoke_failed'
                        THEN coalesce(next_retry_at, timestamptz '1970-01-01 00:00:00+00')
                END
            WHERE NOT final
            """,
            """
            CREATE INDEX requests_revoke_due ON requests (revoke_due_at, id)
                WHERE revoke_due_at IS NOT NULL
            """,
            "CREATE INDEX requests_live_requester ON requests (requester) WHERE NOT final",
            "CREATE INDEX requests_live_status ON requests (status) WHERE NOT final",
            """
            CREATE INDEX requests_live_extends ON requests (extends)
                WHERE NOT final AND extends IS NOT NULL
            """,
            "CREATE INDEX requests_pending ON requests (created_at) WHERE status = 'pending'",
            """
            CREATE INDEX requests_nudge ON requests (next_nudge_at)
                WHERE status = 'pending' AND next_nudge_at IS NOT NULL
            """,
            """
            CREATE INDEX requests_unreminded ON requests (expires_at)
                WHERE status = 'active' AND NOT reminder_sent
            """,
        ),
    ),
    Migration(
        5,
        "standing: what the standing-access sweep found, one document per resource",
        (
            """
            CREATE TABLE standing (
                resource text PRIMARY KEY,
                state    jsonb NOT NULL,
                saved_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ),
    ),
    Migration(
        6,
        "sink_cursors: how far each audit sink has acknowledged the chain, its last error",
        (
            """
            CREATE TABLE sink_cursors (
                name       text PRIMARY KEY,
                seq        bigint NOT NULL DEFAULT 0,
                hash       text NOT NULL DEFAULT '',
                shipped_at text,
                error      text NOT NULL DEFAULT '',
                error_at   text
            )
            """,
        ),
    ),
    Migration(
        7,
        "requests: escalation, after-hooks still to run, the time-out of escalated requests, "
        "and an index for policies' history counts",
        (
            """
            ALTER TABLE requests
                ADD COLUMN next_escalation_at timestamptz,
                ADD COLUMN waits_since        timestamptz,
                ADD COLUMN follow_ups_due     boolean NOT NULL DEFAULT false
            """,
            # Rows written before this migration: the same values `_row` writes now.
            "UPDATE requests SET waits_since = created_at WHERE status = 'pending'",
            """
            CREATE INDEX requests_waiting ON requests (waits_since)
                WHERE status = 'pending'
            """,
            """
            CREATE INDEX requests_escalation ON requests (next_escalation_at)
                WHERE status = 'pending' AND next_escalation_at IS NOT NULL
            """,
            "CREATE INDEX requests_follow_ups ON requests (created_at) WHERE follow_ups_due",
            """
            CREATE INDEX requests_history ON requests (requester, resource, created_at)
                WHERE extends IS NULL
            """,
        ),
    ),
    Migration(
        8,
        "outbox: notices waiting for the chat platform, claimed by one bot at a time",
        (
            """
            CREATE TABLE outbox (
                id            bigserial PRIMARY KEY,
                created_at    timestamptz NOT NULL,
                audience      text NOT NULL,
                recipient     text NOT NULL,
                destination   text NOT NULL,
                kind          text NOT NULL,
                text          text NOT NULL,
                request_id    text,
                request       jsonb,
                attempts      integer NOT NULL DEFAULT 0,
                next_at       timestamptz NOT NULL,
                last_error    text NOT NULL DEFAULT '',
                state         text NOT NULL DEFAULT 'pending',
                claimed_by    text,
                claimed_until timestamptz,
                finished_at   timestamptz
            )
            """,
            """
            CREATE INDEX outbox_pending ON outbox (destination, request_id, id)
                WHERE state = 'pending'
            """,
            "CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending'",
        ),
    ),
    Migration(
        9,
        "certifications: access certifications and their items; an item is decided once",
        (
            """
            CREATE TABLE certifications (
                id        text PRIMARY KEY,
                resource  text NOT NULL,
                state     text NOT NULL,
                opened_at timestamptz NOT NULL,
                data      jsonb NOT NULL
            )
            """,
            "CREATE INDEX certifications_open ON certifications (opened_at) WHERE state = 'open'",
            """
            CREATE TABLE certification_items (
                id               text PRIMARY KEY,
                certification_id text NOT NULL REFERENCES certifications (id),
                decision         text,
                data             jsonb NOT NULL
            )
            """,
            "CREATE INDEX certification_items_of ON certification_items (certification_id)",
        ),
    ),
)

NEWEST = MIGRATIONS[-1].version
