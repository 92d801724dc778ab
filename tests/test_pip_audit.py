"""`make audit` (in `make lint` and CI): pip-audit's JSON said in words (issue 29 item 3).
Nothing audited (pip-audit offline, or every package skipped because PyPI's JSON API
answered nothing, as on a machine that reaches only a package mirror) is said as such
and does not fail CI; a known advisory fails, naming the fixed versions."""

from __future__ import annotations

import importlib.util
import json

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("pip_audit_script", ROOT / "scripts" / "pip_audit.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def as_json(*dependencies) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_every_package_skipped_is_nothing_audited_not_nothing_found():
    skipped = [
        {
            "name": n,
            "skip_reason": f"Dependency not found on PyPI and could not be audited: {n} (1.0)",
        }
        for n in ("requests", "errbot")
    ]
    code, text = script.verdict(0, as_json(*skipped), "No known vulnerabilities found\n")
    assert code == 0
    assert "nothing was audited" in text and "all 2 packages were skipped" in text
    assert "no known advisories" not in text


def test_pip_audit_that_cannot_connect_says_so_and_passes():
    code, text = script.verdict(
        1, "", "Traceback ...\nrequests.exceptions.ConnectionError: api.osv.dev refused\n"
    )
    assert code == 0
    assert "could not reach its advisory service" in text and "ConnectionError" in text


def test_a_known_advisory_fails_naming_the_fixed_version():
    vulnerable = {
        "name": "requests",
        "version": "2.31.0",
        "vulns": [{"id": "GHSA-9wx4-h78v-vm56", "fix_versions": ["2.32.0"], "aliases": []}],
    }
    local = {"name": "accessbot", "skip_reason": "Dependency not found on PyPI"}
    code, text = script.verdict(1, as_json(vulnerable, local), "")
    assert code == 1
    assert "requests 2.31.0: GHSA-9wx4-h78v-vm56 (fixed in 2.32.0)" in text
    assert "1 packages (1 not on PyPI, skipped)" in text


def test_no_advisory_in_what_was_audited_passes():
    code, text = script.verdict(0, as_json({"name": "tinydb", "version": "4.9.0", "vulns": []}), "")
    assert (code, text) == (0, "pip-audit: no known advisories in 1 packages.")


def test_make_lint_and_ci_run_the_audit_and_the_dev_tools_install_pip_audit():
    assert "pip-audit==" in (ROOT / "requirements-dev.txt").read_text()
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/pip_audit.py" in lint or "$(MAKE) audit" in lint
    assert "scripts/pip_audit.py" in makefile.split("\naudit:", 1)[1].split("\n\n", 1)[0]
    assert "make audit" in (ROOT / ".ci" / "run").read_text()
