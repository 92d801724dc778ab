"""Resource names: 1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a
letter or digit, checked when the policy loads. A name is typed in commands, carried as
a Slack option value (at most 150 characters) and shown in cards and reports."""

import pytest

from accessbot.policy import PolicyError, load_policies
from tests.conftest import policy_file

SETTINGS = {
    "max_duration": "1h",
    "approvers": ["@alice"],
    "channel": "#access-approvals",
    "strategy": {"type": "command", "argv": ["true"]},
}
POLICY = "RESOURCES = {{\n    'staging-db': {settings!r},\n    {name!r}: {settings!r},\n}}\n"


def load(policy_dir, name):
    policy_file(policy_dir, "db.py", POLICY.format(name=name, settings=SETTINGS))
    return load_policies(policy_dir)


@pytest.mark.parametrize("name", ["a", "prod-db", "db.v2_x", "9lives", "x" * 64])
def test_a_name_of_lower_case_letters_digits_dots_dashes_and_underscores_loads(policy_dir, name):
    assert name in load(policy_dir, name).names()


@pytest.mark.parametrize(
    ("name", "instead"),
    [
        ("Prod DB", "prod-db"),
        ("PROD-DB", "prod-db"),
        ("-db", "db"),
        ("db/prod:admin", "db-prod-admin"),
        ("<!channel>", "channel"),
        ("prod`db", "prod-db"),
        ("", "prod-db"),
        ("x" * 151, "x" * 64),
    ],
)
def test_any_other_name_is_a_load_error_naming_file_line_and_what_to_write(
    policy_dir, name, instead
):
    with pytest.raises(PolicyError) as info:
        load(policy_dir, name)

    (error,) = info.value.errors
    assert error.startswith("db.py:3: ")
    assert "1 to 64 characters" in error and "a-z, 0-9" in error
    assert f"write {instead!r}" in error


def test_a_name_that_is_not_a_string_is_a_load_error(policy_dir):
    policy_file(
        policy_dir,
        "db.py",
        f"RESOURCES = {{42: {SETTINGS!r}}}\n",
    )

    with pytest.raises(PolicyError) as info:
        load_policies(policy_dir)

    assert "db.py:1: " in str(info.value) and "a string" in str(info.value)
