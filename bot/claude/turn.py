"""One answer as Claude gives it, across as many requests as it takes.

- **pause_turn**: a long server-tool turn the API paused is sent back (the request plus
  the paused response as the assistant's turn, thinking signatures intact) until it
  ends, at most `MAX_CONTINUATIONS` times, and only while the web tools have uses left
  (`WEB_MAX_USES` is a cap per answer; the API counts per request).
- **Refusals**: with a fallback model set, a refused request goes once, as it was, to
  the fallback model (its own tools and effort), and the answer says which model gave it.
- **Sources**: the answer's web citations become a numbered list after its text; that
  text, not the raw results, is what is stored and resent later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bot import metrics
from bot.claude.client import ClaudeClient, ClaudeReply, ClaudeRequest, OnText
from bot.claude.request import request_extras
from bot.claude.response import OnProgress
from bot.claude.tools import with_uses_left
from bot.domain import ChannelSettings, TokenUsage
from bot.policy import fallback_note, join_notes
from bot.sources import cited_sources, render_sources

MAX_CONTINUATIONS = 4


@dataclass(frozen=True, slots=True)
class TurnAnswer:
    reply: ClaudeReply  # the answering model's reply; usage summed over every request of the turn
    shown: str  # everything streamed, then the sources: the answer as the person sees it
    kept: str  # the answering model's text and the sources: what is stored and resent
    notes: tuple[str, ...]  # shown after the answer, never stored
    # What each model used, for its price: a refused request is billed at the refusing model's.
    spent: tuple[tuple[str, TokenUsage], ...] = ()


class TurnRunner:
    def __init__(self, claude: ClaudeClient, web_max_uses: int) -> None:
        self._claude = claude
        self.web_max_uses = web_max_uses

    async def request(
        self, model: str, settings: ChannelSettings, system: str, messages: list[dict[str, Any]], max_tokens: int
    ) -> ClaudeRequest:
        """The request for `model` with the channel's tools and effort, as that model takes them."""
        info = await self._claude.catalog.get(model)
        if info is not None:
            max_tokens = min(max_tokens, info.max_output_tokens)
        extras = request_extras(settings, info, self.web_max_uses)
        return ClaudeRequest(model, system, messages, max_tokens, extras=extras)

    async def run(
        self, request: ClaudeRequest, settings: ChannelSettings, on_text: OnText, on_progress: OnProgress | None
    ) -> TurnAnswer:
        streamed: list[str] = []

        async def show(delta: str) -> None:
            streamed.append(delta)
            await on_text(delta)

        reply = await self._to_the_end(request, show, on_progress)
        notes: list[str] = []
        spent = [(reply.model, reply.usage)]
        fallback = settings.fallback_model
        if reply.stop_reason == "refusal" and fallback and await self._usable(fallback, request):
            refused = reply
            if "".join(streamed).strip():
                await show("\n\n")  # the fallback's answer starts apart from what was shown
            metrics.FALLBACKS.inc()
            retry = replace(
                await self.request(fallback, settings, request.system, request.messages, request.max_tokens),
                betas=request.betas,  # the same files, referenced the same way
            )
            reply = await self._to_the_end(retry, show, on_progress)
            spent.append((reply.model, reply.usage))
            reply = replace(reply, usage=refused.usage + reply.usage)
            if reply.stop_reason != "refusal":  # (a second refusal gets the usual note)
                notes.append(fallback_note(fallback, request.model, refused.refusal_category))
        metrics.SERVER_TOOL_USES.labels("web_search").inc(reply.usage.web_searches)
        metrics.SERVER_TOOL_USES.labels("web_fetch").inc(reply.usage.web_fetches)
        sources = render_sources(cited_sources(reply.content))
        shown = join_notes("".join(streamed), sources) if sources else "".join(streamed)
        kept = join_notes(reply.text, sources) if reply.text.strip() else reply.text
        return TurnAnswer(reply, shown, kept, tuple(notes), tuple(spent))

    async def _usable(self, fallback: str, refused: ClaudeRequest) -> bool:
        """A fallback other than the refusing model, not retired, and able to read the files the
        request carries (a request it cannot take would fail: the refusal's note is better)."""
        info = await self._claude.catalog.get(fallback)
        if fallback == refused.model or info is None:
            return fallback != refused.model
        reads = {"image": info.image_input is not False, "pdf": info.pdf_input is not False}
        return info.lifecycle != "retired" and all(reads[kind] for kind in _file_kinds(refused.messages))

    async def _to_the_end(
        self, request: ClaudeRequest, show: OnText, on_progress: OnProgress | None
    ) -> ClaudeReply:
        """One model's answer, its paused turns continued: the text and content of every
        response, the usage summed (still `pause_turn` if it could not be finished)."""
        reply = await self._claude.stream(request, show, on_progress)
        texts, content, usage = [reply.text], list(reply.content), reply.usage
        for _ in range(MAX_CONTINUATIONS):
            if reply.stop_reason != "pause_turn":
                break
            extras = dict(request.extras)
            if "tools" in extras:
                used = {"web_search": usage.web_searches, "web_fetch": usage.web_fetches}
                tools = with_uses_left(tuple(extras["tools"]), used)
                if tools is None:
                    break
                extras["tools"] = list(tools)
            continued = replace(
                request, messages=[*request.messages, {"role": "assistant", "content": list(content)}], extras=extras
            )
            reply = await self._claude.stream(continued, show, on_progress)
            texts.append(reply.text)
            content += reply.content
            usage = usage + reply.usage
        return replace(reply, text="".join(texts), content=tuple(content), usage=usage)


def _file_kinds(messages: list[dict[str, Any]]) -> set[str]:
    """What the request's file blocks need a model to read: "image", "pdf" (text documents
    need nothing; a PDF is the document with citations, see `bot.files.blocks`)."""
    kinds = set()
    for message in messages:
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if block.get("type") == "image":
                kinds.add("image")
            elif block.get("type") == "document" and (
                "citations" in block or block.get("source", {}).get("media_type") == "application/pdf"
            ):
                kinds.add("pdf")
    return kinds
