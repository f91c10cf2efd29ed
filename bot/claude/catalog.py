"""The models Claude offers and their context windows: the models API, cached for an
hour, or a built-in table while that API cannot be reached."""

from __future__ import annotations

import logging
import time
import typing
from dataclasses import dataclass

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
        try:
            return await self._cache.get_or_load(_EVERY_MODEL, self._list_models)
        except anthropic.AnthropicError as exc:
            fallback = self._cache.get(_EVERY_MODEL)  # another caller of the same failed load may have set it
            if fallback is None:
                log.warning("models API unavailable (%s); using the built-in model list", type(exc).__name__)
                fallback = {m.id: m for m in FALLBACK_MODELS}
                self._cache.put(_EVERY_MODEL, fallback, ttl=self._retry_seconds)
            return fallback

    async def get(self, model_id: str) -> ModelInfo | None:
        return (await self.models()).get(model_id)

    async def _list_models(self) -> dict[str, ModelInfo]:
        fetched: dict[str, ModelInfo] = {}
        async for info in self._client.models.list(limit=100):
            caps = info.capabilities
            fetched[info.id] = ModelInfo(
                info.id,
                info.max_input_tokens or 200_000,
                info.max_tokens or 64_000,
                image_input=caps.image_input.supported if caps else None,
                pdf_input=caps.pdf_input.supported if caps else None,
            )
        return fetched or {m.id: m for m in FALLBACK_MODELS}
