"""The Errbot plugin: chat commands in, service calls, rendered replies out.

This is the only module that imports errbot. Each command parses its arguments, calls
one service method, writes the notices (approval card to the channel, DM to the
requester) to the outbox, yields the reply to the person who typed it, and the delivery
workers send the notices after it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `plugins/` holds accessbot
sys.path.insert(0, str(Path(__file__).resolve().parent))  # and this folder, slack_app

# First: on a Python too old, errbot logs "accessbot needs Python 3.11 or newer; this is
# 3.10.12" as why the plugin did not load, not an ImportError about datetime.UTC.
from accessbot.pyversion import require_python  # noqa: E402

require_python()

from datetime import UTC, datetime  # noqa: E402

from chat_delivery import Delivery, unstored  # noqa: E402
from errbot import BotPlugin, botcmd, cmdfilter, webhook  # noqa: E402
from identity_glue import Identity  # noqa: E402
from listener_limits import limit_bodies  # noqa: E402
from slack_glue import STARTING, SlackGlue  # noqa: E402
from web_listener import apply_listener  # noqa: E402

from accessbot import messages  # noqa: E402
from accessbot.backends import exposed_folders, hold_data_folder, open_backend  # noqa: E402
from accessbot.bootstrap import bootstrap  # noqa: E402
from accessbot.certification import CertificationJob, Certifications  # noqa: E402
from accessbot.certification_store import open_certifications  # noqa: E402
from accessbot.commands import (  # noqa: E402
    CommandSyntaxError,
    parse_audit_args,
    parse_certify_args,
    parse_extend_args,
    parse_id_and_text,
    parse_request,
    parse_resource_arg,
    parse_whatif_args,
    resembles,
)
from accessbot.delivery import (  # noqa: E402
    UndeliveredNotices,
    is_permanent,
)
from accessbot.delivery_workers import DeliveryWorkers  # noqa: E402
from accessbot.digest import merge, merge_entries  # noqa: E402
from accessbot.domain import AccessError  # noqa: E402
from accessbot.identity import (  # noqa: E402
    USER_ID,  # noqa: E402
    NamedPeople,
    SlackPeople,
)
from accessbot.integrations.pagerduty import OnCallChecker, on_call_checker  # noqa: E402
from accessbot.integrations.slack_groups import SlackGroups  # noqa: E402
from accessbot.link_check import LinkCheckJob  # noqa: E402
from accessbot.metrics import CertificationCounts, Health, Metrics, bearer_allows  # noqa: E402
from accessbot.outage import DatabaseWatch  # noqa: E402
from accessbot.outbox import notice_of, open_outbox  # noqa: E402
from accessbot.pacing import Pacer  # noqa: E402
from accessbot.policy.lines import PARSING  # noqa: E402
from accessbot.rebuild import (  # noqa: E402
    DegradedService,
    checked_against_audit,
    degraded_reason,
    open_degraded_backend,
    rebuilt_notice,
    store_held_elsewhere,
    strategy_of,
)
from accessbot.scheduler import Periodic, Scheduler  # noqa: E402
from accessbot.service import Notice, Outcome  # noqa: E402
from accessbot.settings import Settings, SettingsError  # noqa: E402
from accessbot.sinks import AuditSinks, Checkpoints  # noqa: E402
from accessbot.standing_sweep import StandingJob, StandingSweep  # noqa: E402
from accessbot.store import FolderInUse, StoreError, StoreFiles  # noqa: E402
from accessbot.watcher import PolicyWatcher  # noqa: E402

log = logging.getLogger(__name__)

HELP = """Just-in-time access. Commands:
- `!access request <resource> [duration] <reason>`: ask for access, e.g. `!access request prod-db 30m fix INC-42`
- `!access resources`: what you can request, limits and approvers
- `!access mine`: your pending requests and active grants
- `!access list`: everything pending or active (approvers, admins)
- `!access show <id>`: one request with its history
- `!access cancel <id>`: withdraw your pending request
- `!access revoke <id>`: end an active grant now
- `!access extend <id> [duration] [reason]`: ask for more time on your active grant
- `!approve <id> [comment]`, `!deny <id> [reason]`: decide (approvers)
- `!access review`, `!access ack <id> [note]`: list and acknowledge break-glass grants (approvers)
- `!access whatif <user> <resource> [duration]`: dry run: who would be asked, would a policy decide (approvers, admins)
- `!access standing [resource]`: who holds access at the targets that no grant explains (approvers, admins)
- `!access certify list`, `!access certify keep <item> [note]`, `!access certify remove <item> [reason]`: review standing access (reviewers); `!access certify start [resource]` (admins)
- `!access reload`, `!access audit [user=..] [resource=..] [since=2h] [id=..] [limit=20]`, `!access audit verify`, `!access audit status`: admins
- `!access retry <id>`: retry a failed revoke now (admins; failed revokes are also retried automatically; a failed grant is final, the requester asks again)"""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Access(Delivery, SlackGlue, Identity, BotPlugin):
    """Just-in-time access requests, approvals and automatic revocation."""

    def activate(self):
        # Every file the bot makes (its data, errbot's) is readable by its own user alone.
        os.umask(0o077)
        # super().activate() registers the commands; the rest starts on its own thread, so
        # errbot routes our webhooks at once (Flask refuses new routes once it has served a
        # request, and Slack may call during a slow start). Until the service, scheduler
        # and Slack listener exist, commands and clicks answer "starting" (see `run`):
        # nothing that arrives during a slow start fails or is lost silently.
        self.ready = False
        self.started = threading.Event()  # set once `ready`: tests and benches wait on it
        self.startup_error = None
        self.degraded = None
        self.scheduler = self.slack = self.watcher = self.backend = self.health = None
        self.folder_lock = None
        self.outbox = self.deliveries = self.standing = self.sinks = None
        self.certifications = None
        self.metrics = Metrics()  # replaced by one that counts the store's requests
        starting = self.answer_clicks_while_starting()  # before any click can reach us
        import errbot.core_plugins

        limit_bodies(errbot.core_plugins.flask_app)  # every route of the listener, errbot's too
        apply_listener(self._bot.plugin_manager, self.bot_config)  # ACCESS_WEBSERVER
        # Routing our webhooks makes werkzeug call ast.parse, which on CPython 3.11 must
        # not run beside another thread's parse (a policy load): see policy/lines.py.
        with PARSING:
            super().activate()
        self.starter = threading.Thread(
            target=self.start_then_serve, args=(starting,), name="accessbot-start", daemon=True
        )
        self.starter.start()

    def start_then_serve(self, starting) -> None:
        try:
            self.start()
        except SettingsError as exc:  # an ACCESS_* key: its message says what to write
            log.error("the access bot did not start: %s", exc)
            self.startup_error = (
                f"The access bot did not start: {exc}. Fix it in config.py or the "
                "environment, then restart the bot."
            )
            self.tell_admins(self.startup_error)
        except Exception as exc:  # noqa: BLE001 - refuse commands with a reason, tell admins
            log.exception("the access bot did not start")
            self.startup_error = (
                f"The access bot did not start ({type(exc).__name__}); an admin can find the "
                "details in the bot's log."
            )
            self.tell_admins(self.startup_error)
        finally:
            self.stop_answering_clicks(starting)
            self.ready = True
            self.started.set()

    def start(self) -> None:
        """Open the store, load the policies, connect Slack, start the scheduler."""
        self.settings = Settings.load(
            self.bot_config, data_dir=getattr(self.bot_config, "BOT_DATA_DIR", None)
        )
        # Tests inject a controllable clock through the bot config; production uses UTC now.
        self.clock = getattr(self.bot_config, "ACCESS_CLOCK", None) or utcnow
        self.ack_seconds = self.settings.ack_seconds
        self.undelivered = UndeliveredNotices(
            count=lambda reason: self.metrics.notices_failed.labels(reason).inc()
        )
        self.degraded = None  # why the bot runs on grants rebuilt from the audit log
        # One process per data folder, held until the process ends (the kernel lets go if
        # it dies): taken before anything there is read. A second bot is refused, naming
        # the first; it is not damage, so it never starts degraded.
        try:
            self.folder_lock = hold_data_folder(self.settings)
        except StoreError as exc:
            self.startup_error = f"The access bot did not start: {exc}"
            log.critical("%s", self.startup_error)
            self.tell_admins(self.startup_error)
            return
        for warning in exposed_folders(self.settings):
            self.tell_admins(f"Access bot: {warning}.")
        try:
            self.backend = open_backend(self.settings, self.clock)
        except StoreError as exc:
            files = StoreFiles.of(self.settings.db_path)
            if self.settings.db_url or isinstance(exc, FolderInUse) or store_held_elsewhere(files):
                self.startup_error = f"The access bot did not start: {exc}"
                log.critical("%s", self.startup_error)
                self.tell_admins(self.startup_error)
                return
            # Never start empty on a damaged store (live grants would never be revoked):
            # run on the grants the audit log holds, revoke them on time, decide nothing.
            self.degraded = degraded_reason(exc)
            log.critical("the store is damaged: %s", exc)
            self.backend = open_degraded_backend(self.settings, self.clock)
        if not self.degraded:  # the store opened: its grants must be the audit log's
            self.backend, self.degraded = checked_against_audit(
                self.backend, self.settings, self.clock
            )
        self.metrics = Metrics(counts=self.backend.store.live_counts)
        # The audit sinks: a log shorter than what a sink acknowledged is told (and
        # audited) before anything else is written; shipping starts with the scheduler.
        self.sinks = AuditSinks(
            self.settings.audit_sinks,
            self.backend.audit,
            self.backend.store,
            self.backend.leadership,
            self.clock,
            alarm=self.tell_admins,
        )
        self.sinks.check_at_start()
        self.metrics.watch_sinks(self.sinks.status)
        # Notices wait here for the delivery workers (started once Slack is connected):
        # what a crash or a stop left unsent goes out after this start.
        self.outbox = open_outbox(self.settings, self.backend)
        self.metrics.watch_outbox(self.outbox.depth, self.clock)
        self.pacer = Pacer()  # each Slack channel at Slack's pace (chat.postMessage ~1/s)
        # Started once Slack is connected; the service writes its notices through them.
        self.deliveries = DeliveryWorkers(
            self.outbox,
            self.send_entry,
            self.clock,
            owner=getattr(getattr(self.backend.store, "db", None), "bot_id", "accessbot"),
            # The Text backend prints every message in one terminal: one worker keeps
            # them whole and in the order they were made.
            workers=1 if self._bot.mode == "text" else self.settings.delivery_workers,
            metrics=self.metrics,
            permanent=is_permanent,
            # A channel's run of "grant ended" lines becomes one message (accessbot.digest).
            merge=lambda entries: merge_entries(
                entries, lambda entry: notice_of(entry, self.backend.store)
            ),
            # ... and so does a batch of revokes recorded together, as it is written.
            prepare=lambda notices: [part.notice for part in merge(notices)],
        )
        self.service = bootstrap(
            self.settings,
            clock=self.clock,
            store=self.backend.store,
            audit=self.backend.audit,
            # The SlackV3 backend's own WebClient (replaced when it reconnects); on any
            # other backend there is none and `slack-group:` entries name nobody.
            slack_groups=SlackGroups(self.slack_web, self.clock),
            pagerduty=self.pagerduty(),
            metrics=self.metrics,
            notify=self.hand_over,  # what finished calls and follow-up hooks tell
            outbox=self.deliveries,  # every notice written in the commit of its change
            # Slack's user ids once the backend has a Slack client; names elsewhere.
            people=SlackPeople(
                self.slack_web,
                fallback=NamedPeople(self.settings.user_emails),
            ),
        )
        if self.degraded:
            chain = self.backend.audit.verify()  # past a break, no event ends a grant
            rebuilt = self.backend.store.fill(
                StoreFiles.of(self.settings.db_path),
                self.backend.audit.events(),
                strategy_of(self.service.policies),
                trusted=None if chain.ok else chain.lines,
            )
            self.service = DegradedService(self.service, self.degraded, rebuilt.waiting)
            self.tell_admins(rebuilt_notice(rebuilt, self.degraded))
        if self.service.policy_error:
            self.tell_admins(
                "Access bot: the policy files did not load, nothing can be requested:\n"
                + "\n".join(f"- {e}" for e in self.service.policy_error.errors)
            )
        self.slack = self.start_slack()
        self.deliveries.start()
        # Told on a thread of its own, not through the outbox: the outbox is in the very
        # database that is away, and the scheduler must not wait for it (or for chat).
        self.database_watch = DatabaseWatch(
            lambda text: self.send_aside([Notice("admins", "", text)])
        )
        self.standing = StandingSweep(
            self.service,
            self.settings.standing_max_removals,
            self.settings.user_emails,
            self.settings.standing_sweep,
        )
        jobs = []
        if self.settings.standing_sweep and not self.degraded:  # not on a partial picture
            jobs.append(
                StandingJob(
                    self.standing,
                    self.settings.standing_sweep,
                    self.clock,
                    self.deliver,
                    self.tell_admins,
                )
            )
        if not self.degraded:  # access certification (certification.py): opened, reminded, closed
            self.certifications = Certifications(
                self.service,
                self.standing,
                open_certifications(self.settings, self.backend),
                self.settings.standing_max_removals,
                address=self.member_address,
            )
            self.metrics.registry.register(CertificationCounts(self.certifications.counts))
            if self.slack is not None:  # a message a certification, Keep / Remove per item
                self.slack.certifications = self.certifications
                self.certifications.on_change = self.slack.show_certification
            jobs.append(
                CertificationJob(self.certifications, self.clock, self.deliver, self.tell_admins)
            )
        if not self.degraded:  # tickets of end_with grants, looked up again (link_check.py)
            jobs.append(
                LinkCheckJob(
                    self.service.check_links,
                    self.settings.link_check,
                    self.clock,
                    self.hand_over,
                    self.tell_admins,
                )
            )
        # Only the bot holding the scheduler lease ticks and sweeps (always the one bot on
        # TinyDB). Three `schedule` jobs: the revocation tick hands due calls to the
        # provisioner's pool and returns (their notices reach the outbox as each call
        # finishes); housekeeping and the review reminders hand theirs to the outbox.
        self.scheduler = Scheduler(
            self.service.revocation_tick,
            self.settings.tick_seconds,
            self.backend.leadership,
            next_due=self.service.next_revocation_at,
            clock=self.clock,
            on_beat=self.scheduler_beat,
            bounded=self.backend.for_scheduler,
            jobs=jobs,
            after_tick=[
                Checkpoints(
                    self.backend.audit,
                    self.settings.audit_checkpoint,
                    self.clock,
                    self.sinks.acknowledged,  # kept in the log too: a deleted cursor is told
                ).run
            ],
            periodic=[
                Periodic(
                    "housekeeping",
                    self.settings.tick_seconds,
                    lambda: self.hand_over(self.service.housekeeping()),
                ),
                # Each channel's reminder goes out once a day, a day after the grant (by
                # the bot's clock); looking every tick costs a comparison until then.
                Periodic(
                    "review reminders",
                    self.settings.tick_seconds,
                    lambda: self.hand_over(self.service.remind_reviews()),
                ),
                # Grants past their end + ACCESS_OVERDUE_GRACE, read from the store: a job
                # of its own, so no revoke (hanging or failing) can keep it quiet.
                Periodic(
                    "overdue grants",
                    self.settings.tick_seconds,
                    lambda: self.hand_over(self.service.check_overdue()),
                ),
            ],
        )
        self.health = Health(
            self.settings.tick_seconds,
            scheduler_alive=lambda: self.scheduler is not None and self.scheduler.running,
            store_readable=self.backend.store.live_counts,
            overdue=self.service.overdue.ids,
        )
        # Whatever expired while the bot was down is handed out before anything else: a
        # first pass like any tick, which starts the due calls on the strategy pool and
        # waits for none of them, so a hanging target never holds the bot's start (its
        # commands) nor another resource's revoke.
        self.scheduler.run_once(self.first_pass)
        self.scheduler.start()
        self.sinks.start()
        if self.settings.policy_watch:
            self.watcher = PolicyWatcher(
                self.settings.policy_dir,
                self.reload_changed_policies,
                interval=self.settings.policy_watch_seconds,
            )
            self.watcher.start()

    def deactivate(self):
        starter = getattr(self, "starter", None)
        if starter is not None:
            starter.join(timeout=120)  # a start under way finishes before we stop it
        for thread in (getattr(self, "watcher", None), getattr(self, "scheduler", None)):
            if thread is not None:
                thread.stop()
        service = getattr(self, "service", None)
        if service is not None:
            service.close()  # the calls under way are recorded and hand over their notices
        for thread in (
            getattr(self, "deliveries", None),  # after the calls: what is due goes out
            getattr(self, "sinks", None),
        ):
            if thread is not None:
                thread.stop()
        self.stop_slack()
        if getattr(self, "outbox", None) is not None:
            self.outbox.close()  # what is left goes out after the next start
        if getattr(self, "certifications", None) is not None:
            self.certifications.store.close()
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
        if getattr(self, "folder_lock", None) is not None:
            self.folder_lock.release()  # last: nothing of this bot writes after it
            self.folder_lock = None
        super().deactivate()

    def reload_changed_policies(self) -> None:
        """The watcher saw the policy files change: reload, and tell the admins."""
        self.tell_admins(messages.watcher_reload(self.service.reload_policies("watcher")))

    def member_address(self, name: str) -> str:
        """Where a DM goes to a name a target listed or a reviewer entry (certification)."""
        name = name.strip()
        if self._bot.mode.startswith("slack"):
            return f"<@{name}>" if USER_ID.match(name) else "@" + name.lstrip("@")
        return self.address_of(name.lstrip("@"))

    def tell_admins(self, text: str) -> None:
        """DM the admins: BOT_ADMINS_NOTIFICATIONS if set, else every BOT_ADMINS entry
        that names one person (not a pattern)."""
        admins = getattr(self.bot_config, "BOT_ADMINS_NOTIFICATIONS", ()) or tuple(
            a for a in self.bot_config.BOT_ADMINS if not any(c in a for c in "*?[")
        )
        log.warning("%s", text)
        for admin in admins:
            try:
                self.tell(admin, text)
            except Exception:  # noqa: BLE001 - one unreachable admin must not stop the rest
                log.exception("could not tell admin %s", admin)

    def pagerduty(self):
        """The on-call checker, its API calls timed for /metrics."""
        checker = on_call_checker(
            self.settings.pagerduty_token,
            self.settings.pagerduty_url,
            self.clock,
            self.settings.pagerduty_timeout,
        )
        if isinstance(checker, OnCallChecker):

            def observe(seconds: float, ok: bool) -> None:
                self.metrics.pagerduty_calls.observe(seconds)
                if not ok:
                    self.metrics.pagerduty_errors.inc()

            checker.observe = observe
        return checker

    def scheduler_beat(self, leads: bool) -> None:
        """The scheduler asked for its lease (and ticks if `leads`): for /health, /metrics,
        and the admins when it lost or got back the database."""
        self.database_watch.seen(getattr(self.backend.leadership, "unreachable", None), leads)
        self.metrics.leader.set(1 if leads else 0)
        if not leads:  # the leader's overdue job watches now (overdue.py)
            self.service.overdue.forget()
        if self.deliveries is not None:
            self.deliveries.wake()  # retries whose time has come (the clock may be a test's)
        self.metrics.last_tick.set_to_current_time()
        if leads:
            self.metrics.ticks.inc()
        if self.health is not None:
            self.health.beat()

    def first_pass(self) -> None:
        """The pass at start: the revocation tick (calls handed to the pool, none waited
        for), then housekeeping and the review reminders, their notices to the outbox."""
        self.service.revocation_tick()
        self.hand_over(self.service.housekeeping())
        self.hand_over(self.service.remind_reviews())

    def run_tick(self) -> None:
        """One full pass of every job, waiting for its strategy calls (for tests; the
        scheduler never waits). People are told by the delivery workers."""
        self.hand_over(self.service.tick())

    def hand_over(self, notices: list[Notice]) -> None:
        """Notices of background work (the scheduler's jobs, finished strategy calls,
        follow-up hooks) to the outbox, a channel's run of "grant ended" lines merged into
        one (accessbot.digest; every DM and card update still goes on its own), so no
        scheduler job or pool worker waits for chat."""
        self.deliver([part.notice for part in merge(unstored(notices))])

    # -- commands -------------------------------------------------------------

    @botcmd
    def access(self, msg, args):
        """Just-in-time access; `!access request <resource> [duration] <reason>` to ask."""
        if args.strip():
            word = args.split()[0]
            meant = resembles(word, self.subcommands())
            if meant:
                return (
                    f"`{messages.inert(word, 40)}` is not an access command; did you mean "
                    f"`!access {meant}`? (`!access` lists them all.)"
                )
            return f"`{messages.inert(word, 40)}` is not an access command.\n\n{HELP}"
        return HELP

    def subcommands(self) -> list[str]:
        """The words after `!access` that are commands (`request`, `audit`, ...)."""
        return [
            name.removeprefix("access_")
            for name in dir(type(self))
            if name.startswith("access_") and getattr(getattr(self, name), "_err_command", False)
        ]

    @botcmd
    def access_request(self, msg, args):
        """Ask for access: `!access request prod-db 30m fixing INC-42` (duration optional)."""
        if not args.strip() and self.slack is not None and self.offer_slack_form(msg):
            return
        resource = args.split()[0] if args.split() else ""
        yield from self.run(
            msg,
            lambda actor: self.service.request(
                actor, *parse_request(args, self.service.field_names)
            ),
            ack=lambda: (
                self.service.checks_at_request(resource) and messages.checking_policy(resource)
            ),
        )

    @botcmd
    def access_resources(self, msg, args):
        """List what you can request, with limits and approvers: `!access resources`."""
        yield from self.run(msg, lambda actor: self.service.resources())

    @botcmd
    def access_mine(self, msg, args):
        """Your pending requests and active grants: `!access mine`."""
        yield from self.run(msg, lambda actor: self.service.mine(actor))

    @botcmd
    def access_list(self, msg, args):
        """Everything pending or active, for approvers and admins: `!access list`."""
        yield from self.run(msg, lambda actor: self.service.list_live(actor))

    @botcmd
    def access_show(self, msg, args):
        """One request with its history: `!access show <id>`."""
        yield from self.run(
            msg, lambda actor: self.service.show(actor, parse_id_and_text(args, "access show")[0])
        )

    @botcmd
    def access_cancel(self, msg, args):
        """Withdraw your pending request: `!access cancel <id>` (no id: your only one)."""
        request_id = parse_id_and_text(args, "access cancel")[0] if args.strip() else None
        yield from self.run(msg, lambda actor: self.service.cancel(actor, request_id))

    @botcmd
    def access_revoke(self, msg, args):
        """End an active grant now: `!access revoke <id>`."""
        yield from self.run(
            msg,
            lambda actor: self.service.revoke(actor, parse_id_and_text(args, "access revoke")[0]),
        )

    @botcmd
    def access_extend(self, msg, args):
        """Ask for more time on your active grant: `!access extend <id> [30m] [reason]`."""
        yield from self.run(msg, lambda actor: self.service.extend(actor, *parse_extend_args(args)))

    @botcmd
    def access_reload(self, msg, args):
        """Reload the policy files, all or nothing (admins): `!access reload`."""
        yield from self.run(msg, lambda actor: self.service.reload(actor))

    @botcmd
    def access_whatif(self, msg, args):
        """Dry run (admins, approvers): `!access whatif carol prod-db 30m`: who would be asked, would a policy decide."""

        def whatif(actor):
            user, request = parse_whatif_args(args, self.service.field_names)
            return self.service.whatif(actor, self.person_named(user), *request)

        yield from self.run(msg, whatif)

    @botcmd
    def access_standing(self, msg, args):
        """Who holds access at the targets that no grant explains (admins, approvers): `!access standing [prod-db]`."""
        yield from self.run(
            msg,
            lambda actor: self.standing.report(actor, parse_resource_arg(args, "access standing")),
        )

    @botcmd
    def access_certify(self, msg, args):
        """Access certification: `!access certify list`, `!access certify keep <item> [note]`, `!access certify remove <item> [reason]`; admins: `!access certify start [prod-db]`."""

        def certify(actor):
            action, target, text = parse_certify_args(args)
            if self.certifications is None:
                raise AccessError("Access certification is not running on this bot (see its log).")
            if action == "start":
                return self.certifications.start(actor, target)
            if action == "list":
                return self.certifications.listing(actor)
            return self.certifications.decide(actor, target, action, text)

        yield from self.run(msg, certify)

    @botcmd
    def access_audit(self, msg, args):
        """Recent audit events (admins): `!access audit user=alice resource=prod-db since=2h`; `!access audit verify`; `!access audit status` (the sinks)."""

        def audit(actor):
            query = parse_audit_args(args)
            if query.pop("verify", False):
                return self.service.verify_audit(actor)
            if query.pop("status", False):
                if not actor.is_admin:
                    raise AccessError("Only bot admins (BOT_ADMINS) can see the audit sinks.")
                return self.sinks.status_text()
            return self.service.audit_events(actor, **query)

        yield from self.run(msg, audit)

    @botcmd
    def access_retry(self, msg, args):
        """Retry a failed revoke now (admins): `!access retry <id>`. A failed grant is final: ask again."""
        yield from self.run(
            msg,
            lambda actor: self.service.retry(actor, parse_id_and_text(args, "access retry")[0]),
        )

    @botcmd
    def access_ack(self, msg, args):
        """Acknowledge a break-glass grant after the fact (approvers): `!access ack <id> [note]`."""
        yield from self.run(
            msg, lambda actor: self.service.ack(actor, *parse_id_and_text(args, "access ack"))
        )

    @botcmd
    def access_review(self, msg, args):
        """Break-glass grants nobody has acknowledged yet (approvers): `!access review`."""
        yield from self.run(msg, lambda actor: self.service.review(actor))

    @botcmd
    def approve(self, msg, args):
        """Approve a request (approvers): `!approve <id> [comment]`."""
        yield from self.run(
            msg, lambda actor: self.service.approve(actor, *parse_id_and_text(args, "approve"))
        )

    @botcmd
    def deny(self, msg, args):
        """Deny a request (approvers): `!deny <id> [reason]`."""
        yield from self.run(
            msg, lambda actor: self.service.deny(actor, *parse_id_and_text(args, "deny"))
        )

    # -- plumbing -------------------------------------------------------------

    def run(self, msg, call, ack=None):
        """Run one service call for the sender and yield its reply; the notices it wrote to
        the outbox (in the commits of its changes) go out after the reply.

        `ack()` gives the words for a call that may be slow (a policy check): if it has not
        answered within ACCESS_ACK_SECONDS they are said first, so nobody waits in silence."""
        if not getattr(self, "ready", False):
            yield STARTING
            return
        if self.startup_error:
            yield self.startup_error
            return

        held: set[int] = set()  # the notices the call announces: sent after its reply

        def bounded(actor):  # on whichever thread runs it: the database is waited for briefly
            with self.backend.for_command(), self.held_back(held):
                return call(actor)

        try:
            yield from self.replied(msg, bounded, ack)
        finally:
            self.let_go(held)

    def replied(self, msg, bounded, ack):
        """The reply (or refusal) to a command, its notices written meanwhile."""
        try:
            actor = self.actor(msg.frm)
            with self.backend.for_command():
                text = ack() if ack is not None else None
            if text:
                result = yield from self.acknowledged(bounded, actor, text)
            else:
                result = bounded(actor)
        except (AccessError, CommandSyntaxError) as exc:
            yield str(exc)
            return
        except StoreError as exc:
            log.error("command failed, the store did not answer: %s: %s", msg.body, exc)
            yield messages.database_not_answering()
            return
        except Exception:  # noqa: BLE001 - never a stack trace in chat
            log.exception("command failed: %s", msg.body)
            yield (
                "Sorry, that failed inside the bot; nothing was decided. "
                "An admin can find the details in the bot's log."
            )
            return
        if isinstance(result, Outcome):
            with self.holding(result.notices):
                yield result.reply
        else:
            yield result

    def acknowledged(self, call, actor, text: str):
        """Run `call` on a thread of its own; say `text` if it is not done within
        `ack_seconds`, then wait for it. Returns what it returns (or raises what it raises)."""
        done: Future = Future()

        def work() -> None:
            try:
                done.set_result(call(actor))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting command
                done.set_exception(exc)

        threading.Thread(target=work, name="accessbot-command", daemon=True).start()
        try:
            return done.result(timeout=self.ack_seconds)
        except TimeoutError:
            yield text
        return done.result()

    @cmdfilter
    def only_people_command(self, msg, cmd, args, _dry_run):
        """On Slack, only messages a person typed are commands: a message an integration
        posted (`bot_id`, `bot_message`) names its own `username`, so it is never one; nor
        is an edit or any other subtype. Nor is a message from another Slack team."""
        event = (getattr(msg, "extras", None) or {}).get("slack_event")
        if not isinstance(event, dict):
            return msg, cmd, args
        subtype = event.get("subtype")
        if event.get("bot_id") or subtype not in (None, "thread_broadcast", "file_share"):
            log.debug("not a command: a Slack message with bot_id/subtype %s", subtype)
            return None, None, None
        team = event.get("user_team") or event.get("team")
        if team and team not in self.slack_teams():
            log.warning("not a command: a Slack message from team %s", team)
            return None, None, None
        return msg, cmd, args

    @webhook("/slack/interactive", methods=("POST",), raw=True)
    def slack_interactive(self, request):
        """Slack's Interactivity Request URL (HTTP mode): signed button clicks and forms."""
        app = getattr(self, "slack", None)
        if not getattr(self, "ready", False):
            return json.dumps({"error": STARTING}), 503, {"Content-Type": "application/json"}
        if app is None:
            return "Slack is not connected", 404
        status, answer = app.handle_http(request.get_data(), dict(request.headers))
        return json.dumps(answer) if answer else "", status, {"Content-Type": "application/json"}

    # -- monitoring -----------------------------------------------------------------

    @webhook("/metrics", methods=("GET",), raw=True)
    def metrics_endpoint(self, request):
        """Prometheus metrics: requests by status, grants and revokes by outcome, revocation
        lateness, target/chat/PagerDuty call times and errors, the scheduler. With
        ACCESS_METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
        settings = getattr(self, "settings", None)
        token = settings.metrics_token if settings else os.environ.get("ACCESS_METRICS_TOKEN")
        if not bearer_allows(request.headers.get("Authorization"), token):
            return (
                "401: /metrics wants `Authorization: Bearer <ACCESS_METRICS_TOKEN>`\n",
                401,
                {"Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="accessbot"'},
            )
        body, content_type = self.metrics.exposition(request.headers.get("Accept", ""))
        return body, 200, {"Content-Type": content_type}

    @webhook("/health", methods=("GET",), raw=True)
    def health_endpoint(self, request):
        """200 while revocation works (scheduler alive and ticking, store readable); else 503."""
        if not getattr(self, "ready", False):
            verdict_ok, reason = False, "the bot is starting"
        elif self.startup_error:
            verdict_ok, reason = False, self.startup_error
        elif self.health is None:
            verdict_ok, reason = False, "the scheduler was not started"
        else:
            verdict = self.health.verdict()
            verdict_ok, reason = verdict.ok, verdict.reason
            if verdict_ok and self.degraded:  # revoking, but someone must rebuild the store
                verdict_ok, reason = False, f"degraded: {self.degraded}"
        body = json.dumps({"status": "ok" if verdict_ok else "unhealthy", "reason": reason})
        return body, 200 if verdict_ok else 503, {"Content-Type": "application/json"}
