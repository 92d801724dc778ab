"""Okta strategy: membership of an Okta group, for the requester found by e-mail.

`{"type": "okta_group", "org_url": "https://acme.okta.com", "group_id": "00g...",
"token_env": "OKTA_API_TOKEN"}`. Grant finds the user by e-mail, records their Okta
user id and does `PUT /api/v1/groups/{group}/users/{id}`; revoke does the same with
`DELETE` on the recorded id, so a changed login or e-mail does not matter. A 404 on the
revoke counts as done only when the group's member list, read in full, lacks the id.
Okta has no expiry on memberships, so `extend` needs no call. `members()` reads the
group's member list, every page.

With `"end_sessions": true`, the revoke then clears the user's sessions (Okta's "Revoke
all User sessions": `DELETE /api/v1/users/{id}/sessions?oauthTokens=true`), so a browser
signed in to Okta must sign in again, and the OAuth and OpenID Connect tokens Okta issued
to them stop working. Sessions an app keeps on its own (a SAML app's cookie) are that
app's. Without it, sessions opened before the revoke are left to Okta's session policy,
which the bot cannot see: its revoke notice says their fate is unknown.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import requests

from ..safe_text import redact_url
from .base import (
    UNKNOWN_SESSIONS,
    Done,
    Member,
    Sessions,
    SettingsError,
    Strategy,
    StrategyError,
    target_host,
)
from .rest import RestClient, json_field


def okta_error(response: requests.Response) -> str:
    """Okta's own words: `errorSummary (errorCode)` plus any causes."""
    try:
        body = response.json()
    except ValueError:
        return json_field(response)
    if not isinstance(body, dict) or "errorSummary" not in body:
        return json_field(response)
    words = str(body["errorSummary"])
    causes = [
        str(c.get("errorSummary")) for c in body.get("errorCauses") or [] if isinstance(c, dict)
    ]
    if causes:
        words += " (" + "; ".join(causes) + ")"
    if body.get("errorCode"):
        words += f" [{body['errorCode']}]"
    return words[:300]


CLEARED = Sessions("ended", "Okta sign-in sessions and the OAuth tokens Okta issued")
OKTA_SESSIONS_UNKNOWN = Sessions(UNKNOWN_SESSIONS.fate, "Okta sign-in sessions")


class OktaGroupStrategy(Strategy):
    kind = "okta_group"
    allowed_keys = frozenset(
        {"type", "org_url", "group_id", "token_env", "timeout", "end_sessions"}
    )

    def __init__(
        self,
        org_url: str,
        group_id: str,
        token_env: str,
        timeout: float,
        session: requests.Session | None = None,
        sleep=time.sleep,
        end_sessions: bool = False,
    ):
        self.end_sessions = end_sessions
        self.org_url = org_url
        self.group_id = group_id
        self.token_env = token_env
        self.timeout = timeout
        self.session = session
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: dict, **wiring) -> OktaGroupStrategy:
        cls.check_keys(settings)
        org_url = cls.url_setting(settings, "org_url", "https://acme.okta.com")
        group_id = cls.text_setting(settings, "group_id", "00g1abcd2EFGH3ijk4x7")
        if "/" in group_id:
            raise SettingsError(
                "strategy.group_id", "is the group's id (00g...), not a URL or a name"
            )
        token_env = cls.env_setting(settings, "token_env", "OKTA_API_TOKEN")
        end_sessions = settings.get("end_sessions", False)
        if not isinstance(end_sessions, bool):
            raise SettingsError("strategy.end_sessions", "must be True or False")
        return cls(
            org_url,
            group_id,
            token_env,
            cls.timeout_setting(settings, "10s"),
            end_sessions=end_sessions,
            **wiring,
        )

    def _client(self) -> RestClient:
        token = self.secret(self.token_env, "the Okta API token")
        return RestClient(
            "Okta",
            self.org_url,
            {"Authorization": f"SSWS {token}", "Accept": "application/json"},
            self.timeout,
            session=self.session,
            sleep=self.sleep,
            explain=okta_error,
        )

    def call(self, action: str, payload: dict) -> Done:
        if action == "extend":
            return Done("Okta group memberships do not expire; nothing to extend")
        if action not in ("grant", "revoke"):
            raise StrategyError(f"okta_group cannot {action!r}")
        client = self._client()
        account = payload.get("account")
        if action == "grant" or not account:
            email = payload.get("user_email")
            if not email:
                raise StrategyError(
                    f"no e-mail for @{payload['user']} to find them in Okta: add it to "
                    "ACCESS_USER_EMAILS (or to their chat profile)"
                )
            account = self._user_id(client, email, revoking=action == "revoke")
            who = email
        else:
            who = f"Okta user {account}" + (
                f" ({payload['user_email']} when granted)" if payload.get("user_email") else ""
            )
        path = f"/api/v1/groups/{quote(self.group_id, safe='')}/users/{quote(account, safe='')}"
        if action == "grant":
            answer = client.call("PUT", path)
            if answer.status_code in (200, 204):
                return Done(f"Okta: {who} added to group {self.group_id}", account=account)
            raise client.failure(answer, f"add {who} to group {self.group_id}")
        answer = client.call("DELETE", path)
        if answer.status_code in (200, 204):
            return self._sessions_ended(
                client, account, who, Done(f"Okta: {who} removed from group {self.group_id}")
            )
        if answer.status_code != 404:
            raise client.failure(answer, f"remove {who} from group {self.group_id}")
        # Okta says 404 for "not a member", "no such group" and "no such user": only the
        # group's member list, read in full and compared by id, proves the first.
        members = self._listed(client)
        if any(isinstance(m, dict) and m.get("id") == account for m in members):
            raise StrategyError(
                f"Okta still lists {who} in group {self.group_id} but would not remove "
                "them; the revoke is retried"
            )
        return self._sessions_ended(
            client, account, who, Done(f"Okta: {who} was not in group {self.group_id}")
        )

    def _sessions_ended(self, client: RestClient, account: str, who: str, done: Done) -> Done:
        """`done` with the account, after clearing the user's Okta sessions and the OAuth
        tokens Okta issued to them when the resource asks for it (`end_sessions`)."""
        if not self.end_sessions:
            return Done(done.note, account=account)
        answer = client.call(
            "DELETE", f"/api/v1/users/{quote(account, safe='')}/sessions?oauthTokens=true"
        )
        # 404: Okta has no such user any more, so no session of theirs either.
        if answer.status_code not in (200, 204, 404):
            # The membership is gone, but sessions opened with it live on: not done yet.
            raise client.failure(answer, f"clear the Okta sessions of {who}")
        return Done(f"{done.note}; their Okta sessions cleared", account=account, sessions=CLEARED)

    def members(self, resource: str) -> list[Member]:
        found = []
        for entry in self._listed(self._client()):
            if not isinstance(entry, dict) or not entry.get("id"):
                continue
            profile = entry.get("profile") if isinstance(entry.get("profile"), dict) else {}
            found.append(
                Member(
                    str(profile.get("login") or entry["id"]),
                    str(profile["email"]) if profile.get("email") else None,
                    str(entry["id"]),
                )
            )
        return found

    def _listed(self, client: RestClient) -> list:
        """The group's members as Okta lists them, every page."""
        return client.get_all(
            f"/api/v1/groups/{quote(self.group_id, safe='')}/users?limit=200",
            f"list the members of group {self.group_id}",
        )

    def _user_id(self, client: RestClient, email: str, revoking: bool) -> str:
        """The Okta user id of the user whose login is `email` now."""
        found = client.call("GET", f"/api/v1/users/{quote(email, safe='@')}")
        if found.status_code == 404:
            if revoking:
                # Their login may have changed, or the user was deleted: a 404 for a
                # name proves nothing about who is still in the group.
                raise StrategyError(
                    f"Okta has no user {email} any more (login changed or user deleted?), "
                    "and this grant is older than recorded user ids, so the bot cannot "
                    f"tell whether they are still in group {self.group_id}: check the "
                    "group by hand; the revoke is retried"
                )
            raise StrategyError(f"Okta has no user {email}: {okta_error(found)}")
        if found.status_code != 200:
            raise client.failure(found, f"look up the user {email}")
        try:
            return str(found.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StrategyError(f"Okta's answer for user {email} has no id") from exc

    def sessions_at_revoke(self) -> Sessions:
        return CLEARED if self.end_sessions else OKTA_SESSIONS_UNKNOWN

    def target_key(self) -> tuple:
        return (self.kind, target_host(self.org_url), self.group_id)

    def describe(self) -> str:
        return f"okta_group (group {self.group_id} at {redact_url(self.org_url)})"
