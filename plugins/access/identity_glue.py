"""Who sent a command, as the plugin sees it: on Slack the user id (and handle and
e-mail from users.info, refused when Slack cannot confirm them), elsewhere the backend's
person; admins by BOT_ADMINS. A mixin of `Access`."""

from __future__ import annotations

import fnmatch
import logging

from errbot.backends.base import Person, RoomOccupant

from accessbot.domain import AccessError  # noqa: E402
from accessbot.integrations.slack import NOT_CONFIRMED  # noqa: E402
from accessbot.service import Actor  # noqa: E402

log = logging.getLogger("errbot.plugins.access")


class Identity:
    def actor(self, frm) -> Actor:
        """Who sent a command. On Slack: the user id, and handle and e-mail from users.info
        (refused when Slack cannot confirm them); never a name the message carries."""
        if self.on_slack:
            if self.slack is None:
                raise AccessError(NOT_CONFIRMED)
            return self.slack.actor(str(getattr(frm, "userid", "") or ""))
        person = frm.person if isinstance(frm, RoomOccupant) else frm
        raw = getattr(person, "person", person)
        if isinstance(raw, Person):  # the Text backend nests a person inside an occupant
            person, raw = raw, raw.person
        raw = str(raw)
        handle = getattr(person, "nick", None) or getattr(frm, "nick", None) or raw
        email = (
            getattr(person, "email", None)
            or getattr(frm, "email", None)
            or self.settings.user_emails.get(handle.lstrip("@").lower())
        )
        # No user ids on this backend: the handle is the id (identity.NamedPeople).
        return Actor(
            handle=handle,
            email=email or None,
            address=self.address_of(raw),
            is_admin=self.is_admin(frm, raw, handle),
        )

    @property
    def on_slack(self) -> bool:
        return self._bot.mode.startswith("slack")

    def person_named(self, text: str) -> Actor:
        """Someone named in a command (`carol`, `@carol`, `carol@example.com`), with the
        e-mail PagerDuty lookups need: ACCESS_USER_EMAILS, else the Slack profile."""
        text = text.strip()
        if "@" in text[1:]:
            return Actor(handle=text.split("@")[0], email=text)
        handle = text.lstrip("@")
        email = self.settings.user_emails.get(handle.lower())
        user_id = ""
        if self._bot.mode.startswith("slack"):
            try:
                person = self.build_identifier("@" + handle)
                email = email or getattr(person, "email", None)
                user_id = str(getattr(person, "userid", "") or "")
            except Exception:  # noqa: BLE001 - an unknown name is still a dry run
                log.info("could not look up %s on Slack", handle, exc_info=True)
        return Actor(handle=handle, id=user_id, email=email or None)

    def address_of(self, raw: str) -> str:
        """The text `build_identifier` turns back into this person, for later DMs."""
        if self._bot.mode == "text":
            return "@" + raw.lstrip("@")
        if self._bot.mode.startswith("slack"):
            return f"<@{raw}>"
        return raw

    def is_admin(self, frm, raw: str, handle: str) -> bool:
        names = {str(getattr(frm, "aclattr", raw)), raw, handle, "@" + handle.lstrip("@")}
        return any(
            fnmatch.fnmatchcase(name, str(pattern))
            for pattern in self.bot_config.BOT_ADMINS
            for name in names
        )

    # -- Slack --------------------------------------------------------------------
