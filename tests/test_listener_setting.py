"""/health and /metrics, one story (issue 29 item 1): ACCESS_WEBSERVER (the environment
wins over config.py) turns errbot's webserver on and says where it binds, 127.0.0.1
unless a host is given; deploy/healthcheck.py, which the Dockerfile's HEALTHCHECK, the
compose healthcheck and the systemd unit's note run, asks /health there."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from accessbot.settings import SettingsError, listener
from tests.conftest import ROOT, policy_file, webhook_policy
from tests.helpers import eventually


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def health(port: int) -> tuple[int, dict] | None:
    """/health's status and body; None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


class Config:
    ACCESS_WEBSERVER = "3141"


def test_the_setting_reads_a_port_a_host_and_off_and_the_environment_wins():
    assert listener(None, {}) is None  # unset: errbot's own Webserver config decides
    assert listener(Config, {}) == ("127.0.0.1", 3141)
    assert listener(Config, {"ACCESS_WEBSERVER": "0.0.0.0:8080"}) == ("0.0.0.0", 8080)
    assert listener(Config, {"ACCESS_WEBSERVER": "off"}) == "off"
    with pytest.raises(SettingsError, match=r"ACCESS_WEBSERVER .*e\.g\. 127\.0\.0\.1:3141"):
        listener(None, {"ACCESS_WEBSERVER": "localhost:http"})


def test_the_bot_listens_where_the_setting_says_and_health_answers(
    bot_factory, policy_dir, webhook, monkeypatch
):
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url))
    port = free_port()
    monkeypatch.setenv("ACCESS_WEBSERVER", str(port))
    bot_factory()

    status, body = eventually(
        lambda: (seen := health(port)) and seen[0] == 200 and seen, "/health 200", timeout=30
    )
    assert body["status"] == "ok", body

    checked = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "healthcheck.py")],
        env={"ACCESS_WEBSERVER": str(port), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_healthcheck_fails_when_nothing_listens():
    checked = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "healthcheck.py")],
        env={"ACCESS_WEBSERVER": f"127.0.0.1:{free_port()}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert checked.returncode == 1 and "/health" in checked.stdout, checked.stdout


def test_the_dockerfile_compose_and_systemd_tell_one_story():
    """One HEALTHCHECK command in the Dockerfile and compose, one setting everywhere
    (`make deploy-check` runs the command against a started bot)."""
    import yaml

    from deploy.check_install import DOCKERFILE, healthcheck_argv, instructions

    argv = healthcheck_argv(DOCKERFILE)
    assert argv == ["python", "/app/deploy/healthcheck.py"]
    env = " ".join(rest for keyword, rest in instructions(DOCKERFILE) if keyword == "ENV")
    assert "ACCESS_WEBSERVER=127.0.0.1:3141" in env
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    bot = compose["services"]["bot-a"]
    assert bot["healthcheck"]["test"] == ["CMD", *argv]
    assert bot["environment"]["ACCESS_WEBSERVER"] == "${ACCESS_WEBSERVER:-127.0.0.1:3141}"
    unit = (ROOT / "deploy" / "accessbot.service").read_text()
    assert "Environment=ACCESS_WEBSERVER=127.0.0.1:3141" in unit
    readme = (ROOT / "README.md").read_text()
    assert "There is no `HEALTHCHECK` yet" not in readme and "no `/health`" not in readme
    assert "ACCESS_WEBSERVER" in readme
