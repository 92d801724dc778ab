"""The plugin's Slack glue: the Web API client of the SlackV3 backend (with the 429
retry handler), the Slack app (clicks, the request form) started and stopped, the
teams and app id we answer, a Slack user as an Actor. A mixin of `Access`."""

from __future__ import annotations

import logging
import os

from errbot.backends.base import RoomOccupant

from accessbot.integrations.slack_limits import (  # noqa: E402
    honour_rate_limits,
)
from accessbot.service import Actor  # noqa: E402

log = logging.getLogger("errbot.plugins.access")


STARTING = "The access bot is starting; try again in a moment. Nothing was done."


class SlackGlue:
    def slack_teams(self) -> frozenset[str]:
        """The Slack teams whose people may act: the bot's own and ACCESS_SLACK_ALLOWED_TEAMS."""
        own = (getattr(self._bot, "auth", None) or {}).get("team_id")
        return self.settings.slack_allowed_teams | ({own} if own else set())

    def slack_app_id(self) -> str:
        """This bot's Slack app, from auth.test ("" when Slack did not say)."""
        return str((getattr(self._bot, "auth", None) or {}).get("app_id") or "")

    def slack_web(self):
        """The SlackV3 backend's current WebClient (it makes a new one when it reconnects),
        waiting out Slack's 429s; None on other backends."""
        return honour_rate_limits(
            getattr(self._bot, "slack_web", None),
            observe=lambda method: self.metrics.chat_rate_limited.labels(method).inc(),
        )

    def start_slack(self):
        """On the SlackV3 backend: Block Kit cards, and clicks from socket mode or HTTP."""
        client = self.slack_web()
        if not self._bot.mode.startswith("slack") or client is None:
            return None
        import errbot.core_plugins
        from slack_app import SlackApp, guard_slack_urls  # Slack-only code

        guard_slack_urls(errbot.core_plugins.flask_app)

        identity = getattr(self.bot_config, "BOT_IDENTITY", {}) or {}
        app = SlackApp(
            service=self.service,
            for_command=self.backend.for_command,
            client=client,
            make_actor=self.slack_actor,
            deliver=self.deliver,
            tell=lambda address, text: self.send(self.build_identifier(address), text),
            signing_secret=os.environ.get("SLACK_SIGNING_SECRET") or identity.get("signing_secret"),
            teams=self.slack_teams,
            app_id=self.slack_app_id,
        )
        socket = getattr(self._bot, "slack_socket_mode", None)
        if socket is not None:
            # Ahead of the backend's own listener, which acknowledges every envelope with an
            # empty answer: a modal's validation errors must be in the first acknowledgement.
            socket.socket_mode_request_listeners.insert(0, app.on_socket_request)
        return app

    def answer_clicks_while_starting(self):
        """A socket-mode listener that, until the plugin is ready, acknowledges each click
        and tells the clicker privately to try again (the backend's own listener would
        acknowledge it and drop it)."""
        socket = getattr(self._bot, "slack_socket_mode", None)
        if socket is None:
            return None

        def starting(client, req) -> None:
            if req.type != "interactive" or getattr(self, "ready", False):
                return
            payload = req.payload if isinstance(req.payload, dict) else {}
            user = (payload.get("user") or {}).get("id")
            channel = (payload.get("channel") or {}).get("id") or (
                payload.get("container") or {}
            ).get("channel_id")
            if user and channel:
                try:
                    self.slack_web().chat_postEphemeral(channel=channel, user=user, text=STARTING)
                except Exception:  # noqa: BLE001 - the click is lost either way; say so in the log
                    log.warning("a click arrived while starting and could not be answered")

        socket.socket_mode_request_listeners.insert(0, starting)
        return starting

    def stop_answering_clicks(self, listener) -> None:
        socket = getattr(self._bot, "slack_socket_mode", None)
        if listener is not None and socket is not None:
            try:
                socket.socket_mode_request_listeners.remove(listener)
            except ValueError:
                pass

    def stop_slack(self) -> None:
        app = getattr(self, "slack", None)
        if app is None:
            return
        socket = getattr(self._bot, "slack_socket_mode", None)
        if socket is not None and app.on_socket_request in socket.socket_mode_request_listeners:
            socket.socket_mode_request_listeners.remove(app.on_socket_request)
        app.close()
        self.slack = None

    def slack_actor(self, user) -> Actor:
        """A Slack user (from users.info) as the service sees people."""
        email = user.email or self.settings.user_emails.get(user.handle.lower())
        return Actor(
            handle=user.handle,
            id=user.id,
            email=email or None,
            address=f"<@{user.id}>",
            is_admin=self.is_admin(None, user.id, user.handle),
        )

    def offer_slack_form(self, msg) -> bool:
        frm = msg.frm
        channel = frm.room.id if isinstance(frm, RoomOccupant) else getattr(frm, "channelid", "")
        try:
            self.slack.offer_request_form(frm.userid, channel)
            return True
        except Exception:  # noqa: BLE001 - fall back to the typed usage
            log.exception("could not offer the Slack request form")
            return False
