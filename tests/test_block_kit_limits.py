"""What Slack's Block Kit accepts (issue 29 item 19): text objects of at most 3,000
characters after escaping (a note of 1,000 `<` escaped to 4,007), and a select of at
most 100 options (more than 100 fixed `durations` could not build the request form)."""

import pytest

from accessbot.integrations.slack.cards import approval_card
from accessbot.integrations.slack.mrkdwn import user_text
from accessbot.policy import PolicyError, load_policies
from tests.builders import a_request
from tests.conftest import policy_file, webhook_policy

SLACK_TEXT_LIMIT = 3000  # a text object's most characters
SECTION_FIELD_LIMIT = 2000  # a section field's


def texts(value):
    """Every "text" string in a block's JSON, with the kind of thing that holds it."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "text" and isinstance(inner, str):
                yield inner
            else:
                yield from texts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from texts(inner)


def test_a_note_of_angle_brackets_stays_within_slacks_limit_once_escaped():
    request = a_request(notes=["<" * 1000], reason=">" * 300, fields={"ticket": "&" * 1900})

    blocks = [block.to_dict() for block in approval_card(request)]

    longest = max(len(t) for t in texts(blocks))
    assert longest <= SLACK_TEXT_LIMIT, longest
    for block in blocks:
        for field in block.get("fields", []):
            assert len(field["text"]) <= SECTION_FIELD_LIMIT


def test_user_text_is_cut_after_escaping_and_never_inside_an_entity():
    shown = user_text("a" + "<" * 1000, 1000)

    assert len(shown) <= 1000 and shown.endswith("…")
    entities = [i for i, c in enumerate(shown) if c == "&"]
    assert all(shown.startswith(("&lt;", "&gt;", "&amp;"), i) for i in entities)  # whole ones
    assert user_text("fine & text", 100) == "fine &amp; text"


def test_more_than_100_fixed_durations_is_a_load_error(policy_dir):
    durations = [f"{m}m" for m in range(1, 102)]  # 101
    policy_file(
        policy_dir,
        "db.py",
        webhook_policy("https://hooks.example/x", max_duration="4h", durations=durations),
    )

    with pytest.raises(PolicyError) as raised:
        load_policies(policy_dir, environ={"TEST_HOOK_SECRET": "s"})

    assert "prod-db.durations: lists 101 durations; Slack's request form offers at most 100" in str(
        raised.value
    )


def test_100_fixed_durations_load(policy_dir):
    durations = [f"{m}m" for m in range(1, 101)]
    policy = webhook_policy("https://hooks.example/x", max_duration="4h", durations=durations)
    policy_file(policy_dir, "db.py", policy)

    loaded = load_policies(policy_dir, environ={"TEST_HOOK_SECRET": "s"})

    assert len(loaded.resources["prod-db"].durations) == 100
