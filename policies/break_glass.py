# Break-glass: an engineer who is on call right now gets production shell access at
# once, without waiting for anyone, and the whole approval channel is told loudly.
# Everyone else waits for a human approver as usual.
#
# How it works, step by step:
#   1. Someone types   !access request prod-shell 30m INC-123 database is down
#   2. The bot asks PagerDuty: "is this person on call for ON_CALL_SCHEDULE right now?"
#      (it finds them in PagerDuty by their e-mail: their Slack profile e-mail, or the
#      one listed for them in ACCESS_USER_EMAILS in config.py).
#   3. On call: access is granted at once, and #access-approvals gets a loud
#      "BREAK-GLASS: ..." message. One of the approvers must then look at it and type
#      !access ack <id> [note]   (unreviewed ones: !access review; the bot reminds the
#      channel once a day until someone does).
#   4. Not on call: the usual approval card goes to #access-approvals and an approver
#      decides with !approve <id> or !deny <id> <reason>.
#
# Safe by default: if PagerDuty is not set up (no ACCESS_PAGERDUTY_TOKEN), down, slow,
# or does not know the person's e-mail, the answer is "not on call" and a human decides.
# The approval card then says why ("PagerDuty check failed: ...").

# The PagerDuty schedule whose on-call engineer may break glass. Find its id in the
# schedule's web address: https://<your-company>.pagerduty.com/schedules/PABC123
ON_CALL_SCHEDULE = "PABC123"

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
    if ctx.pagerduty.is_on_call(request.requester_email, schedule=ON_CALL_SCHEDULE):
        return ctx.approve("break-glass: requester is on call")
    return None  # not on call: the approvers in the channel decide


# Optional: send the approval card to whoever is on call instead of the fixed list
# above. Remove the "#" in front of the three lines below to turn it on. If PagerDuty
# cannot say who is on call, the "approvers" list above is used.
#
# def get_approvers(request, ctx):
#     """Who may approve: the e-mails of the engineers on call right now."""
#     return ctx.pagerduty.on_call_users(schedule=ON_CALL_SCHEDULE)
