#!/usr/bin/env python3
"""`make audit` (also run by `make lint` and CI): pip-audit over the project's virtualenv,
said in words.

- Known advisories in an installed package: each listed with its fixed versions, exit 1.
- None: "no known advisories in N packages", exit 0.
- pip-audit could not ask its advisory service (PyPI's JSON API: offline, a proxy that
  answers no release data, a timeout): it says so and exits 0, since nothing audited is
  not the same as nothing found, and an offline CI must stay green. Run it where pypi.org
  answers (a developer's machine) to get a verdict.

Run it with the virtualenv's Python: `.venv/bin/python scripts/pip_audit.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

TIMEOUT = 600  # seconds for the whole audit; pip-audit's own per-request timeout is 10 s


def verdict(returncode: int, stdout: str, stderr: str) -> tuple[int, str]:
    """(exit code, what to print) for one pip-audit run with `--format json`."""
    try:
        report = json.loads(stdout)
        dependencies = report["dependencies"]
    except (ValueError, KeyError, TypeError):
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
        return 0, (
            f"pip-audit could not reach its advisory service, nothing was audited "
            f"(exit {returncode}: {last.strip() or 'no output'}). Run `make audit` where "
            "pypi.org answers."
        )
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        reason = dependencies[0]["skip_reason"] if dependencies else "no packages"
        return 0, (
            f"pip-audit reached no advisory data: all {len(dependencies)} packages were "
            f"skipped ({reason}), so nothing was audited. Run `make audit` where pypi.org "
            "answers."
        )
    found = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or []) or 'no release yet'})"
        for d in audited
        for v in d.get("vulns") or []
    ]
    skipped = len(dependencies) - len(audited)
    counted = f"{len(audited)} packages" + (f" ({skipped} not on PyPI, skipped)" if skipped else "")
    if found:
        return 1, (
            f"pip-audit: {len(found)} known advisories in {counted}:\n"
            + "\n".join(f"- {line}" for line in found)
            + "\nMove the pin (requirements*.txt), or say in SECURITY.md why it cannot move."
        )
    return 0, f"pip-audit: no known advisories in {counted}."


def main() -> int:
    command = [sys.executable, "-m", "pip_audit", "--local", "--format", "json"]
    command += ["--progress-spinner", "off", "--timeout", "10"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError as exc:
        print(f"pip-audit did not run: {exc}")
        return 0
    except subprocess.TimeoutExpired:
        print(f"pip-audit did not finish in {TIMEOUT}s: its advisory service is too slow; "
              "nothing was audited.")  # fmt: skip
        return 0
    if "No module named pip_audit" in done.stderr:
        print("pip-audit is not installed here: `pip install -r requirements-dev.txt`.")
        return 1
    code, text = verdict(done.returncode, done.stdout, done.stderr)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
