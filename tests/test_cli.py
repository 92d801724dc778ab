"""`python -m accessbot audit verify|export` and `report`, run as a real subprocess."""

import csv
import io
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accessbot.audit import AuditLog
from tests.builders import build_service, month_of_activity
from tests.conftest import PLUGINS, ROOT, FakeClock, accessbot, policy_file, webhook_policy
from tests.fakes import WebhookTarget


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """A month of traffic ending yesterday, in <dir>/data/audit.jsonl (one file)."""
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    root = tmp_path_factory.mktemp("month")
    target = WebhookTarget(secret="s3cret")
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=31))
    ids = month_of_activity(build_service(root, clock, target.url), clock, target)
    target.close()
    return root, ids


def deployed(*args, cwd, env=None):
    """The CLI as an operator runs it for a deployment whose data files are in
    <cwd>/data (the environment wins over the project's config.py)."""
    files = {
        "ACCESS_AUDIT_PATH": str(cwd / "data" / "audit.jsonl"),
        "ACCESS_DB_PATH": str(cwd / "data" / "access.json"),
    }
    return accessbot(*args, cwd=cwd, env={**files, **(env or {})})


@pytest.fixture
def log_copy(month, tmp_path):
    root, _ = month
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "audit.jsonl").write_bytes((root / "data" / "audit.jsonl").read_bytes())
    return tmp_path / "data" / "audit.jsonl"


def test_verify_passes_on_an_intact_log_from_the_configured_path(log_copy, tmp_path):
    code, out, _ = deployed("audit", "verify", cwd=tmp_path)
    assert code == 0
    assert out.startswith("audit log intact: ") and "hash chain verified" in out


def test_verify_names_the_first_changed_line_and_exits_1(log_copy, tmp_path):
    lines = log_copy.read_text().splitlines(keepends=True)
    lines[9] = lines[9].replace('"actor":"', '"actor":"x', 1)
    log_copy.write_text("".join(lines))
    code, out, _ = accessbot("audit", "verify", str(log_copy), cwd=tmp_path)
    assert code == 1
    assert f"audit log BROKEN at {log_copy} line 10: hash chain broken" in out


def test_verify_names_a_deleted_line_as_missing(log_copy, tmp_path):
    lines = log_copy.read_text().splitlines(keepends=True)
    del lines[20]
    log_copy.write_text("".join(lines))
    code, out, _ = deployed("audit", "verify", cwd=tmp_path)
    assert code == 1 and "line 21" in out and "event 22 follows event 20" in out


def test_verify_reads_the_path_from_the_environment_or_a_config_file(log_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"ACCESS_AUDIT_PATH": str(log_copy)}
    assert accessbot("audit", "verify", cwd=elsewhere, env=env)[0] == 0
    config = tmp_path / "config.py"
    config.write_text(f"ACCESS_AUDIT_PATH = {str(log_copy)!r}\n")
    assert accessbot("--config", str(config), "audit", "verify", cwd=elsewhere)[0] == 0
    assert accessbot("audit", "verify", "--config", str(config), cwd=elsewhere)[0] == 0


def test_verify_checks_a_whole_rotated_set_given_its_directory(tmp_path):
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    target = WebhookTarget(secret="s3cret")
    clock = FakeClock()
    month_of_activity(build_service(tmp_path, clock, target.url, 4096), clock, target)
    target.close()
    data = tmp_path / "data"
    rotated = sorted(data.glob("audit.jsonl.*"))
    assert len(rotated) >= 5

    code, out, _ = accessbot("audit", "verify", str(data), cwd=tmp_path)
    assert code == 0 and f"in {len(rotated) + 1} files" in out
    code, out, _ = accessbot("audit", "verify", str(data / "audit.jsonl.3"), cwd=tmp_path)
    assert code == 0  # one rotated file, checked on its own

    (data / "audit.jsonl.3").unlink()
    code, out, _ = deployed("audit", "verify", cwd=tmp_path)
    assert code == 1 and "audit.jsonl.4 line 1" in out and "does not continue audit.jsonl.2" in out


def test_verify_of_a_missing_log_fails_and_bad_usage_exits_2(tmp_path):
    code, _, err = accessbot("audit", "verify", "nowhere.jsonl", cwd=tmp_path)
    assert code == 1 and "there is no audit log at nowhere.jsonl" in err
    assert accessbot("audit", cwd=tmp_path)[0] == 2
    assert accessbot("audit", "verify", "--bogus", cwd=tmp_path)[0] == 2
    code, _, err = accessbot("audit", "export", "--since", "last week", cwd=tmp_path)
    assert code == 2 and "neither a duration like 30d" in err
    code, _, err = accessbot("--config", "missing.py", "audit", "verify", cwd=tmp_path)
    assert code == 2 and "no such file" in err


def test_export_writes_csv_an_auditor_can_open_safely(log_copy, tmp_path, month):
    _, ids = month
    code, out, err = deployed("audit", "export", "--since", "40d", "--format", "csv", cwd=tmp_path)
    assert code == 0 and "hash chain verified" in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(log_copy.read_text().splitlines())
    assert list(rows[0])[:4] == ["seq", "ts", "event", "request_id"]
    failing = next(
        r for r in rows if r["request_id"] == ids["failing"] and r["event"] == "requested"
    )
    assert failing["reason"] == """'=HYPERLINK("http://x") <!channel> *bold*"""
    assert {r["event"] for r in rows} >= {"requested", "approved", "granted", "expired", "denied"}


def test_export_filters_by_resource_user_and_time(log_copy, tmp_path):
    code, out, _ = deployed(
        "audit",
        "export",
        "--format",
        "jsonl",
        "--resource",
        "prod-shell",
        "--user",
        "@oncall",
        cwd=tmp_path,
    )
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and records
    assert {r["resource"] for r in records} == {"prod-shell"}
    assert all("oncall" in (r.get("user"), r.get("actor")) for r in records)
    assert all(r["prev"] for r in records)

    _, recent, _ = deployed("audit", "export", "--since", "7d", "--format", "jsonl", cwd=tmp_path)
    since = datetime.now(UTC) - timedelta(days=7)
    recent = [json.loads(line) for line in recent.splitlines()]
    assert 0 < len(recent) < len(log_copy.read_text().splitlines())
    assert all(datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) >= since for r in recent)


def test_export_of_a_tampered_log_still_writes_but_exits_1(log_copy, tmp_path):
    lines = log_copy.read_text().splitlines(keepends=True)
    log_copy.write_text("".join(lines[:5] + lines[6:]))
    out_file = tmp_path / "events.csv"
    code, _, err = deployed("audit", "export", "--out", str(out_file), cwd=tmp_path)
    assert code == 1 and "BROKEN at" in err
    assert len(out_file.read_text().splitlines()) == len(lines)  # header + the rest


def test_report_is_one_html_page_with_the_chart_counts_and_verify_result(log_copy, tmp_path, month):
    _, ids = month
    code, out, _ = deployed("report", "--since", "35d", "--out", "report.html", cwd=tmp_path)
    assert code == 0 and out.startswith("wrote report.html")
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<img alt='Timeline of grants per resource' src='data:image/png;base64,iVBOR" in page
    assert "hash chain verified" in page and "banner ok" in page
    for label in ("Requests", "Approved by a person", "Denied", "Break-glass uses"):
        assert f"{label}</div>" in page
    assert "<b>2</b>Break-glass uses" in page
    assert "<b>1</b>Unreviewed break-glass grants" in page  # glass9 was reviewed, glass20 not
    assert f"!access ack {ids['glass20']}" in page and "reviewed by @alice" in page
    assert "<!channel>" not in page and "&lt;" in page  # reasons are shown, inert
    assert "src='http" not in page and "<script src" not in page  # self-contained


def test_report_of_a_broken_log_says_so_in_red_and_exits_1(log_copy, tmp_path):
    lines = log_copy.read_text().splitlines(keepends=True)
    log_copy.write_text("".join(lines[:3] + lines[4:]))
    code, _, _ = deployed("report", "--out", "r.html", cwd=tmp_path)
    page = (tmp_path / "r.html").read_text()
    assert code == 1 and "banner bad" in page and "BROKEN at" in page


# -- where the CLI finds its settings: as the bot does, from any folder ------------------

PROJECT_CONFIG = """
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BOT_DATA_DIR = str(ROOT / "data")  # the audit log defaults to <BOT_DATA_DIR>/audit.jsonl
ACCESS_POLICY_DIR = str(ROOT / "policies")
"""


def project(tmp_path, config: str | None = PROJECT_CONFIG) -> Path:
    """A checkout of its own: plugins/accessbot, policies/ and (unless None) config.py."""
    root = tmp_path / "project"
    shutil.copytree(
        PLUGINS / "accessbot",
        root / "plugins" / "accessbot",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    policy_file(root / "policies", "db.py", webhook_policy("http://127.0.0.1:9/x"))
    if config is not None:
        (root / "config.py").write_text(config)
    return root


def run_from(folder: Path, root: Path, *args, env=None):
    """The CLI of the checkout at `root`, run in `folder`."""
    folder.mkdir(exist_ok=True)
    return accessbot(*args, cwd=folder, env={"PYTHONPATH": str(root / "plugins"), **(env or {})})


def test_the_cli_reads_the_projects_config_from_any_folder(tmp_path, log_copy):
    root = project(tmp_path)
    (root / "data").mkdir()
    shutil.copy(log_copy, root / "data" / "audit.jsonl")
    elsewhere = tmp_path / "elsewhere"

    code, out, _ = run_from(elsewhere, root, "check")
    assert (code, out) == (0, f"{root / 'policies'}: ok, 1 file(s), 1 resource(s): prod-db\n")
    code, out, _ = run_from(elsewhere, root, "audit", "verify")
    assert code == 0 and out.startswith("audit log intact: ")


def test_environment_variables_win_over_the_projects_config(tmp_path):
    root = project(tmp_path)
    other = tmp_path / "other-policies"
    policy_file(other, "k8s.py", webhook_policy("http://127.0.0.1:9/x").replace("prod-db", "k8s"))
    env = {"ACCESS_POLICY_DIR": str(other)}
    code, out, _ = run_from(tmp_path / "elsewhere", root, "check", env=env)
    assert (code, out) == (0, f"{other}: ok, 1 file(s), 1 resource(s): k8s\n")


def test_when_nothing_is_found_the_cli_says_where_it_looked(tmp_path):
    root = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    code, _, err = run_from(elsewhere, root, "audit", "verify")
    assert code == 1
    assert err == (
        f"error: there is no audit log at {root / 'data' / 'audit.jsonl'} (the default: "
        f"ACCESS_AUDIT_PATH is neither in the environment nor in {root / 'config.py'})\n"
    )

    (root / "config.py").unlink()
    code, _, err = run_from(elsewhere, root, "check")
    assert code == 1
    assert err == (
        "error: policies: the policy directory does not exist (the default: ACCESS_POLICY_DIR "
        f"is not in the environment and there is no config file at {root / 'config.py'} (give "
        "one with --config)); name it: python -m accessbot check POLICY_DIR\n"
    )


def test_the_shipped_config_is_found_from_another_folder(tmp_path):
    code, out, _ = accessbot("check", cwd=tmp_path)
    assert (code, out.split(":")[0]) == (0, str(ROOT / "policies"))


def test_report_without_matplotlib_has_every_table_and_says_how_to_add_the_chart(
    log_copy, tmp_path
):
    # A bot installed from requirements.txt alone has no matplotlib: shadow it so that
    # importing it fails, as it would there.
    blocker = tmp_path / "no-matplotlib" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    path = os.pathsep.join([str(blocker.parent), str(PLUGINS)])
    code, out, err = deployed(
        "report", "--since", "35d", "--out", "r.html", cwd=tmp_path, env={"PYTHONPATH": path}
    )
    assert code == 0 and out.startswith("wrote r.html")
    assert "pip install -r requirements-report.txt" in err
    page = (tmp_path / "r.html").read_text()
    assert "data:image/png" not in page
    assert "No chart: the timeline chart needs matplotlib" in page
    assert "<b>2</b>Break-glass uses" in page and "hash chain verified" in page


NASTY_NAMES = ["$\\frac{$", "a$b^{", "$x$_{y}", "\\", "$$", "50$ \\n {}", "<b>&amp;</b>"]


def test_report_shows_any_handle_resource_or_reason_as_plain_text(tmp_path):
    """Matplotlib reads `$...$` as math; `$\\frac{$` made the report exit 1."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))
    log = AuditLog(tmp_path / "data" / "audit.jsonl", clock)
    for number, name in enumerate(NASTY_NAMES):
        rid = f"nasty{number}"
        fields = {"request_id": rid, "user": name, "resource": name}
        log.append("requested", actor=name, reason=f"{name} <!channel> & $\\frac{{$", **fields)
        log.append("approved", actor=name, **fields)
        log.append("granted", actor="policy", **fields)
        clock.advance(hours=1)
        if number % 2:
            log.append("expired", actor="scheduler", **fields)

    code, out, err = deployed("report", "--since", "7d", "--out", "report.html", cwd=tmp_path)

    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64,iVBOR" in page  # the chart was drawn
    assert "@$\\frac{$" in page and "&lt;b&gt;&amp;amp;&lt;/b&gt;" in page
