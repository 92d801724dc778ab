"""What the Dockerfile installs, tried where no image can be built (`make deploy-check`,
run by CI): the Dockerfile's own `pip install` lines, run as written in a clean
virtualenv, then the bot started from that virtualenv on the Text backend with a
request typed in, and the policy check.

    python3 deploy/check_install.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    found, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        current += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            current = ""
    return found


def pip_installs(dockerfile: Path) -> list[list[str]]:
    """Each `pip install ...` command the Dockerfile's RUN lines run, as argv."""
    commands = []
    for keyword, rest in instructions(dockerfile):
        if keyword != "RUN":
            continue
        for part in re.split(r"&&|;", rest):
            argv = shlex.split(part)
            if argv[:2] == ["pip", "install"] or argv[1:4] == ["-m", "pip", "install"]:
                commands.append(argv)
    return commands


def requirement_files(argv: list[str]) -> list[str]:
    files = []
    for number, word in enumerate(argv):
        if word in ("-r", "--requirement") and number + 1 < len(argv):
            files.append(argv[number + 1])
        elif word.startswith("--requirement="):
            files.append(word.split("=", 1)[1])
    return files


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", shlex.join(str(a) for a in argv), flush=True)
    return subprocess.run(argv, check=True, text=True, **kwargs)


def check(venv: Path) -> None:
    started = time.monotonic()
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    for argv in pip_installs(DOCKERFILE):
        run([str(python), "-m", *argv[argv.index("pip") :]], cwd=ROOT)
    took = time.monotonic() - started
    size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout
    print(f"installed in {took:.0f} s; virtualenv {size.split()[0]}")

    data = venv.parent / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ACCESS_", "SLACK_"))},
        "PYTHONPATH": str(ROOT / "plugins"),
        "ACCESS_DATA_DIR": str(data),
        "ACCESS_LOG_FILE": "",
    }
    run([str(python), "-m", "accessbot", "check", "policies"], cwd=ROOT, env=env)
    typed = "!access resources\n!access request prod-db 30m checking the install\n"
    bot = run(
        [str(venv / "bin" / "errbot"), "-c", str(ROOT / "config.py")],
        cwd=ROOT,
        env=env,
        input=typed,
        capture_output=True,
        timeout=120,
    )
    if not re.search(r"Request \w+ created: prod-db for 30m", bot.stdout):
        sys.exit(f"the bot did not take the request:\n{bot.stdout}\n{bot.stderr}")
    if (data / "errbot.log").exists():
        sys.exit("ACCESS_LOG_FILE= (empty) still wrote errbot.log")
    check_health(venv, env)
    print("ok: the Dockerfile's installs run the bot, its HEALTHCHECK and the policy check")


def healthcheck_argv(dockerfile: Path) -> list[str]:
    """The Dockerfile's HEALTHCHECK command (exec form), as it runs outside the image:
    `python` is the virtualenv's, `/app/` the project root."""
    import json

    found = [rest for keyword, rest in instructions(dockerfile) if keyword == "HEALTHCHECK"]
    if len(found) != 1 or "CMD [" not in found[0]:
        sys.exit(f"the Dockerfile needs one HEALTHCHECK ... CMD [...], not {found}")
    return json.loads(found[0].split("CMD", 1)[1])


def check_health(venv: Path, env: dict) -> None:
    """The bot started with ACCESS_WEBSERVER on a free port, and the Dockerfile's
    HEALTHCHECK run against it until it answers 200; the compose healthcheck and the
    systemd unit name the same check and setting."""
    import socket

    argv = healthcheck_argv(DOCKERFILE)
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    if f"test: {json_list(argv)}" not in compose or "ACCESS_WEBSERVER:" not in compose:
        sys.exit("compose.yaml's healthcheck must run the Dockerfile's HEALTHCHECK command")
    unit = (ROOT / "deploy" / "accessbot.service").read_text()
    if "Environment=ACCESS_WEBSERVER=" not in unit or "deploy/healthcheck.py" not in unit:
        sys.exit("the systemd unit must set ACCESS_WEBSERVER and name deploy/healthcheck.py")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**env, "ACCESS_WEBSERVER": f"127.0.0.1:{port}"}
    local = [str(venv / "bin" / "python") if a == "python" else a for a in argv]
    local = [str(ROOT / a.removeprefix("/app/")) if a.startswith("/app/") else a for a in local]
    errbot = [str(venv / "bin" / "errbot"), "-c", str(ROOT / "config.py")]
    print("+", shlex.join(errbot), f"(ACCESS_WEBSERVER={env['ACCESS_WEBSERVER']})", flush=True)
    bot = subprocess.Popen(
        errbot, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, said = time.monotonic() + 120, ""
        while time.monotonic() < deadline:
            done = subprocess.run(local, env=env, capture_output=True, text=True, timeout=30)
            said = done.stdout.strip()
            if done.returncode == 0:
                print(f"HEALTHCHECK: {said}")
                return
            time.sleep(1)
        sys.exit(f"the HEALTHCHECK never passed: {said}")
    finally:
        bot.stdin.close()
        try:
            bot.wait(timeout=60)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait()


def json_list(argv: list[str]) -> str:
    """`["CMD", "python", ...]`, as compose.yaml writes the exec form."""
    return "[" + ", ".join(f'"{a}"' for a in ["CMD", *argv]) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the virtualenv here and keep it")
    args = parser.parse_args()
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        check(args.keep / "venv")
        return
    with tempfile.TemporaryDirectory(prefix="accessbot-deploy-check-") as scratch:
        check(Path(scratch) / "venv")


if __name__ == "__main__":
    main()
