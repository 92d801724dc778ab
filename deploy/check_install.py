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
    print("ok: the Dockerfile's installs run the bot and the policy check")


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
