"""Small builders for tests that drive the service directly (no chat): a real store, a
real audit log and real policies in tmp_path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from accessbot.audit import AuditLog
from accessbot.bootstrap import bootstrap
from accessbot.domain import Request
from accessbot.scheduler import SoleLeader
from accessbot.service import AccessService, Actor
from accessbot.settings import Settings, parse_sinks
from accessbot.sinks import AuditSinks
from accessbot.store import RequestStore, TinyDBStore
from tests.helpers import START, policy_file

ADMIN = Actor("admin", is_admin=True)


def wired(
    store, audit, policy_dir: Path, clock, notify=None, outbox=None, **settings
) -> AccessService:
    """The service as the bot wires it (`bootstrap`), on this store and audit log;
    `outbox`, where it writes its notices (the bot's DeliveryWorkers); `settings` are
    Settings fields (pending_timeout, user_github, ...)."""
    return bootstrap(
        Settings(policy_dir=str(policy_dir), **settings),
        clock=clock,
        store=store,
        audit=audit,
        notify=notify,
        outbox=outbox,
    )


def a_request(**overrides) -> Request:
    """One pending request for prod-db by carol; `overrides` sets any field."""
    fields = {
        "id": "k3m9qx",
        "requester": "carol",
        "resource": "prod-db",
        "duration": timedelta(minutes=30),
        "reason": "fixing INC-42",
        "created_at": START,
        "channel": "#access-approvals",
        "approvers": ["@alice", "@bob"],
    }
    fields.update(overrides)
    return Request(**fields)


def person(handle: str) -> Actor:
    return Actor(handle, address=f"@{handle}")


def two_resource_policy(url: str) -> str:
    """prod-db (a person approves) and prod-shell (the user `oncall` breaks glass)."""
    strategy = {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"}
    return f"""
        RESOURCES = {{
            "prod-db": {{
                "description": "Production PostgreSQL",
                "max_duration": "4h",
                "approvers": ["@alice", "@bob"],
                "channel": "#access-approvals",
                "strategy": {strategy!r},
            }},
            "prod-shell": {{
                "description": "Root shell on production",
                "max_duration": "2h",
                "approvers": ["@alice", "@bob"],
                "channel": "#access-approvals",
                "strategy": {strategy!r},
            }},
        }}

        def on_request(request, ctx):
            if request.requester == "oncall":
                return ctx.approve("break-glass: requester is on call")
            if "forbidden" in request.reason:
                return ctx.deny("no reason to touch that")
            return None
        """


def build_service(
    tmp_path: Path,
    clock,
    url: str,
    audit_max_bytes: int | None = None,
    db_url: str | None = None,
    lease_seconds: float = 10.0,
    connect_timeout: float = 10.0,
    policy: str | None = None,
    store: RequestStore | None = None,
    **options,
) -> AccessService:
    """A service on TinyDB and the audit file in tmp_path, or on PostgreSQL at `db_url`;
    or on `store` (a MemoryStore, for tests that need no files for the requests) and the
    audit file. `policy` replaces the two-resource policy, `options` go to the service."""
    policy_file(tmp_path / "policies", "prod.py", policy or two_resource_policy(url))
    # The tests' desks make grants of a few seconds, below the bot's 30s floor.
    options.setdefault("min_duration", timedelta(0))
    data = tmp_path / "data"
    if db_url:
        from accessbot.postgres import Database, PostgresAuditLog, PostgresStore

        db = Database(db_url, lease_seconds=lease_seconds, connect_timeout=connect_timeout)
        store, audit = PostgresStore(db), PostgresAuditLog(db, clock)
    else:
        store = store if store is not None else TinyDBStore(data / "access.json")
        audit = AuditLog(data / "audit.jsonl", clock, audit_max_bytes)
    return wired(
        store, audit, tmp_path / "policies", clock, pending_timeout=timedelta(hours=1), **options
    )


def month_of_activity(service: AccessService, clock, webhook) -> dict:
    """About a month of realistic traffic; returns the ids of the interesting requests."""
    ids: dict[str, str] = {}
    users = ["carol", "dave", "erin", "frank"]
    for day in range(28):
        user = users[day % len(users)]
        resource = "prod-db" if day % 3 else "prod-shell"
        rid = service.request(
            person(user), resource, timedelta(hours=2), f"INC-{100 + day}"
        ).request.id
        if day % 7 == 5:
            service.deny(person("bob"), rid, "use the read replica")
            ids.setdefault("denied", rid)
        else:
            service.approve(person("alice" if day % 2 else "bob"), rid)
            clock.advance(minutes=40)
            if day % 5 == 0:
                service.revoke(person(user), rid)
                ids.setdefault("revoked", rid)
        clock.advance(hours=1, minutes=20)  # the 2h grant ends now
        service.tick()
        clock.advance(hours=3, minutes=40)
        if day in (9, 20):
            glass = service.request(
                person("oncall"), "prod-shell", timedelta(hours=1), "pager: db down"
            )
            ids[f"glass{day}"] = glass.request.id
            clock.advance(hours=2)
            service.tick()
        clock.advance(hours=17)
    service.ack(person("alice"), ids["glass9"], "checked the incident")
    ids["failing"] = service.request(
        person("carol"), "prod-db", timedelta(hours=1), '=HYPERLINK("http://x") <!channel> *bold*'
    ).request.id
    service.approve(person("bob"), ids["failing"])
    webhook.set_status(500)
    clock.advance(hours=1, minutes=1)
    service.tick()
    ids["holding"] = service.request(
        person("dave"), "prod-db", timedelta(hours=4), "migration"
    ).request.id
    webhook.set_status(200)
    service.approve(person("alice"), ids["holding"])
    service.cancel(
        person("erin"), service.request(person("erin"), "prod-db", None, "oops").request.id
    )
    return ids


class Deployment:
    """One bot's audit log, store and sinks (in tmp_path, or on PostgreSQL at `db_url`),
    driven by hand: `ship` steps the sinks on the test's thread."""

    def __init__(
        self,
        tmp_path,
        clock,
        *sinks: dict,
        max_bytes: int | None = None,
        db_url: str | None = None,
        leadership=None,
    ):
        self.clock = clock
        self.path = tmp_path / "data" / "audit.jsonl"
        if db_url:
            from accessbot.postgres import Database, PostgresAuditLog, PostgresStore

            self.db = Database(db_url)
            self.audit = PostgresAuditLog(self.db, clock)
            self.store = PostgresStore(self.db)
        else:
            self.audit = AuditLog(self.path, clock, max_bytes)
            self.store = TinyDBStore(tmp_path / "data" / "access.json")
        self.told: list[str] = []
        self.sinks = AuditSinks(
            parse_sinks(list(sinks)),
            self.audit,
            self.store,
            leadership or SoleLeader(),
            clock,
            self.told.append,
        )

    def events(self, count: int, event: str = "requested") -> None:
        for number in range(count):
            self.audit.append(event, actor="carol", request_id=f"r{number:05d}", reason="x" * 40)

    def ship(self, worker: int = 0) -> int:
        """Step the sink until it has nothing more to send (or fails); lines sent."""
        total = 0
        for _ in range(1000):
            sent = self.sinks.workers[worker].step()
            if not sent:
                return total
            total += sent
        raise AssertionError("the sink never caught up")

    def local_lines(self) -> list[bytes]:
        return [line.data for line in self.audit.stored_lines()]

    def close(self) -> None:
        self.sinks.stop()
        self.store.close()
