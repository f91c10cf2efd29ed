"""What one Claude request carries beyond the conversation: the channel's tools and
effort, decided against the model's facts from the models API. Pure; table-tested in
tests/test_claude_request.py."""

from __future__ import annotations

from typing import Any

from bot.claude.catalog import ModelInfo
from bot.claude.tools import web_tools
from bot.domain import ChannelSettings

# From least to most: a level the model lacks becomes the nearest lower one it has.
EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")


def effort_for(wanted: str | None, model: ModelInfo | None) -> str | None:
    """The effort level to send: the channel's, or the nearest lower level the model accepts;
    None where the channel chose none or the model takes no effort at all."""
    if wanted is None or model is None or not model.effort_levels or wanted not in EFFORT_ORDER:
        return None
    for level in reversed(EFFORT_ORDER[: EFFORT_ORDER.index(wanted) + 1]):
        if level in model.effort_levels:
            return level
    return None


def request_extras(settings: ChannelSettings, model: ModelInfo | None, web_max_uses: int) -> dict[str, Any]:
    """`tools`, `thinking` and `output_config` for the channel's request, each only where it
    applies: web tools where the channel has them on and the model has them; adaptive thinking and the effort only
    where the channel chose an effort and the models API says the model supports them."""
    extras: dict[str, Any] = {}
    if settings.web and (model is None or model.web_search):  # a model without it would refuse the request
        extras["tools"] = list(web_tools(web_max_uses, settings.web_allowed_domains, settings.web_blocked_domains))
    effort = effort_for(settings.effort, model)
    if settings.effort is not None and model is not None and model.adaptive_thinking:
        extras["thinking"] = {"type": "adaptive"}
    if effort is not None:
        extras["output_config"] = {"effort": effort}
    return extras
