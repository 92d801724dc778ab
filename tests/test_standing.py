"""The standing-access sweep on one bot (TinyDB and the audit file): a webhook target
answers `list`, the real service grants and revokes through it, and the clock is moved
by hand. The rule itself (`compare`) is tested at the bottom, without any I/O."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accessbot.audit import AuditLog
from accessbot.domain import AccessError
from accessbot.policy import PolicyError, load_policies
from accessbot.settings import Settings, SettingsError
from accessbot.standing import Allowed, Explainer, Holder, compare
from accessbot.standing_sweep import StandingJob, StandingSweep
from accessbot.store import TinyDBStore
from accessbot.strategies import Member
from tests.builders import ADMIN, person, wired
from tests.conftest import START, policy_file
from tests.test_readme import python_blocks

CAROL = {"user": "carol", "user_email": "carol@acme.com", "account": "db-carol"}
MALLORY = {"user": "mallory", "user_email": "mallory@acme.com", "account": "db-mallory"}


def policy(url: str, **overrides) -> str:
    settings = {
        "description": "Production PostgreSQL",
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {"type": "webhook", "url": url, "secret_env": "TEST_HOOK_SECRET"},
        **overrides,
    }
    return f"RESOURCES = {{'prod-db': {settings!r}}}\n"


@pytest.fixture
def bot(tmp_path, clock, webhook):
    """A service on files in tmp_path and its sweep; `bot.restart()` opens them again."""

    class Bot:
        def __init__(self):
            self.policy()
            self.open()

        def policy(self, **overrides):
            policy_file(tmp_path / "policies", "db.py", policy(webhook.url, **overrides))

        def open(self, max_removals: int = 20):
            data = tmp_path / "data"
            self.store = TinyDBStore(data / "access.json")
            self.audit = AuditLog(data / "audit.jsonl", clock)
            self.service = wired(self.store, self.audit, tmp_path / "policies", clock)
            self.sweep = StandingSweep(
                self.service, max_removals, {"alice": "alice@acme.com"}, timedelta(hours=1)
            )

        def restart(self, **kwargs):
            self.store.close()
            self.open(**kwargs)

        def reload(self, **overrides):
            self.policy(**overrides)
            result = self.service.reload_policies("admin")
            assert result.ok, result.errors

        def events(self, prefix: str = "standing_") -> list[dict]:
            return [e for e in self.audit.events() if e["event"].startswith(prefix)]

        def grant(self, user: str = "carol") -> str:
            rid = self.service.request(person(user), "prod-db", None, "INC-1").request.id
            self.service.approve(person("alice"), rid)
            return rid

    yield Bot()


def channel_texts(result) -> list[str]:
    return [n.text for n in result.notices if n.to == "#access-approvals"]


# -- found once -------------------------------------------------------------------------------


def test_a_member_no_grant_explains_is_announced_and_audited_once(bot, webhook):
    webhook.members = [MALLORY]

    first = bot.sweep.sweep()
    second = bot.sweep.sweep()

    [text] = channel_texts(first)
    assert text.startswith("STANDING ACCESS on prod-db")
    assert "mallory (mallory@acme.com; account db-mallory)" in text
    assert "add them to `standing` of prod-db in db.py" in text
    assert channel_texts(second) == [] and second.found == []
    assert [e["event"] for e in bot.events()] == ["standing_found"]
    found = bot.events()[0]
    assert (found["resource"], found["user"], found["account"]) == (
        "prod-db",
        "mallory",
        "db-mallory",
    )
    assert [f.user for f in second.findings["prod-db"]] == ["mallory"]


def test_a_restart_does_not_announce_old_findings_again(bot, webhook, clock):
    webhook.members = [MALLORY]
    bot.sweep.sweep()

    bot.restart()
    clock.advance(hours=1)
    again = bot.sweep.sweep()

    assert again.notices == [] and again.found == []
    assert [e["event"] for e in bot.events()] == ["standing_found"]
    report = bot.sweep.report(ADMIN, "prod-db")
    assert (
        f"mallory (mallory@acme.com; account db-mallory) since {START:%Y-%m-%d %H:%M:%S} UTC (1h ago)"
        in report
    )


# -- never someone a grant or the standing list explains -------------------------------------


def test_someone_with_an_active_grant_is_neither_found_nor_removed(bot, webhook):
    bot.reload(remove_standing=True)
    webhook.answer = {"account": "db-carol"}  # the target's id for carol, recorded at grant
    bot.grant("carol")
    webhook.members = [{**CAROL, "user": "carol.renamed"}]  # known by the recorded account

    result = bot.sweep.sweep()

    assert result.found == [] and result.removed == []
    assert webhook.count_all("revoke") == 0


def test_a_grant_without_a_recorded_account_explains_its_user_by_name_or_email(bot, webhook):
    bot.grant("carol")  # the target answered no account
    webhook.members = [{"user": "Carol", "account": "db-77"}]
    assert bot.sweep.sweep().found == []


def test_an_approved_request_whose_grant_is_in_flight_counts_as_a_grant(bot, webhook):
    bot.reload(remove_standing=True)
    webhook.members = [CAROL]
    during: list = []
    # The target lists carol while the grant call is still on its way back.
    webhook.on_call = lambda call: (
        during.append(bot.sweep.sweep()) if call["action"] == "grant" else None
    )

    bot.grant("carol")

    [result] = during
    assert result.found == [] and result.removed == []
    assert webhook.count_all("revoke") == 0


def test_the_standing_list_lets_accounts_hold_the_resource_without_a_grant(bot, webhook):
    bot.reload(standing=["@alice", "svc-deploy@acme.com", "db-breakglass"])
    webhook.members = [
        {"user": "a.smith", "user_email": "alice@acme.com"},  # @alice, by ACCESS_USER_EMAILS
        {"user": "svc-deploy", "user_email": "svc-deploy@acme.com"},
        {"user": "emergency", "account": "db-breakglass"},
        MALLORY,
    ]

    result = bot.sweep.sweep()

    assert [f.user for f in result.found] == ["mallory"]


# -- removed only with remove_standing ---------------------------------------------------------


def test_without_remove_standing_a_finding_is_only_reported(bot, webhook):
    webhook.members = [MALLORY]
    result = bot.sweep.sweep()
    assert result.removed == [] and webhook.calls == []


def test_with_remove_standing_the_member_is_revoked_through_the_strategy_and_audited(bot, webhook):
    bot.reload(remove_standing=True)
    webhook.members = [CAROL, MALLORY]
    bot.grant("carol")

    result = bot.sweep.sweep()

    [removed] = result.removed
    [revoke] = [c for c in webhook.calls if c["action"] == "revoke"]
    assert revoke == {
        "action": "revoke",
        "grant_id": f"s-{removed.id}",
        "request_id": None,
        "user": "mallory",
        "user_email": "mallory@acme.com",
        "resource": "prod-db",
        "expires_at": None,
        "reason": "standing access without a grant",
        "account": "db-mallory",
    }
    assert [e["event"] for e in bot.events()] == ["standing_found", "standing_removed"]
    texts = channel_texts(result)
    assert "The bot removes them now" in texts[0]
    assert (
        texts[1]
        == "Removed standing access to prod-db (no grant explained it): mallory (mallory@acme.com; account db-mallory)."
    )
    assert bot.sweep.report(ADMIN, "prod-db").splitlines()[1] == "Nothing found."


def test_a_failed_removal_is_announced_and_retried_with_backoff(bot, webhook, clock):
    bot.reload(remove_standing=True)
    webhook.members = [MALLORY]
    webhook.set_status(500)

    result = bot.sweep.sweep()

    [failed] = result.failed
    assert failed.attempts == 1 and failed.next_try_at == START + timedelta(seconds=10)
    assert any("REMOVAL FAILED" in t and "attempt 1" in t for t in channel_texts(result))
    assert bot.sweep.next_try_at() == START + timedelta(seconds=10)
    assert bot.sweep.retry().removed == []  # not yet due

    clock.advance(seconds=10)
    retried = bot.sweep.retry()
    assert retried.failed[0].next_try_at == START + timedelta(seconds=30)  # then 20s later

    webhook.set_status(200)
    clock.advance(seconds=20)
    assert [f.user for f in bot.sweep.retry().removed] == ["mallory"]
    assert [e["event"] for e in bot.events()] == [
        "standing_found",
        "standing_remove_failed",
        "standing_remove_failed",
        "standing_removed",
    ]


def test_a_removal_is_not_made_once_a_grant_explains_the_member(bot, webhook, clock):
    bot.reload(remove_standing=True)
    webhook.members = [CAROL]
    webhook.set_status(500)
    bot.sweep.sweep()  # carol had no grant: found, and her removal failed

    webhook.set_status(200)
    bot.grant("carol")
    clock.advance(seconds=10)

    assert bot.sweep.retry().removed == []
    assert webhook.count_all("revoke") == 0


def test_above_the_removal_limit_nothing_is_removed_and_the_admins_are_told_once(
    bot, webhook, clock
):
    bot.reload(remove_standing=True)
    bot.restart(max_removals=2)
    webhook.members = [MALLORY, {"user": "eve"}, {"user": "trent"}]

    first = bot.sweep.sweep()
    clock.advance(hours=1)
    second = bot.sweep.sweep()

    assert first.removed == [] and len(first.held_back) == 3
    [announced] = channel_texts(first)
    assert "wanted more removals than ACCESS_STANDING_MAX_REMOVALS, so it removed none" in announced
    assert webhook.calls == []
    [alert] = first.alerts
    assert (
        "3 accounts would be removed (prod-db: 3), more than ACCESS_STANDING_MAX_REMOVALS (2)"
        in alert
    )
    assert second.alerts == [] and second.removed == []
    assert [e["event"] for e in bot.events()].count("standing_removal_held") == 1


def test_a_forced_removal_removes_even_where_the_policy_only_reports(bot, webhook):
    webhook.members = [MALLORY]
    assert [f.user for f in bot.sweep.sweep(remove=True, actor="cli").removed] == ["mallory"]
    assert bot.events()[-1]["actor"] == "cli"


# -- cleared -------------------------------------------------------------------------------------


def test_a_finding_that_disappears_is_audited_as_cleared(bot, webhook):
    webhook.members = [MALLORY]
    bot.sweep.sweep()
    webhook.members = []

    result = bot.sweep.sweep()

    [(finding, why)] = result.cleared
    assert finding.user == "mallory" and why == "no longer holds it"
    assert [e["event"] for e in bot.events()] == ["standing_found", "standing_cleared"]
    assert result.notices == []


def test_a_finding_a_grant_explains_later_is_cleared_with_the_grant(bot, webhook):
    webhook.members = [CAROL]
    bot.sweep.sweep()
    rid = bot.grant("carol")

    [(_, why)] = bot.sweep.sweep().cleared
    assert why == f"explained now by grant {rid}"


def test_findings_of_a_resource_no_policy_defines_any_more_are_cleared(bot, webhook, tmp_path):
    webhook.members = [MALLORY]
    bot.sweep.sweep()
    policy_file(
        tmp_path / "policies", "db.py", policy(webhook.url).replace("prod-db", "staging-db")
    )
    assert bot.service.reload_policies("admin").ok

    result = bot.sweep.sweep()

    assert [why for _, why in result.cleared] == ["the resource is no longer in the policies"]
    assert bot.store.standing().keys() == {"staging-db"}


# -- cannot list, cannot run -------------------------------------------------------------------


def test_a_target_that_cannot_list_is_reported_not_guessed(bot, webhook):
    webhook.members = None  # answers 501 to list

    result = bot.sweep.sweep()

    assert result.found == [] and "HTTP 501 to list" in result.unlisted["prod-db"].reason
    report = bot.sweep.report(ADMIN)
    assert "Targets that cannot be checked:" in report
    assert "- prod-db cannot be listed (since 2026-11-24 09:00:00 UTC)" in report


def test_a_target_that_fails_to_list_keeps_its_findings_and_removes_nothing(bot, webhook):
    bot.reload(remove_standing=True)
    webhook.members = [MALLORY]
    webhook.set_status(500)
    bot.sweep.sweep()  # found; its removal failed
    webhook.set_status(200)
    webhook.list_status = 503

    result = bot.sweep.sweep()

    assert "HTTP 503" in result.unlisted["prod-db"].reason and result.cleared == []
    assert [f.user for f in result.findings["prod-db"]] == ["mallory"]
    assert webhook.count_all("revoke") == 0  # from an old list: only `retry` removes
    assert "could not be listed" in bot.sweep.report(ADMIN)


def test_no_sweep_runs_while_the_policies_failed_to_load(bot, webhook, tmp_path):
    webhook.members = [MALLORY]
    policy_file(tmp_path / "policies", "db.py", "RESOURCES = {")  # a syntax error

    assert not bot.service.reload_policies("admin").ok
    result = bot.sweep.sweep()

    assert result.skipped.startswith("the policy files did not load")
    assert webhook.lists == [] and bot.events() == []
    job = StandingJob(bot.sweep, timedelta(hours=1), bot.service.clock, print, print)
    assert not job.due(START)

    bot.reload()
    assert job.due(START) and [f.user for f in bot.sweep.sweep().found] == ["mallory"]


# -- the job --------------------------------------------------------------------------------------


def test_the_job_sweeps_at_once_then_every_interval_and_retries_failed_removals_between(
    bot, webhook, clock
):
    bot.reload(remove_standing=True)
    webhook.members = [MALLORY]
    webhook.set_status(500)
    delivered: list = []
    job = StandingJob(bot.sweep, timedelta(hours=1), clock, delivered.extend, print)

    assert job.due(clock())
    job.run()
    assert len(webhook.lists) == 1 and not job.due(clock())

    clock.advance(seconds=10)  # the failed removal's retry: no listing
    assert job.due(clock())
    webhook.set_status(200)
    job.run()
    assert len(webhook.lists) == 1 and webhook.count_all("revoke") == 1
    assert any("Removed standing access" in n.text for n in delivered)

    clock.advance(minutes=59)
    assert not job.due(clock())
    clock.advance(minutes=1)
    assert job.due(clock())


# -- who may look ------------------------------------------------------------------------------


def test_standing_is_for_admins_and_the_resources_approvers(bot, webhook):
    webhook.members = [MALLORY]
    bot.sweep.sweep()

    assert "mallory" in bot.sweep.report(person("alice"), "prod-db")
    assert "mallory" in bot.sweep.report(person("bob"))
    with pytest.raises(AccessError, match="for admins and the approvers of prod-db"):
        bot.sweep.report(person("carol"), "prod-db")
    with pytest.raises(AccessError, match="for admins and approvers"):
        bot.sweep.report(person("carol"))
    with pytest.raises(AccessError, match="Unknown resource `nope`"):
        bot.sweep.report(ADMIN, "nope")


def test_a_resource_not_listed_yet_says_so(bot):
    assert "Not checked yet: prod-db." in bot.sweep.report(ADMIN)


# -- the rule ------------------------------------------------------------------------------------


def explainer(holders=(), allowed=()):
    return Explainer(holders, allowed)


def test_a_recorded_account_decides_against_a_grant_that_recorded_one():
    grant = Holder("k3m9qx", "acct-1", frozenset({"carol"}))
    # Someone else at the target who took the name carol is not carol's grant.
    impostor = Member("carol", None, "acct-2")
    assert explainer([grant]).why(impostor) is None
    assert explainer([grant]).why(Member("carol.new", None, "acct-1")) == "grant k3m9qx"


def test_a_grant_with_no_account_yet_matches_by_name_or_email_case_insensitively():
    grant = Holder("k3m9qx", None, frozenset({"carol", "carol@acme.com"}))
    assert explainer([grant]).why(Member("CAROL@acme.com", None, "acct-9")) == "grant k3m9qx"


def test_a_standing_entry_matches_the_targets_account_id_too():
    allowed = Allowed("00uSVC", frozenset({"00usvc"}))
    assert (
        explainer(allowed=[allowed]).why(Member("svc", None, "00uSVC"))
        == "the standing list (00uSVC)"
    )


def test_compare_finds_the_new_keeps_the_known_and_clears_the_gone():
    known = compare("db", [Member("a", None, "1"), Member("b", None, "2")], explainer(), [], START)
    assert [f.key for f in known.found] == ["account:1", "account:2"]

    later = compare(
        "db",
        [Member("a2", None, "1"), Member("c"), Member("c")],  # a renamed; c listed twice
        explainer(),
        known.found,
        START + timedelta(hours=1),
    )

    assert [(f.user, f.found_at) for f in later.kept] == [("a2", START)]
    assert [f.key for f in later.found] == ["user:c"]
    assert [(f.key, why) for f, why in later.cleared] == [("account:2", "no longer holds it")]


# -- the policy keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"standing": "@alice"}, "prod-db.standing: must be a list like"),
        ({"standing": ["@alice", ""]}, "prod-db.standing: every entry must be a handle"),
        ({"remove_standing": "yes"}, "prod-db.remove_standing: must be True or False"),
    ],
)
def test_standing_keys_are_checked_when_the_policy_loads(tmp_path, overrides, message):
    policy_file(tmp_path, "db.py", policy("https://hooks.example/db", **overrides))
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert any(message in e and e.startswith("db.py:") for e in caught.value.errors)


def test_the_readme_standing_example_loads_as_copied(tmp_path):
    example = python_blocks("### Standing access: who holds it without a grant")[0]
    policy_file(tmp_path, "okta.py", example)
    resource = load_policies(tmp_path).get("okta-prod-admins")
    assert resource.standing == ("@alice", "svc-deploy@acme.com") and resource.remove_standing
    assert resource.summary()["standing"] == ["@alice", "svc-deploy@acme.com"]


# -- the settings --------------------------------------------------------------------------------


def test_the_sweep_runs_hourly_by_default_and_0_turns_it_off():
    assert Settings.load(environ={}).standing_sweep == timedelta(hours=1)
    assert Settings.load(environ={}).standing_max_removals == 20
    assert Settings.load(environ={"ACCESS_STANDING_SWEEP": "0"}).standing_sweep is None
    assert Settings.load(environ={"ACCESS_STANDING_SWEEP": "15m"}).standing_sweep == timedelta(
        minutes=15
    )


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ACCESS_STANDING_SWEEP", "hourly", "a duration like 1h or 30m, or 0 to turn"),
        ("ACCESS_STANDING_MAX_REMOVALS", "-1", "a whole number of 0 or more, e.g. 20"),
        ("ACCESS_STANDING_MAX_REMOVALS", "lots", "a whole number of 0 or more, e.g. 20"),
    ],
)
def test_bad_sweep_settings_say_what_to_write(key, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.load(environ={key: value})
