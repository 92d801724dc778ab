# A plain approval flow: someone asks, one of the approvers says yes, access is
# granted for the time asked for and taken away automatically at the end.
#
# Each entry in RESOURCES is one thing people can request with
#     !access request <name> [duration] <reason>
# Durations are written like 30m, 2h, 1h30m or 1d.

RESOURCES = {
    "prod-db": {
        "description": "Production PostgreSQL, read-write",
        "max_duration": "4h",  # nobody gets more than this in one go (required)
        "default_duration": "1h",  # used when the request names no duration
        "approvers": ["@alice", "@bob"],  # chat handles, Slack user ids or e-mails
        "channel": "#access-approvals",  # where the approval card is posted
        "approvals_required": 1,
        "allow_self_approval": False,  # alice cannot approve alice's own request
        # How access is really granted: this demo script records grants under data/.
        # A real deployment would use a webhook or a script that calls its own CLI.
        "strategy": {"type": "command", "argv": ["scripts/grant.py"], "timeout": "30s"},
        # With a real database: membership of an existing role for the requester's login
        # (ACCESS_USER_DB, or their e-mail's local part); at the end the membership is
        # revoked and the login's open sessions are ended. The DSN comes from the
        # environment only. (`make run` has no database, so the demo keeps the script.)
        # "strategy": {"type": "postgres_role", "dsn_env": "PROD_DB_ADMIN_DSN", "role": "prod_rw"},
    },
    "staging-db": {
        "description": "Staging PostgreSQL, read-write",
        "max_duration": "1d",
        "default_duration": "4h",
        "approvers": ["@alice", "@bob", "@carol"],
        "channel": "#access-approvals",
        "strategy": {"type": "command", "argv": ["scripts/grant.py"]},
    },
}
