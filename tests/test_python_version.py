"""A Python older than 3.11 is refused first, saying which one is needed: by the check
itself, by `python -m accessbot`, by the plugin module errbot loads, and by `make`.
An interpreter that reports 3.10.12 (sys.version_info replaced before anything of ours is
imported) stands in for a real 3.10."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accessbot.pyversion import require_python, version_problem
from tests.helpers import PLUGINS, ROOT

MESSAGE = "accessbot needs Python 3.11 or newer; this is 3.10.12"
AS_310 = "import sys; sys.version_info = (3, 10, 12, 'final', 0); "


def test_the_check_names_the_python_needed_and_the_one_running():
    assert version_problem((3, 10, 12, "final", 0)) == MESSAGE
    assert version_problem((2, 7, 18)) == "accessbot needs Python 3.11 or newer; this is 2.7.18"
    assert version_problem((3, 11, 0)) is None
    assert version_problem((3, 13, 1, "final", 0)) is None
    assert version_problem() is None  # the suite runs on a Python that is new enough
    with pytest.raises(ImportError, match=MESSAGE):
        require_python((3, 10, 12))
    require_python((3, 11, 7))


def as_310(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", AS_310 + code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{PLUGINS}{os.pathsep}{ROOT}"},
        timeout=60,
    )


def test_python_m_accessbot_on_3_10_prints_the_message_not_a_traceback():
    # What `python -m accessbot check` does: argv[0] is "-m" while the package imports.
    done = as_310(
        "import runpy; sys.argv = ['-m', 'check']; runpy._run_module_as_main('accessbot')"
    )
    assert done.returncode == 1
    assert done.stderr == MESSAGE + "\n"


def test_the_plugin_module_on_3_10_fails_to_load_with_the_message():
    done = as_310(f"sys.path.insert(0, {str(PLUGINS / 'access')!r}); import access")
    assert done.returncode == 1
    assert f"ImportError: {MESSAGE}" in done.stderr
    assert "cannot import name" not in done.stderr


def test_make_with_a_python_3_10_says_which_python_is_needed_and_makes_no_venv(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    for name in ["Makefile", "pyproject.toml", *(p.name for p in ROOT.glob("requirements*.txt"))]:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "plugins" / "accessbot").mkdir(parents=True)
    shutil.copy(PLUGINS / "accessbot" / "pyversion.py", tmp_path / "plugins" / "accessbot")
    python310 = tmp_path / "python3.10"
    python310.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "{AS_310}import runpy; sys.argv = sys.argv[1:]; '
        'runpy.run_path(sys.argv[0], run_name=\'__main__\')" "$@"\n'
    )
    python310.chmod(0o755)
    done = subprocess.run(
        ["make", "run", f"PYTHON3={python310}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert MESSAGE in done.stderr
    assert "make PYTHON3=python3.11 run" in done.stderr
    assert not Path(tmp_path / ".venv").exists()
