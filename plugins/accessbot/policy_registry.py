"""The policies in force: loaded at start, reloaded all or nothing, and looked up by the
use cases (`resource` refuses an unknown name with the names one can ask for)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import messages as msg
from .approvers import is_dynamic
from .domain import AccessError, Request
from .policy import PolicyError, PolicySet, Resource, load_policies
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class PolicyReload:
    """What a reload did: the resources added, removed and changed, or why it failed."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    kept: str = ""  # when it failed: what stays in force
    files: int = 0
    resources: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    groups_changed: list[str] = field(default_factory=list)

    @classmethod
    def between(cls, old: PolicySet | None, new: PolicySet) -> PolicyReload:
        before = old.resources if old else {}
        after = new.resources
        old_groups = old.groups if old else {}
        return cls(
            ok=True,
            files=len(new.files),
            resources=len(after),
            added=sorted(set(after) - set(before)),
            removed=sorted(set(before) - set(after)),
            changed=sorted(
                n for n in set(before) & set(after) if before[n].summary() != after[n].summary()
            ),
            groups_changed=sorted(
                g
                for g in set(old_groups) | set(new.groups)
                if old_groups.get(g) != new.groups.get(g)
            ),
        )

    @property
    def changes(self) -> str:
        text = (
            f"added: {', '.join(self.added) or 'none'}; removed: {', '.join(self.removed) or 'none'}; "
            f"changed: {', '.join(self.changed) or 'none'}"
        )
        if self.groups_changed:
            text += f"; groups changed: {', '.join(self.groups_changed)}"
        return text

    @property
    def summary(self) -> str:
        return f"{self.files} policy file(s), {self.resources} resource(s) ({self.changes})"


class PolicyRegistry:
    def __init__(
        self,
        policy_dir: str | Path,
        groups: Mapping[str, list[str]] | None,
        environ: Mapping[str, str] | None,
        uow: UnitOfWork,
    ):
        self.policy_dir = Path(policy_dir)
        self.groups = dict(groups or {})  # ACCESS_GROUPS; policy files add their GROUPS
        # The bot has its real environment: a strategy naming an unset variable (its
        # secret_env, token_env) is a load error, not a failure after a human approved.
        self.environ = environ
        self.uow = uow
        self.policies: PolicySet | None = None
        self.error: PolicyError | None = None
        try:
            self.policies = load_policies(self.policy_dir, self.groups, self.environ)
        except PolicyError as exc:
            self.error = exc
            log.error("policies did not load:\n%s", exc)

    def current(self) -> PolicySet:
        """The policies in force, or an error telling an admin what to fix."""
        if self.policies is None:
            errors = "\n".join(f"- {e}" for e in (self.error.errors if self.error else []))
            raise AccessError(
                "No policies are loaded, so nothing can be requested. An admin must fix the "
                "policy files and run `!access reload`:\n" + errors,
                field="resource",
            )
        return self.policies

    def get(self, name: str) -> Resource | None:
        """The resource called `name`, or None (none loaded, or no such resource)."""
        return self.policies.get(name) if self.policies else None

    def resource(self, name: str) -> Resource:
        """The resource called `name`, or an error naming the ones one can ask for."""
        policies = self.current()
        resource = policies.get(name)
        if resource is None:
            names = ", ".join(policies.names()) or "none"
            close = msg.closest(name, policies.names())
            hint = f": did you mean {close}?" if close else "."
            raise AccessError(
                f"Unknown resource `{msg.inert(name, 60)}`{hint} You can request: {names}. "
                "Details: `!access resources`.",
                field="resource",
            )
        return resource

    @property
    def all_groups(self) -> Mapping[str, list[str]]:
        """The groups approver entries may name: ACCESS_GROUPS and the policies' GROUPS."""
        return self.policies.groups if self.policies else {}

    def names(self) -> list[str]:
        return self.policies.names() if self.policies else []

    def field_names(self, resource_name: str) -> tuple[str, ...]:
        """The prompt fields a resource declares (none when it is unknown)."""
        resource = self.get(resource_name)
        return tuple(resource.fields) if resource else ()

    def checks_at_request(self, resource_name: str) -> bool:
        """Does a request for this resource run policy code or ask another service (on
        call, Slack groups, a tracker for a checked field) before it is answered? Those
        may take seconds."""
        resource = self.get(resource_name)
        if resource is None:
            return False
        hooks = {"get_approvers", "on_request"} & set(resource.hooks)
        checked = any(spec.check for spec in resource.fields.values())
        return bool(hooks) or checked or any(is_dynamic(e) for e in resource.approvers)

    def ask_again(self, request: Request) -> str:
        """The command to ask afresh for what `request` asked, with the fields its
        resource requires now."""
        resource = self.get(request.resource)
        specs = resource.fields.values() if resource else ()
        return msg.ask_again(request.resource, request.duration, specs)

    def reload(self, by: str) -> PolicyReload:
        """Load the policy files again, all or nothing, and say what changed.

        `!access reload` and the file watcher both come here. Requests and grants already
        made keep their approvers and strategy (copied onto each request), so nothing
        active is touched: a removed resource's grants still expire and are revoked.
        """
        try:
            new = load_policies(self.policy_dir, self.groups, self.environ)
        except PolicyError as exc:
            self.uow.audit(
                "policy_reload_failed", by, outcome="failed", detail="; ".join(exc.errors)
            )
            # The files on disk are not what runs: the standing-access sweep waits.
            self.error = exc
            kept = (
                f"the {len(self.policies.resources)} resource(s) already loaded stay in force"
                if self.policies
                else "no policies are loaded"
            )
            return PolicyReload(ok=False, errors=list(exc.errors), kept=kept)
        with self.uow.lock:
            old = self.policies
            self.policies = new
            self.error = None
        result = PolicyReload.between(old, new)
        self.uow.audit("policy_reloaded", by, outcome="ok", detail=result.changes)
        return result
