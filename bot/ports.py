"""What the core needs from a platform, and what a platform may ask of the core.

A platform adapter translates each event into a platform-free value
(`IncomingMessage`, `CommandInvocation`) and hands it to the core's `Inbox`
together with a *surface*: an object bound to that one event, through which
the core answers it (open the reply, read the thread's earlier messages, answer
a command ephemerally, ask whether the actor administers the place). A surface
closes over the platform's own event (Slack's payload and response_url, a
`discord.Message` or `discord.Interaction`), so nothing is looked up again
later in a side table.

The core never imports an adapter: adapters import this module, `bot.domain`
and `bot.errors`, and the composition root (`bot.app`) wires them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.domain import CommandInvocation, ContextMessage, FileRef, IncomingMessage, PostedMessage, Progress, ThreadKey

if TYPE_CHECKING:
    from aiohttp import web

    from bot.controls import AnswerControls, ControlResult, ControlsMessage, Presser


class ReplyStream(Protocol):
    """One answer as it is being written.

    `append` gets text deltas as Claude produces them; `finish` gets the complete
    text, which always begins with everything appended so far (notes such as
    "(cut off)" or an error sentence come after it). The first call to either
    clears any progress cue ("thinking…", typing) the platform showed.
    """

    async def append(self, delta: str) -> None: ...

    async def finish(self, text: str) -> None: ...


@runtime_checkable
class ShownInMessages(Protocol):
    """A reply whose messages people can reply to, continuing its conversation (Discord's
    reply mode): the core stores their ids with the answer."""

    def shown_message_ids(self) -> list[str]:
        """The platform ids of the messages the answer is shown in, in order."""
        ...


@runtime_checkable
class ShowsProgress(Protocol):
    """A reply that can show what Claude is doing before and between its text: thinking,
    searching the web for a query, reading a page. Optional: a reply without it shows its
    usual cue. Never given the thinking itself."""

    async def progress(self, status: Progress) -> None: ...


@runtime_checkable
class OffersControls(Protocol):
    """A reply that can show conversation controls (buttons) on its final message."""

    def offer_controls(self, controls: AnswerControls) -> None:
        """Called before `finish`: the final message carries these controls."""
        ...


class MessageSurface(Protocol):
    """The platform side of one incoming message."""

    async def open_reply(self) -> ReplyStream:
        """Where the answer goes; shows a progress cue until text arrives."""
        ...

    async def fetch_thread_context(self) -> list[ContextMessage]:
        """Earlier messages of the thread the message was posted in, oldest first
        ([] where there are none or the platform has no threads)."""
        ...

    async def fetch_later_messages(self, after_message_id: str) -> list[IncomingMessage]:
        """People's messages posted in this thread after `after_message_id`, oldest first, translated
        as if delivered ([] where the platform cannot say or has no threads)."""
        ...

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        """The bytes of a file of this conversation, at most `limit` of them; raises
        `bot.files.download.FileTooLarge`, `HostRefused` or `DownloadFailed`."""
        ...


class CommandSurface(Protocol):
    """The platform side of one `/claude` invocation."""

    async def answer(self, text: str) -> None:
        """Answer the command, ephemerally where the platform can."""
        ...

    async def actor_is_admin(self) -> bool:
        """Whether the platform says the invoker administers the workspace or server."""
        ...


class Inbox(Protocol):
    """The core's entry for platforms (implemented by `ConversationService`)."""

    async def submit(self, message: IncomingMessage, surface: MessageSurface) -> bool:
        """Accept a message: store it (claiming its event) and schedule its answer.

        Awaited before the platform is acked, so an acked message is never lost.
        True when the message will be answered; False for a duplicate delivery or
        a message the bot does not answer. Raises `bot.errors.ServiceUnavailable`
        when it cannot be stored now: the platform should deliver it again later.
        """
        ...

    async def submit_command(self, invocation: CommandInvocation, surface: CommandSurface) -> None:
        """Schedule a command; it is answered through `surface`. Returns at once."""
        ...

    async def message_deleted(self, posted: PostedMessage) -> bool:
        """A person deleted their message: its turn leaves the stored history and every later
        request, and it is not answered if it was still waiting. True if a turn was stored.
        Awaited before the ack; raises `ServiceUnavailable` as `submit` does."""
        ...

    async def message_edited(self, posted: PostedMessage, text: str) -> bool:
        """A person edited their message (`text`: the new text, translated as for `submit`):
        its stored turn gets the new text. Never starts an answer. True if a turn changed."""
        ...

    async def model_choices(self) -> list[str]:
        """The model ids `/claude model` accepts (for autocomplete)."""
        ...

    async def conversation_of(self, platform: str, message_id: str) -> ThreadKey | None:
        """The conversation whose answer was shown in that platform message (see
        `ShownInMessages`), if any: a reply to it continues that conversation."""
        ...

    async def workspace_left(self, platform: str, workspace_id: str, *, left: bool = True) -> None:
        """The app was removed from a workspace (`left`), or installed there again: its
        conversations are deleted once it has been gone for UNINSTALL_GRACE_DAYS."""
        ...

    @property
    def controls(self) -> Controls: ...


SurfaceFor = Callable[[IncomingMessage], MessageSurface]
"""Builds the surface through which a stored turn of a thread is answered again."""


class Controls(Protocol):
    """Conversation controls (implemented by `bot.control_service.ControlService`). Each
    returns at once with what to tell the presser; the rules are `bot.controls`'."""

    async def stop(self, thread: ThreadKey, presser: Presser) -> ControlResult:
        """End the answer being written in `thread`: it is kept and stored with "(stopped)"."""
        ...

    async def rate(self, answer_id: int, presser: Presser, positive: bool) -> ControlResult:
        """Record (or change) this person's vote on a stored answer."""
        ...

    async def regenerate(self, answer_id: int, presser: Presser, surface_for: SurfaceFor) -> ControlResult:
        """Answer the turn of `answer_id` again; the old answer is marked superseded."""
        ...

    async def continue_answer(self, answer_id: int, presser: Presser, surface_for: SurfaceFor) -> ControlResult:
        """Have Claude go on after a cut-off answer, shown as the next message."""
        ...

    async def controls_moved(
        self, thread: ThreadKey, carrier: ControlsMessage | None, answer_id: int | None
    ) -> list[ControlsMessage]:
        """`carrier` (None: no message) now shows the buttons of `thread`'s latest answer
        (`answer_id`); returns the messages that showed them before, to take theirs off."""
        ...


class Platform(Protocol):
    """A chat platform the service is connected to.

    Shutdown is two steps so that answers under way can finish: `stop_intake`
    (no new events), then, once the core has drained its work, `close`.
    """

    name: str

    async def start(self, inbox: Inbox) -> None:
        """Connect; raise `bot.errors.StartupError` (one line for the operator) if refused."""
        ...

    async def stop_intake(self) -> None: ...

    async def close(self) -> None: ...

    async def surface_for_stored(self, message: IncomingMessage) -> MessageSurface | None:
        """A surface for a message stored earlier (by this or another process) and never
        answered: rebuilt from its thread and platform message id, without the original
        event. None when the platform cannot reach it now."""
        ...


@runtime_checkable
class ServesHttp(Protocol):
    """A platform that receives its events over the service's HTTP server."""

    def routes(self) -> list[web.RouteDef]: ...
