"""`{"type": "none"}`: an approval-only resource. Nothing is called anywhere.

The decision itself is the point (a production deploy, a customer-data export, a CI job
waiting for a human): it is approved by the approvers (quorum, fields and hooks as for
any resource), recorded and audited, shown as active until its end and then as expired,
and no target is ever called.
"""

from __future__ import annotations

from .base import Done, Strategy


class ApprovalOnlyStrategy(Strategy):
    kind = "none"
    shareable = True

    @classmethod
    def from_settings(cls, settings: dict) -> ApprovalOnlyStrategy:
        cls.check_keys(settings)
        return cls()

    def call(self, action: str, payload: dict) -> Done:
        return Done(f"approval only: no target to {action}")

    def describe(self) -> str:
        return "approval only (no target is called)"
