"""Conversation controls as the core runs them: Stop, feedback, Regenerate, Continue.

Platforms translate a click into one of these calls (with who pressed) and show the
returned notice to that person alone; the rules are `bot.controls`'. Regenerate and
Continue run as the core's own background work, under the thread's lock, like any answer.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING

from bot import metrics
from bot.controls import (
    BUSY_NOTE,
    CONTINUE_PROMPT,
    FEEDBACK_THANKS,
    GONE_NOTE,
    NOT_CUT_OFF_NOTE,
    NOT_LATEST_NOTE,
    NOT_RUNNING_NOTE,
    STOPPED_NOTE,
    AnswerControls,
    Control,
    ControlResult,
    ControlsMessage,
    Presser,
    continuable,
    may_press,
    needs_asker_or_admin,
    offered_controls,
    refusal,
)
from bot.domain import Actor, History, IncomingMessage, StoredTurn, ThreadKey, TokenUsage
from bot.policy import FAILED_NOTE, OVERLOADED_NOTE, join_notes
from bot.ports import MessageSurface, SurfaceFor
from bot.running import TurnStopped
from bot.showing import ShownAnswer
from bot.spend import stopped_usage
from bot.store.answers import StoredAnswer
from bot.store.turns import ANSWERED

if TYPE_CHECKING:
    from bot.conversation import AcceptedTurn, ConversationService

log = logging.getLogger(__name__)

STOPPED_STOP_REASON = "stopped"


class ControlService:
    def __init__(self, conversation: ConversationService) -> None:
        self._conversation = conversation
        self._store = conversation.store
        self._admins = conversation.commands.admin_user_ids

    # --- Stop ----------------------------------------------------------------

    async def stop(self, thread: ThreadKey, presser: Presser) -> ControlResult:
        running = self._conversation.running.get(thread)
        if running is None:
            return await self._stop_elsewhere(thread, presser)
        if not await _allowed(Control.STOP, presser, running.asker_id, self._admins):
            return ControlResult(False, refusal(Control.STOP))
        running.stop.set()
        log.info("answer stopped: thread=%s by=%s", thread, presser.actor.user_id)
        return ControlResult(True)

    async def _stop_elsewhere(self, thread: ThreadKey, presser: Presser) -> ControlResult:
        """Another instance writes this thread's answer: a stop request in the database, which
        it notices within a second (see `bot.running`)."""
        running = self._conversation.running
        elsewhere = await running.elsewhere(thread)
        if elsewhere is None:
            return ControlResult(False, NOT_RUNNING_NOTE)
        if not await _allowed(Control.STOP, presser, elsewhere.asker_id, self._admins):
            return ControlResult(False, refusal(Control.STOP))
        if not await running.request_stop(thread, elsewhere, presser.actor.user_id):
            return ControlResult(False, NOT_RUNNING_NOTE)  # it ended meanwhile
        log.info("answer stop requested of another instance: thread=%s by=%s", thread, presser.actor.user_id)
        return ControlResult(True)

    async def finish_stopped(
        self, thread: ThreadKey, model: str, history: History, reply: ShownAnswer
    ) -> int | None:
        """A stopped answer: what was written is stored and shown with the "(stopped)" note;
        returns the stored answer's id (None: nothing was written)."""
        written = reply.received if reply.received.strip() else ""
        covered = history.turns[-1].order
        answer_id = None
        if written:
            answer_id = await self._store.turns.append_answer(
                thread, join_notes(written, STOPPED_NOTE), after_order=covered, model=model,
                stop_reason=STOPPED_STOP_REASON,
            )
            offered = offered_controls(stored=True, stop_reason=STOPPED_STOP_REASON, is_latest=True)
            reply.offer_controls(AnswerControls(thread, answer_id, offered))
        else:
            await self._store.turns.settle(thread, up_to_order=covered, state=ANSWERED)
        await reply.finish(join_notes(written, STOPPED_NOTE))
        return answer_id

    # --- which message carries the buttons ----------------------------------------

    async def controls_moved(
        self, thread: ThreadKey, carrier: ControlsMessage | None, answer_id: int | None
    ) -> list[ControlsMessage]:
        """`carrier` now shows `thread`'s latest answer buttons; the messages that showed them
        before (on any instance, before any restart) are returned to have theirs taken off."""
        return await self._store.shown.move_controls(thread, carrier, answer_id=answer_id)

    # --- feedback --------------------------------------------------------------

    async def rate(self, answer_id: int, presser: Presser, positive: bool) -> ControlResult:
        answer = await self._store.answers.get(answer_id)
        if answer is None:
            return ControlResult(False, GONE_NOTE)
        await self._store.answers.vote(answer, presser.actor.user_id, positive=positive)
        metrics.FEEDBACK.labels("up" if positive else "down").inc()
        return ControlResult(True, FEEDBACK_THANKS[positive])

    # --- Regenerate and Continue ---------------------------------------------

    async def regenerate(self, answer_id: int, presser: Presser, surface_for: SurfaceFor) -> ControlResult:
        answer, refused = await self._checked(Control.REGENERATE, answer_id, presser)
        if answer is None:
            return refused
        message = _asked(answer)
        if message is None:
            return ControlResult(False, GONE_NOTE)
        from bot.conversation import AcceptedTurn  # (that module builds this service)

        room = self._conversation.tasks.reserve()  # background work is capped (bot.tasks)
        if room is None:
            return ControlResult(False, OVERLOADED_NOTE)
        try:
            await self._store.answers.supersede(answer.id, owner=self._conversation.instance_id)
        except BaseException:
            room.release()
            raise
        room.spawn(self._again(answer.id, AcceptedTurn(message), surface_for(message)))
        return ControlResult(True)

    async def _again(self, answer_id: int, turn: AcceptedTurn, surface: MessageSurface) -> None:
        """Regenerate's answer; where none was stored (a spend or rate limit, an error), the
        earlier answer stands again: resent to Claude, and the one to regenerate later."""
        await self._conversation.answer(turn, surface)
        # (Cancelled, the service is stopping or dying: the turn stays pending for recovery.)
        await self._store.answers.restore_unless_replaced(answer_id)

    async def continue_answer(self, answer_id: int, presser: Presser, surface_for: SurfaceFor) -> ControlResult:
        answer, refused = await self._checked(Control.CONTINUE, answer_id, presser)
        if answer is None:
            return refused
        if not continuable(answer.stop_reason):
            return ControlResult(False, NOT_CUT_OFF_NOTE)
        message = _asked(answer) or _as_message(answer, answer.thread, "")
        room = self._conversation.tasks.reserve()
        if room is None:
            return ControlResult(False, OVERLOADED_NOTE)
        room.spawn(self._go_on(answer, message, surface_for))
        return ControlResult(True)

    async def _checked(
        self, control: Control, answer_id: int, presser: Presser
    ) -> tuple[StoredAnswer | None, ControlResult]:
        answer = await self._store.answers.get(answer_id)
        if answer is None:
            return None, ControlResult(False, GONE_NOTE)
        if not await _allowed(control, presser, answer.asker_id, self._admins):
            return None, ControlResult(False, refusal(control))
        if not answer.is_latest:
            return None, ControlResult(False, NOT_LATEST_NOTE)
        running = self._conversation.running
        if running.get(answer.thread) is not None or await running.elsewhere(answer.thread) is not None:
            return None, ControlResult(False, BUSY_NOTE)  # (here, or on another instance)
        return answer, ControlResult(True)

    async def _go_on(self, answer: StoredAnswer, message: IncomingMessage, surface_for: SurfaceFor) -> None:
        """Continue: Claude gets the conversation up to the cut-off answer and a request to go
        on; its text is shown as the next message and joins the stored answer."""
        conversation = self._conversation
        thread = answer.thread
        async with conversation.locks.hold(thread):
            latest = await self._store.answers.get(answer.id)
            if latest is None or not latest.is_latest or not continuable(latest.stop_reason):
                return  # something else happened in the thread meanwhile
            settings = await conversation.settings.for_channel(message.channel)
            # With their files, as every request of the conversation carries them (same prefix).
            history = await conversation.files.with_attachments(thread, await self._store.turns.load_history(thread))
            mine = next((i for i, t in enumerate(history.turns) if t.id == answer.id), None)
            if mine is None:
                return
            turns = history.turns[: mine + 1]
            ask = StoredTurn(0, "user", None, CONTINUE_PROMPT, position=turns[-1].order)
            asked = History([*turns, ask], history.trim_noticed)
            started = time.monotonic()
            # A continuation is a request like any other: within the limits, and counted.
            admission = await conversation.spend.admit(message, settings, asked) if conversation.spend else None
            if admission is not None and admission.refusal is not None:
                if admission.refusal:
                    refused = await surface_for(message).open_reply()
                    await refused.finish(admission.refusal)
                return
            async with conversation.running.track(thread, message.actor.user_id), admission or nullcontext():
                surface = surface_for(message)
                reply = ShownAnswer(await surface.open_reply(), thread)
                try:
                    turn, notes, _sent = await conversation.asker.ask(thread, settings, asked, reply, surface)
                except TurnStopped:
                    if admission is not None:
                        admission.spent(settings.model, stopped_usage(settings.system_prompt, asked, reply.received))
                    stopped = "\n\n" + join_notes(reply.received, STOPPED_NOTE)
                    await self._store.answers.extend(answer.id, stopped, stop_reason="stopped", usage=TokenUsage())
                    await reply.finish(join_notes(reply.received, STOPPED_NOTE))
                    await conversation._remember_shown(thread, reply, answer.id)
                    return
                except Exception as error:
                    log.warning("continue failed: thread=%s (%s)", thread, type(error).__name__)
                    await reply.finish(join_notes(reply.received, getattr(error, "user_message", FAILED_NOTE)))
                    await conversation._remember_shown(thread, reply, None)
                    return
                result = turn.reply
                if admission is not None:
                    for model, usage in turn.spent:
                        admission.spent(model, usage)
                    notes = [*notes, *admission.notes]
                await self._store.answers.extend(
                    answer.id, "\n\n" + turn.kept, stop_reason=result.stop_reason, usage=result.usage
                )
                offered = offered_controls(stored=True, stop_reason=result.stop_reason, is_latest=True)
                reply.offer_controls(AnswerControls(thread, answer.id, offered))
                await reply.finish(join_notes(turn.shown, *notes))
                await conversation._remember_shown(thread, reply, answer.id)  # a reply to it goes on here
            log.info("answer continued: thread=%s seconds=%.2f", thread, time.monotonic() - started)


async def _allowed(control: Control, presser: Presser, asker_id: str | None, admin_ids: frozenset[str]) -> bool:
    """The rule, asking the platform whether the presser is an admin only when it matters
    (`ADMIN_USER_IDS` count as admins too, as for `/claude`)."""
    is_admin = False
    if needs_asker_or_admin(control) and presser.actor.user_id != asker_id:
        is_admin = presser.actor.qualified_id in admin_ids or await presser.is_admin()
    return may_press(control, presser.actor.user_id, asker_id, is_admin)


def _asked(answer: StoredAnswer) -> IncomingMessage | None:
    """The turn `answer` answered, as the message that asked it."""
    if answer.asker_id is None or answer.asker_message_id is None:
        return None
    return _as_message(answer, answer.thread, answer.asker_message_id)


def _as_message(answer: StoredAnswer, thread: ThreadKey, message_id: str) -> IncomingMessage:
    actor = Actor(thread.platform, answer.asker_id or "", answer.asker_name or answer.asker_id or "")
    return IncomingMessage(
        thread=thread, event_id="", message_id=message_id, actor=actor, text="",
        is_direct=thread.channel_id.startswith("D"), is_thread_reply=message_id != thread.thread_id,
    )
