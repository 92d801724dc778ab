# Break-glass: an engineer who is on call right now gets production shell access at
# once, without waiting for anyone, and the whole approval channel is told loudly.
# Everyone else waits for a human approver as usual.
#
# The bot asks PagerDuty who is on call (set ACCESS_PAGERDUTY_TOKEN). If PagerDuty is
# not configured, down or slow, the answer is "not on call": a human decides. Never the
# other way round.

ON_CALL_SCHEDULE = "PABC123"  # the PagerDuty schedule whose on-call engineer may break glass

RESOURCES = {
    "prod-shell": {
        "description": "Root shell on production hosts (break-glass for on-call)",
        "max_duration": "2h",
        "default_duration": "30m",
        "approvers": ["@alice", "@bob"],  # who decides when the requester is not on call
        "channel": "#access-approvals",
        "strategy": {"type": "command", "argv": ["scripts/grant.py"]},
    },
}


def on_request(request, ctx):
    """Called for every request of a resource in this file.

    Return ctx.approve("why") to grant at once, ctx.deny("why") to refuse, or
    nothing to let the approvers decide.
    """
    if ctx.pagerduty.is_on_call(request.requester_email, schedule=ON_CALL_SCHEDULE):
        return ctx.approve("break-glass: requester is on call")
    return None  # not on call: the approvers in the channel decide
