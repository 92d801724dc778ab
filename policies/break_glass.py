# Break-glass: an engineer who is on call right now (the first escalation level only,
# not the backup), or who is working an open incident on the database service, gets
# production shell access at once, without waiting for anyone, and the whole approval
# channel is told loudly. Everyone else waits for a human approver as usual.
#
# How it works, step by step:
#   1. Someone types   !access request prod-shell 30m INC-123 database is down
#   2. The bot asks PagerDuty: "is this person on call for ON_CALL_SCHEDULE right now, at
#      escalation level 1?" and, if not, "is this person assigned a triggered or
#      acknowledged incident of DATABASE_SERVICE?" (it finds them in PagerDuty by their
#      e-mail: their Slack profile e-mail, or ACCESS_USER_EMAILS in config.py).
#   3. Either: access is granted at once, and #access-approvals gets a loud
#      "BREAK-GLASS: ..." message. One of the approvers must then look at it and type
#      !access ack <id> [note]   (unreviewed ones: !access review; the bot reminds the
#      channel once a day until someone does).
#   4. Neither: the usual approval card goes to #access-approvals and an approver
#      decides with !approve <id> or !deny <id> <reason>.
#
# Safe by default: if PagerDuty is not set up (no ACCESS_PAGERDUTY_TOKEN), down, slow,
# or does not know the person's e-mail, the answer is "not on call" and a human decides.
# The approval card then says why ("PagerDuty check failed: ...").

# The PagerDuty schedule whose on-call engineer may break glass. Find its id in the
# schedule's web address: https://<your-company>.pagerduty.com/schedules/PABC123
ON_CALL_SCHEDULE = "PABC123"
# The PagerDuty service whose open incidents let the assigned engineer break glass:
# https://<your-company>.pagerduty.com/service-directory/PDB0001
DATABASE_SERVICE = "PDB0001"

RESOURCES = {
    "prod-shell": {
        "description": "Root shell on production hosts (break-glass for on-call)",
        "max_duration": "2h",  # nobody gets more than this in one go
        "default_duration": "30m",  # used when the request names no duration
        "approvers": ["@alice", "@bob"],  # decide when the requester is not on call
        "channel": "#access-approvals",  # where the card and the BREAK-GLASS alert go
        # How access is really granted: this demo script records grants under data/.
        "strategy": {"type": "command", "argv": ["scripts/grant.py"]},
    },
}


def on_request(request, ctx):
    """Runs for every request of a resource in this file.

    Return ctx.approve("why") to grant at once, ctx.deny("why") to refuse, or
    nothing to let the approvers decide. The "why" is shown in the channel and kept
    in the audit log.
    """
    # max_level=1: the primary on call only; the backup (level 2) asks a human.
    if ctx.pagerduty.is_on_call(request.requester_email, schedule=ON_CALL_SCHEDULE, max_level=1):
        return ctx.approve("break-glass: requester is on call")
    # Assigned an open incident (triggered or acknowledged) of the database service.
    if ctx.pagerduty.has_incident(email=request.requester_email, service=DATABASE_SERVICE):
        return ctx.approve("break-glass: requester is assigned an open database incident")
    return None  # neither: the approvers in the channel decide


# Optional: send the approval card to whoever is on call instead of the fixed list
# above. Remove the "#" in front of the three lines below to turn it on. If PagerDuty
# cannot say who is on call, the "approvers" list above is used.
#
# def get_approvers(request, ctx):
#     """Who may approve: the e-mails of the engineers on call right now."""
#     return ctx.pagerduty.on_call_users(schedule=ON_CALL_SCHEDULE)
