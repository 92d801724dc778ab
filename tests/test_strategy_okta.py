"""okta_group against a real HTTP server on 127.0.0.1 that speaks Okta's API."""

import pytest

from accessbot.strategies import StrategyError
from accessbot.strategies.okta import OktaGroupStrategy
from tests.conftest import policy_file, request_id
from tests.fake_targets import FakeOkta
from tests.strategy_helpers import Naps, payload

GROUP = "00gprodadmins"


@pytest.fixture
def okta(monkeypatch):
    fake = FakeOkta(token="okta-t0ken")
    fake.add_user("carol@acme.com", "00ucarol")
    fake.groups[GROUP] = set()
    monkeypatch.setenv("OKTA_API_TOKEN", "okta-t0ken")
    yield fake
    fake.close()


@pytest.fixture
def naps():
    return Naps()


def strategy(okta, naps, **overrides):
    settings = {
        "type": "okta_group",
        "org_url": okta.url,
        "group_id": GROUP,
        "token_env": "OKTA_API_TOKEN",
        **overrides,
    }
    return OktaGroupStrategy.from_settings(settings, sleep=naps)


def revoke(account="00ucarol", **kwargs):
    return payload("revoke", account=account, **kwargs)


def test_grant_finds_the_user_by_email_adds_them_to_the_group_and_records_their_id(okta, naps):
    done = strategy(okta, naps).call("grant", payload())
    note = done.note

    assert done.account == "00ucarol"
    assert okta.groups[GROUP] == {"00ucarol"}
    assert okta.methods() == [
        "GET /api/v1/users/carol@acme.com",
        f"PUT /api/v1/groups/{GROUP}/users/00ucarol",
    ]
    assert okta.headers_seen[1]["Authorization"] == "SSWS okta-t0ken"
    assert "carol@acme.com added" in note


def test_granting_twice_succeeds(okta, naps):
    strategy(okta, naps).call("grant", payload())
    strategy(okta, naps).call("grant", payload())
    assert okta.groups[GROUP] == {"00ucarol"}


def test_revoke_removes_the_membership_of_the_recorded_id(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    note = strategy(okta, naps).call("revoke", revoke()).note
    assert okta.groups[GROUP] == set()
    assert okta.methods() == [f"DELETE /api/v1/groups/{GROUP}/users/00ucarol"]
    assert "removed" in note


def test_revoke_after_the_users_login_changed_still_removes_the_membership(okta, naps):
    done = strategy(okta, naps).call("grant", payload())
    okta.rename("carol@acme.com", "carol.doe@acme.com")

    strategy(okta, naps).call("revoke", revoke(done.account))

    assert okta.groups[GROUP] == set()


def test_revoking_a_membership_that_is_gone_succeeds_once_the_member_list_proves_it(okta, naps):
    okta.groups[GROUP].add(okta.add_user("dave@acme.com", "00udave"))
    note = strategy(okta, naps).call("revoke", revoke()).note
    assert "was not in group" in note
    assert okta.methods()[-1] == f"GET /api/v1/groups/{GROUP}/users"


def test_a_404_while_the_member_list_still_has_the_id_is_a_failure(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    okta.script(404, {"errorCode": "E0000007", "errorSummary": "Not found"})  # the DELETE
    with pytest.raises(StrategyError, match=r"still lists Okta user 00ucarol .* in group"):
        strategy(okta, naps).call("revoke", revoke())
    assert okta.groups[GROUP] == {"00ucarol"}


def test_the_member_list_is_read_to_its_last_page(okta, naps):
    okta.page_size = 2
    for n in range(5):
        okta.groups[GROUP].add(okta.add_user(f"u{n}@acme.com", f"00u{n}"))
    okta.groups[GROUP].add("00ucarol")  # sorted last: on the third page
    okta.script(404, {"errorCode": "E0000007", "errorSummary": "Not found"})  # the DELETE
    with pytest.raises(StrategyError, match="still lists"):
        strategy(okta, naps).call("revoke", revoke())
    assert okta.methods().count(f"GET /api/v1/groups/{GROUP}/users") == 3


def test_a_legacy_revoke_looks_the_user_up_by_email_once_and_returns_the_id(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    done = strategy(okta, naps).call("revoke", revoke(account=None))
    assert done.account == "00ucarol" and okta.groups[GROUP] == set()


def test_a_legacy_revoke_for_an_email_okta_no_longer_knows_fails(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    okta.rename("carol@acme.com", "carol.doe@acme.com")
    with pytest.raises(StrategyError, match="no user carol@acme.com any more .* check the group"):
        strategy(okta, naps).call("revoke", revoke(account=None))
    assert okta.groups[GROUP] == {"00ucarol"}


def test_revoke_against_a_group_that_does_not_exist_fails_in_oktas_words(okta, naps):
    with pytest.raises(StrategyError, match=r"UserGroup.*E0000007"):
        strategy(okta, naps, group_id="00gnosuchgroup").call("revoke", revoke())


def test_grant_for_a_user_okta_does_not_know_fails(okta, naps):
    with pytest.raises(StrategyError, match="Okta has no user dave@acme.com"):
        strategy(okta, naps).call("grant", payload(email="dave@acme.com"))


def test_a_wrong_token_fails_with_oktas_message_and_never_shows_the_token(okta, naps, monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", "wrong-secret-value")
    with pytest.raises(StrategyError) as caught:
        strategy(okta, naps).call("grant", payload())
    assert "HTTP 401" in str(caught.value)
    assert "Invalid token provided" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)


def test_a_rate_limit_is_waited_out_as_long_as_retry_after_says(okta, naps):
    okta.script(
        429,
        {"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit"},
        Retry_After="3",
    )
    strategy(okta, naps).call("grant", payload())
    assert naps.taken == [3.0]
    assert okta.groups[GROUP] == {"00ucarol"}


def test_a_rate_limit_longer_than_the_bot_waits_fails_at_once(okta, naps):
    okta.script(
        429,
        {"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit"},
        Retry_After="120",
    )
    with pytest.raises(
        StrategyError, match=r"rate limiting us.*retry after 120s.*exceeded rate limit"
    ):
        strategy(okta, naps).call("grant", payload())
    assert naps.taken == []


def test_a_rate_limit_that_does_not_lift_fails_after_a_few_tries(okta, naps):
    for _ in range(5):
        okta.script(429, {"errorSummary": "API call exceeded rate limit"}, Retry_After="1")
    with pytest.raises(StrategyError, match="rate limiting us"):
        strategy(okta, naps).call("grant", payload())
    assert naps.taken == [1.0, 1.0]
    assert len(okta.calls) == 3


def test_a_server_error_is_reported_with_the_status_and_oktas_words(okta, naps):
    okta.script(500, {"errorCode": "E0000009", "errorSummary": "Internal Server Error"})
    with pytest.raises(
        StrategyError, match=r"look up the user carol@acme.com: HTTP 500: Internal Server Error"
    ):
        strategy(okta, naps).call("grant", payload())


def test_a_silent_okta_times_out(okta, naps):
    okta.hang.set()
    with pytest.raises(
        StrategyError, match="did not answer GET /api/v1/users/carol@acme.com within 1s"
    ):
        strategy(okta, naps, timeout="1s").call("grant", payload())


def test_a_missing_token_names_the_environment_variable(okta, naps, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN")
    with pytest.raises(StrategyError, match="OKTA_API_TOKEN"):
        strategy(okta, naps).call("grant", payload())
    assert okta.calls == []


def test_a_requester_without_an_email_is_told_where_to_add_it(okta, naps):
    with pytest.raises(StrategyError, match="no e-mail for @carol.*ACCESS_USER_EMAILS"):
        strategy(okta, naps).call("grant", payload(email=None))


def test_extend_succeeds_without_calling_okta(okta, naps):
    strategy(okta, naps).call("extend", payload("extend"))
    assert okta.calls == []


def test_describe_names_the_kind_and_group(okta, naps):
    assert strategy(okta, naps).describe() == f"okta_group (group {GROUP} at {okta.url})"


# -- end_sessions (issue 32): the user's sessions cleared after the group removal -------


def test_with_end_sessions_the_revoke_clears_the_users_okta_sessions_and_oauth_tokens(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    okta.sessions["00ucarol"], okta.oauth_tokens["00ucarol"] = 2, 3

    done = strategy(okta, naps, end_sessions=True).call("revoke", revoke())

    assert okta.methods() == [
        f"DELETE /api/v1/groups/{GROUP}/users/00ucarol",
        "DELETE /api/v1/users/00ucarol/sessions",
    ]
    assert okta.groups[GROUP] == set()
    assert okta.sessions["00ucarol"] == 0 and okta.oauth_tokens["00ucarol"] == 0
    assert done.sessions.fate == "ended"
    assert "sessions cleared" in done.note


def test_without_end_sessions_the_sessions_are_left_and_said_to_be_unknown(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    okta.sessions["00ucarol"] = 2
    built = strategy(okta, naps)

    done = built.call("revoke", revoke())

    assert okta.methods() == [f"DELETE /api/v1/groups/{GROUP}/users/00ucarol"]
    assert okta.sessions["00ucarol"] == 2
    assert done.sessions is None
    assert built.sessions_at_revoke().fate == "unknown"


def test_a_revoke_retried_after_the_membership_went_still_clears_the_sessions(okta, naps):
    okta.sessions["00ucarol"] = 1  # the group removal worked; clearing failed last time

    strategy(okta, naps, end_sessions=True).call("revoke", revoke())

    assert okta.sessions["00ucarol"] == 0


def test_sessions_okta_will_not_clear_fail_the_revoke_so_it_is_retried(okta, naps):
    okta.groups[GROUP].add("00ucarol")
    okta.scripted = [
        (204, {}, None),
        (
            403,
            {},
            {
                "errorCode": "E0000006",
                "errorSummary": "You do not have permission to perform the requested action",
            },
        ),
    ]

    with pytest.raises(
        StrategyError, match="clear the Okta sessions of Okta user 00ucarol.*permission"
    ):
        strategy(okta, naps, end_sessions=True).call("revoke", revoke())


def test_end_sessions_must_be_true_or_false(okta, naps):
    from accessbot.strategies import SettingsError

    with pytest.raises(SettingsError, match="strategy.end_sessions: must be True or False"):
        strategy(okta, naps, end_sessions="yes")


def test_through_the_bot_expiry_removes_the_member_clears_her_sessions_and_says_so(
    okta, bot_factory, policy_dir, clock
):
    strategy = {
        "type": "okta_group",
        "org_url": okta.url,
        "group_id": GROUP,
        "token_env": "OKTA_API_TOKEN",
        "end_sessions": True,
    }
    settings = {"max_duration": "4h", "approvers": ["@alice"], "channel": "#access-approvals"}
    policy_file(
        policy_dir,
        "okta.py",
        f"RESOURCES = {{'okta-admins': {{**{settings!r}, 'strategy': {strategy!r}}}}}\n",
    )
    chat = bot_factory(ACCESS_USER_EMAILS={"carol": "carol@acme.com"})
    rid = request_id(chat.reply("carol", "!access request okta-admins 30m INC-42"))
    assert chat.reply("alice", f"!approve {rid}").startswith(f"Approved {rid}")
    assert okta.groups[GROUP] == {"00ucarol"}
    okta.sessions["00ucarol"] = 1  # she signed in to Okta in her browser

    clock.advance(minutes=30, seconds=1)

    told = chat.wait_for("carol", "has expired and was removed")
    assert okta.groups[GROUP] == set() and okta.sessions["00ucarol"] == 0
    assert told.endswith(
        "Okta sign-in sessions and the OAuth tokens Okta issued opened before: ended."
    )
