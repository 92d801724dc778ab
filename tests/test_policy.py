"""Policy files: loading, validation that names file, line and key, hooks."""

from datetime import timedelta

import pytest

from accessbot.domain import RequestView
from accessbot.policy import HookFailed, PolicyContext, PolicyError, load_policies, run_hook
from tests.conftest import START, policy_file

GOOD = """
RESOURCES = {
    "prod-db": {
        "description": "Production DB",
        "max_duration": "4h",
        "default_duration": "1h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "S"},
    },
}
"""


def load_error(directory) -> str:
    with pytest.raises(PolicyError) as info:
        load_policies(directory)
    return str(info.value)


def test_a_good_policy_file_loads_with_its_settings(policy_dir):
    policy_file(policy_dir, "db.py", GOOD)
    policies = load_policies(policy_dir)
    resource = policies.get("prod-db")
    assert resource.max_duration == timedelta(hours=4)
    assert resource.approvers == ("@alice", "@bob")
    assert resource.approvals_required == 1 and resource.allow_self_approval is False


def test_files_starting_with_underscore_are_not_policies(policy_dir):
    policy_file(policy_dir, "db.py", GOOD)
    policy_file(policy_dir, "_helpers.py", "this is not python")
    assert load_policies(policy_dir).names() == ["prod-db"]


def test_the_shipped_example_policies_load():
    from tests.conftest import ROOT

    policies = load_policies(ROOT / "policies")
    assert {"prod-db", "staging-db", "prod-shell"} <= set(policies.names())
    assert "on_request" in policies.get("prod-shell").hooks


def test_a_syntax_error_names_the_file_and_line(policy_dir):
    policy_file(
        policy_dir, "broken.py", "RESOURCES = {\n  'x': {\n    'max_duration': '4h',,\n  },\n}\n"
    )
    assert "broken.py:3: syntax error" in load_error(policy_dir)


def test_a_bad_duration_names_file_line_and_key(policy_dir):
    policy_file(
        policy_dir, "db.py", GOOD.replace('"max_duration": "4h"', '"max_duration": "forever"')
    )
    error = load_error(policy_dir)
    assert 'db.py:4: prod-db.max_duration: "forever" is not a duration (try "4h"' in error


def test_an_unknown_key_is_refused_with_the_allowed_ones(policy_dir):
    policy_file(policy_dir, "db.py", GOOD.replace('"description"', '"descripton"'))
    error = load_error(policy_dir)
    assert "db.py:3: prod-db.descripton: unknown key" in error and "description" in error


def test_a_missing_strategy_is_a_load_error(policy_dir):
    text = GOOD.replace(
        '"strategy": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "S"},', ""
    )
    policy_file(policy_dir, "db.py", text)
    assert "prod-db.strategy: is required" in load_error(policy_dir)


def test_an_unknown_strategy_type_names_the_known_ones(policy_dir):
    policy_file(policy_dir, "db.py", GOOD.replace('"type": "webhook"', '"type": "carrier-pigeon"'))
    error = load_error(policy_dir)
    assert "db.py:8: prod-db.strategy.type" in error and "command, github_repo" in error


def test_a_default_longer_than_the_max_is_refused(policy_dir):
    policy_file(
        policy_dir, "db.py", GOOD.replace('"default_duration": "1h"', '"default_duration": "5h"')
    )
    assert "prod-db.default_duration: 5h is longer than max_duration 4h" in load_error(policy_dir)


def test_a_resource_defined_in_two_files_is_refused(policy_dir):
    policy_file(policy_dir, "a.py", GOOD)
    policy_file(policy_dir, "b.py", GOOD)
    assert "b.py:2: resource 'prod-db' is already defined in a.py" in load_error(policy_dir)


def test_an_exception_at_import_names_the_file_and_line(policy_dir):
    policy_file(policy_dir, "boom.py", "X = 1\nY = 1 / 0\nRESOURCES = {}\n")
    assert "boom.py:2: error while loading: ZeroDivisionError" in load_error(policy_dir)


def test_a_webhook_without_a_url_is_refused(policy_dir):
    policy_file(policy_dir, "db.py", GOOD.replace('"url": "http://127.0.0.1:9/x", ', ""))
    assert "prod-db.strategy.url: is required" in load_error(policy_dir)


def test_every_problem_is_listed_not_only_the_first(policy_dir):
    policy_file(policy_dir, "a.py", GOOD.replace('"4h"', '"soon"'))
    policy_file(policy_dir, "b.py", "RESOURCES = [\n")
    error = load_error(policy_dir)
    assert "a.py:4" in error and "b.py:1: syntax error" in error


def view():
    return RequestView("abc234", "carol", None, "prod-db", timedelta(hours=1), "x", START)


def test_a_hook_that_raises_fails_closed_and_names_its_line(policy_dir):
    policy_file(
        policy_dir,
        "db.py",
        GOOD + "\n\ndef on_request(request, ctx):\n    return ctx.approve(request.nope)\n",
    )
    resource = load_policies(policy_dir).get("prod-db")
    ctx = PolicyContext(None, START, None)
    with pytest.raises(HookFailed, match=r"db.py:14: on_request raised AttributeError"):
        run_hook(resource, "on_request", view(), ctx, timeout=5)


def test_a_hook_that_hangs_is_cut_off(policy_dir):
    policy_file(
        policy_dir,
        "db.py",
        GOOD + "\nimport time\ndef on_request(request, ctx):\n    time.sleep(5)\n",
    )
    resource = load_policies(policy_dir).get("prod-db")
    with pytest.raises(HookFailed, match="took longer than 0.1s"):
        run_hook(resource, "on_request", view(), PolicyContext(None, START, None), timeout=0.1)


# CPython 3.11's ast.parse keeps its recursion count per interpreter, so two threads
# parsing at once (a reload beside the watcher, a bot starting beside another) can get a
# spurious SystemError; seen in this suite. Python's own parser is what fails here, so
# the test makes it fail as it does.
DEPTH_MISMATCH = "AST constructor recursion depth mismatch (before=33, after=42)"


def flaky_parser(monkeypatch, source: str, failures: int) -> None:
    """Python's parser fails `failures` times on `source` (and only on it: pytest parses
    too) as the race makes it fail."""
    import ast

    real = ast.parse
    left = [failures]

    def parse(text, *args, **kwargs):
        if text == source and left[0]:
            left[0] -= 1
            raise SystemError(DEPTH_MISMATCH)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse)


def test_a_spurious_parser_error_is_retried_and_lines_are_still_named(policy_dir, monkeypatch):
    source = GOOD.replace('"4h"', '"forever"').lstrip()
    policy_file(policy_dir, "db.py", source)
    flaky_parser(monkeypatch, source, failures=1)
    assert 'db.py:4: prod-db.max_duration: "forever" is not a duration' in load_error(policy_dir)


def test_a_parser_that_keeps_failing_never_stops_the_policies_loading(policy_dir, monkeypatch):
    policy_file(policy_dir, "db.py", GOOD.lstrip())
    flaky_parser(monkeypatch, GOOD.lstrip(), failures=100)
    assert "prod-db" in load_policies(policy_dir).resources
