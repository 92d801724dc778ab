"""Policies: load and validate policy files, and run their hooks.

Every `*.py` in the policy directory whose name does not start with `_` is one flow: a
`RESOURCES` dict, an optional `GROUPS` dict (named approver lists, usable from every
file) and optional hooks (`HOOKS`): `get_approvers(request, ctx)`,
`on_request(request, ctx)`, `on_approve(request, approval, ctx)`,
`on_deny(request, denial, ctx)`, `after_grant(request, ctx)`, `after_revoke(request, ctx)`.
Loading is all-or-nothing: any error in any file fails the whole load, with
`file:line: key: message` for each problem, so the policies already running stay.

One module a concern: `model` (what a loaded policy is), `loading` (the directory,
all-or-nothing), `validation` (one resource's settings, the groups), `lines` (file:line
of a mistake), `context` (what hooks are given and return), `hooks` (running one with a
time limit, failing closed). This package re-exports the names the rest of the bot uses.
"""

from .context import Decision, FollowUpContext, PolicyContext, Refusal, Vote
from .hooks import (
    HOOK_ARGS,
    HOOKS,
    HookFailed,
    approvers_problem,
    decision_problem,
    refusal_problem,
    run_hook,
)
from .loading import load_policies
from .model import CertifySettings, EscalationLevel, FieldSpec, PolicyError, PolicySet, Resource
from .validation import (
    ALLOWED_KEYS,
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    RESOURCE_NAME,
    check_resource_name,
    normalized_channel,
)

__all__ = [
    "ALLOWED_KEYS",
    "HOOKS",
    "HOOK_ARGS",
    "OPTIONAL_KEYS",
    "REQUIRED_KEYS",
    "RESOURCE_NAME",
    "CertifySettings",
    "Decision",
    "EscalationLevel",
    "FieldSpec",
    "FollowUpContext",
    "HookFailed",
    "PolicyContext",
    "PolicyError",
    "PolicySet",
    "Refusal",
    "Resource",
    "Vote",
    "approvers_problem",
    "check_resource_name",
    "decision_problem",
    "load_policies",
    "normalized_channel",
    "refusal_problem",
    "run_hook",
]
