"""The deployment kit in deploy/: what can be checked without building an image or
starting systemd (CI also runs the Dockerfile's installs: `make deploy-check`)."""

from __future__ import annotations

import configparser
import re
import runpy
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.check_install import instructions, pip_installs, requirement_files
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


# -- Dockerfile --------------------------------------------------------------------------


def test_the_dockerfile_installs_the_runtime_requirements_and_nothing_else():
    installs = pip_installs(DEPLOY / "Dockerfile")
    assert installs, "the Dockerfile installs nothing"
    assert [requirement_files(argv) for argv in installs] == [["requirements.txt"]]
    for argv in installs:  # only from requirement files: no stray package names
        words = [w for w in argv[argv.index("install") + 1 :] if w != "-r"]
        assert words == requirement_files(argv), shlex.join(argv)


def test_the_dockerfile_runs_the_bot_as_a_non_root_user_with_its_state_in_a_volume():
    steps = instructions(DEPLOY / "Dockerfile")
    values = {}
    for keyword, rest in steps:
        values.setdefault(keyword, []).append(rest)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(@sha256:\w+)?", values["FROM"][0])
    assert values["USER"][-1] not in ("root", "0")
    assert '"/data"' in values["VOLUME"][0]
    env = " ".join(values["ENV"])
    assert "ACCESS_DATA_DIR=/data" in env and "ACCESS_LOG_FILE=" in env
    assert values["STOPSIGNAL"] == ["SIGINT"]
    assert values["CMD"] == ['["errbot", "-c", "/app/config.py"]']
    # Root is left before the bot's command: the last USER comes after the last RUN.
    order = [keyword for keyword, _ in steps]
    assert len(order) - order[::-1].index("USER") > len(order) - order[::-1].index("RUN")


def test_the_image_gets_what_the_bot_runs_and_the_build_context_lets_it_in():
    copied = [
        rest.split()[:-1]
        for keyword, rest in instructions(DEPLOY / "Dockerfile")
        if keyword == "COPY"
    ]
    sources = {source.rstrip("/") for group in copied for source in group}
    assert sources == {
        "requirements.txt", "config.py", "plugins", "scripts", "policies", "deploy/healthcheck.py"
    }  # fmt: skip
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[[i for i, line in enumerate(ignore) if not line.startswith("#")][0]] == "*"
    let_in = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert sources <= let_in
    for source in sources:
        assert (ROOT / source).exists()


# -- compose.yaml ------------------------------------------------------------------------


def variables_the_bot_reads() -> set[str]:
    """Every ACCESS_* key of Settings, what config.py reads from the environment, and
    libpq's PG* variables (the password of ACCESS_DB_URL)."""
    settings = (ROOT / "plugins" / "accessbot" / "settings.py").read_text()
    config = (ROOT / "config.py").read_text()
    names = set(re.findall(r'"(ACCESS_[A-Z_]+)"', settings))
    names |= set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z_]+)"', config))
    return names | {"PGPASSWORD", "PGPASSFILE", "PGSSLMODE"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def bots(compose) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_compose_runs_two_bots_on_one_postgresql(compose):
    services = compose["services"]
    database = [name for name, s in services.items() if s.get("image", "").startswith("postgres:")]
    assert len(database) == 1
    (db,) = database
    assert services[db]["healthcheck"]["test"][-1].startswith("pg_isready")
    assert len(bots(compose)) == 2
    data_volumes = []
    for name, bot in bots(compose).items():
        assert bot["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / bot["build"]["context"] / bot["build"]["dockerfile"]).is_file()
        url = urlsplit(bot["environment"]["ACCESS_DB_URL"])
        assert url.scheme == "postgresql" and url.hostname == db and not url.password, name
        assert bot["depends_on"][db]["condition"] == "service_healthy"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in bot["volumes"]}
        data_volumes.append(mounts["/data"])
        assert mounts["/data"] in compose["volumes"]
        assert bot["logging"]["options"]["max-size"]  # docker rotates the log
    assert len(set(data_volumes)) == 2  # each bot its own errbot data


def test_compose_sets_only_variables_the_bot_reads_and_every_secret_it_needs(compose):
    known = variables_the_bot_reads()
    assert {"ACCESS_DB_URL", "ACCESS_BOT_ADMINS", "SLACK_BOT_TOKEN", "ACCESS_DATA_DIR"} <= known
    for name, bot in bots(compose).items():
        env = bot["environment"]
        assert set(env) <= known, f"{name} sets what the bot never reads: {set(env) - known}"
        for secret in ("PGPASSWORD", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "ACCESS_BOT_ADMINS"):
            # Required from deploy/.env, never a value written into the file.
            assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), secret
    example = (DEPLOY / "env.example").read_text()
    for secret in ("PGPASSWORD", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "ACCESS_BOT_ADMINS"):
        assert re.search(rf"^{secret}=", example, re.M)


# -- systemd and logrotate ---------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / "accessbot.service")
    return parser


def test_the_systemd_unit_runs_the_bot_unprivileged_and_writes_only_its_data():
    service = unit()["Service"]
    assert service["User"] not in ("", "root", "0")
    assert Path(service["WorkingDirectory"]).is_absolute()
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).is_absolute() and command[0].endswith("/.venv/bin/errbot")
    assert command[1:] == ["-c", f"{service['WorkingDirectory']}/config.py"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGINT"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    data = service["Environment"].removeprefix("ACCESS_DATA_DIR=")
    assert service["ReadWritePaths"] == data == f"/var/lib/{service['StateDirectory']}"
    assert service["EnvironmentFile"].startswith("/etc/")  # secrets not in the unit


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: put the unit's code directory here.
    code = unit()["Service"]["WorkingDirectory"]
    errbot = tmp_path / "code" / ".venv" / "bin" / "errbot"
    errbot.parent.mkdir(parents=True)
    errbot.write_text("#!/bin/sh\n")
    errbot.chmod(0o755)
    text = (DEPLOY / "accessbot.service").read_text().replace(code, str(tmp_path / "code"))
    (tmp_path / "accessbot.service").write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "accessbot.service")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_logrotate_rotates_the_log_file_the_unit_writes_in_place(tmp_path, monkeypatch):
    data = unit()["Service"]["Environment"].removeprefix("ACCESS_DATA_DIR=")
    rules = (DEPLOY / "accessbot.logrotate").read_text()
    (path,) = re.findall(r"^(/\S+) \{", rules, re.M)
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ACCESS_LOG_FILE", raising=False)
    config = runpy.run_path(str(ROOT / "config.py"))
    assert Path(config["BOT_LOG_FILE"]) == tmp_path / Path(path).name
    assert path == f"{data}/errbot.log"
    # errbot keeps its log open: renaming it would leave errbot writing to the old file.
    assert re.search(r"^\s+copytruncate$", rules, re.M)
    assert re.search(rf"^\s+su {unit()['Service']['User']} ", rules, re.M)


def test_the_log_file_can_be_left_out_for_the_journal_or_docker_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCESS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ACCESS_LOG_FILE", "")
    assert runpy.run_path(str(ROOT / "config.py"))["BOT_LOG_FILE"] is None
