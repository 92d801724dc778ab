"""The plugin's Slack half: cards as Block Kit, button clicks and the request modal.

Only the Access plugin imports this, and only when the backend is SlackV3. A click is
decoded by `accessbot.integrations.slack` and handed to the same service methods as
`!approve` / `!deny`, as the same kind of Actor a typed command gets, so a click can do
exactly what typing can, no more. Slack wants an answer within 3 seconds and a grant can
take longer, so clicks are acknowledged at once and decided on a small worker pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, nullcontext

from listener_limits import BODY_LIMIT, too_large
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

from accessbot import messages
from accessbot.certification import PAGES as CERTIFICATION_PAGES
from accessbot.domain import AccessError
from accessbot.identity import USER_ID
from accessbot.integrations import slack
from accessbot.service import AccessService, Actor, Notice, Outcome
from accessbot.store import StoreError

log = logging.getLogger(__name__)

FAILED = (
    "Sorry, that failed inside the bot; nothing was decided. "
    "An admin can find the details in the bot's log."
)
FOREIGN_TEAM = (
    "Sorry, this access bot takes commands only from people in its own Slack workspace "
    "(an admin can allow a partner team with ACCESS_SLACK_ALLOWED_TEAMS)."
)
MODAL_WAIT = 2.5  # seconds a modal submission may take before Slack gives up on us
EVENTS_PATH = "/slack/events"  # slackv3's Events API URL, served by slackeventsapi
GUARDED_PATHS = ("/slack/interactive", EVENTS_PATH)


def guard_slack_urls(app) -> None:
    """Put `check_slack_call` in front of every view of errbot's Flask app.

    Called at each activation: a plugin reload finds the hook already there. Inserted in
    Flask's list directly, as `before_request` refuses once the app has served a request.
    """
    hooks = app.before_request_funcs.setdefault(None, [])
    if not any(getattr(hook, "guards_slack_urls", False) for hook in hooks):
        hooks.insert(0, check_slack_call)


def check_slack_call():
    """A Flask before-request hook for the Slack URLs: 413 for a body over BODY_LIMIT,
    before it is read (also refused ahead of this by `listener_limits`, for every URL);
    400 for an Events API body that is not a Slack event (which slackeventsapi would
    answer with a 500)."""
    from flask import request

    path = request.path.rstrip("/")
    if path not in GUARDED_PATHS:
        return None
    if too_large(request):
        log.warning("refused a call to %s: its body is over %d bytes", path, BODY_LIMIT)
        return {"error": f"the body is over {BODY_LIMIT} bytes"}, 413, {"Connection": "close"}
    if path == EVENTS_PATH and request.method == "POST":
        try:
            slack.check_event_body(request.get_data(cache=True))
        except slack.InteractionError as exc:
            log.warning("refused a malformed Slack event: %s", exc)
            return {"error": "bad payload"}, 400
    return None


check_slack_call.guards_slack_urls = True


class SlackApp:
    def __init__(
        self,
        service: AccessService,
        client: WebClient,
        make_actor: Callable[[slack.SlackUser], Actor],
        deliver: Callable[[list[Notice]], None],
        tell: Callable[[str, str], None],
        signing_secret: str | None = None,
        teams: Callable[[], frozenset[str]] = frozenset,
        for_command: Callable[[], AbstractContextManager] = nullcontext,
        app_id: Callable[[], str] = str,
    ):
        self.service = service
        self.for_command = for_command  # around each click's service call (database waits)
        self.cards = slack.SlackCards(client)
        self.directory = slack.SlackDirectory(client)
        self.make_actor = make_actor
        self.deliver_notices = deliver
        self.tell = tell
        self.teams = teams  # the bot's own Slack team and ACCESS_SLACK_ALLOWED_TEAMS
        self.app_id = app_id  # this bot's Slack app (auth.test's app_id; "" if unknown)
        self.verifier = slack.RequestVerifier(signing_secret) if signing_secret else None
        self.workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="access-slack")
        self._cards_lock = threading.Lock()
        self._card_versions: dict[str, int] = {}  # request id -> history length shown
        # Cards posted by this bot, for a request that finished before its card went out
        # (its store record is final and keeps no card_ref): (request id, channel) -> ref.
        self._posted: dict[tuple[str, str], dict] = {}
        # Access certification (accessbot.certification), set by the plugin once it runs.
        self.certifications = None
        self._certify_lock = threading.Lock()

    def close(self) -> None:
        """Finish the clicks under way; called from the plugin's deactivate()."""
        self.workers.shutdown(wait=True)

    def actor(self, user_id: str, team_id: str = "") -> Actor:
        """The person behind a Slack user id, from users.info; refused (AccessError) when
        Slack cannot confirm them or they belong to a team this bot does not serve."""
        if not USER_ID.match(str(user_id or "")):
            log.debug("refused an actor that is not a Slack user: %r", user_id)
            raise AccessError(slack.NOT_CONFIRMED)
        allowed = self.teams()
        if team_id and team_id not in allowed:
            raise AccessError(FOREIGN_TEAM)
        try:
            user = self.directory.user(user_id)
        except slack.SlackLookupError as exc:
            log.warning("refused a command: %s", exc)
            raise AccessError(slack.NOT_CONFIRMED) from exc
        if user.team_id and user.team_id not in allowed:
            log.warning("refused %s of team %s: not an allowed Slack team", user_id, user.team_id)
            raise AccessError(FOREIGN_TEAM)
        return self.make_actor(user)

    # -- notices out ------------------------------------------------------------------

    def deliver(self, notice: Notice) -> bool:
        """Post or update the request's card; False when this notice is not card business."""
        if notice.kind == CERTIFICATION_PAGES:
            if self.certifications is not None:
                self.post_certification(notice.text)
            return True
        request = notice.request
        if request is None or notice.audience != "channel":
            return False
        ref = slack.CardRef.from_dict(request.card_ref or self._posted.get((request.id, notice.to)))
        if notice.kind == "card" and ref is None:
            ref = self.cards.post_card(slack.channel_of(notice.to), request)
            with self._cards_lock:
                if len(self._posted) > 10000:
                    self._posted.clear()
                self._posted[(request.id, notice.to)] = ref.to_dict()
            try:
                self.service.remember_card(request.id, ref.to_dict())
            except Exception:  # noqa: BLE001 - the card is up; later events go to the channel
                log.exception("posted the card of %s but could not remember where", request.id)
            return True
        if ref is None:
            return False  # no card to hang it on (break-glass): a plain channel message
        self._update(ref, request)
        if notice.kind != "card":  # a card notice on a posted card is progress (1 of 2)
            self.cards.reply_in_thread(ref, notice.text, broadcast=notice.kind == "alert")
        return True

    def _update(self, ref: slack.CardRef, request) -> None:
        """chat.update, unless a newer state of this request is already on the card.

        Notices for one request can be delivered from two threads (a click's worker and
        the scheduler); the longer history is the newer state.
        """
        with self._cards_lock:
            if len(request.history) < self._card_versions.get(request.id, 0):
                return
            if len(self._card_versions) > 10000:
                self._card_versions.clear()
            self._card_versions[request.id] = len(request.history)
            self.cards.update_card(ref, request)
            for earlier in filter(None, map(slack.CardRef.from_dict, request.earlier_cards)):
                try:  # an escalated request's cards in the channels it was in before
                    self.cards.update_card(earlier, request)
                except Exception:  # noqa: BLE001 - the current card is what matters
                    log.warning("could not update an earlier card of %s", request.id)

    def offer_request_form(self, user_id: str, channel_id: str) -> None:
        """Slack opens a modal only in answer to a click, so first offer a button."""
        self.cards.offer_request_form(channel_id, user_id)

    # -- interactions in --------------------------------------------------------------

    def handle_http(self, body: bytes, headers) -> tuple[int, dict | None]:
        """Slack's interactivity URL: (status, JSON body to answer with)."""
        if self.verifier is None:
            log.warning("refused a Slack interactivity call: SLACK_SIGNING_SECRET is not set")
            return 401, {"error": "this bot has no signing secret configured"}
        try:
            self.verifier.verify(body, headers)
        except slack.SignatureError as exc:
            log.warning("refused a Slack interactivity call: %s", exc)
            return 401, {"error": "invalid signature"}
        try:
            payload = slack.decode_form(body)
            action = (
                slack.parse_interaction(payload)
                or slack.certify_click(payload)
                or slack.certify_submission(payload)
            )
        except slack.InteractionError as exc:
            log.warning("refused a malformed Slack interaction: %s", exc)
            return 400, {"error": "bad payload"}
        if self.foreign_app(payload):
            return 403, {"error": "not an interaction of this app"}
        return 200, self.handle(action, payload_team(payload))

    def on_socket_request(self, client, req) -> None:
        """A socket-mode listener: acknowledges and handles `interactive` envelopes."""
        if req.type != "interactive":
            return
        answer = self.handle_payload(req.payload)
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=answer)
        )

    def handle_payload(self, payload) -> dict | None:
        """A socket-mode payload; a malformed one is logged and acknowledged plainly
        (Socket Mode has no status code to refuse it with)."""
        try:
            action = (
                slack.parse_interaction(payload)
                or slack.certify_click(payload)
                or slack.certify_submission(payload)
            )
        except slack.InteractionError as exc:
            log.warning("ignored a malformed Slack interaction: %s", exc)
            return None
        if self.foreign_app(payload):
            return None
        return self.handle(action, payload_team(payload))

    def foreign_app(self, payload: dict) -> bool:
        """Was this interaction sent for another Slack app than this bot's (its
        `api_app_id`)? Such a click was not made on our cards: refused, and logged."""
        own, theirs = self.app_id(), payload.get("api_app_id")
        if own and theirs and theirs != own:
            log.warning("refused a Slack interaction for app %s (this bot is app %s)", theirs, own)
            return True
        return False

    def handle(self, action: slack.Interaction | None, team: str = "") -> dict | None:
        """Act on one decoded interaction of a person of `team`; returns what to acknowledge
        it with (None: plain ack)."""
        if isinstance(action, slack.Click):
            self.workers.submit(self._decide, action, team)
        elif isinstance(action, slack.OpenForm):
            self.workers.submit(
                self._guarded, self.cards.open_request_modal, action.trigger_id, self._resources()
            )
        elif isinstance(action, slack.ResourcePicked):
            self.workers.submit(
                self._guarded, self.cards.narrow_request_modal, action, self._resources()
            )
        elif isinstance(action, slack.CertifyClick):
            self.workers.submit(self._certify_note, action, team)
        elif isinstance(action, slack.CertifySubmission):
            return self._certify_submit(action, team)
        elif isinstance(action, slack.RequestSubmission):
            if action.field_errors:
                return {"response_action": "errors", "errors": action.field_errors}
            return self._submit(action, team)
        return None

    # -- the work -----------------------------------------------------------------------

    def _decide(self, click: slack.Click, team: str = "") -> None:
        """The button's twin of `!approve <id>` / `!deny <id>`."""
        try:
            actor = self.actor(click.user_id, team)
            with self.for_command():
                if click.action == "approve":
                    outcome = self.service.approve(actor, click.request_id, "")
                else:
                    outcome = self.service.deny(actor, click.request_id, "")
        except (AccessError, slack.SlackLookupError) as exc:
            self._answer(click, str(exc))
            return
        except StoreError as exc:
            log.error("a %s click on %s: %s", click.action, click.request_id, exc)
            self._answer(click, messages.database_not_answering())
            return
        except Exception:  # noqa: BLE001 - never a stack trace in chat
            log.exception("a %s click on %s failed", click.action, click.request_id)
            self._answer(click, FAILED)
            return
        self.deliver_notices(outcome.notices)  # into the outbox before the answer: durable
        self._answer(click, outcome.reply)

    def _certify_note(self, click: slack.CertifyClick, team: str = "") -> None:
        """Keep / Remove pressed: a reviewer who may decide the item gets the note modal
        (its submission decides); anyone else is told why not, privately."""
        try:
            actor = self.actor(click.user_id, team)
            if self.certifications is None:
                raise AccessError("Access certification is not running on this bot.")
            with self.for_command():
                item = self.certifications.may_decide(actor, click.item_id)
            self.cards.client.views_open(
                trigger_id=click.trigger_id, view=slack.note_modal(click, item.member)
            )
        except (AccessError, slack.SlackLookupError) as exc:
            self._answer(click, str(exc))
        except StoreError as exc:
            log.error("a %s click on item %s: %s", click.decision, click.item_id, exc)
            self._answer(click, messages.database_not_answering())
        except Exception:  # noqa: BLE001 - never a stack trace in chat
            log.exception("a %s click on item %s failed", click.decision, click.item_id)
            self._answer(click, FAILED)

    def _certify_submit(self, submission: slack.CertifySubmission, team: str = "") -> dict | None:
        """The note modal submitted: decide with its note. A refusal within Slack's time
        goes back onto the modal; a later one, like the answer, to the reviewer only."""
        job = self.workers.submit(self._certify, submission, team)
        try:
            error = job.result(timeout=MODAL_WAIT)
        except FutureTimeout:
            job.add_done_callback(lambda done: self._late_certify(submission, done.result()))
            return None
        if error is None:
            return None
        return {
            "response_action": "errors",
            "errors": {slack.CERTIFY_NOTE_BLOCK: slack.field_error(str(error))},
        }

    def _late_certify(self, submission: slack.CertifySubmission, error: str | None) -> None:
        if error is not None:
            self._tell_reviewer(submission, error)

    def _certify(self, submission: slack.CertifySubmission, team: str = "") -> str | None:
        """The modal's twin of `!access certify keep|remove <item> [note]`: None when
        decided (the reviewer is answered privately), else the refusal."""
        try:
            actor = self.actor(submission.user_id, team)
            if self.certifications is None:
                raise AccessError("Access certification is not running on this bot.")
            with self.for_command():
                outcome = self.certifications.decide(
                    actor, submission.item_id, submission.decision, submission.note
                )
        except (AccessError, slack.SlackLookupError) as exc:
            return str(exc)
        except StoreError as exc:
            log.error("a %s of item %s: %s", submission.decision, submission.item_id, exc)
            return messages.database_not_answering()
        except Exception:  # noqa: BLE001 - never a stack trace in chat
            log.exception("a %s of item %s failed", submission.decision, submission.item_id)
            return FAILED
        self.deliver_notices(outcome.notices)  # into the outbox before the answer: durable
        self._tell_reviewer(submission, outcome.reply)
        return None

    def _tell_reviewer(self, submission: slack.CertifySubmission, text: str) -> None:
        """An ephemeral where the click was; a DM when Slack did not say where."""
        if submission.channel_id:
            self._answer(submission, text)
        else:
            self.tell(f"<@{submission.user_id}>", text)

    def show_certification(self, certification_id: str, item_id: str | None = None) -> None:
        """Update the page of `item_id` (None: every page) of a posted certification, on
        the click pool: the command or the scheduler does not wait. (The pages are posted
        by the outbox's notice, `post_certification`.)"""
        self.workers.submit(self._guarded, self._show_certification, certification_id, item_id)

    def post_certification(self, certification_id: str) -> None:
        """Post the pages of a certification not posted yet (a delivery worker's call).
        Each page's place is saved as it is posted, so a retry after a failure (a rate
        limit, a crash) posts only the pages still missing."""
        store = self.certifications.store
        client = self.cards.client
        with self._certify_lock:
            doc, items = store.certification(certification_id), store.items(certification_id)
            if doc is None or not items:
                return
            refs = list(doc.get("slack_pages") or [])
            for page in range(len(refs), slack.page_count(items)):
                text, blocks = slack.certification_page(doc, items, page)
                answer = client.chat_postMessage(
                    channel=slack.channel_of(doc["channel"]), text=text, blocks=blocks
                )
                refs.append({"channel": answer["channel"], "ts": answer["ts"]})
                store.save({**store.certification(certification_id), "slack_pages": refs})

    def _show_certification(self, certification_id: str, item_id: str | None) -> None:
        store = self.certifications.store
        client = self.cards.client
        with self._certify_lock:
            doc, items = store.certification(certification_id), store.items(certification_id)
            refs = (doc or {}).get("slack_pages") or []
            if not refs or not items:
                return  # not posted yet: the outbox's notice posts them as they are then
            pages = range(len(refs)) if item_id is None else [slack.page_of(items, item_id)]
            for page in pages:
                if page is None or page >= len(refs):
                    continue
                text, blocks = slack.certification_page(doc, items, page)
                client.chat_update(
                    channel=refs[page]["channel"], ts=refs[page]["ts"], text=text, blocks=blocks
                )

    def _answer(self, click, text: str) -> None:
        """Only the person who clicked sees the answer."""
        try:
            self.cards.ephemeral(click.channel_id, click.user_id, text)
        except Exception:  # noqa: BLE001
            log.exception("could not answer %s's click", click.user_id)

    def _submit(self, submission: slack.RequestSubmission, team: str = "") -> dict | None:
        """Create the request; a refusal within Slack's time goes back onto the form."""
        job = self.workers.submit(self._request, submission, team)
        try:
            error = job.result(timeout=MODAL_WAIT)
        except FutureTimeout:
            # Slow (a policy hook, an auto-grant): close the form; the answer comes by DM.
            job.add_done_callback(lambda done: self._late_refusal(submission, done.result()))
            return None
        if error is None:
            return None
        errors = slack.modal_errors(str(error), getattr(error, "field", None), submission.fields)
        return {"response_action": "errors", "errors": errors}

    def _request(
        self, submission: slack.RequestSubmission, team: str = ""
    ) -> Exception | str | None:
        """Run the request; None when made, else the refusal (its text, and `field`)."""
        try:
            actor = self.actor(submission.user_id, team)
            with self.for_command():
                outcome: Outcome = self.service.request(
                    actor,
                    submission.resource,
                    submission.duration,
                    submission.reason,
                    submission.fields or None,
                )
        except (AccessError, slack.SlackLookupError) as exc:
            return exc
        except StoreError as exc:
            log.error("a request from the Slack form: %s", exc)
            return messages.database_not_answering()
        except Exception:  # noqa: BLE001
            log.exception("a request from the Slack form failed")
            return FAILED
        self.deliver_notices(outcome.notices)
        self.tell(actor.address, outcome.reply)
        return None

    def _late_refusal(
        self, submission: slack.RequestSubmission, error: Exception | str | None
    ) -> None:
        if error is not None:
            self.tell(f"<@{submission.user_id}>", str(error))

    def _resources(self) -> list:
        policies = self.service.policies
        return list(policies.resources.values()) if policies else []

    @staticmethod
    def _guarded(call, *args) -> None:
        try:
            call(*args)
        except Exception:  # noqa: BLE001
            log.exception("a Slack form call failed")


def payload_team(payload: dict) -> str:
    """The team of the person behind an interaction (Slack Connect: their own team)."""
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    return str(user.get("team_id") or team.get("id") or "")
