"""Where the README's backup example writes (issue 29 item 4): `backup --out
backups/...` writes into the clone, and `backups/` was not ignored, so a `git add .`
would commit the requests and the audit log."""

import re
import subprocess

from tests.helpers import ROOT


def test_every_relative_backup_path_in_the_readme_is_ignored_by_git():
    readme = (ROOT / "README.md").read_text()
    paths = re.findall(r"backup --out (\S+)", readme)
    paths += re.findall(r"accessbot restore (\S+)", readme)
    relative = [p for p in paths if not p.startswith(("/", "…", "~", "$"))]
    assert relative, "the README shows no backup path"

    for path in relative:
        concrete = path.replace("$(date +%F)", "2026-11-24")
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", concrete], cwd=ROOT, check=False
        )
        assert ignored.returncode == 0, f"{path} (README) is not ignored by git"
