"""Asking Claude for one answer: the history fitted to the model's window, the request (the
turns' files as blocks, the channel's tools and effort), the run (tools, `pause_turn`, the
refusal fallback; ended early by Stop), and the one retry each refusal earns: an uploaded
file the Files API lost is restored, a prompt too long for our estimate is trimmed harder."""

from __future__ import annotations

from dataclasses import replace

from bot.channel_settings import ChannelSettingsResolver
from bot.claude import DEFAULT_CONTEXT_WINDOW, ClaudeClient, ClaudeError, ClaudeRequest
from bot.claude.turn import TurnAnswer, TurnRunner
from bot.domain import ChannelSettings, History, StoredTurn, ThreadKey
from bot.files.service import Attachments
from bot.policy import TRIMMED_NOTE, history_budget, output_limit, stop_note
from bot.ports import MessageSurface
from bot.prompt import ContextPlan, context_tokens, estimate_tokens, fit_context, to_messages
from bot.running import RunningAnswers, until_stopped
from bot.showing import ShownAnswer
from bot.store import Store

# When the output fills the context window, keep a quarter of the budget next time.
_HARD_TRIM_SHARE = 0.25


class ClaudeAsker:
    def __init__(
        self,
        store: Store,
        claude: ClaudeClient,
        settings: ChannelSettingsResolver,
        files: Attachments,
        turns: TurnRunner,
        running: RunningAnswers,
    ) -> None:
        self._store = store
        self._claude = claude
        self._settings = settings
        self._files = files
        self._turns = turns
        self._running = running

    async def ask(
        self,
        thread: ThreadKey,
        settings: ChannelSettings,
        history: History,
        reply_stream: ShownAnswer,
        surface: MessageSurface,
    ) -> tuple[TurnAnswer, list[str], list[StoredTurn]]:
        """Fit the history to the window and stream the answer; on "prompt too long", trim
        harder and try once more. Returns the answer, the notes to show and the turns sent."""
        settings, retired = await self._settings.unretired(thread.channel, settings, self._claude.catalog)
        model = await self._claude.catalog.get(settings.model)
        max_tokens = output_limit(settings.max_tokens, model.max_output_tokens if model else None)
        window = model.context_window if model else DEFAULT_CONTEXT_WINDOW
        budget = history_budget(window, max_tokens, estimate_tokens(settings.system_prompt))

        plan = fit_context(history.turns, budget)
        trimmed = await self._keep_from(thread, plan)
        request = await self._request(settings, plan.turns, max_tokens, surface)
        try:
            turn = await self._run(request, settings, reply_stream, thread)
        except ClaudeError as error:
            # A request with uploaded files refused: the Files API may have lost some (once).
            renewed = None
            if error.kind == "bad_request" and request.betas:
                renewed = await self._files.restore(thread, plan.turns, surface)
            if renewed:
                request = await self._request(settings, renewed, max_tokens, surface)
                turn = await self._run(request, settings, reply_stream, thread)
            elif error.kind != "prompt_too_long":
                raise
            else:
                # Our estimate was too low for this text: send at most half of what was refused.
                plan = fit_context(history.turns, context_tokens(plan.turns) // 2, keep_share=1.0)
                trimmed = await self._keep_from(thread, plan) or trimmed
                request = await self._request(settings, plan.turns, max_tokens, surface)
                turn = await self._run(request, settings, reply_stream, thread)

        reply = turn.reply
        if reply.stop_reason == "model_context_window_exceeded":
            hard_trim = fit_context(plan.turns, budget, keep_share=_HARD_TRIM_SHARE)
            await self._store.turns.trim_context(thread, first_kept=hard_trim.turns[0].order)
        notes = [
            retired,
            *turn.notes,
            stop_note(reply.stop_reason, reply.refusal_category),
            TRIMMED_NOTE if trimmed and not history.trim_noticed else None,
        ]
        return turn, [note for note in notes if note], plan.turns

    async def _request(
        self, settings: ChannelSettings, turns: list[StoredTurn], max_tokens: int, surface: MessageSurface
    ) -> ClaudeRequest:
        """The request for these turns: their files as blocks, the channel's tools and effort."""
        prepared = await self._files.prepare(turns, surface, settings.model)
        messages = to_messages(turns, prepared.blocks)
        request = await self._turns.request(settings.model, settings, settings.system_prompt, messages, max_tokens)
        return replace(request, betas=prepared.betas)

    async def _run(
        self, request: ClaudeRequest, settings: ChannelSettings, reply_stream: ShownAnswer, thread: ThreadKey
    ) -> TurnAnswer:
        """One answer across its requests (tools, pause_turn, fallback), ended early by Stop."""
        run = self._turns.run(request, settings, reply_stream.append, reply_stream.progress)
        return await until_stopped(run, self._running.get(thread))

    async def _keep_from(self, thread: ThreadKey, plan: ContextPlan) -> bool:
        """Where a plan dropped older turns, stop sending them from now on; True if it did."""
        if plan.trimmed:
            await self._store.turns.trim_context(thread, first_kept=plan.turns[0].order)
        return plan.trimmed
