"""A small real HTTP server on 127.0.0.1 that plays Slack's Web API for the calls the bot
makes, and helpers that build and sign interactivity payloads the way Slack does.

Point a `slack_sdk.WebClient(base_url=fake.base_url)` at it. Every block list and view
it receives is parsed back through slack_sdk's models (which validate them); an invalid
one is refused with `invalid_blocks`, as Slack would, and recorded in `invalid`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from urllib.parse import parse_qs, urlencode, urlparse

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests import helpers
from tests.fakes import FakeHandler, serve_local, stop_local
from tests.slack_tiers import SlackTiers

TEAM = "T0ACME"
BOT_USER = "UBOT"
APP = "A0ACCESS"  # this bot's Slack app (auth.test), as every payload here names it


def form(values: dict) -> dict:
    """parse_qs gives lists; Slack's form fields are single values."""
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def validated_blocks(blocks) -> list[dict]:
    """Blocks as slack_sdk's models read them; raises if any is not valid Block Kit."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    parsed = Block.parse_all(blocks)
    if any(b is None for b in parsed):
        raise ValueError(f"unknown block type in {blocks}")
    for block in parsed:
        block.validate_json()
    return [b.to_dict() for b in parsed]


TOKEN = "xoxb-test-token"  # the token a test's own WebClient sends, when the fake checks one


class FakeSlack:
    """Slack's Web API for: auth.test, users.info, team.info, conversations.info/open/list,
        chat.postMessage/update/postEphemeral, views.open/update, usergroups.list and
        usergroups.users.list. The one Slack fake of the suite.

        `users` maps a user id to (name, email) or (name, email, team id); `channels` maps
        a channel name to its id. users.list pages `page_size` users at a time. A user id in
        `broken_users` makes users.info fail, as a timeout or Slack error would, once it has
        answered `broken_users[id]` more times. With a `token`, a call without
        `Authorization: Bearer <token>` is answered `invalid_auth`; with `error` set, every
        call is answered `{"ok": false, "error": error}`, and with `refuse` the calls it picks.
    `add_group` adds a user group.
    """

    def __init__(
        self,
        users: dict[str, tuple[str, str]] | None = None,
        channels: dict[str, str] | None = None,
        token: str | None = None,
    ):
        self.users = {BOT_USER: ("accessbot", ""), **(users or {})}
        self.deleted: set[str] = set()  # users who left: still listed, with "deleted": true
        self.broken_users: dict[str, int] = {}
        self.chat_delay = 0.0  # seconds every chat.* call takes
        self.tiers: SlackTiers | None = None  # Slack's rate limits, once `rate_limit()`
        self.page_size = 2
        # users.list answers the first page again with this next_cursor (Slack's own
        # example answer carries one that never changes); None: real paging.
        self.stuck_cursor: str | None = None
        self.channels = dict(channels or {})
        self.not_member: set[str] = set()  # channel ids the bot was never invited to
        self.archived: set[str] = set()  # channel ids archived
        self.messages: list[dict] = []  # every posted message, updated in place by chat.update
        self.updates: list[dict] = []  # every chat.update call
        self.ephemerals: list[dict] = []
        self.views: list[dict] = []  # views.open and views.update calls
        self.calls: list[str] = []  # method names, in order
        self.invalid: list[str] = []
        self.token = token
        self.error: str | None = None
        # (method, args) -> the error to answer that one call with, or None: a Slack that
        # refuses some calls (called under the fake's lock).
        self.refuse = None
        self.groups: list[dict] = []  # {"id", "handle", "users", "date_delete"}
        self.lock = threading.Lock()
        self._ts = itertools.count(1)
        fake = self

        class Handler(FakeHandler):
            def do_GET(self):
                self._handle(form(parse_qs(urlparse(self.path).query)))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if "json" in self.headers.get("Content-Type", ""):
                    args = json.loads(body or b"{}")
                else:
                    args = form(parse_qs(body.decode()))
                    args.update(form(parse_qs(urlparse(self.path).query)))
                self._handle(args)

            def _handle(self, args):
                method = urlparse(self.path).path.rsplit("/", 1)[-1]
                retry_after = fake.over_limit(method, args)
                if retry_after:
                    with fake.lock:
                        fake.calls.append(method)
                    answer = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                    headers = [("Retry-After", str(retry_after))]
                    self.respond(429, answer, "application/json", headers)
                    return
                if method.startswith("chat.") and fake.chat_delay:
                    threading.Event().wait(fake.chat_delay)  # a slow Slack, as measured
                with fake.lock:
                    fake.calls.append(method)
                    try:
                        answer = fake.answer(method, args, self.headers.get("Authorization"))
                    except Exception as exc:  # an invalid call is Slack's error, not a crash
                        fake.invalid.append(f"{method}: {exc}")
                        answer = {"ok": False, "error": "invalid_blocks"}
                # slackv3 reads the granted scopes from here to choose Events API over RTM.
                scopes = [("x-oauth-scopes", "chat:write,users:read,users:read.email")]
                self.respond(200, json.dumps(answer).encode(), "application/json", scopes)

        self.server, base = serve_local(Handler)
        self.base_url = base + "/api/"

    def rate_limit(self, tiers: SlackTiers | None = None) -> SlackTiers:
        """From now on, refuse calls over Slack's limits (`tiers`: the published ones on
        the real clock unless given); returns them, to read what was refused."""
        self.tiers = tiers or SlackTiers()
        return self.tiers

    def over_limit(self, method: str, args: dict) -> int:
        """The Retry-After (seconds) when this call is over Slack's limits, else 0."""
        if self.tiers is None:
            return 0
        channel = str(args.get("channel") or "")
        return self.tiers.take(method, self._channel_id(channel) or channel)

    # -- the API ---------------------------------------------------------------------

    def answer(self, method: str, args: dict, authorization: str | None = None) -> dict:
        if self.token is not None and authorization != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        if self.error:
            return {"ok": False, "error": self.error}
        if self.refuse is not None and (refused := self.refuse(method, args)):
            return {"ok": False, "error": refused}
        if method.startswith("usergroups."):
            return self._usergroups(method, args)
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER,
                "user": "accessbot",
                "team_id": TEAM,
                "app_id": APP,
            }
        if method == "users.info":
            user = args.get("user", "")
            if user in self.broken_users:
                if self.broken_users[user] <= 0:
                    return {"ok": False, "error": "fatal_error"}
                self.broken_users[user] -= 1
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": self._user(user)}
        if method == "users.list":
            # The workspace's own members: Slack Connect guests of other teams are not listed.
            ids = sorted(u for u in self.users if self._user(u)["team_id"] == TEAM)
            if self.stuck_cursor is not None:
                return {
                    "ok": True,
                    "members": [self._user(u) for u in ids[: self.page_size]],
                    # (after 100 calls it lets go, so a client that never stops fails a
                    # test instead of hanging it)
                    "response_metadata": {
                        "next_cursor": self.stuck_cursor
                        if self.calls.count("users.list") < 100
                        else ""
                    },
                }
            start = int(args.get("cursor") or 0)
            page = ids[start : start + self.page_size]
            more = start + self.page_size < len(ids)
            return {
                "ok": True,
                "members": [self._user(u) for u in page],
                "response_metadata": {"next_cursor": str(start + self.page_size) if more else ""},
            }
        if method == "users.lookupByEmail":
            wanted = str(args.get("email", "")).lower()
            for user, (_, email, *_team) in self.users.items():
                if email and email.lower() == wanted:
                    return {"ok": True, "user": self._user(user)}
            return {"ok": False, "error": "users_not_found"}
        if method == "bots.info":
            bot = str(args.get("bot", ""))
            return {"ok": True, "bot": {"id": bot, "app_id": "A0HOOK", "name": "hook"}}
        if method == "team.info":
            return {"ok": True, "team": {"id": TEAM, "domain": "acme"}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", ""))[1:]}}
        if method == "conversations.info":
            return {"ok": True, "channel": self._channel_info(args.get("channel", ""))}
        if method == "conversations.list":
            chans = [self._channel_info(cid) for cid in self.channels.values()]
            return {"ok": True, "channels": chans, "response_metadata": {"next_cursor": ""}}
        if method == "chat.postMessage":
            channel = self._channel_id(args.get("channel", ""))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            if channel in self.archived:
                return {"ok": False, "error": "is_archived"}
            if channel in self.not_member:
                return {"ok": False, "error": "not_in_channel"}
            message = {
                "channel": channel,
                "ts": f"1700000000.{next(self._ts):06d}",
                "text": args.get("text", ""),
                "blocks": validated_blocks(args["blocks"]) if args.get("blocks") else [],
                "thread_ts": args.get("thread_ts"),
                "reply_broadcast": args.get("reply_broadcast") in (True, "true", "1"),
            }
            self.messages.append(message)
            return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}
        if method == "chat.update":
            blocks = validated_blocks(args["blocks"]) if args.get("blocks") else []
            for message in self.messages:
                if message["channel"] == args.get("channel") and message["ts"] == args.get("ts"):
                    message.update(text=args.get("text", ""), blocks=blocks)
                    self.updates.append(dict(message))
                    return {"ok": True, "channel": message["channel"], "ts": message["ts"]}
            return {"ok": False, "error": "message_not_found"}
        if method == "chat.postEphemeral":
            self.ephemerals.append(
                {
                    "channel": args.get("channel"),
                    "user": args.get("user"),
                    "text": args.get("text", ""),
                    "blocks": validated_blocks(args["blocks"]) if args.get("blocks") else [],
                }
            )
            return {"ok": True, "message_ts": "1700000000.999999"}
        if method in ("views.open", "views.update"):
            view = args["view"] if isinstance(args["view"], dict) else json.loads(args["view"])
            View(**view).validate_json()
            validated_blocks(view["blocks"])
            self.views.append({"method": method, **args, "view": view})
            return {"ok": True, "view": {"id": "V0MODAL", "hash": "h1", **view}}
        return {"ok": False, "error": "unknown_method"}

    def add_group(self, group_id: str, handle: str, users: list[str], deleted: bool = False):
        with self.lock:
            self.groups.append(
                {"id": group_id, "handle": handle, "users": users, "date_delete": int(deleted)}
            )

    def _usergroups(self, method: str, args: dict) -> dict:
        if method == "usergroups.list":
            groups = [
                {
                    "id": g["id"],
                    "team_id": TEAM,
                    "name": g["handle"].title(),
                    "handle": g["handle"],
                    "date_delete": g["date_delete"],
                    "user_count": len(g["users"]),
                }
                for g in self.groups
            ]
            return {"ok": True, "usergroups": groups}
        if method == "usergroups.users.list":
            group = next((g for g in self.groups if g["id"] == args.get("usergroup")), None)
            if group is None:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(group["users"])}
        return {"ok": False, "error": "unknown_method"}

    def _user(self, user: str) -> dict:
        name, email, *team = self.users[user]
        # A display name unlike the handle, as in real workspaces: `@bob` in a policy
        # is the user's `name`, never "Bob B.".
        shown = f"{name.title()} {name[0].upper()}."
        profile = {"display_name": shown, "real_name": shown, "email": email}
        team_id = team[0] if team else TEAM
        found = {"id": user, "name": name, "team_id": team_id, "profile": profile}
        return {**found, "deleted": True} if user in self.deleted else found

    def _channel_id(self, name_or_id: str) -> str | None:
        if name_or_id[:1] in ("C", "G", "D"):
            return name_or_id
        return self.channels.get(name_or_id.lstrip("#"))

    def _channel_info(self, channel_id: str) -> dict:
        names = {cid: name for name, cid in self.channels.items()}
        info = {
            "id": channel_id,
            "name": names.get(channel_id, channel_id.lower()),
            "topic": {"value": ""},
            "purpose": {"value": ""},
            "is_private": False,
        }
        if channel_id.startswith("D"):
            info.update(is_im=True, user="U" + channel_id[1:])
        return info

    # -- what tests read ----------------------------------------------------------------

    def posted(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict]:
        with self.lock:
            return [
                dict(m)
                for m in self.messages
                if (channel is None or m["channel"] == channel)
                and (thread_ts is None or m["thread_ts"] == thread_ts)
            ]

    def cards(self, channel: str) -> list[dict]:
        """Top-level messages with blocks in `channel` (the approval cards)."""
        return [m for m in self.posted(channel) if m["blocks"] and not m["thread_ts"]]

    def dms(self, user_id: str) -> list[str]:
        return [m["text"] for m in self.posted("D" + user_id[1:])]

    def ephemeral_to(self, user_id: str) -> list[str]:
        with self.lock:
            return [e["text"] for e in self.ephemerals if e["user"] == user_id]

    def wait(self, predicate, what: str, timeout: float = 10.0):
        """Poll until `predicate()` is truthy (the bot works in its own threads)."""
        return helpers.eventually(
            predicate, what, timeout, explain=lambda: f"calls: {self.calls[-20:]}"
        )

    def close(self) -> None:
        stop_local(self.server)


# -- interactivity payloads, built and signed like Slack's ---------------------------------


def click_payload(action_id: str, request_id: str, user_id: str, card: dict) -> dict:
    """A `block_actions` payload for a button on a posted card."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user_id, "team_id": TEAM},
        "api_app_id": APP,
        "container": {
            "type": "message",
            "message_ts": card["ts"],
            "channel_id": card["channel"],
            "is_ephemeral": False,
        },
        "trigger_id": "1337.42.abcd",
        "channel": {"id": card["channel"], "name": "access-approvals"},
        "message": {"ts": card["ts"], "text": card["text"], "blocks": card["blocks"]},
        "response_url": "https://hooks.slack.invalid/actions/T0ACME/1/xyz",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"access:{request_id}:0",
                "value": request_id,
                "action_ts": "1700000001.000100",
            }
        ],
    }


def submission_payload(
    user_id: str, resource: str, duration: str, reason: str, fields: dict | None = None
) -> dict:
    """A `view_submission` payload of the request modal (`fields`: its prompt fields)."""

    def select(value):
        return {
            "type": "static_select",
            "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}},
        }

    return {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user_id, "team_id": TEAM},
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": "access_request_modal",
            "hash": "h1",
            "state": {
                "values": {
                    "resource": {"access_pick_resource": select(resource)},
                    "duration": {"duration": select(duration)},
                    "reason": {"reason": {"type": "plain_text_input", "value": reason}},
                    **{
                        f"field:{name}": {"value": {"type": "plain_text_input", "value": value}}
                        for name, value in (fields or {}).items()
                    },
                }
            },
        },
    }


def signed(payload: dict, secret: str, timestamp: int | None = None) -> tuple[bytes, dict]:
    """The form body and headers Slack would send for `payload`."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{timestamp}:{body.decode()}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
    }
    return body, headers
