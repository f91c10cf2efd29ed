"""Slack's agent messaging experience (`features.agent_view`): the DM greeting and the
agent session around each answer.

- Opening the app's DM (`app_home_opened` with `tab == "messages"`) offers the suggested
  prompts and, the first time only, a short greeting. "First time" is read from Slack
  itself, as its docs advise for `app_home_opened`: the DM has no top-level message yet.
  So a restart, or several instances, never greet twice.
- Each answer runs inside its thread's agent session: `processing` when work starts
  (which creates the session, titled with the message that started the conversation),
  `active` once the answer is complete or has ended with its note. Slack shows its stop
  button while a session is `processing` (see `agent_session_stopped` in `adapter.py`).

Apps still on `assistant_view` keep their `assistant_thread_started` path (`assistant.py`);
Slack refuses agent sessions for them (the app is not declared an agent), and after the
first refusal this module stops asking.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.assistant import quietly
from bot.controls import AnswerControls
from bot.domain import Progress
from bot.ports import OffersControls, ReplyStream, ShowsProgress

log = logging.getLogger(__name__)

GREETING = (
    "Hi! I'm Claude. Ask me anything: each message you send here starts its own thread, "
    "and I remember the conversation within it."
)
SESSION_TITLE_CHARS = 200  # Slack's limit for a session title
WELCOME_SECONDS = 1.5  # before Slack's ack, which is due within 3 s
PROCESSING, ACTIVE = "processing", "active"
# Errors meaning "this app has no agent sessions" (an assistant_view install, an old Slack).
_NOT_AN_AGENT = frozenset(
    {"unknown_method", "not_allowed_token_type", "missing_scope", "not_an_agent", "app_not_agent"}
)


class AgentHome:
    """The DM as an agent: suggested prompts on every opening, a greeting on the first."""

    def __init__(self, client: AsyncWebClient, suggested_prompts: tuple[dict[str, str], ...]) -> None:
        self._client = client
        self._prompts = suggested_prompts

    async def opened(self, event: dict[str, Any]) -> None:
        """`app_home_opened`: only the Messages tab is the agent's DM."""
        channel = str(event.get("channel") or "")
        if event.get("tab") != "messages" or not channel.startswith("D"):
            return
        await quietly(asyncio.wait_for(self._welcome(channel), timeout=WELCOME_SECONDS))

    async def _welcome(self, channel: str) -> None:
        history = await self._client.conversations_history(channel=channel, limit=1)
        if not history.get("messages"):
            await self._client.chat_postMessage(
                channel=channel, text=GREETING, unfurl_links=False, unfurl_media=False
            )
        if self._prompts:
            # Agent view: no thread_ts (Slack documents that it makes the call fail silently there).
            await self._client.assistant_threads_setSuggestedPrompts(channel_id=channel, prompts=list(self._prompts))


class AgentSessions:
    """`agents.sessions.setStatus` for the threads the bot answers in."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.available = True  # False once Slack said this app has no agent sessions

    async def processing(self, channel: str, thread_ts: str, *, title: str | None, initiator: str) -> bool:
        """True when Slack now shows the thread's session working (with its stop button)."""
        return await self._set(channel, thread_ts, PROCESSING, title=title, initiator=initiator)

    async def active(self, channel: str, thread_ts: str) -> None:
        await self._set(channel, thread_ts, ACTIVE)

    async def _set(
        self, channel: str, thread_ts: str, status: str, *, title: str | None = None, initiator: str | None = None
    ) -> bool:
        if not self.available:
            return False
        try:
            await self._client.agents_sessions_setStatus(
                channel_id=channel,
                thread_ts=thread_ts,
                status=status,
                title=session_title(title) if title else None,
                initiator_user_id=initiator,
            )
            return True
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in _NOT_AN_AGENT:
                self.available = False
                log.info("slack: no agent sessions for this app (%s); answers go on without them", error)
            else:
                log.debug("slack: agent session status failed (%s)", error)
        except Exception as exc:  # cosmetic: an answer never fails for it
            log.debug("slack: agent session status failed (%s)", type(exc).__name__)
        return False


def session_title(first_message: str) -> str:
    """A session's title: the first line of the message that started it, within Slack's limit."""
    line = first_message.strip().split("\n", 1)[0].strip() or "Conversation"
    return line if len(line) <= SESSION_TITLE_CHARS else line[: SESSION_TITLE_CHARS - 1] + "…"


class SessionReply:
    """An answer inside its agent session: the session is `active` again once it is shown
    (complete, or ended with its note), whatever happened."""

    def __init__(self, reply: ReplyStream, sessions: AgentSessions, channel: str, thread_ts: str) -> None:
        self._reply = reply
        self._sessions = sessions
        self._channel = channel
        self._thread_ts = thread_ts

    @property
    def inner(self) -> ReplyStream:
        return self._reply

    def offer_controls(self, controls: AnswerControls) -> None:
        if isinstance(self._reply, OffersControls):
            self._reply.offer_controls(controls)

    async def append(self, delta: str) -> None:
        await self._reply.append(delta)

    async def progress(self, status: Progress) -> None:
        """What Claude is doing (thinking, searching), passed on: the session is only a frame."""
        if isinstance(self._reply, ShowsProgress):
            await self._reply.progress(status)

    async def finish(self, text: str) -> None:
        try:
            await self._reply.finish(text)
        finally:
            await self._sessions.active(self._channel, self._thread_ts)
