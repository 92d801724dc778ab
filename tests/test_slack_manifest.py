"""slack-app-manifest.yml against the code: every Slack Web API method that the plugin and
the installed slackv3 backend call has a scope the manifest grants.

The methods are collected from the source (`client.<method>(` calls on a WebClient, and
method names as strings, as in `api_call("users.list")`), so a new call without its
scope fails here rather than in a workspace with `missing_scope`.
"""

from __future__ import annotations

import re
from pathlib import Path

import slackv3
import yaml
from slack_sdk.web import WebClient

from tests.conftest import ROOT

MANIFEST = ROOT / "slack-app-manifest.yml"
SOURCES = (ROOT / "plugins", Path(slackv3.__file__).parent)

# Bot-token scopes of each method, from Slack's method pages
# (https://docs.slack.dev/reference/methods/<method>): any one of them will do; an empty
# tuple means the method needs none.
SCOPES = {
    "auth.test": (),
    "bots.info": ("users:read",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "conversations.info": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.list": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.members": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.open": ("im:write", "mpim:write", "channels:manage", "groups:write"),
    "team.info": ("team:read",),
    "usergroups.list": ("usergroups:read",),
    "usergroups.users.list": ("usergroups:read",),
    "users.info": ("users:read",),
    "users.list": ("users:read",),
    "users.lookupByEmail": ("users:read.email",),
    "views.open": (),
    "views.update": (),
}

# Methods slackv3 can call that this bot never uses, so their scopes are not asked for:
# errbot's room and presence commands, and file uploads.
NOT_GRANTED = {
    "conversations.archive": "errbot's !room destroy; the bot manages no channels",
    "conversations.create": "errbot's !room create",
    "conversations.invite": "errbot's !room invite",
    "conversations.join": "errbot's !room join; people /invite the bot instead",
    "conversations.leave": "errbot's !room leave",
    "conversations.setPurpose": "errbot's room purpose",
    "conversations.setTopic": "errbot's !room topic",
    "files.upload.v2": "errbot's send_stream_request; the bot sends no files",
    "reactions.add": "errbot's add_reaction; the bot reacts to nothing",
    "reactions.remove": "errbot's remove_reaction",
    "users.setPresence": "errbot's change_presence; the manifest keeps the bot always online",
}


def web_api_methods_called() -> dict[str, set[str]]:
    """Slack method name -> the files calling it, in the plugin and in slackv3."""
    found: dict[str, set[str]] = {}
    for source in SOURCES:
        for path in source.rglob("*.py"):
            text = path.read_text()
            names = {
                name
                for name in re.findall(r"\.([a-z]+(?:_[A-Za-z0-9]+)+)\(", text)
                if name != "api_call" and callable(getattr(WebClient, name, None))
            }
            methods = {name.replace("_", ".") for name in names}
            methods |= {
                literal
                for literal in re.findall(r"[\"']([a-z]+(?:\.[A-Za-z0-9]+)+)[\"']", text)
                if callable(getattr(WebClient, literal.replace(".", "_"), None))
            }
            for method in methods:
                found.setdefault(method, set()).add(path.name)
    return found


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_every_slack_method_called_is_in_the_scope_table():
    called = web_api_methods_called()

    # The collector sees the calls: ours, slackv3's, and those made through strings.
    assert {"chat.postMessage", "views.open", "usergroups.users.list", "users.list"} <= set(called)
    unknown = {m: sorted(files) for m, files in called.items() if m not in SCOPES | NOT_GRANTED}
    assert unknown == {}, "add each to SCOPES (from Slack's method page) or NOT_GRANTED"


def test_the_manifest_grants_a_scope_for_every_slack_method_called():
    granted = set(manifest()["oauth_config"]["scopes"]["bot"])
    called = web_api_methods_called()

    missing = {
        method: SCOPES[method]
        for method in called
        if SCOPES.get(method) and not granted & set(SCOPES[method])
    }

    assert missing == {}


def test_the_manifest_subscribes_to_messages_and_turns_interactivity_on():
    settings = manifest()["settings"]

    assert {"message.channels", "message.im"} <= set(settings["event_subscriptions"]["bot_events"])
    assert settings["interactivity"]["is_enabled"] is True
