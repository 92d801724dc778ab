"""Bad input, fuzzed: every input is either a valid request or a clear refusal; never an
exception trace, never a half-stored request, and user text is always shown inert."""

from __future__ import annotations

import html
import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accessbot.commands import parse_audit_args, parse_id_and_text, parse_request
from accessbot.domain import (
    TOO_LONG,
    AccessError,
    DurationError,
    Status,
    format_duration,
    parse_duration,
)
from accessbot.messages import REASON_LIMIT, card_body, inert
from accessbot.policy import PolicyError, load_policies
from accessbot.store import TinyDBStore
from tests.builders import build_service, person
from tests.conftest import FakeClock, policy_file, request_id

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text people might type, weighted towards the shapes that matter.
NASTY = st.sampled_from(
    [
        "<!channel>",
        "<!here>",
        "@here",
        "@channel",
        "@everyone",
        "<@U024BE7LH>",
        "*bold*",
        "_it_",
        "~strike~",
        "`code`",
        "```block```",
        "[link](http://evil)",
        "<http://evil|click>",
        "\x00",
        "\x07",
        "\x1b[31m",
        "\u202e",
        "\u200b",
        "\r\n",
        "\t",
        "=cmd|'/c calc'!A1",
        "30m",
        "-5m",
        "99999999999d",
        "1h30m",
        "0s",
        "prod-db",
        "🔥",
    ]
)
WORDS = st.lists(st.one_of(NASTY, st.text(max_size=12)), max_size=8).map(" ".join)
REQUEST_ARGS = st.one_of(
    st.text(max_size=80),
    WORDS,
    st.tuples(
        st.sampled_from(
            ["prod-db", "prod-shell", "prod-db 30m", "prod-shell 3h", "prod-db 0s", "prod-db 9h"]
        ),
        WORDS,
    ).map(" ".join),
)
DURATION_TEXT = st.one_of(
    st.from_regex(r"\A(\d{1,7}d)?(\d{1,7}h)?(\d{1,7}m)?(\d{1,7}s)?\Z"),
    st.text(max_size=12),
)


@FUZZ
@given(REQUEST_ARGS)
def test_request_arguments_parse_or_are_refused_clearly(text):
    try:
        resource, duration, reason = parse_request(text)[:3]
    except AccessError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    assert resource and reason.strip()
    # Past 366d a duration is held as TOO_LONG, which every resource refuses by its limit.
    assert (
        duration is None or timedelta(0) <= duration <= timedelta(days=366) or duration == TOO_LONG
    )


@FUZZ
@given(DURATION_TEXT)
def test_durations_parse_or_say_how_to_write_one(text):
    try:
        duration = parse_duration(text)
    except DurationError as exc:
        assert "30m" in str(exc) or "366d" in str(exc)
        return
    assert timedelta(0) <= duration <= timedelta(days=366)
    assert parse_duration(format_duration(duration) if duration else "0s") == duration


@FUZZ
@given(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=366)))
def test_every_duration_round_trips_through_its_compact_form(duration):
    whole = timedelta(seconds=int(duration.total_seconds()))
    assert parse_duration(format_duration(whole)) == whole


@FUZZ
@given(st.one_of(st.text(), WORDS), st.sampled_from(["approve", "deny", "access show"]))
def test_ids_and_audit_filters_parse_or_are_refused_clearly(text, command):
    for parse in (lambda: parse_id_and_text(text, command), lambda: parse_audit_args(text)):
        try:
            parse()
        except AccessError as exc:
            assert str(exc)


@FUZZ
@given(st.one_of(st.text(), WORDS, st.text(min_size=2000, max_size=6000)))
def test_user_text_is_inert_one_line_and_bounded(text):
    shown = inert(text)
    assert len(shown) <= REASON_LIMIT
    assert "\n" not in shown and "\r" not in shown and "`" not in shown
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e]", shown)
    assert not re.search(r"<[!@]|[@!](here|channel|everyone)\b", shown, re.IGNORECASE)


# -- through the service: a real store and audit log ------------------------------------


def test_every_request_is_stored_whole_or_not_at_all(tmp_path, webhook):
    os.environ["TEST_HOOK_SECRET"] = "s3cret"
    service = build_service(tmp_path, FakeClock(), webhook.url)
    audit = service.audit

    people = iter(range(10**6))

    @FUZZ
    @given(REQUEST_ARGS)
    def check(text):
        before = {r.id for r in service.store.live()}
        events = len(audit.query(limit=0))
        try:
            # A new person per example: one pending request per person and resource.
            outcome = service.request(person(f"user{next(people)}"), *parse_request(text)[:3])
        except AccessError as exc:
            assert str(exc)
            assert {r.id for r in service.store.live()} == before
            assert len(audit.query(limit=0)) == events  # refused before anything was written
            return
        stored = service.store.get(outcome.request.id)
        assert stored is not None and stored.reason == outcome.request.reason
        assert stored.resource in ("prod-db", "prod-shell") and stored.reason.strip()
        assert [e["event"] for e in audit.query(request_id=stored.id, limit=0)][0] == "requested"
        body = card_body(stored)
        assert "<!" not in body and "@here" not in body.lower()

    check()
    assert audit.verify().ok and audit.verify().lines > 5


# -- policy values ------------------------------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    DURATION_TEXT,
    st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
)
KEYS = st.sampled_from(
    [
        "description",
        "max_duration",
        "default_duration",
        "approvers",
        "channel",
        "approvals_required",
        "allow_self_approval",
        "strategy",
        "not_a_key",
    ]
)


def test_policy_values_load_or_fail_naming_the_file_and_key(webhook):
    @FUZZ
    @given(KEYS, VALUES)
    def check(key, value):
        with tempfile.TemporaryDirectory() as directory:
            base = {
                "description": "db",
                "max_duration": "4h",
                "approvers": ["@alice"],
                "channel": "#access",
                "strategy": {"type": "webhook", "url": webhook.url},
            }
            base[key] = value
            policy_file(Path(directory), "prod.py", f"RESOURCES = {{'prod-db': {base!r}}}\n")
            try:
                loaded = load_policies(directory)
            except PolicyError as exc:
                assert exc.errors and all("prod.py" in e for e in exc.errors)
                assert any(key in e for e in exc.errors) or key == "strategy"
                return
            resource = loaded.get("prod-db")
            assert resource.default_duration <= resource.max_duration
            assert resource.max_duration > timedelta(0)

    check()


# -- through the real plugin ------------------------------------------------------------


def test_nothing_typed_in_chat_gets_a_stack_trace_or_a_half_request(chat, tmp_path):
    commands = st.sampled_from(
        [
            "!access request",
            "!access request prod-db",
            "!access request prod-db 30m",
            "!access",
            "!approve",
            "!deny",
            "!access show",
            "!access audit",
        ]
    )
    printable = st.text(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029"),
        max_size=40,
    )

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(commands, st.one_of(printable, WORDS.map(lambda s: re.sub(r"[\r\n\x00]", " ", s))))
    def check(command, args):
        for said in chat.say("admin", f"{command} {args}"):
            assert "Traceback" not in said and "failed inside the bot" not in said
            assert "<!channel>" not in said and "<!here>" not in said

    check()
    stored = TinyDBStore(tmp_path / "data" / "access.json").live()  # as reloaded from disk
    assert stored  # some fuzzed requests were valid
    for request in stored:
        assert request.reason.strip() and request.resource == "prod-db"
        assert request.status is Status.PENDING and request.history


def test_a_hostile_reason_is_inert_and_truncated_on_the_card(chat):
    reason = "<!channel> @here *urgent* `rm -rf` \x07\x1b[31m " + "x" * 5000

    rid = request_id(chat.reply("carol", f"!access request prod-db 30m {reason}"))

    card = html.unescape(chat.to("#access-approvals")[-1])  # the Text backend escapes cards
    line = next(x for x in card.splitlines() if x.startswith("Reason: "))
    assert len(line) <= len("Reason: ") + REASON_LIMIT and line.endswith("…")
    assert "<!channel>" not in card and "@here" not in card and "\x07" not in card
    assert "\x1b" not in card and "*urgent*" in line  # markdown shown as typed, not bold
    assert f"!approve {rid}" in card
