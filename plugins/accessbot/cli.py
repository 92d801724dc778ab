"""`python -m accessbot`: the command line for admins and auditors.

    python -m accessbot audit verify [PATH | postgresql://...] [--against COPY]
    python -m accessbot audit export --since 30d --format csv [--resource R] [--user U]
    python -m accessbot report --since 30d --out report.html
    python -m accessbot check [--strict] [POLICY_DIR]
    python -m accessbot test POLICY_DIR TESTS.yaml
    python -m accessbot standing [--resource R] [--remove]


    python -m accessbot migrate --to postgresql://accessbot@db/accessbot
    python -m accessbot backup --out FILE
    python -m accessbot restore FILE [--force]
    python -m accessbot store rebuild [--from AUDIT] [--accept-broken-chain]

Paths default to the bot's own Settings, found as the bot finds them from any folder:
ACCESS_* environment variables win over the keys of the Errbot config file, which is
`--config config.py` or else the project's own `config.py` (beside `plugins/`, where
this package lives). With ACCESS_DB_URL set, the audit commands read the audit table
there. Exit codes: 0 ok, 1 the check failed or the data is bad, 2 usage.

Adding a command: write a function that takes the subparsers object, adds one parser
with `add_command` and gives it a `run(args, settings) -> int`; decorate it with
`@subcommand`. `main` registers every decorated function in order.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import re
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from .audit import chain_files, verify_chain, verify_file
from .domain import DurationError, format_duration, from_iso, parse_duration
from .durable import ProcessLock
from .errors import AccessBotError
from .safe_text import redact_urls
from .settings import PROJECT_CONFIG, Settings, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Register = Callable[[argparse._SubParsersAction], None]
SUBCOMMANDS: list[Register] = []


class CliError(AccessBotError):
    """A failure to report on stderr; `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def subcommand(register: Register) -> Register:
    SUBCOMMANDS.append(register)
    return register


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="CONFIG.PY",
        default=argparse.SUPPRESS,  # so it may also come before the command
        help="the Errbot config file to read the ACCESS_* settings from (default: the "
        "project's config.py, beside plugins/); ACCESS_* environment variables win",
    )
    return common


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    run: Callable[[argparse.Namespace, Settings], int],
    **kwargs,
) -> argparse.ArgumentParser:
    """One command: its parser knows `--config`, and `run` is what `main` calls."""
    parser = subparsers.add_parser(name, help=help, description=help, parents=[_common()], **kwargs)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m accessbot",
        description="Audit, export, report and policy checks for the just-in-time access bot.",
        parents=[_common()],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in SUBCOMMANDS:
        register(commands)
    return parser


@dataclass(frozen=True)
class ConfigSource:
    """The config file the settings came from (its values), to say where a path came from."""

    path: Path | None  # the config file read; None when there was none
    looked_for: Path  # where it was looked for
    values: dict = field(default_factory=dict)

    def origin(self, key: str) -> str:
        """`ACCESS_AUDIT_PATH in /srv/accessbot/config.py`, or why it is the default."""
        if os.environ.get(key, "") != "":
            return f"{key} from the environment"
        if self.path is None:
            return (
                f"the default: {key} is not in the environment and there is no config file "
                f"at {self.looked_for} (give one with --config)"
            )
        if self.values.get(key) is not None:
            return f"{key} in {self.path}"
        return f"the default: {key} is neither in the environment nor in {self.path}"


def find_config(config: str | None) -> ConfigSource:
    """`--config PATH`, else the project's config.py the bot runs with, if it is there."""
    if config:
        path = Path(config).resolve()
        if not path.is_file():
            raise CliError(f"--config {config}: no such file", EXIT_USAGE)
    elif PROJECT_CONFIG.is_file():
        path = PROJECT_CONFIG
    else:
        return ConfigSource(None, PROJECT_CONFIG)
    try:
        values = runpy.run_path(str(path))
    except Exception as exc:  # noqa: BLE001 - a broken config is the user's to fix
        raise CliError(f"{path} did not load: {type(exc).__name__}: {exc}") from exc
    return ConfigSource(path, path, values)


def load_settings(source: ConfigSource) -> Settings:
    """The settings as the bot reads them: the environment wins over the config, and
    the data files default to the config's BOT_DATA_DIR."""
    if source.path is None:
        return Settings.load()
    config = SimpleNamespace(**source.values)
    return Settings.load(config, data_dir=source.values.get("BOT_DATA_DIR"))


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # what a command writes (a restore, a rebuilt store) is the bot's alone
    parser = build_parser()
    args = parser.parse_args(argv)
    # Named in the data folder's lock while a writing command holds it (a bot started
    # meanwhile is refused naming it).
    ProcessLock.role = " ".join(
        ["python -m accessbot", args.command, getattr(args, "store_command", None) or ""]
    ).strip()
    try:
        args.source = find_config(getattr(args, "config", None))
        settings = load_settings(args.source)
        return args.run(args, settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:  # `... | head`
        return EXIT_OK


# -- shared argument types -------------------------------------------------------------


def since_type(text: str) -> datetime:
    """`30d`, `12h` (ago), or a date/time `2026-11-01` / `2026-11-01T09:00Z` (UTC)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except DurationError:
        pass
    try:
        moment = from_iso(text)
    except ValueError:
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration like 30d or 12h nor a date like 2026-11-01"
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def moment_type(text: str) -> datetime:
    try:
        moment = from_iso(text)
    except ValueError:
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01T09:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_db_url(text: str | None) -> bool:
    return bool(text) and text.startswith(("postgresql://", "postgres://"))


@contextlib.contextmanager
def _audit_table(url: str):
    """The audit log in PostgreSQL, opened to read (no heartbeat: the CLI is no bot)."""
    from .postgres import Database, PostgresAuditLog

    db = Database(url, heartbeat=False)
    try:
        yield PostgresAuditLog(db, clock=lambda: datetime.now(UTC))
    finally:
        db.close()


def _db_source(path: str | None, settings: Settings) -> str | None:
    """The database URL to read the audit from: given, or ACCESS_DB_URL when no path is."""
    if is_db_url(path):
        return path
    return settings.db_url if not path else None


def _audit_files(
    path: str | None, settings: Settings, source: ConfigSource | None = None
) -> tuple[list[Path], bool]:
    """The files of the log at `path` (a log file or a directory holding one), oldest
    first, and whether that is a lone rotated file to check on its own."""
    default = Path(settings.audit_path)
    target = Path(path) if path else default
    if target.is_dir():
        target = target / default.name
    files = chain_files(target)
    if not files:
        where = f" ({source.origin('ACCESS_AUDIT_PATH')})" if source and not path else ""
        raise CliError(f"there is no audit log at {target}{where}")
    lone = len(files) == 1 and bool(re.search(r"\.\d+$", target.name))
    return files, lone


# -- audit verify / audit export -----------------------------------------------------


@subcommand
def register_audit(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="verify or export the audit log", parents=[_common()])
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = add_command(
        actions,
        "verify",
        "check the hash chain of the audit log, across its rotated files",
        run_verify,
    )
    verify.add_argument(
        "path",
        nargs="?",
        help="the log file or its directory (default: ACCESS_AUDIT_PATH), or a "
        "postgresql:// URL (default when ACCESS_DB_URL is set); a rotated file like "
        "audit.jsonl.3 is checked on its own",
    )
    verify.add_argument(
        "--against",
        metavar="COPY",
        help="also compare the log with the lines an audit sink received (ndjson; syslog "
        "lines; Splunk HEC events or a Splunk JSON export): events missing or changed "
        "locally, or a chain started again, are tampering (exit 1); events the copy lacks "
        "are lag",
    )

    export = add_command(
        actions, "export", "write audit events as CSV or JSON lines for auditors", run_export
    )
    export.add_argument("--since", type=since_type, help="30d, 12h or a date (default: all)")
    export.add_argument("--until", type=moment_type, help="a date/time (default: now)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--resource", help="only this resource")
    export.add_argument("--user", help="only events by or about this user")
    export.add_argument("--out", help="write here instead of to standard output")
    export.add_argument(
        "--log", help="the audit log file or a postgresql:// URL (default: the bot's own)"
    )


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.against:
        return _verify_against(args, settings)
    url = _db_source(args.path, settings)
    if url:
        with _audit_table(url) as log:
            result = log.verify()
        print(result)
        return EXIT_OK if result.ok else EXIT_FAILED
    files, lone = _audit_files(args.path, settings, args.source)
    result = verify_file(files[0]) if lone else verify_chain(files)
    print(result)
    if len(files) > 1:
        print("files checked, oldest first: " + ", ".join(str(f) for f in files))
    return EXIT_OK if result.ok else EXIT_FAILED


def _verify_against(args: argparse.Namespace, settings: Settings) -> int:
    """The local log (files or the table) against a sink's copy; exit 1 on tampering."""
    from .audit import AuditLog
    from .audit_copy import compare, read_copy

    try:
        with open(args.against, "rb") as handle:
            copy, skipped = read_copy(handle)
    except OSError as exc:
        raise CliError(f"--against {args.against}: {exc.strerror or exc}", EXIT_USAGE) from exc
    url = _db_source(args.path, settings)
    if url:
        with _audit_table(url) as log:
            result = compare(log.stored_lines(), copy, log.verify())
            name = log.where
    else:
        target = Path(args.path) if args.path else Path(settings.audit_path)
        if target.is_dir():
            target = target / Path(settings.audit_path).name
        files = chain_files(target)
        # No files at all is what a deleted log looks like: every copied event is missing.
        chain = verify_chain(files)
        log = AuditLog(target, clock=lambda: datetime.now(UTC), max_bytes=None)
        result = compare(log.stored_lines(), copy, chain)
        name = f"the audit log at {target}" + (f" ({len(files)} files)" if len(files) > 1 else "")
    result.skipped = skipped
    print("\n".join(result.report(name, args.against)))
    return EXIT_FAILED if result.tampered else EXIT_OK


CSV_COLUMNS = (
    "seq",
    "ts",
    "event",
    "request_id",
    "actor",
    "user",
    "resource",
    "outcome",
    "duration",
    "expires_at",
    "reason",
    "detail",
    "prev",
)


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: no formula injection from a reason."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _shown(record: dict) -> dict:
    """A record as exported: a `detail` written before strategy errors were redacted
    may quote a URL with its credentials; it is shown as scheme://host/path."""
    if isinstance(record.get("detail"), str):
        return {**record, "detail": redact_urls(record["detail"])}
    return record


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    with _opened_log(args.log, settings, source=args.source) as (log, verdict, _):
        return _export(args, log, verdict)


@contextlib.contextmanager
def _opened_log(path: str | None, settings: Settings, clock=None, source=None):
    """The audit log to read (files or the table), its verdict, and where it lives."""
    from .audit import AuditLog

    url = _db_source(path, settings)
    if url:
        with _audit_table(url) as log:
            yield log, log.verify(), [log.where]
        return
    files, _ = _audit_files(path, settings, source)
    verdict = verify_chain(files)
    log = AuditLog(files[-1], clock=clock or (lambda: datetime.now(UTC)), max_bytes=None)
    yield log, verdict, [str(f) for f in files]


def _export(args: argparse.Namespace, log, verdict) -> int:
    records = log.query(
        user=args.user.lstrip("@").lower() if args.user else None,
        resource=args.resource,
        since=args.since,
        until=args.until,
        limit=0,
    )
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(open(args.out, "w", newline="", encoding="utf-8"))
            if args.out
            else sys.stdout
        )
        if args.format == "jsonl":
            for record in map(_shown, records):
                out.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            for record in map(_shown, records):
                writer.writerow([_cell(record.get(c)) for c in CSV_COLUMNS])
    print(f"exported {len(records)} events; {verdict}", file=sys.stderr)
    return EXIT_OK if verdict.ok else EXIT_FAILED


# -- report ----------------------------------------------------------------------------


@subcommand
def register_report(commands: argparse._SubParsersAction) -> None:
    report = add_command(
        commands,
        "report",
        "write a self-contained HTML report: who had what access when, counts, verify result",
        run_report,
    )
    report.add_argument(
        "--since", type=since_type, default="30d", help="30d (default), 12h or a date"
    )
    report.add_argument("--until", type=moment_type, help="the report's end (default: now)")
    report.add_argument("--out", default="report.html", help="default: report.html")
    report.add_argument(
        "--log", help="the audit log file or a postgresql:// URL (default: the bot's own)"
    )


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    from .report import chart_missing, render_html, summarize

    until = args.until or datetime.now(UTC)
    since = args.since if isinstance(args.since, datetime) else since_type(args.since)
    if since >= until:
        raise CliError("--since must be before --until", EXIT_USAGE)
    with _opened_log(args.log, settings, lambda: until, args.source) as (log, verdict, sources):
        summary = summarize(log.events(), since, until, verdict)
        summary.sinks = _sink_statuses(settings, log)
    page = render_html(summary, log_files=sources, generated=datetime.now(UTC))
    Path(args.out).write_text(page, encoding="utf-8")
    if summary.spans and (missing := chart_missing()):
        print(f"note: {missing}", file=sys.stderr)
    print(
        f"wrote {args.out}: {format_duration(until - since)} from {since:%Y-%m-%d %H:%M} UTC, "
        f"{len(summary.spans)} grants, {summary.counts['requests']} requests; {verdict}"
    )
    return EXIT_OK if verdict.ok else EXIT_FAILED


def _sink_statuses(settings: Settings, log) -> list:
    """How far each configured sink got, from the cursors in the store (read without
    opening it: the bot may be running)."""
    from .sinks import status_of
    from .store import SinkCursor, StoreError, StoreFiles, read_sink_cursors

    if not settings.audit_sinks:
        return []
    head = log.head()
    try:
        if getattr(log, "db", None) is not None:
            from .postgres import PostgresStore

            store = PostgresStore(log.db)
            cursors = {s.name: store.sink_cursor(s.name) for s in settings.audit_sinks}
        else:
            stored = read_sink_cursors(StoreFiles.of(settings.db_path).sink_cursors)
            cursors = {
                name: SinkCursor.from_dict(name, data)
                for name, data in stored.items()
                if isinstance(data, dict)
            }
    except StoreError as exc:
        print(f"note: the sinks' positions are not in the report: {exc}", file=sys.stderr)
        return []
    return [
        status_of(s.type, cursors.get(s.name) or SinkCursor(s.name), head[0] if head else 0)
        for s in settings.audit_sinks
    ]


# -- check / test: policy CI -------------------------------------------------------------


@subcommand
def register_check(commands: argparse._SubParsersAction) -> None:
    check = add_command(
        commands,
        "check",
        "load the policy files exactly as the bot does; print file:line: key: message for "
        "every problem in every file and exit 1 if there is any. A strategy setting naming "
        "an environment variable that is not set here is a warning (CI rarely has the bot's "
        "secrets; the bot refuses it)",
        run_check,
    )
    check.add_argument(
        "policy_dir", nargs="?", help="the policy directory (default: ACCESS_POLICY_DIR)"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="unset environment variables are errors too, as in the bot, and so is a webhook "
        "or an http audit sink without secret_env (unsigned calls) (exit 1)",
    )


def _located(directory: Path, error: str) -> str:
    """`db.py:4: ...` from the loader becomes `policies/db.py:4: ...`, a path CI can
    point at; errors not about a file (ACCESS_GROUPS) stay as they are."""
    name, colon, rest = error.partition(":")
    if not name.endswith(".py") or "/" in name:
        return error
    return f"{directory / name}{colon}{rest}"  # the path only: a URL in `rest` keeps its //


def _warning(directory: Path, warning: str) -> str:
    """`policies/db.py:7: warning: prod-db.strategy.secret_env: ...`."""
    where, _, message = _located(directory, warning).partition(": ")
    return f"{where}: warning: {message}"


def _unsigned(directory: Path, policies, settings: Settings) -> list[str]:
    """What would call or ship unsigned: a webhook strategy or an http audit sink without
    `secret_env` (the bot only logs it; `check --strict` refuses it)."""
    from .policy.lines import key_lines, locate

    found = []
    for name in policies.names():
        resource = policies.resources[name]
        strategy = resource.strategy_settings
        if strategy.get("type") != "webhook" or strategy.get("secret_env"):
            continue
        file = Path(resource.file).name
        try:
            lines = key_lines((directory / file).read_text(encoding="utf-8"))
        except OSError:
            lines = {}
        variable = name.upper().replace("-", "_").replace(".", "_") + "_HOOK_SECRET"
        found.append(
            f"{locate(file, lines, (name, 'strategy'))}: {name}.strategy.secret_env: not set, "
            "so the webhook's calls are not signed and its target cannot tell them from "
            f'anyone\'s; add "secret_env": "{variable}" and set that variable where the bot runs'
        )
    for sink in settings.audit_sinks:
        if sink.type == "http" and not sink.get("secret_env"):
            found.append(
                f"ACCESS_AUDIT_SINKS: {sink.name}: no secret_env, so its batches are not "
                'signed; add "secret_env": "AUDIT_SINK_SECRET" and set that variable where '
                "the bot runs"
            )
    return found


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    from .policy import PolicyError, load_policies

    directory = Path(args.policy_dir or settings.policy_dir)
    if not args.policy_dir and not directory.is_dir():
        raise CliError(
            f"{directory}: the policy directory does not exist "
            f"({args.source.origin('ACCESS_POLICY_DIR')}); name it: "
            "python -m accessbot check POLICY_DIR"
        )
    try:
        policies = load_policies(
            directory, settings.groups, os.environ, unset_env_is_error=args.strict
        )
    except PolicyError as exc:
        for error in exc.errors:
            print(_located(directory, error))
        for warning in exc.warnings:
            print(_warning(directory, warning))
        print(f"{directory}: {len(exc.errors)} problem(s); the bot would not load these policies")
        return EXIT_FAILED
    unsigned = _unsigned(directory, policies, settings)
    if args.strict and unsigned:
        for problem in unsigned:
            print(_located(directory, problem))
        print(f"{directory}: {len(unsigned)} problem(s); --strict refuses them")
        return EXIT_FAILED
    for warning in policies.warnings:
        print(_warning(directory, warning))
    for problem in unsigned:
        print(_warning(directory, problem))
    warned = (
        f"; {len(policies.warnings)} warning(s): the bot refuses these policies where those "
        "variables are not set"
        if policies.warnings
        else ""
    )
    print(
        f"{directory}: ok, {len(policies.files)} file(s), {len(policies.resources)} resource(s): "
        + ", ".join(policies.names())
        + warned
    )
    return EXIT_OK


@subcommand
def register_test(commands: argparse._SubParsersAction) -> None:
    test = add_command(
        commands,
        "test",
        "run table-driven policy tests (who asks for what, what PagerDuty says, what "
        "should happen) and print a pass/fail table; exit 1 if any case fails",
        run_test,
    )
    test.add_argument("policy_dir", help="the policy directory")
    test.add_argument("tests", help="the YAML file of cases")


def run_test(args: argparse.Namespace, settings: Settings) -> int:
    from .policy import PolicyError
    from .policy_tests import TestFileError, read_cases, report, run_cases

    # Lookups that fail on purpose ("pagerduty: down") are in the table; not as warnings.
    logging.getLogger("accessbot").setLevel(logging.ERROR)
    directory, path = Path(args.policy_dir), Path(args.tests)
    try:
        cases = read_cases(path, settings.user_emails)
        results = run_cases(directory, cases, settings.groups, settings.hook_timeout)
    except TestFileError as exc:
        print("\n".join(exc.errors))
        print(f"{path}: {len(exc.errors)} problem(s) in the tests file; no case was run")
        return EXIT_FAILED
    except PolicyError as exc:
        print("\n".join(_located(directory, e) for e in exc.errors))
        print(f"{directory}: the policies do not load; no case was run")
        return EXIT_FAILED
    print("\n".join(report(path, results)))
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


# -- standing: access no grant explains ------------------------------------------------------


@subcommand
def register_standing(commands: argparse._SubParsersAction) -> None:
    standing = add_command(
        commands,
        "standing",
        "list who holds access at the targets that no grant or `standing` entry explains, "
        "as the bot's sweep does, and which targets cannot be listed; exit 1 when anything "
        "is found or a target fails to answer. Only looks, unless --remove",
        run_standing,
    )
    standing.add_argument("--resource", help="only this resource")
    standing.add_argument(
        "--remove",
        action="store_true",
        help="also remove what is found, through each resource's strategy, audited; at most "
        "ACCESS_STANDING_MAX_REMOVALS in one run (above it nothing is removed). On the "
        "TinyDB files the bot must be stopped (with PostgreSQL it may run)",
    )


@contextlib.contextmanager
def _standing_service(settings: Settings, writing: bool):
    """The service on the bot's own store and audit log, its policies loaded as the bot
    loads them (a strategy's unset variable fails that target, not the whole look)."""
    from .audit import AuditLog
    from .bootstrap import bootstrap
    from .store import FileLock, StoreError, StoreFiles, TinyDBStore

    clock = lambda: datetime.now(UTC)  # noqa: E731
    try:
        if settings.db_url:
            from .postgres import Database, PostgresAuditLog, PostgresStore

            db = Database(settings.db_url, heartbeat=False)
            store, audit = PostgresStore(db), PostgresAuditLog(db, clock)
        else:
            files = StoreFiles.of(settings.db_path)
            if writing:
                # Two writers on the files would lose each other's changes.
                running = FileLock(files.open_lock)
                try:
                    if not running.acquire(exclusive=True, wait=False):
                        raise CliError(
                            f"a bot is running on {settings.db_path}: stop it first, or let "
                            "it remove (policy key remove_standing: True)"
                        )
                finally:
                    running.close()
            store = TinyDBStore(settings.db_path)
            audit = AuditLog(settings.audit_path, clock, settings.audit_max_bytes)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    try:
        yield bootstrap(settings, clock=clock, store=store, audit=audit, check_env=False)
    finally:
        store.close()


def run_standing(args: argparse.Namespace, settings: Settings) -> int:
    from .domain import AccessError
    from .standing_sweep import StandingSweep

    with _standing_service(settings, writing=args.remove) as service:
        sweep = StandingSweep(
            service, settings.standing_max_removals, settings.user_emails, settings.standing_sweep
        )
        if service.policy_error is not None:
            raise CliError(
                "the policies did not load, so who may hold what is not known:\n"
                + "\n".join(f"  {e}" for e in service.policy_error.errors)
            )
        try:
            result = sweep.sweep(
                args.resource,
                remove=True if args.remove else None,
                actor="cli",
                record=args.remove,
            )
        except AccessError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
    for line in _standing_lines(result, args.remove):
        print(line)
    for alert in result.alerts:
        print(f"not removed: {alert}", file=sys.stderr)
    troubled = [u for u in result.unlisted.values() if not u.cannot] or result.failures
    found = any(result.findings.values())
    return EXIT_FAILED if found or troubled or result.failed else EXIT_OK


def _standing_lines(result, removing: bool) -> list[str]:
    """One block per resource: what holds it without a grant, and since when."""
    lines = []
    removed = {f.id for f in result.removed}
    failed = {f.id: f for f in result.failed}
    held = {f.id for f in result.held_back}
    new = {f.id for f in result.found}
    for name in sorted({*result.findings, *result.unlisted, *result.failures}):
        if name in result.failures:
            lines.append(f"{name}: not checked: {result.failures[name]}")
            continue
        unlisted = result.unlisted.get(name)
        if unlisted is not None:
            what = "cannot be listed" if unlisted.cannot else "could not be listed"
            lines.append(f"{name}: {what}: {unlisted.reason}")
        findings = result.findings.get(name, [])
        if not findings:
            if unlisted is None:
                lines.append(f"{name}: nothing found")
            continue
        lines.append(f"{name}: {len(findings)} found")
        for f in findings:
            since = "found now" if f.id in new else f"since {_ago(f.found_at)}"
            line = f"  {f.who}, {since}"
            if f.id in removed:
                line += ": removed"
            elif f.id in failed:
                line += f": removal failed: {failed[f.id].last_error}"
            elif f.id in held:
                line += ": not removed (more than ACCESS_STANDING_MAX_REMOVALS)"
            elif removing:
                line += ": not removed now (a grant explains it by now, or it waits to be retried)"
            lines.append(line)
    return lines


def _ago(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC ({format_duration(datetime.now(UTC) - moment)} ago)"


# -- migrate ---------------------------------------------------------------------------


@subcommand
def register_migrate(commands: argparse._SubParsersAction) -> None:
    migrate = add_command(
        commands,
        "migrate",
        "copy a TinyDB deployment (live requests, archive, audit log) into an empty "
        "PostgreSQL database and check the counts and the audit chain there; stop the bot first",
        run_migrate,
    )
    migrate.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user@host/dbname (empty)"
    )
    migrate.add_argument("--db", help="the TinyDB file (default: ACCESS_DB_PATH)")
    migrate.add_argument("--audit", help="the audit log (default: ACCESS_AUDIT_PATH)")


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .postgres.database import safe_url
    from .postgres.migrate import migrate_tinydb
    from .store import StoreError

    if not is_db_url(args.to):
        raise CliError(
            f"--to must be a PostgreSQL URL like postgresql://accessbot@db/accessbot, "
            f"not {args.to!r}",
            EXIT_USAGE,
        )
    db_path = args.db or settings.db_path
    audit_path = args.audit or settings.audit_path
    try:
        copied = migrate_tinydb(db_path, audit_path, args.to)
    except StoreError as exc:
        origins = [
            args.source.origin(key)
            for given, key in ((args.db, "ACCESS_DB_PATH"), (args.audit, "ACCESS_AUDIT_PATH"))
            if not given
        ]
        raise CliError(f"{exc}" + (f" ({'; '.join(origins)})" if origins else "")) from exc
    print(
        f"copied {copied.live} live and {copied.archived} archived requests from {db_path}, "
        f"and {copied.audit_events} audit events from {copied.audit_files} file(s) at "
        f"{audit_path}, into {safe_url(args.to)}; counts checked; {copied.verdict}.\n"
        f"Now set ACCESS_DB_URL={safe_url(args.to)} and start the bots."
    )
    return EXIT_OK


# -- backup / restore (one bot on files) ------------------------------------------------

PG_BACKUP = (
    "with ACCESS_DB_URL set the state is in PostgreSQL: back it up with pg_dump "
    "(pg_dump -Fc accessbot > accessbot.dump) and restore with pg_restore; see the README"
)


@subcommand
def register_backup(commands: argparse._SubParsersAction) -> None:
    backup = add_command(
        commands,
        "backup",
        "copy the store (live requests, archive) and every audit file into one .tar.gz, "
        "consistently, also while the bot runs; the copy is loaded and its audit chain "
        "verified before the file is written",
        run_backup,
    )
    backup.add_argument(
        "--out", required=True, metavar="FILE", help="e.g. accessbot-2026-11-24.tar.gz"
    )


def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    from .backup import KEY_ENV, BackupError, take_backup

    if settings.db_url:
        raise CliError(PG_BACKUP, EXIT_USAGE)
    try:
        contents = take_backup(
            settings.db_path,
            settings.audit_path,
            Path(args.out),
            datetime.now(UTC),
            key=os.environ.get(KEY_ENV) or None,
        )
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"backed up {contents.describe()} from {settings.db_path} and {settings.audit_path} "
        f"to {args.out} ({Path(args.out).stat().st_size:,} bytes), as of "
        f"{contents.taken_at}; {contents.verdict}"
    )
    return EXIT_OK if contents.verdict.ok else EXIT_FAILED


@subcommand
def register_restore(commands: argparse._SubParsersAction) -> None:
    restore = add_command(
        commands,
        "restore",
        "put a backup made by `backup` back as the store and audit log; the bot must be "
        "stopped, and the data directory must hold no store or audit log unless --force",
        run_restore,
    )
    restore.add_argument("file", metavar="FILE", help="the backup's .tar.gz")
    restore.add_argument(
        "--force",
        action="store_true",
        help="move a store or audit log already there aside (into before-restore-<time>/) "
        "instead of refusing",
    )


def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    from .backup import KEY_ENV, BackupError, restore_backup

    if settings.db_url:
        raise CliError(PG_BACKUP, EXIT_USAGE)
    try:
        restored = restore_backup(
            Path(args.file),
            settings.db_path,
            settings.audit_path,
            args.force,
            datetime.now(UTC),
            key=os.environ.get(KEY_ENV) or None,
        )
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    contents = restored.contents
    if restored.moved_aside:
        print(f"moved the files that were there to {restored.moved_aside}")
    print(
        f"restored {contents.describe()} as of {contents.taken_at} to {settings.db_path} and "
        f"{settings.audit_path}; {contents.verdict}; {restored.signature}.\n"
        "Start the bot: it revokes first what expired since. Grants made after the backup "
        "are not in it: compare the targets with the old audit log and revoke those by hand."
    )
    return EXIT_OK if contents.verdict.ok else EXIT_FAILED


# -- store rebuild (one bot on files) -------------------------------------------------


@subcommand
def register_store(commands: argparse._SubParsersAction) -> None:
    store = commands.add_parser("store", help="repair the bot's store", parents=[_common()])
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    rebuild = add_command(
        actions,
        "rebuild",
        "write a fresh store from the audit log and whatever still reads of the old one "
        "(the old files are moved aside into before-rebuild-<time>/, never deleted); for a "
        "store the bot cannot read (it then runs degraded); the bot must be stopped",
        run_store_rebuild,
    )
    rebuild.add_argument(
        "--from",
        dest="audit",
        metavar="AUDIT",
        help="the audit log to rebuild from (default: ACCESS_AUDIT_PATH), e.g. a copy "
        "when the bot's own is lost",
    )
    rebuild.add_argument(
        "--accept-broken-chain",
        action="store_true",
        help="rebuild even though the audit log's hash chain is broken: the events after "
        "the break are listed, and none of them may end a grant or make it longer (such "
        "grants are revoked again at their target)",
    )


def run_store_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from .audit import AuditLog
    from .policy import PolicyError, load_policies
    from .rebuild import RebuildError, rebuild_store, strategy_of

    if settings.db_url:
        raise CliError(
            "with ACCESS_DB_URL set the state is in PostgreSQL, which has no store files to "
            "rebuild; restore the database with pg_restore (see the README)",
            EXIT_USAGE,
        )
    audit = Path(args.audit or settings.audit_path)
    files = chain_files(audit)
    if not any(f.exists() for f in files):
        raise CliError(f"there is no audit log at {audit}: give one with --from AUDIT")
    verdict = verify_chain(files)
    if not verdict.ok and not args.accept_broken_chain:
        raise CliError(
            f"{verdict}. Nothing was rebuilt: the events from there on cannot be trusted "
            "(a changed or forged line could end a grant its target still holds). Rebuild "
            "from an intact copy (`--from COPY`, e.g. an audit sink's; `audit verify "
            "--against COPY` compares them), or add --accept-broken-chain: the events after "
            "the break are listed, and none of them may end a grant (those grants are "
            "revoked again at their target when the bot starts)"
        )
    try:
        policies = load_policies(settings.policy_dir, settings.groups)
    except PolicyError as exc:
        print(f"the policies did not load, so recorded strategy settings are used: {exc}")
        policies = None
    now = datetime.now(UTC)
    try:
        report = rebuild_store(
            settings.db_path,
            AuditLog(audit, lambda: now).events(),
            strategy_of(policies),
            now,
            trusted=None if verdict.ok else verdict.lines,
        )
    except RebuildError as exc:
        raise CliError(str(exc)) from exc
    print(report.text())
    print(f"the audit log it was rebuilt from: {verdict}")
    print("Start the bot: it revokes first what expired since.")
    return EXIT_OK if verdict.ok else EXIT_FAILED


# -- certify: access certification (certification.py) -----------------------------------------


@subcommand
def register_certify(commands: argparse._SubParsersAction) -> None:
    certify = commands.add_parser(
        "certify", help="access certification: open one now, or export the evidence",
        parents=[_common()],
    )  # fmt: skip
    actions = certify.add_subparsers(dest="certify_command", metavar="ACTION", required=True)
    start = add_command(
        actions,
        "start",
        "open an access certification now of every resource with `certify` (or --resource): "
        "who holds it at the target without a grant, one item each (the message for the "
        "channel is printed; `!access certify list` shows the items). On the TinyDB files the bot must be stopped (with PostgreSQL it may run)",
        run_certify_start,
    )
    start.add_argument("--resource", help="only this resource (it need not have `certify`)")
    export = add_command(
        actions,
        "export",
        "write every certification since --since, each item with its decision, who decided, "
        "when, the note and the removal's outcome, read from the audit log (CSV: one row a "
        "item; JSON: one object a certification)",
        run_certify_export,
    )
    export.add_argument("--since", type=since_type, default="365d", help="365d (default) or a date")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--out", help="a file (default: standard output)")
    export.add_argument(
        "--log", help="the audit log file or a postgresql:// URL (default: the bot's own)"
    )


def run_certify_start(args: argparse.Namespace, settings: Settings) -> int:
    from .certification import PAGES, Certifications
    from .certification_store import PostgresCertifications, TinyDBCertifications
    from .domain import AccessError
    from .standing_sweep import StandingSweep

    with _standing_service(settings, writing=True) as service:
        if service.policy_error is not None:
            raise CliError(
                "the policies did not load, so who may hold what is not known:\n"
                + "\n".join(f"  {e}" for e in service.policy_error.errors)
            )
        sweep = StandingSweep(service, settings.standing_max_removals, settings.user_emails)
        db = getattr(service.store, "db", None)
        store = (
            PostgresCertifications(db) if db is not None
            else TinyDBCertifications.beside(settings.db_path)
        )  # fmt: skip
        try:
            outcome = Certifications(service, sweep, store, settings.standing_max_removals).start(
                None, args.resource, by="cli"
            )
        except AccessError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        finally:
            store.close()
    print(outcome.reply)
    for notice in outcome.notices:
        if notice.kind != PAGES:  # the Slack pages' notice carries only the id
            print(notice.text)
    return EXIT_OK


def run_certify_export(args: argparse.Namespace, settings: Settings) -> int:
    from .certification import evidence, export_text

    since = args.since if isinstance(args.since, datetime) else since_type(args.since)
    with _opened_log(args.log, settings, None, args.source) as (log, verdict, _):
        found = evidence(log.events(), since)
    text = export_text(found, args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    print(f"exported {len(found)} certifications; {verdict}", file=sys.stderr)
    return EXIT_OK if verdict.ok else EXIT_FAILED
