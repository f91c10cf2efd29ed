"""Conversation controls on Slack: the buttons under a complete answer (Slack's feedback
buttons, Regenerate, Continue) and Slack's own stop button (`agent_session_stopped`).

Clicks are translated into the core's control calls (`Inbox.controls`); whatever the core
says to the presser goes to them alone (`chat.postEphemeral`). Every listener returns
quickly, as Slack wants interactive payloads acked within 3 seconds: the core stores a
vote or schedules the work, and returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from adapters.slack.blocks import CONTINUE_ACTION, FEEDBACK_ACTION, REGENERATE_ACTION
from adapters.slack.surface import SlackMessageSurface, SlackWorkspace
from adapters.slack.translate import PLATFORM
from bot.controls import ControlResult, Presser
from bot.domain import Actor, IncomingMessage, ThreadKey
from bot.ports import Inbox, MessageSurface, SurfaceFor

log = logging.getLogger(__name__)

NOTICE_SECONDS = 1.5

def register_controls(
    app: AsyncApp, workspace: Callable[[AsyncBoltContext], SlackWorkspace], inbox: Callable[[], Inbox | None]
) -> None:
    """Bolt listeners for the controls; `inbox` is None once intake has stopped. `workspace`
    gives the click's workspace (with many workspaces, each has its own token)."""

    def presser(slack: SlackWorkspace, user_id: str) -> Presser:
        async def is_admin() -> bool:
            return await slack.users.is_admin(user_id)

        return Presser(Actor(PLATFORM, user_id, user_id), is_admin)

    def surfaces(slack: SlackWorkspace) -> Callable[[IncomingMessage], MessageSurface]:
        def surface_for(message: IncomingMessage) -> MessageSurface:
            return SlackMessageSurface(slack, message, event={})

        return surface_for

    async def tell(
        slack: SlackWorkspace, result: ControlResult, user_id: str, channel: str, thread_ts: str | None
    ) -> None:
        if not result.notice or not channel or not user_id:
            return
        notice = slack.client.chat_postEphemeral(channel=channel, user=user_id, thread_ts=thread_ts, text=result.notice)
        try:  # bounded: the listener's return is Slack's ack, due within 3 s
            await asyncio.wait_for(notice, timeout=NOTICE_SECONDS)
        except Exception as exc:  # the click itself was handled
            log.warning("slack: could not tell the presser (%s)", type(exc).__name__)

    @app.event("agent_session_stopped")
    async def on_session_stopped(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        core, slack = inbox(), workspace(context)
        channel, thread_ts = str(event.get("channel", "")), str(event.get("thread_ts", ""))
        user = str(event.get("user", ""))
        if core is None or not channel or not thread_ts:
            return
        thread = ThreadKey(PLATFORM, str(body.get("team_id") or slack.translator.team_id), channel, thread_ts)
        result = await core.controls.stop(thread, presser(slack, user))
        await tell(slack, result, user, channel, thread_ts)

    async def on_click(
        action: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, run: Callable[..., Any]
    ) -> None:
        core, slack = inbox(), workspace(context)
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", "") or (body.get("container") or {}).get("channel_id", ""))
        message = body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "") or None
        value = str(action.get("value", ""))
        answer_text = value.rpartition(":")[2]
        if core is None or not answer_text.isdigit():
            log.warning("slack: dropped a control click without a usable answer id")
            return
        result: ControlResult = await run(core, int(answer_text), presser(slack, user), value, surfaces(slack))
        await tell(slack, result, user, channel, thread_ts)

    @app.action(FEEDBACK_ACTION)
    async def on_feedback(ack: Any, action: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()

        async def run(core: Inbox, answer: int, who: Presser, value: str, _surfaces: SurfaceFor) -> ControlResult:
            return await core.controls.rate(answer, who, positive=value.startswith("up:"))

        await on_click(action, body, context, run)

    @app.action(REGENERATE_ACTION)
    async def on_regenerate(ack: Any, action: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()

        async def run(core: Inbox, answer: int, who: Presser, _value: str, surface_for: SurfaceFor) -> ControlResult:
            return await core.controls.regenerate(answer, who, surface_for)

        await on_click(action, body, context, run)

    @app.action(CONTINUE_ACTION)
    async def on_continue(ack: Any, action: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()

        async def run(core: Inbox, answer: int, who: Presser, _value: str, surface_for: SurfaceFor) -> ControlResult:
            return await core.controls.continue_answer(answer, who, surface_for)

        await on_click(action, body, context, run)
