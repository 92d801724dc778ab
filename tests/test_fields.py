"""Prompt fields through the real plugin: a resource declares `fields`, requests carry
`ticket=OPS-12`, a missing or malformed one is refused with its help text, and the
values are on the card, in `!access show`, in the audit log and in the hooks."""

import json

import pytest

from accessbot.commands import parse_request
from accessbot.policy import PolicyError, load_policies
from tests.conftest import policy_file, request_id, webhook_policy

CHANNEL = "#access-approvals"
TICKET = {"pattern": "^[A-Z]+-[0-9]+$", "required": True, "help": "Jira key like OPS-12"}
HOOK = """
def on_request(request, ctx):
    if request.fields.get("ticket", "").startswith("SEC-"):
        return ctx.deny("security tickets go through #security: " + request.fields["ticket"])
"""


@pytest.fixture
def chat(bot_factory, policy_dir, webhook):
    fields = {"ticket": TICKET, "env": {"pattern": "prod|staging", "help": "prod or staging"}}
    policy_file(policy_dir, "db.py", webhook_policy(webhook.url, fields=fields) + HOOK)
    return bot_factory()


def test_a_request_with_its_fields_shows_them_on_the_card_and_in_show(chat, tmp_path):
    said = chat.say("carol", "!access request prod-db 30m ticket=OPS-12 fixing the index")
    rid = request_id(said[0])

    card = chat.to(CHANNEL)[-1]
    assert "ticket: OPS-12" in card and "Reason: fixing the index" in card
    assert "Fields: ticket=OPS-12" in chat.reply("carol", f"!access show {rid}")
    requested = [
        json.loads(line)
        for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
        if '"requested"' in line
    ]
    assert requested[-1]["fields"] == {"ticket": "OPS-12"}


def test_field_tokens_may_come_before_the_duration_and_other_pairs_stay_in_the_reason(chat):
    rid = request_id(
        chat.reply("carol", "!access request prod-db env=prod ticket=OPS-7 45m set a=b")
    )
    shown = chat.reply("carol", f"!access show {rid}")
    assert "Duration: 45m" in shown
    assert "Reason: set a=b" in shown
    assert "Fields: ticket=OPS-7, env=prod" in shown


def test_a_missing_required_field_is_refused_with_its_help_and_nothing_is_created(chat, webhook):
    reply = chat.reply("carol", "!access request prod-db 30m fixing the index")
    assert reply == (
        "prod-db needs ticket=... (Jira key like OPS-12). Try !access request prod-db 30m "
        "ticket=<Jira key like OPS-12> <reason>."
    )
    assert "no pending requests" in chat.reply("carol", "!access mine")
    assert chat.to(CHANNEL) == []


def test_a_malformed_field_is_refused_with_its_help(chat):
    reply = chat.reply("carol", "!access request prod-db 30m ticket=ops12 env=qa fixing")
    assert "ticket=ops12 is not valid: Jira key like OPS-12" in reply
    assert "env=qa is not valid: prod or staging" in reply
    assert "no pending requests" in chat.reply("carol", "!access mine")


def test_the_whole_value_must_match_the_pattern(chat):
    reply = chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 env=preprod x")
    assert "env=preprod is not valid" in reply


ASK_AGAIN = "!access request prod-db 30m ticket=<ticket> <reason>"


def test_after_a_failed_grant_the_advice_to_ask_again_names_the_required_fields(chat, webhook):
    webhook.set_status(503)
    rid = request_id(chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 index"))

    chat.say("bob", f"!approve {rid}")

    told = [t for t in chat.to("carol") if "grant failed" in t]
    assert told and f"Ask again with {ASK_AGAIN} once the approvers" in told[-1]
    assert f"@carol can ask again with {ASK_AGAIN}." in chat.reply("admin", f"!access retry {rid}")


def test_after_a_time_out_the_advice_to_ask_again_names_the_required_fields(chat, clock, webhook):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 index"))
    clock.advance(hours=1)
    told = chat.wait_for("carol", "timed out")
    assert rid in told and f"Ask again with {ASK_AGAIN}." in told


def test_hooks_see_the_fields(chat, webhook):
    reply = chat.reply("carol", "!access request prod-db 30m ticket=SEC-9 rotate keys")
    assert "denied by policy: security tickets go through #security: SEC-9" in reply
    assert webhook.calls == []


def test_fields_survive_a_restart(bot_factory, chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m ticket=OPS-12 fixing"))
    bot_factory.stop_last()
    again = bot_factory()
    assert "Fields: ticket=OPS-12" in again.reply("carol", f"!access show {rid}")


def test_an_empty_or_repeated_field_is_a_clear_error(chat):
    assert "ticket= needs a value" in chat.reply("carol", "!access request prod-db ticket= x")
    assert "ticket is given twice" in chat.reply(
        "carol", "!access request prod-db ticket=A-1 ticket=B-2 x"
    )


def test_a_resource_without_fields_keeps_key_value_text_in_the_reason():
    parsed = parse_request("prod-db 30m ticket=OPS-1 fixing")
    assert parsed.reason == "ticket=OPS-1 fixing" and parsed.fields == {}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (
            {"ticket": {"pattern": "[A-Z"}},
            "db.py:9: prod-db.fields.ticket.pattern: '[A-Z' is not a valid regular expression",
        ),
        (
            {"ticket": {"patern": "x"}},
            "prod-db.fields.ticket.patern: unknown key (allowed: check, end_with, help, pattern, required)",
        ),
        ({"ticket": {"required": "yes"}}, "prod-db.fields.ticket.required: must be True or False"),
        ({"Ticket No": {}}, "is not a field name"),
        ({"ticket": "^[A-Z]+$"}, "prod-db.fields.ticket: must be a dict"),
        (["ticket"], "prod-db.fields: must be a dict"),
    ],
)
def test_bad_field_declarations_are_load_errors_naming_the_field(policy_dir, fields, says):
    text = (
        "RESOURCES = {\n"
        "    'prod-db': {\n"
        "        'max_duration': '1h',\n"
        "        'approvers': ['@alice'],\n"
        "        'channel': '#access',\n"
        "        'strategy': {'type': 'webhook', 'url': 'http://127.0.0.1:9/x'},\n"
        "        'fields': {\n"
    )
    if isinstance(fields, dict):
        text += "".join(f"            {k!r}:\n                {v!r},\n" for k, v in fields.items())
        text += "        },\n    },\n}\n"
    else:
        text = text.replace("'fields': {\n", f"'fields': {fields!r},\n") + "    },\n}\n"
    policy_file(policy_dir, "db.py", text)
    with pytest.raises(PolicyError) as info:
        load_policies(policy_dir)
    assert says in str(info.value)


def test_resources_tells_requesters_which_fields_to_give(chat):
    listing = chat.reply("carol", "!access resources")
    assert (
        "give ticket=... (required: Jira key like OPS-12), env=... (optional: prod or staging)"
        in listing
    )
