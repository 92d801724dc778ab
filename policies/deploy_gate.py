# An approval-only gate: nothing is granted anywhere, the decision itself is the point.
# A production deploy (or a customer-data export, or a CI job) waits for a human yes;
# the bot records who said yes, when and why in the audit log, shows the request as
# active for the time asked for, and ends it at that time. No target is called.
#
#   1. CI (or a person) types   !access request deploy-prod 30m change=CHG-42 release 4.2
#   2. The card goes to #deploys, where every engineer can see it.
#   3. Anyone there may press Approve, but only a release manager's approval counts:
#      on_approve below refuses the others, and the person is told why (privately on
#      Slack). The refusal is in the audit log; the request stays as it was.
#   4. Once approved, after_grant tells the channel the deploy may go ahead.
#      A pipeline can wait for it: `!access show <id>` says "active" (or read the audit
#      log: the event "granted").
#
# Only the durations listed may be asked for (the Slack form offers exactly these).

# Release managers: the only people whose approval of a deploy counts (chat handles).
RELEASE_MANAGERS = {"alice", "bob"}

GROUPS = {
    # Who sees the card and may press its buttons; on_approve narrows who counts.
    "engineering": ["@alice", "@bob", "@carol", "@dave"],
}

RESOURCES = {
    "deploy-prod": {
        "description": "Production deploy (approval only: nothing is granted, CI waits for the yes)",
        "max_duration": "1h",
        "durations": ["15m", "30m", "1h"],  # only these may be asked for
        "default_duration": "30m",  # one of the durations
        "approvers": ["group:engineering"],
        "channel": "#deploys",
        "fields": {
            "change": {
                "pattern": "^CHG-[0-9]+$",
                "required": True,
                "help": "change ticket like CHG-42",
            },
        },
        "strategy": {"type": "none"},  # approval only: no target is called
    },
}


def on_approve(request, approval, ctx):
    """Runs before each approval counts. Return ctx.refuse("why") to discard it (the
    approver is told why), or None to let it count. A hook that fails refuses too."""
    if approval.approver not in RELEASE_MANAGERS:
        names = ", ".join(f"@{name}" for name in sorted(RELEASE_MANAGERS))
        return ctx.refuse(f"only release managers approve deploys ({names}); you may still deny")
    return None


def after_grant(request, ctx):
    """Runs once the approval is recorded, on its own thread: it never delays anything,
    and a failure here only tells the admins."""
    ctx.tell_channel(
        f"Deploy {request.fields['change']} for @{request.requester} may go ahead "
        f"until {request.expires_at:%H:%M} UTC (request {request.id})."
    )
