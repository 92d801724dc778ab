"""Command strategy: run a program (no shell) with the JSON payload on stdin.

Exit 0 is success; when stdout is a JSON object with `account`, that account is
recorded at grant and handed back on revoke and extend, as with a webhook's answer.
To `{"action": "list", "resource": ...}` it answers `{"members": [...]}` on stdout, as a
webhook does; exit status 64 (EX_USAGE: "I do not know that action") means it cannot list.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .base import (
    PROJECT_ROOT,
    CannotList,
    Done,
    Member,
    SettingsError,
    Strategy,
    StrategyError,
    done_from_answer,
    encode_payload,
    members_from_answer,
)

CANNOT_LIST = 64  # the exit status of a program that does not know the `list` action


class CommandStrategy(Strategy):
    kind = "command"
    allowed_keys = frozenset({"type", "argv", "timeout"})

    def __init__(self, argv: list[str], timeout: float, root: Path = PROJECT_ROOT):
        self.argv = argv
        self.timeout = timeout
        self.root = root

    @classmethod
    def from_settings(cls, settings: dict) -> CommandStrategy:
        cls.check_keys(settings)
        argv = settings.get("argv")
        if (
            not isinstance(argv, (list, tuple))
            or not argv
            or not all(isinstance(a, str) and a for a in argv)
        ):
            raise SettingsError(
                "strategy.argv", 'must be a list of strings like ["scripts/grant.sh"]'
            )
        return cls(list(argv), cls.timeout_setting(settings, "30s"))

    def _resolved_argv(self) -> list[str]:
        program = self.argv[0]
        if "/" in program and not Path(program).is_absolute():
            program = str(self.root / program)
        return [program, *self.argv[1:]]

    def call(self, action: str, payload: dict) -> Done:
        done = self._run(payload)
        # A JSON object on stdout may name the account (as a webhook's answer does).
        return done_from_answer(f"{self.argv[0]} exit 0", done.stdout.strip(), self.argv[0])

    def members(self, resource: str) -> list[Member]:
        done = self._run({"action": "list", "resource": resource}, cannot=CANNOT_LIST)
        return members_from_answer(done.stdout.strip(), self.argv[0])

    def _run(self, payload: dict, cannot: int | None = None) -> subprocess.CompletedProcess:
        """Run the program with `payload` on stdin; any exit but 0 is a StrategyError
        (CannotList for the exit status `cannot`)."""
        try:
            done = subprocess.run(
                self._resolved_argv(),
                input=encode_payload(payload),
                capture_output=True,
                timeout=self.timeout,
                cwd=self.root,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StrategyError(f"{self.argv[0]} did not finish within {self.timeout:g}s") from exc
        except OSError as exc:
            raise StrategyError(f"could not run {self.argv[0]}: {exc.strerror or exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip()[-300:]
            error = CannotList if done.returncode == cannot else StrategyError
            raise error(
                f"{self.argv[0]} exited with {done.returncode}" + (f": {stderr}" if stderr else "")
            )
        return done

    def describe(self) -> str:
        return "command"
