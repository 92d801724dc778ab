"""One place that wires the service: from the settings, with what the caller injects
(the clock, the store and audit log it opened, the chat platform's people and groups,
the PagerDuty checker, metrics, where background notices go). The plugin, the CLI, the
policy test runner, the benches and the tests all build their service here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .audit import AuditLog
from .backends import open_backend
from .identity import People
from .integrations.pagerduty import on_call_checker
from .metrics import Metrics
from .service import AccessService, Notice
from .settings import Settings
from .store import RequestStore
from .strategies import Accounts
from .unit_of_work import NoticeWriter


def utcnow() -> datetime:
    return datetime.now(UTC)


def bootstrap(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    store: RequestStore | None = None,
    audit: AuditLog | None = None,
    pagerduty=None,
    slack_groups=None,
    people: People | None = None,
    metrics: Metrics | None = None,
    notify: Callable[[list[Notice]], None] | None = None,
    outbox: NoticeWriter | None = None,
    check_env: bool = True,
    **tuning,
) -> AccessService:
    """The service for `settings`. Without a store and audit log it opens the configured
    backend (the caller closes `service.store`). Without a PagerDuty checker it builds
    the one the settings describe (none without a token). `check_env=False` loads
    policies without the bot's secrets (the CLI, policy tests); `tuning` passes on what
    the settings do not hold (e.g. `review_reminder_every`)."""
    if store is None or audit is None:
        backend = open_backend(settings, clock)
        store, audit = backend.store, backend.audit
    if pagerduty is None:
        pagerduty = on_call_checker(
            settings.pagerduty_token, settings.pagerduty_url, clock, settings.pagerduty_timeout
        )
    return AccessService(
        store=store,
        audit=audit,
        policy_dir=settings.policy_dir,
        clock=clock,
        pending_timeout=settings.pending_timeout,
        min_duration=settings.min_duration,
        pagerduty=pagerduty,
        hook_timeout=settings.hook_timeout,
        expiry_reminder=settings.expiry_reminder,
        approval_reminder=settings.approval_reminder,
        accounts=Accounts(github=settings.user_github, aws=settings.user_aws, db=settings.user_db),
        groups=settings.groups,
        slack_groups=slack_groups,
        strategy_workers=settings.strategy_workers,
        people=people,
        check_env=check_env,
        metrics=metrics,
        notify=notify,
        outbox=outbox,
        requests_per_hour=settings.requests_per_hour,
        overdue_grace=settings.overdue_grace,
        **tuning,
    )
