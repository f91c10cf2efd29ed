"""The models Claude offers and their facts (context window, output limit, capabilities,
lifecycle): the models API, cached for an hour, or a built-in table while that API cannot
be reached (it knows no capabilities: effort and thinking are then left out of requests)."""

from __future__ import annotations

import logging
import time
import typing
from dataclasses import dataclass
from datetime import datetime

import anthropic

from bot.ttl import Clock, TtlCache

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 200_000  # for a model the catalogue does not know


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    context_window: int
    max_output_tokens: int
    image_input: bool | None = None  # from the models API's capabilities; None: not said
    pdf_input: bool | None = None
    lifecycle: str = "active"  # active, deprecated or retired (requests naming it fail)
    retires_at: datetime | None = None
    adaptive_thinking: bool = False  # accepts thinking {"type": "adaptive"}
    effort_levels: frozenset[str] = frozenset()  # the output_config.effort levels it accepts
    web_search: bool = True  # False only where the models API says it lacks the web search tool


def model_info(info: anthropic.types.ModelInfo) -> ModelInfo:
    """The facts the service uses, from the models API's own record of a model."""
    caps = info.capabilities
    levels: frozenset[str] = frozenset()
    adaptive = False
    web = True
    if caps is not None:
        web = caps.server_tools.web_search.supported
        if caps.effort.supported:
            offered = {"low": caps.effort.low, "medium": caps.effort.medium, "high": caps.effort.high,
                       "max": caps.effort.max, "xhigh": caps.effort.xhigh}
            levels = frozenset(name for name, support in offered.items() if support is not None and support.supported)
        adaptive = caps.thinking.supported and caps.thinking.types.adaptive.supported
    return ModelInfo(
        info.id,
        info.max_input_tokens or DEFAULT_CONTEXT_WINDOW,
        info.max_tokens or 64_000,
        lifecycle=info.lifecycle,
        retires_at=info.retires_at,
        adaptive_thinking=adaptive,
        effort_levels=levels,
        web_search=web,
        image_input=caps.image_input.supported if caps else None,
        pdf_input=caps.pdf_input.supported if caps else None,
    )


def _fallback_models() -> list[ModelInfo]:
    """The SDK's list of model ids, with context windows from Anthropic's public docs:
    1M tokens for the newest generations, 200K for the rest."""
    literal = next(arg for arg in typing.get_args(anthropic.types.Model) if typing.get_args(arg))
    models = []
    for model_id in typing.get_args(literal):
        older = any(old in model_id for old in ("-4-5", "haiku-4", "-3-", "opus-4-0", "sonnet-4-0", "opus-4-1"))
        models.append(ModelInfo(model_id, 200_000 if older else 1_000_000, 64_000))
    return models


FALLBACK_MODELS = _fallback_models()

_EVERY_MODEL = "models"  # the one key of the catalogue's cache


class ModelCatalog:
    """Known models and their context windows: the models API, cached for `ttl_seconds`,
    with the fallback table (tried again after `retry_seconds`) when it cannot be reached."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        ttl_seconds: float = 3600.0,
        *,
        retry_seconds: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self._retry_seconds = retry_seconds
        self._cache: TtlCache[str, dict[str, ModelInfo]] = TtlCache(ttl_seconds, max_entries=1, clock=clock)

    async def models(self) -> dict[str, ModelInfo]:
        """The models a channel can use (retired ones left out)."""
        return {key: info for key, info in (await self._every_model()).items() if info.lifecycle != "retired"}

    async def get(self, model_id: str) -> ModelInfo | None:
        """What is known of `model_id`, a retired model included."""
        return (await self._every_model()).get(model_id)

    async def _every_model(self) -> dict[str, ModelInfo]:
        try:
            return await self._cache.get_or_load(_EVERY_MODEL, self._list_models)
        except anthropic.AnthropicError as exc:
            fallback = self._cache.get(_EVERY_MODEL)  # another caller of the same failed load may have set it
            if fallback is None:
                log.warning("models API unavailable (%s); using the built-in model list", type(exc).__name__)
                fallback = {m.id: m for m in FALLBACK_MODELS}
                self._cache.put(_EVERY_MODEL, fallback, ttl=self._retry_seconds)
            return fallback

    async def _list_models(self) -> dict[str, ModelInfo]:
        fetched: dict[str, ModelInfo] = {}
        async for info in self._client.models.list(limit=100, lifecycle=["active", "deprecated", "retired"]):
            fetched[info.id] = model_info(info)
        return fetched or {m.id: m for m in FALLBACK_MODELS}
