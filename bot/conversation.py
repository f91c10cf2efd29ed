"""The conversation service: who gets an answer, and how one is produced.

Two steps, so that nothing a platform has been told "received" can be lost:

- `accept` (inside `submit`, which the adapter awaits before acking the platform):
  policy -> claim the event and store the user turn, in one transaction. A retry
  or a second delivery path finds the event claimed and stops here.
- `answer` (a task on the service's own `TaskSet`): per-thread lock -> settings
  and history -> fit to the context window -> stream Claude into the event's
  reply -> store the answer -> show its final text.

User turns are stored as they arrive, even while an earlier one is being
answered; an answer is stored right after the last user turn it answered (see
`schema.messages.position`), and a turn that an earlier answer already covered
(it arrived in time to be sent along) is not answered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from bot import metrics
from bot.asking import ClaudeAsker
from bot.changes import MessageChanges
from bot.channel_settings import ChannelSettingsResolver
from bot.claude import ClaudeClient, ClaudeError, ClaudeReply
from bot.claude.turn import TurnRunner
from bot.commands import CommandService
from bot.control_service import ControlService
from bot.controls import AnswerControls, offered_controls
from bot.domain import (
    ChannelSettings,
    CommandInvocation,
    History,
    IncomingMessage,
    PostedMessage,
    ThreadKey,
    now,
)
from bot.errors import Overloaded, ServiceUnavailable
from bot.files.service import Attachments
from bot.locks import ThreadBusy, ThreadLocks
from bot.policy import (
    BUSY_NOTE,
    COMMAND_FAILED_NOTE,
    EMPTY_NOTE,
    FAILED_NOTE,
    INTERRUPTED_NOTE,
    OVERLOADED_NOTE,
    REFUSAL_PLACEHOLDER,
    Addressed,
    already_answered,
    in_posting_order,
    is_addressed,
    join_notes,
    may_have_later_replies,
    may_have_overtaken_a_mention,
    read_back_point,
    summoned_mid_thread,
)
from bot.ports import CommandSurface, MessageSurface
from bot.prompt import render_thread_context
from bot.running import RunningAnswers, TurnStopped
from bot.showing import ShownAnswer
from bot.spend import Admission, SpendGuard, stopped_usage
from bot.store import Store
from bot.store.db import is_outage
from bot.store.turns import ANSWERED, FAILED
from bot.tasks import IntakesFirst, TaskSet

log = logging.getLogger(__name__)

# With every place taken, but some only by deliveries still being checked (a duplicate gives
# its place back), a message waits this long for them before it is refused (within an ack).
RESERVATION_WAIT_SECONDS = 2.5
# The longest a new answer waits for the intakes under way when it starts (see IntakesFirst).
INTAKES_FIRST_MAX_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class AcceptedTurn:
    """A message the core has stored as a turn and will answer."""

    message: IncomingMessage
    needs_thread_context: bool = False  # summoned into a thread mid-way: bring its earlier messages


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What happened to one message, for logs and tests."""

    answered: bool
    reply: ClaudeReply | None = None
    error: ClaudeError | None = None


class ConversationService:
    """The core's `Inbox`: takes messages and commands in, owns the work they start."""

    def __init__(
        self,
        store: Store,
        claude: ClaudeClient,
        commands: CommandService,
        settings: ChannelSettingsResolver,
        *,
        max_concurrent_claude_calls: int = 256,
        locks: ThreadLocks | None = None,
        instance_id: str = "",
        max_background_tasks: int | None = None,
        files: Attachments | None = None,
        web_max_uses: int = 5,
        spend: SpendGuard | None = None,
        running: RunningAnswers | None = None,
    ) -> None:
        self.store = store
        self.claude = claude
        self.commands = commands
        self.settings = settings
        self.locks = locks or ThreadLocks()
        self.tasks = TaskSet(max_background_tasks)
        self.intakes = IntakesFirst(INTAKES_FIRST_MAX_WAIT_SECONDS)
        self.instance_id = instance_id  # owns the turns this instance accepts (see bot.recovery)
        self.files = files or Attachments(store.attachments, claude.files, claude.catalog)
        self._claude_slots = asyncio.Semaphore(max_concurrent_claude_calls)
        self.changes = MessageChanges(store)
        self.turns = TurnRunner(claude, web_max_uses)  # tools, pause_turn, fallback, sources
        self.running = running or RunningAnswers()  # the answers being written, for Stop
        self.asker = ClaudeAsker(store, claude, settings, self.files, self.turns, self.running)
        self.controls = ControlService(self)
        self.spend = spend  # spend limits and rate limits (None: none)
        self._being_taken: dict[tuple[str, str], asyncio.Future[bool | Exception]] = {}  # deliveries in `submit`

    # --- Inbox --------------------------------------------------------------

    async def submit(self, message: IncomingMessage, surface: MessageSurface) -> bool:
        """Take a message in (True: stored, its answer under way). A platform may deliver one
        post twice at once (Slack: as `app_mention` and as `message`): the second delivery
        waits for the first one's outcome here instead of racing it to the database."""
        with self.intakes.taking():
            return await self._submit_once(message, surface)

    async def _submit_once(self, message: IncomingMessage, surface: MessageSurface) -> bool:
        claim = (message.thread.platform, message.event_id)
        first = self._being_taken.get(claim)
        if first is not None:
            outcome = await asyncio.shield(first)
            if outcome is True:  # the usual twin of every Slack mention: not worth a line
                metrics.DUPLICATES.inc()
                log.debug("twin delivery dropped: event=%s thread=%s", message.event_id, message.thread)
                return False
            if isinstance(outcome, ServiceUnavailable):  # refused (Overloaded too): the twin as well, at once
                raise outcome
            return await self._submit(message, surface)  # not taken for another reason: see for itself
        pending: asyncio.Future[bool | Exception] = asyncio.get_running_loop().create_future()
        self._being_taken[claim] = pending
        result: bool | Exception = False
        try:
            result = await self._submit(message, surface)
            return result
        except ServiceUnavailable as refusal:  # Overloaded included
            result = refusal
            raise
        finally:
            del self._being_taken[claim]
            pending.set_result(result)

    async def _submit(self, message: IncomingMessage, surface: MessageSurface) -> bool:
        room = await self.tasks.reserve_when_decided(RESERVATION_WAIT_SECONDS)  # before storing: see bot.tasks
        try:
            if room is None:
                if await self._would_answer(message):
                    log.warning("too much work under way; the message is not taken: thread=%s", message.thread)
                    metrics.ERRORS.labels("overloaded").inc()
                    raise Overloaded(OVERLOADED_NOTE)
                return False
            turn = await self.accept(message)
        except BaseException as error:  # cancelled too: a reservation never outlives its delivery
            if room is not None:
                room.release()
            if isinstance(error, Exception) and is_outage(error):
                log.warning("database unavailable; the message is not taken: %s", type(error).__name__)
                metrics.ERRORS.labels("database").inc()
                raise ServiceUnavailable("the database is unavailable") from error
            raise
        if turn is None:
            room.release()
            return False
        room.spawn(self._answer_after_intakes(turn, surface))
        return True

    async def _would_answer(self, message: IncomingMessage) -> bool:
        """Whether refusing `message` refuses work: not for a duplicate of a taken delivery."""
        addressed = is_addressed(message)
        if addressed is Addressed.NO or await self.store.turns.is_claimed(message.thread.platform, message.event_id):
            return False
        if addressed is Addressed.IF_CONVERSATION:
            return await self._in_conversation(message)  # an early reply is noted even when refusing
        return addressed is Addressed.YES

    async def submit_command(self, invocation: CommandInvocation, surface: CommandSurface) -> None:
        room = self.tasks.reserve()
        if room is None:  # the command was acked already: say so at once, in place of its answer
            metrics.ERRORS.labels("overloaded").inc()
            await surface.answer(OVERLOADED_NOTE)
            return
        room.spawn(self.run_command(invocation, surface))

    async def message_deleted(self, posted: PostedMessage) -> bool:
        deleted = await self.changes.deleted(posted)
        if deleted:  # its files go from the Files API too, after the platform's ack
            self.tasks.spawn(self.files.sweep())
        return deleted

    async def message_edited(self, posted: PostedMessage, text: str) -> bool:
        return await self.changes.edited(posted, text)

    async def model_choices(self) -> list[str]:
        return sorted(await self.claude.catalog.models())

    async def conversation_of(self, platform: str, message_id: str) -> ThreadKey | None:
        return await self.store.shown.conversation_of(platform, message_id)

    async def workspace_left(self, platform: str, workspace_id: str, *, left: bool = True) -> None:
        await self.store.workspaces.mark(platform, workspace_id, left=left)

    async def drain(self, grace_seconds: float = 30.0) -> None:
        """Shutting down: let the answers and commands under way finish."""
        await self.tasks.drain(grace_seconds)

    # --- the flow -------------------------------------------------------------

    async def accept(self, message: IncomingMessage) -> AcceptedTurn | None:
        """Decide whether `message` gets an answer and, if so, store its turn (claiming the
        event). Quick, with no platform calls: adapters await it before acking."""
        addressed = is_addressed(message)
        if addressed is Addressed.NO:
            return None
        if addressed is Addressed.IF_CONVERSATION and not await self._in_conversation(message):
            return None
        existed = addressed is Addressed.IF_CONVERSATION  # (checked just above)
        if not existed and (summoned_mid_thread(message) or message.redelivered):
            existed = await self.store.turns.conversation_exists(message.thread)
        read_back = may_have_later_replies(message, existed)
        if not await self.store.turns.accept_message(message, owner=self.instance_id, read_back=read_back):
            metrics.DUPLICATES.inc()
            log.info("duplicate delivery dropped: event=%s thread=%s", message.event_id, message.thread)
            return None
        return AcceptedTurn(
            message,
            needs_thread_context=summoned_mid_thread(message) and not existed,
        )

    async def _in_conversation(self, message: IncomingMessage) -> bool:
        """Whether the thread of an unaddressed reply is a conversation; if not, and the reply
        may have overtaken the mention that makes it one, the thread is marked for that
        mention's read-back first, then looked up again (the mention may have been stored in
        between, and then this reply is taken as any other)."""
        if await self.store.turns.conversation_exists(message.thread):
            return True
        if not may_have_overtaken_a_mention(message, now()):
            return False
        await self.store.turns.note_early_reply(message.thread)
        return await self.store.turns.conversation_exists(message.thread)

    async def _answer_after_intakes(self, turn: AcceptedTurn, surface: MessageSurface) -> TurnOutcome:
        await self.intakes.after_intakes_under_way()
        return await self.answer(turn, surface)

    async def answer(self, turn: AcceptedTurn, surface: MessageSurface) -> TurnOutcome:
        """Answer an accepted turn, one turn at a time per thread."""
        try:
            return await self._answer_in_turn(turn, surface)
        except ThreadBusy:
            log.warning("thread busy for too long; telling the person: thread=%s", turn.message.thread)
            await self._tell(turn.message, surface, BUSY_NOTE)
            return TurnOutcome(answered=True)
        except Exception:  # before the answer was opened: the database went away, most likely
            log.exception("turn failed before its answer started: thread=%s", turn.message.thread)
            metrics.ERRORS.labels("internal").inc()
            await self._tell(turn.message, surface, FAILED_NOTE)
            return TurnOutcome(answered=True)

    async def _answer_in_turn(self, turn: AcceptedTurn, surface: MessageSurface) -> TurnOutcome:
        message = turn.message
        async with self.locks.hold(message.thread):
            if turn.needs_thread_context:
                earlier = await surface.fetch_thread_context()
                if earlier:
                    await self.store.turns.add_thread_context(
                        message.thread, message.message_id, render_thread_context(earlier)
                    )
                    message = self.files.with_context_files(message, earlier)
            return await self._answer(message, surface)

    async def handle(self, message: IncomingMessage, surface: MessageSurface) -> TurnOutcome:
        """Accept and answer in one go, without the task set (the console, tests)."""
        turn = await self.accept(message)
        if turn is None:
            return TurnOutcome(answered=False)
        return await self.answer(turn, surface)

    async def run_command(self, invocation: CommandInvocation, surface: CommandSurface) -> None:
        try:
            answer = await self.commands.run(invocation, surface)
        except Exception:
            log.exception("command failed: %s in %s", invocation.text.split(" ", 1)[0], invocation.channel)
            answer = COMMAND_FAILED_NOTE
        await surface.answer(answer)

    async def _answer(self, message: IncomingMessage, surface: MessageSurface) -> TurnOutcome:
        started = time.monotonic()
        settings = await self.settings.for_channel(message.channel)
        file_notes = await self.files.ingest(message, surface, settings.model)
        history = await self.store.turns.load_history(message.thread)
        read_from = read_back_point(history, message.thread)
        if read_from is not None:  # replies may have overtaken the mention that started it
            read_back = False
            for later in await surface.fetch_later_messages(read_from):
                if await self.store.turns.accept_message(later, owner=self.instance_id):  # claimed: once only
                    read_back = True
                    file_notes += await self.files.ingest(later, surface, settings.model)  # its files too
            await self.store.turns.replies_read_back(message.thread)
            if read_back:
                history = await self.store.turns.load_history(message.thread)
        if moves := in_posting_order(history):  # a retried delivery was stored after a later message
            await self.store.turns.reposition(moves)
            history = await self.store.turns.load_history(message.thread)
        history = await self.files.with_attachments(message.thread, history)
        if already_answered(history, message.message_id):
            log.info("turn already answered along with an earlier one: thread=%s", message.thread)
            if file_notes:  # what was said of its files must still reach the person
                await (await surface.open_reply()).finish(join_notes(*file_notes))
            return TurnOutcome(answered=False)
        covered = history.turns[-1].order  # the newest turn: this answer covers every pending one
        admission = await self.spend.admit(message, settings, history) if self.spend else None
        if admission is not None and admission.refusal is not None:  # at a limit: no request
            await self._refuse(message, surface, admission.refusal, covered)
            return TurnOutcome(answered=True)
        async with self._claude_slots, self._tracked(message), admission or contextlib.nullcontext():
            reply_stream = ShownAnswer(await surface.open_reply(), message.thread)
            try:
                return await self._complete(
                    message, settings, history, reply_stream, started, surface, file_notes, admission
                )
            except ClaudeError as error:
                log.warning(
                    "turn failed: thread=%s model=%s kind=%s status=%s request_id=%s",
                    message.thread,
                    settings.model,
                    error.kind,
                    error.status,
                    error.request_id,
                )
                await self._fail(reply_stream, error.user_message, message.thread, covered)
                metrics.ERRORS.labels(error.kind).inc()
                return TurnOutcome(answered=True, error=error)
            except asyncio.CancelledError:  # shutting down: never leave a half-shown answer open
                await asyncio.shield(self._fail(reply_stream, INTERRUPTED_NOTE, message.thread, covered))
                raise
            except Exception:
                log.exception("turn failed unexpectedly: thread=%s", message.thread)
                await self._fail(reply_stream, FAILED_NOTE, message.thread, covered)
                metrics.ERRORS.labels("internal").inc()
                return TurnOutcome(answered=True)

    async def _fail(self, reply_stream: ShownAnswer, sentence: str, thread: ThreadKey, covered: int) -> None:
        """Close the answer with what was shown and a sentence, and remember the person was told."""
        await reply_stream.finish(join_notes(reply_stream.received, sentence))
        await self._settle(thread, covered, FAILED)
        await self._remember_shown(thread, reply_stream, None)

    async def _remember_shown(self, thread: ThreadKey, reply_stream: ShownAnswer, answer_id: int | None) -> None:
        """Store where the answer was shown, so a reply to it continues this conversation."""
        try:
            await self.store.shown.remember(thread, reply_stream.shown_message_ids(), answer_id=answer_id)
        except Exception:  # the person has their answer; only replying to it would start afresh
            log.exception("recording where an answer was shown failed: thread=%s", thread)

    async def _settle(self, thread: ThreadKey, covered: int, state: str) -> None:
        try:
            await self.store.turns.settle(thread, up_to_order=covered, state=state)
        except Exception:  # the person has their answer; recovery will find the turn settled by its lock
            log.exception("recording a turn's outcome failed: thread=%s", thread)

    async def give_up(self, message: IncomingMessage, surface: MessageSurface, sentence: str) -> None:
        """Tell the person that `message`, and the unanswered ones before it, will not be answered
        (recovery, past its window): one sentence for all of them."""
        async with self.locks.hold(message.thread):
            history = await self.store.turns.load_history(message.thread)
            if already_answered(history, message.message_id):
                return
            # Recorded before it is shown, as an answer is stored before it is shown: a crash in
            # between leaves the note unsaid rather than said twice.
            mine = next(t for t in history.turns if t.message_id == message.message_id)
            await self._settle(message.thread, mine.order, FAILED)
            reply = await surface.open_reply()
            await reply.finish(sentence)

    async def _refuse(self, message: IncomingMessage, surface: MessageSurface, sentence: str, covered: int) -> None:
        """A limit stopped the turn: its line (unless this thread already had it), and the
        turns it covers settled, so nothing answers them later."""
        if sentence:
            reply = await surface.open_reply()
            await reply.finish(sentence)
        await self._settle(message.thread, covered, FAILED)

    async def _tell(self, message: IncomingMessage, surface: MessageSurface, sentence: str) -> None:
        """Answer `message` with `sentence` alone, and record that it will get nothing more."""
        reply = await surface.open_reply()
        await reply.finish(sentence)
        try:
            await self.store.turns.settle_message(message.thread, message.message_id, FAILED)
        except Exception:  # the person was told; at worst recovery tells them again
            log.exception("recording a turn's outcome failed: thread=%s", message.thread)

    async def _complete(
        self,
        message: IncomingMessage,
        settings: ChannelSettings,
        history: History,
        reply_stream: ShownAnswer,
        started: float,
        surface: MessageSurface,
        file_notes: list[str],
        admission: Admission | None = None,
    ) -> TurnOutcome:
        """Ask Claude, store the answer, then show its final text."""
        try:
            turn, notes, sent = await self.asker.ask(message.thread, settings, history, reply_stream, surface)
        except TurnStopped:
            if admission is not None:
                admission.spent(settings.model, stopped_usage(settings.system_prompt, history, reply_stream.received))
            stopped = await self.controls.finish_stopped(message.thread, settings.model, history, reply_stream)
            await self._remember_shown(message.thread, reply_stream, stopped)  # a reply to it continues here
            return TurnOutcome(answered=True)
        notes = [*file_notes, *notes]
        reply = turn.reply
        if admission is not None:
            for model, usage in turn.spent:  # each model's share at its own price (a fallback's refusal)
                admission.spent(model, usage)
            notes = [*notes, *admission.notes]
        answer = turn.kept if turn.kept.strip() else ""  # whitespace alone is no answer
        # A refusal is stored even without text: its stop reason marks the exchange as never resent.
        stored_text = answer or (REFUSAL_PLACEHOLDER if reply.stop_reason == "refusal" else "")
        answer_id = None
        if not stored_text:
            await self._settle(message.thread, sent[-1].order, ANSWERED)
        else:
            answer_id = await self.store.turns.append_answer(
                message.thread,
                stored_text,
                after_order=sent[-1].order,
                model=reply.model,
                stop_reason=reply.stop_reason,
                usage=reply.usage,
            )
        if not answer and not notes:
            notes = [EMPTY_NOTE]
        if answer_id is not None:
            offered = offered_controls(stored=True, stop_reason=reply.stop_reason, is_latest=True)
            reply_stream.offer_controls(AnswerControls(message.thread, answer_id, offered))
        await reply_stream.finish(join_notes(turn.shown, *notes))  # extends what was streamed
        await self._remember_shown(message.thread, reply_stream, answer_id)
        _count(message.thread.platform, reply, time.monotonic() - started)
        log.info(
            "turn: thread=%s model=%s stop=%s in=%d cache_read=%d cache_write=%d out=%d seconds=%.2f",
            message.thread,
            reply.model,
            reply.stop_reason,
            reply.usage.input_tokens,
            reply.usage.cache_read_tokens,
            reply.usage.cache_write_tokens,
            reply.usage.output_tokens,
            time.monotonic() - started,
        )
        return TurnOutcome(answered=True, reply=reply)

    def _tracked(self, message: IncomingMessage) -> contextlib.AbstractAsyncContextManager[object]:
        return self.running.track(message.thread, message.actor.user_id)


def _count(platform: str, reply: ClaudeReply, seconds: float) -> None:
    metrics.REPLIES.labels(platform).inc()
    metrics.TURN_SECONDS.observe(seconds)
    usage = reply.usage
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        metrics.TOKENS.labels(kind).inc(count)
