"""The plugin's half that tells people things: a command's notices held back until its
reply is sent, notices the service could not store put in the outbox, the delivery
workers' send (paced per Slack channel), and the one function that puts a notice on the
chat platform. A mixin of `Access`: it uses the plugin's backend, settings, metrics and
outbox.

The service writes its notices to the outbox itself, in the commit of each change
(`UnitOfWork.announce`, through `DeliveryWorkers.put`); they come back marked `stored`
and are not put again here."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext

from accessbot import messages  # noqa: E402
from accessbot.certification import PAGES as CERTIFICATION_PAGES  # noqa: E402
from accessbot.delivery import (  # noqa: E402
    CHANNEL_ERRORS,
    RATE_LIMITED,
    Attempt,
    error_code,
    is_permanent,
)
from accessbot.integrations.slack_limits import (  # noqa: E402
    rate_limits_reported,
    slack_calls_watched,
)
from accessbot.outbox import Entry, notice_of  # noqa: E402
from accessbot.service import Notice  # noqa: E402

log = logging.getLogger("errbot.plugins.access")


def unstored(notices: list[Notice]) -> list[Notice]:
    """The notices the service did not write to the outbox in their commit."""
    return [notice for notice in notices if not notice.stored]


class Delivery:
    def held_back(self, held: set[int]):
        """Around a command's service call: what it writes to the outbox waits in `held`
        until `let_go(held)` (after its reply)."""
        if self.deliveries is None:
            return nullcontext()
        return self.deliveries.holding_puts(held)

    def let_go(self, held: set[int]) -> None:
        if self.deliveries is not None:
            self.deliveries.release(held)

    def deliver(self, notices: list[Notice]) -> None:
        """Put the notices (those not in the outbox yet) in the outbox for the delivery
        workers; returns at once."""
        notices = unstored(notices)
        if not notices:
            return  # nothing new: no worker to wake
        if self.put(notices) is None:
            self.send_aside(notices)
        elif self.deliveries is not None:
            self.deliveries.wake()

    @contextmanager
    def holding(self, notices: list[Notice]):
        """Put the notices in the outbox now (durable before the reply is sent), but let
        the workers send them only once the block (the reply) is done."""
        notices = unstored(notices)
        if self.deliveries is None:
            yield
            self.deliver(notices)
            return
        with self.deliveries.holding(lambda: self.put(notices)) as entries:
            yield
        if entries is None:
            self.send_aside(notices)

    def put(self, notices: list[Notice]) -> list[Entry] | None:
        """Write notices to the outbox; their entries, or None when there is no outbox
        (the bot did not start) or it cannot be written."""
        if not notices:
            return []
        if self.outbox is None:
            return None
        try:
            return self.outbox.put(notices, self.clock())
        except Exception:  # noqa: BLE001 - the change is made: its notices still go out
            log.exception("could not write %d notice(s) to the outbox", len(notices))
            return None

    def send_aside(self, notices: list[Notice]) -> None:
        """Notices the outbox could not take: sent at once, on a thread of their own, so
        the caller still never waits for the chat (and nothing makes them durable)."""
        if notices:
            threading.Thread(
                target=self.send_now, args=(list(notices),), name="accessbot-send", daemon=True
            ).start()

    def send_now(self, notices: list[Notice]) -> None:
        for notice in notices:
            self.send_notice(notice)

    def send_entry(self, entry: Entry) -> Attempt:
        """The delivery workers' send: one outbox entry, with where its card is now. On
        Slack it keeps each channel to Slack's pace (accessbot.pacing): a notice its
        channel may not have yet, or one Slack refused as over its rate limit, comes back
        with the seconds to wait (the worker puts the channel aside that long; it is no
        failed attempt)."""
        notice = notice_of(entry, self.backend.store)
        if not self.on_slack:
            return Attempt(self.send_notice(notice))
        wait = self.pacer.wait(notice)
        if wait > 0:
            return Attempt(RATE_LIMITED, wait)
        attempt = self.deliver_paced(notice)
        if attempt.rate_limited:
            self.pacer.limited(notice, attempt.retry_after, attempt.method)
        else:
            self.pacer.sent(notice)
        return attempt

    def send_notice(self, notice: Notice) -> str | None:
        """Send one notice, timed for /metrics; tell the admins (once) about one the chat
        would not take. The error, or None."""
        error = self.timed_send(notice)
        if error:
            self.metrics.chat_errors.labels(notice.audience).inc()
            self.undeliverable(notice, error)
        return error

    def deliver_paced(self, notice: Notice) -> Attempt:
        """`deliver_one` for a worker that paces its channel (accessbot.pacing): a call
        Slack refuses as over its rate limit is not waited for here; the attempt says how
        long to wait before delivering the notice again (all of it: a card update is
        idempotent, and a thread reply comes after it). A notice that failed for good
        (`attempt.permanent`) is reported to the admins once and counted."""
        with rate_limits_reported() as report:
            error = self.timed_send(notice)
        if report.retry_after is not None:
            return Attempt(RATE_LIMITED, report.retry_after, report.method)
        attempt = Attempt(error)
        if error:
            self.metrics.chat_errors.labels(notice.audience).inc()
        if attempt.permanent:
            self.undeliverable(notice, error)
        return attempt

    def timed_send(self, notice: Notice) -> str | None:
        """`deliver_one`, its time observed for /metrics."""
        started = time.monotonic()
        error = self.deliver_one(notice)
        self.metrics.chat_calls.labels(notice.audience).observe(time.monotonic() - started)
        return error

    def undeliverable(self, notice: Notice, error: str) -> None:
        """Count a notice that will not arrive; tell the admins, once, how to fix it."""
        if self.undelivered.failed(notice.to, error):
            bot = (getattr(self._bot, "auth", None) or {}).get("user", "")
            self.tell_admins(messages.undeliverable(notice, error, bot))

    def deliver_one(self, notice: Notice) -> str | None:
        """Post the notice (a Slack card, else a plain message); the error that kept it
        from arriving, or None."""
        self.slack_web()  # the backend's client after a reconnect waits out 429s too
        if notice.audience == "admins":
            self.tell_admins(notice.text)
            return None
        if self.slack is None and notice.kind == CERTIFICATION_PAGES:
            return None  # a certification's Slack pages; elsewhere its text message says it
        if self.slack is not None:
            try:
                if self.slack.deliver(notice):
                    self.undelivered.delivered(notice.to)
                    return None
            except Exception as exc:  # noqa: BLE001 - the card failed; the plain message still goes
                log.exception("could not post or update the Slack card for %s", notice.to)
                if notice.kind == CERTIFICATION_PAGES:  # no plain copy: tried again
                    return error_code(exc)
                if error_code(exc) in CHANNEL_ERRORS | {RATE_LIMITED}:
                    # A plain message would fail the same way, and errbot's Slack backend
                    # only logs that: this is the one chance to know. (Rate limited: the
                    # card, not a plain copy of it, goes when Slack takes it.)
                    return error_code(exc)
        try:
            # Cards go out as plain markdown: errbot's card template HTML-escapes the
            # body, which would show a reason's "<" as "&lt;" on text backends.
            with slack_calls_watched() as answers:
                self.tell(notice.to, notice.text)
        except Exception as exc:  # noqa: BLE001 - one unreachable user must not stop the rest
            if error_code(exc) == RATE_LIMITED:  # sent again after Retry-After: no trace
                log.info("Slack asked to wait before a notice to %s", notice.to)
            else:
                log.exception("could not deliver a notice to %s", notice.to)
            return error_code(exc)
        # errbot's Slack send only logs a failure: what Slack answered says it.
        failed = [e for e in answers.errors if is_permanent(e) or e == RATE_LIMITED]
        if failed:
            return failed[-1]
        if self.slack is None:  # on Slack, a send that raised nothing may still have failed
            self.undelivered.delivered(notice.to)
        return None

    def tell(self, to: str, text: str) -> None:
        """Send `text` to a channel or person. On the Text backend (`make run`) every
        message prints in the one terminal, so it first says where it went."""
        if self._bot.mode == "text":
            text = messages.where_it_went(to, text)
        self.send(self.build_identifier(to), text)
