"""Errbot configuration for the access bot.

Text backend by default (`make run`): one terminal plays every role with `!asuser bob`,
`!asadmin` and `!inroom #access-approvals`. Set SLACK_BOT_TOKEN (and SLACK_APP_TOKEN for
Socket Mode, or SLACK_SIGNING_SECRET for HTTP events) to run on Slack instead.
Every ACCESS_* key may also be set as an environment variable of the same name, which
wins. Secrets (tokens, signing secrets) are read from the environment only.
"""

import logging
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ACCESS_DATA_DIR", ROOT / "data"))

SLACK = bool(os.environ.get("SLACK_BOT_TOKEN"))
BACKEND = "SlackV3" if SLACK else "Text"
if SLACK:
    BOT_IDENTITY = {
        "token": os.environ["SLACK_BOT_TOKEN"],
        "app_token": os.environ.get("SLACK_APP_TOKEN"),
        "signing_secret": os.environ.get("SLACK_SIGNING_SECRET"),
    }
else:
    BOT_IDENTITY = {"username": "@accessbot"}
    TEXT_DEMO_MODE = True  # print each message once, as a user would see it

BOT_DATA_DIR = str(DATA / "errbot")
os.makedirs(BOT_DATA_DIR, exist_ok=True)
BOT_EXTRA_PLUGIN_DIR = str(ROOT / "plugins")
# errbot's log file, beside the data (deploy/accessbot.logrotate rotates it). Set
# ACCESS_LOG_FILE to log elsewhere, or to nothing for the console only (journald,
# `docker logs`).
BOT_LOG_FILE = os.environ.get("ACCESS_LOG_FILE", str(DATA / "errbot.log")) or None
BOT_LOG_LEVEL = logging.INFO
BOT_PREFIX = "!"
# Bot admins may reload policies and read the audit log. Comma-separated in the env.
BOT_ADMINS = tuple(
    a.strip() for a in os.environ.get("ACCESS_BOT_ADMINS", "@admin").split(",") if a.strip()
)
BOT_ADMINS_NOTIFICATIONS = ()
CHATROOM_PRESENCE = ()
SUPPRESS_CMD_NOT_FOUND = False

ACCESS_POLICY_DIR = str(ROOT / "policies")
ACCESS_DB_PATH = str(DATA / "access.json")
ACCESS_AUDIT_PATH = str(DATA / "audit.jsonl")
# Past this size the audit log is renamed audit.jsonl.1, .2, ... and a new file continues
# its hash chain; `python -m accessbot audit verify` checks the whole set.
ACCESS_AUDIT_MAX_BYTES = "50MB"
# Copies of the audit log off this host (README, "For auditors"): e.g.
# [{"type": "file", "path": "/mnt/worm/accessbot-audit.jsonl"}]. None: the environment
# (JSON) or no sink. A `checkpoint` event pins the chain head this often.
ACCESS_AUDIT_SINKS = None
ACCESS_AUDIT_CHECKPOINT = "5m"
ACCESS_TICK_SECONDS = 1
ACCESS_STRATEGY_WORKERS = 32  # grant/revoke calls at once when many grants end together
ACCESS_PENDING_TIMEOUT = "1h"
ACCESS_EXPIRY_REMINDER = "10m"  # DM the requester this long before a grant ends
ACCESS_APPROVAL_REMINDER = "15m"  # re-announce undecided requests, then at doubling intervals
# Used where the chat backend has no profile e-mail (the Text backend never has one).
ACCESS_USER_EMAILS = {
    "admin": "admin@example.com",
    "alice": "alice@example.com",
    "bob": "bob@example.com",
    "carol": "carol@example.com",
}
# Who each chat user is on targets that know people by another name (github_team,
# github_repo: GitHub login; aws_iam_group, aws_sso: AWS user name), e.g.
# ACCESS_USER_GITHUB = {"carol": "carol-gh"}; ACCESS_USER_AWS = {"carol": "carol.doe"}
ACCESS_USER_GITHUB = {}
ACCESS_USER_AWS = {}
# postgres_role: the database login (without an entry: the e-mail's local part), e.g.
# ACCESS_USER_DB = {"carol": "carol_rw"}
ACCESS_USER_DB = {}
ACCESS_PAGERDUTY_URL = "https://api.pagerduty.com"
ACCESS_PAGERDUTY_TIMEOUT = 3  # seconds; a slower PagerDuty counts as "not on call"
ACCESS_HOOK_TIMEOUT = 10  # seconds a policy hook may run; a slower one never approves
ACCESS_ACK_SECONDS = 2  # a policy check slower than this is acknowledged first
# Named approver lists, used in policies as "group:sre"; policy files may add GROUPS
# (a name is defined once), e.g. ACCESS_GROUPS = {"sre": ["@alice", "@bob"]}
ACCESS_GROUPS = {}
# Reload the policy files when they change (checked every ACCESS_POLICY_WATCH_SECONDS),
# and DM the admins what changed or why it did not load.
ACCESS_POLICY_WATCH = False
ACCESS_POLICY_WATCH_SECONDS = 1
# Every this long the bot asks each target who holds its resource and reports (or, with
# the policy key remove_standing, removes) whoever no grant or `standing` entry explains;
# "0" turns it off. A sweep wanting more removals than the limit removes none.
ACCESS_STANDING_SWEEP = "1h"
ACCESS_STANDING_MAX_REMOVALS = 20
# Requests one person may make in any hour (a flood of request/cancel cycles buries the
# approvers' channel); the refusal says when they may ask again. 0: no limit.
ACCESS_REQUESTS_PER_HOUR = 30
# errbot's webserver (/health, /metrics, /slack/interactive): "3141" listens on
# 127.0.0.1:3141, "0.0.0.0:3141" on every interface (a container), "off" turns it off;
# None leaves errbot's own stored Webserver configuration in charge (none: no listener).
ACCESS_WEBSERVER = None
# ACCESS_PAGERDUTY_TOKEN comes from the environment only.
# Several bots on one PostgreSQL (README: "Two or more bots on PostgreSQL"). Unset: the
# TinyDB and audit files above. E.g. postgresql://accessbot@db/accessbot; the password
# in PGPASSWORD or ~/.pgpass, never here.
ACCESS_DB_URL = None
ACCESS_LEASE_SECONDS = 10  # a dead bot's scheduler lease and claims last this long
# Slack teams (T...) besides the bot's own whose people may act: Slack Connect partners.
ACCESS_SLACK_ALLOWED_TEAMS = []
