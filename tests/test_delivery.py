"""A notice the chat will not take (the bot is not in the channel, a person is gone) is
told to the admins with what to fix, once per destination and error, and again only
after a message there got through: not one line in errbot's log nobody reads."""

from tests.conftest import request_id

APPROVALS = "#access-approvals"


def test_a_channel_that_refuses_the_card_is_reported_to_the_admins_with_the_fix(chat):
    chat.refuse(APPROVALS, "no such room")

    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))

    assert chat.to("admin") == [
        f"Access bot: a message to #access-approvals (request {rid}, prod-db, policy file "
        "db.py) could not be delivered: RuntimeError: no such room. To fix: check that "
        "#access-approvals exists and the bot may post there, or change the resource's "
        '"channel" in its policy file. Until then nobody there sees these requests; approvers '
        "can still use !access list. You will hear about #access-approvals again only if this "
        "happens after a message there got through."
    ]


def test_the_admins_hear_once_per_destination_and_error_until_a_message_gets_through(chat):
    chat.refuse(APPROVALS, "no such room")
    chat.say("carol", "!access request prod-db 30m fixing INC-42")
    chat.say("dave", "!access request prod-db 30m fixing INC-43")
    assert len(chat.to("admin")) == 1

    chat.refuse(APPROVALS, "rate limited")
    chat.say("erin", "!access request prod-db 30m fixing INC-44")
    assert len(chat.to("admin")) == 2  # a new error is news

    chat.refuse(APPROVALS, None)
    chat.say("frank", "!access request prod-db 30m fixing INC-45")
    chat.refuse(APPROVALS, "no such room")
    chat.say("gina", "!access request prod-db 30m fixing INC-46")
    told = chat.to("admin")
    assert len(told) == 3 and "no such room" in told[-1]  # broken again after it worked


def test_a_requester_the_chat_cannot_reach_is_reported_too(chat):
    rid = request_id(chat.reply("carol", "!access request prod-db 30m fixing INC-42"))
    chat.refuse("carol", "user is deactivated")

    chat.say("bob", f"!approve {rid}")

    [told] = chat.to("admin")
    assert told.startswith(f"Access bot: a message to carol (request {rid}, prod-db")
    assert "To fix: check that carol is still a member of the chat" in told


# -- on Slack: Slack's own error, and the fix for it ---------------------------------------


def test_on_slack_a_channel_the_bot_was_not_invited_to_tells_the_admins_to_invite_it(
    start_bot, fake
):
    fake.users["UADMIN"] = ("admin", "admin@acme.com")
    fake.not_member.add("CAPPROVALS")
    bot = start_bot("socket", config={"BOT_ADMINS_NOTIFICATIONS": ("<@UADMIN>",)})

    bot.type("UCAROL", "DCAROL", "!access request prod-db 30m fixing INC-42")
    [told] = fake.wait(lambda: fake.dms("UADMIN"), "the admin being told")
    assert "a message to #access-approvals (request " in told
    assert "could not be delivered: not_in_channel" in told
    assert "To fix: invite the bot to #access-approvals" in told
    assert fake.cards("CAPPROVALS") == []
