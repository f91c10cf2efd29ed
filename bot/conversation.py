"""The conversation service: who gets an answer, and how one is produced.

Two steps, so that nothing a platform has been told "received" can be lost:

- `accept` (the adapter awaits it before acking the platform): policy -> claim
  the event and store the user turn, in one transaction. A retry or a second
  delivery path finds the event claimed and stops here.
- `answer` (in the background): per-thread lock -> settings and history -> fit
  to the context window -> stream Claude into the adapter's reply -> store the
  answer -> show its final text.

User turns are stored as they arrive, even while an earlier one is being
answered; an answer is stored right after the last user turn it answered (see
`schema.messages.position`), and a turn that an earlier answer already covered
(it arrived in time to be sent along) is not answered twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from adapters.base import Adapter, ReplyStream
from bot import metrics
from bot.claude import DEFAULT_CONTEXT_WINDOW, ClaudeClient, ClaudeError, ClaudeReply, ClaudeRequest, TextSink
from bot.commands import CommandService
from bot.events import AcceptedTurn, CommandInvocation, IncomingMessage, ThreadKey
from bot.locks import ThreadLocks
from bot.prompt import context_tokens, estimate_tokens, fit_context, render_thread_context, to_messages
from bot.store import ChannelSettings, History, Store, StoredTurn

log = logging.getLogger(__name__)

CUT_OFF_NOTE = "_(cut off: the answer reached its length limit)_"
CONTEXT_FULL_NOTE = "_(cut off: the conversation filled the model's context window; older turns will be dropped)_"
REFUSAL_NOTE = "_(Claude declined to answer this request.)_"
TRIMMED_NOTE = "_(Earlier turns of this conversation no longer fit in the model's context window and were left out.)_"
REFUSAL_PLACEHOLDER = "(declined to answer)"
EMPTY_NOTE = "_(Claude returned no text.)_"
FAILED_NOTE = "Something went wrong on my side while answering. Please try again."
_FINISH_RETRY_PAUSES = (2.0, 10.0, 30.0, 0.0)  # seconds before each next attempt to show the final text
INTERRUPTED_NOTE = "_(interrupted: the service is restarting. Please send your message again.)_"
# When the output fills the context window, keep a quarter of the budget next time.
_HARD_TRIM_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What happened to one message, for logs and tests."""

    answered: bool
    reply: ClaudeReply | None = None
    error: ClaudeError | None = None


class ConversationService:
    def __init__(
        self,
        store: Store,
        claude: ClaudeClient,
        commands: CommandService,
        *,
        max_concurrent_claude_calls: int = 256,
        locks: ThreadLocks | None = None,
    ) -> None:
        self.store = store
        self.claude = claude
        self.commands = commands
        self.locks = locks or ThreadLocks()
        self._claude_slots = asyncio.Semaphore(max_concurrent_claude_calls)

    # --- MessageSink ------------------------------------------------------

    async def accept(self, adapter: Adapter, message: IncomingMessage) -> AcceptedTurn | None:
        """Decide whether `message` gets an answer and, if so, store its turn (claiming the
        event). Quick, with no platform calls: adapters await it before acking."""
        if not await self._should_answer(message):
            return None
        summoned_mid_thread = message.mentions_bot and message.is_thread_reply
        needs_context = summoned_mid_thread and not await self.store.conversation_exists(message.thread)
        if not await self.store.accept_message(message):
            metrics.DUPLICATES.inc()
            log.info("duplicate delivery dropped: event=%s thread=%s", message.event_id, message.thread)
            return None
        return AcceptedTurn(message, needs_context)

    async def answer(self, adapter: Adapter, turn: AcceptedTurn) -> TurnOutcome:
        """Answer an accepted turn, one turn at a time per thread."""
        message = turn.message
        async with self.locks.hold(message.thread):
            if turn.needs_thread_context:
                earlier = await adapter.fetch_thread_context(message)
                if earlier:
                    await self.store.add_thread_context(
                        message.thread, message.message_id, render_thread_context(earlier)
                    )
            return await self._answer(adapter, message)

    async def on_command(self, adapter: Adapter, invocation: CommandInvocation) -> None:
        try:
            answer = await self.commands.run(adapter, invocation)
        except Exception:
            log.exception("command failed: %s in %s", invocation.text.split(" ", 1)[0], invocation.channel)
            answer = "Something went wrong on my side; nothing was changed. Please try again."
        await adapter.answer_command(invocation, answer)

    async def model_choices(self) -> list[str]:
        return sorted(await self.claude.catalog.models())

    # --- the flow ---------------------------------------------------------

    async def handle(self, adapter: Adapter, message: IncomingMessage) -> TurnOutcome:
        """Accept and answer in one go (the console, tests)."""
        turn = await self.accept(adapter, message)
        if turn is None:
            return TurnOutcome(answered=False)
        return await self.answer(adapter, turn)

    async def _should_answer(self, message: IncomingMessage) -> bool:
        """A mention, a DM, or a message in a thread the bot is already part of;
        never a bot (ourselves included). Top-level chatter costs no database access."""
        if message.actor.is_bot:
            return False
        if message.is_direct or message.mentions_bot:
            return True
        return message.is_thread_reply and await self.store.conversation_exists(message.thread)

    async def _answer(self, adapter: Adapter, message: IncomingMessage) -> TurnOutcome:
        started = time.monotonic()
        settings = await self.store.settings_for(message.channel)
        history = await self.store.load_history(message.thread)
        if _already_answered(history, message):
            log.info("turn already answered along with an earlier one: thread=%s", message.thread)
            return TurnOutcome(answered=False)
        async with self._claude_slots:
            reply_stream = _GuardedReply(await adapter.open_reply(message), message.thread)
            try:
                return await self._complete(message, settings, history, reply_stream, started)
            except ClaudeError as error:
                log.warning(
                    "turn failed: thread=%s model=%s kind=%s status=%s request_id=%s",
                    message.thread, settings.model, error.kind, error.status, error.request_id,
                )
                await reply_stream.finish(_join(reply_stream.received, error.user_message))
                metrics.ERRORS.labels(error.kind).inc()
                return TurnOutcome(answered=True, error=error)
            except asyncio.CancelledError:  # shutting down: never leave a half-shown answer open
                await asyncio.shield(reply_stream.finish(_join(reply_stream.received, INTERRUPTED_NOTE)))
                raise
            except Exception:
                log.exception("turn failed unexpectedly: thread=%s", message.thread)
                await reply_stream.finish(_join(reply_stream.received, FAILED_NOTE))
                metrics.ERRORS.labels("internal").inc()
                return TurnOutcome(answered=True)

    async def _complete(
        self,
        message: IncomingMessage,
        settings: ChannelSettings,
        history: History,
        reply_stream: _GuardedReply,
        started: float,
    ) -> TurnOutcome:
        """Ask Claude, store the answer, then show its final text."""
        reply, notes, sent = await self._ask_claude(message.thread, settings, history, reply_stream.append)
        stored_text = reply.text or (REFUSAL_PLACEHOLDER if reply.stop_reason == "refusal" else "")
        if stored_text:
            await self.store.append_answer(
                message.thread,
                stored_text,
                answers=sent[-1].order,
                model=reply.model,
                stop_reason=reply.stop_reason,
                usage=reply.usage,
            )
        await reply_stream.finish(_join(reply.text, *notes) or EMPTY_NOTE)
        _count(message.thread.platform, reply, time.monotonic() - started)
        log.info(
            "turn: thread=%s model=%s stop=%s in=%d cache_read=%d cache_write=%d out=%d seconds=%.2f",
            message.thread, reply.model, reply.stop_reason, reply.usage.input_tokens,
            reply.usage.cache_read_tokens, reply.usage.cache_write_tokens, reply.usage.output_tokens,
            time.monotonic() - started,
        )
        return TurnOutcome(answered=True, reply=reply)

    async def _ask_claude(
        self, thread: ThreadKey, settings: ChannelSettings, history: History, show: TextSink
    ) -> tuple[ClaudeReply, list[str], list[StoredTurn]]:
        """Fit the history to the window, stream the answer; on "prompt too long",
        trim harder and try once more. Returns the reply and the notes to show."""
        model = await self.claude.catalog.get(settings.model)
        window = model.context_window if model else DEFAULT_CONTEXT_WINDOW
        max_tokens = min(settings.max_tokens, model.max_output_tokens) if model else settings.max_tokens
        budget = window - max_tokens - estimate_tokens(settings.system_prompt)
        notes: list[str] = []
        trim_noticed = history.trim_noticed

        async def attempt(budget: int, keep_share: float | None) -> tuple[ClaudeReply, list[StoredTurn]]:
            nonlocal trim_noticed
            plan = fit_context(history.turns, budget, keep_share=keep_share)
            if plan.trimmed:
                await self.store.move_context_start(thread, plan.turns[0].order, trimmed=True)
                if not trim_noticed:
                    notes.append(TRIMMED_NOTE)
                    trim_noticed = True
            request = ClaudeRequest(
                model=settings.model,
                system=settings.system_prompt,
                messages=to_messages(plan.turns),
                max_tokens=max_tokens,
            )
            return await self.claude.stream(request, show), plan.turns

        try:
            reply, sent = await attempt(budget, None)
        except ClaudeError as error:
            if error.kind != "prompt_too_long":
                raise
            # Our estimate was too low for this text: send at most half of what was refused.
            refused = fit_context(history.turns, budget).turns
            reply, sent = await attempt(context_tokens(refused) // 2, 1.0)
        if reply.stop_reason == "max_tokens":
            notes.insert(0, CUT_OFF_NOTE)
        elif reply.stop_reason == "model_context_window_exceeded":
            notes.insert(0, CONTEXT_FULL_NOTE)
            await self.store.move_context_start(
                thread, fit_context(sent, budget, keep_share=_HARD_TRIM_SHARE).turns[0].order, trimmed=True
            )
        elif reply.stop_reason == "refusal":
            notes.insert(0, REFUSAL_NOTE)
        return reply, notes, sent


def _already_answered(history: History, message: IncomingMessage) -> bool:
    """True when an answer already stands after this message's turn (it arrived while an
    earlier turn was being answered and was sent along), or the turn is gone."""
    mine = next((i for i, t in enumerate(history.turns) if t.message_id == message.message_id), None)
    if mine is None:
        return True
    return any(t.role == "assistant" for t in history.turns[mine + 1 :])


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


class _GuardedReply:
    """The adapter's reply stream, kept from taking the turn down with it: if the
    platform fails mid-answer, Claude's answer is still stored and the final text
    is tried once more at the end."""

    def __init__(self, stream: ReplyStream, thread: ThreadKey) -> None:
        self._stream = stream
        self._thread = thread
        self._broken = False
        self._deltas: list[str] = []

    @property
    def received(self) -> str:
        """Every delta Claude produced so far (what the platform was asked to show)."""
        return "".join(self._deltas)

    async def append(self, delta: str) -> None:
        self._deltas.append(delta)
        if self._broken:
            return
        try:
            await self._stream.append(delta)
        except Exception:
            self._broken = True
            log.exception("showing the answer failed mid-stream: thread=%s", self._thread)

    async def finish(self, text: str) -> None:
        """Show the final text; a platform that refuses (rate limits outlasting its own retries)
        is asked again a few times, since the final text is what the user must get."""
        for attempt, pause in enumerate(_FINISH_RETRY_PAUSES, start=1):
            try:
                await self._stream.finish(text)
                return
            except Exception:
                last = attempt == len(_FINISH_RETRY_PAUSES)
                log.warning("showing the final answer failed (attempt %d): thread=%s", attempt, self._thread,
                            exc_info=last)
                if not last:
                    await asyncio.sleep(pause)


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)
