# A database resource that routes first-timers to the DBA lead and escalates when
# nobody answers.
#
# First-timer rule: someone who has not held prod-db-admin in the last 90 days is
# routed to the DBA lead alone (get_approvers below); everyone else to the usual
# approvers. ctx.history counts the requests the bot has recorded (live and finished,
# read from the store's indexes).
#
# Escalation: if nobody has decided 15 minutes after the request, @erin is asked too, in
# #dba; after 45 minutes whoever is on call for the DBA PagerDuty schedule, in
# #incidents. The approvers asked earlier may still decide. Each level's card says it
# was escalated and why; the request times out ACCESS_PENDING_TIMEOUT (1h) after the
# last level was asked.

DBA_LEAD = "@erin"
USUAL_APPROVERS = ["@alice", "@bob"]

RESOURCES = {
    "prod-db-admin": {
        "description": "Production PostgreSQL superuser (DBA work, migrations)",
        "max_duration": "2h",
        "durations": ["30m", "1h", "2h"],
        "default_duration": "30m",
        "approvers": USUAL_APPROVERS,
        "channel": "#access-approvals",
        "escalation": [
            {"after": "15m", "approvers": [DBA_LEAD], "channel": "#dba"},
            {"after": "45m", "approvers": ["pagerduty:PDBA123"], "channel": "#incidents"},
        ],
        "strategy": {"type": "command", "argv": ["scripts/grant.py"]},
    },
}


def get_approvers(request, ctx):
    """Who may approve this request: the DBA lead for a first-timer, else the usual."""
    if ctx.history.count(status="granted", since="90d") == 0:
        return [DBA_LEAD]
    return USUAL_APPROVERS


def after_revoke(request, ctx):
    """Once the superuser access has ended: remind the requester to file their notes."""
    ctx.tell_requester(
        f"Your prod-db-admin access ({request.id}) has ended. Please add what you changed "
        "to the DBA change log."
    )
