"""Talking to Claude: `client` streams replies (retrying only what the SDK cannot),
`errors` turns failures into sentences for the thread, `catalog` knows the models."""

from bot.claude.catalog import DEFAULT_CONTEXT_WINDOW, FALLBACK_MODELS, ModelCatalog, ModelInfo
from bot.claude.client import ClaudeClient, ClaudeReply, ClaudeRequest, OnText, tracing_configured
from bot.claude.errors import ClaudeError, classify

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "FALLBACK_MODELS",
    "ClaudeClient",
    "ClaudeError",
    "ClaudeReply",
    "ClaudeRequest",
    "ModelCatalog",
    "ModelInfo",
    "OnText",
    "classify",
    "tracing_configured",
]
