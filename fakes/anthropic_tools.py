"""Server tools, thinking and refusals for the fake Anthropic API.

Builders for the content blocks a scripted reply may carry (`FakeAnthropic.queue_blocks`):
`server_tool_use`, `web_search_tool_result`, `web_fetch_tool_result`, text with web
citations and thinking blocks with a signature. `check_request` refuses what the real API
refuses: unknown tool versions, both allowed and blocked domains, web search, thinking or
effort on a model whose capabilities lack it, and a resent thinking block whose text or signature was
altered. `block_events` gives the SSE events that stream one block, as the real API does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

JsonDict = dict[str, Any]

WEB_SEARCH_VERSIONS = ("web_search_20250305", "web_search_20260209", "web_search_20260318")
WEB_FETCH_VERSIONS = ("web_fetch_20250910", "web_fetch_20260209", "web_fetch_20260309", "web_fetch_20260318")
_SIGNING_KEY = b"fake-anthropic-thinking"
_WORDS = re.compile(r"\S+\s*|\s+")


def sign(thinking: str) -> str:
    """The signature the fake gives a thinking block (and checks when it is sent back)."""
    return base64.b64encode(hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()).decode()


# --------------------------------------------------------------------------- block builders


def text(value: str) -> JsonDict:
    return {"type": "text", "text": value}


def cited(value: str, url: str, title: str, cited_text: str = "") -> JsonDict:
    """Text citing a web search result."""
    citation = {
        "type": "web_search_result_location",
        "url": url,
        "title": title,
        "cited_text": cited_text or value[:40],
        "encrypted_index": base64.b64encode(url.encode()).decode(),
    }
    return {"type": "text", "text": value, "citations": [citation]}


def cited_fetch(value: str, document_index: int, title: str | None = None) -> JsonDict:
    """Text citing a fetched page (web fetch citations are document locations)."""
    citation = {
        "type": "char_location",
        "cited_text": value[:40],
        "document_index": document_index,
        "document_title": title,
        "start_char_index": 0,
        "end_char_index": 40,
    }
    return {"type": "text", "text": value, "citations": [citation]}


def thinking(value: str) -> JsonDict:
    return {"type": "thinking", "thinking": value, "signature": sign(value)}


def web_search(query: str, tool_id: str = "srvtoolu_search_1") -> JsonDict:
    return {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": query}}


def web_search_result(results: Sequence[tuple[str, str]], tool_id: str = "srvtoolu_search_1") -> JsonDict:
    """Results as (title, url) pairs."""
    return {
        "type": "web_search_tool_result",
        "tool_use_id": tool_id,
        "content": [
            {
                "type": "web_search_result",
                "title": title,
                "url": url,
                "encrypted_content": base64.b64encode(f"page {url}".encode()).decode(),
                "page_age": None,
            }
            for title, url in results
        ],
    }


def web_fetch(url: str, tool_id: str = "srvtoolu_fetch_1") -> JsonDict:
    return {"type": "server_tool_use", "id": tool_id, "name": "web_fetch", "input": {"url": url}}


def web_fetch_result(url: str, title: str, page: str, tool_id: str = "srvtoolu_fetch_1") -> JsonDict:
    return {
        "type": "web_fetch_tool_result",
        "tool_use_id": tool_id,
        "content": {
            "type": "web_fetch_result",
            "url": url,
            "retrieved_at": "2026-11-30T12:00:00Z",
            "content": {
                "type": "document",
                "title": title,
                "source": {"type": "text", "media_type": "text/plain", "data": page},
                "citations": {"enabled": True},
            },
        },
    }


def capabilities(*, thinking: bool, effort: Sequence[str] = (), web: bool = True) -> JsonDict:
    """A model's `capabilities` as the models API gives them."""
    yes, no = {"supported": True}, {"supported": False}

    def flag(on: bool) -> JsonDict:
        return yes if on else no

    return {
        "batch": yes,
        "citations": yes,
        "code_execution": no,
        "context_management": {"supported": False},
        "effort": {
            "supported": bool(effort),
            **{level: flag(level in effort) for level in ("low", "medium", "high", "max", "xhigh")},
        },
        "image_input": yes,
        "pdf_input": yes,
        "server_tools": {"supported": web, "code_execution": no, "web_search": flag(web)},
        "structured_outputs": yes,
        "thinking": {
            "supported": thinking,
            "types": {
                "adaptive": flag(thinking),
                "between_tools": no,
                "disabled": yes,
                "enabled": no,
            },
        },
    }


# --------------------------------------------------------------------------- accounting


def server_tool_counts(blocks: Sequence[Mapping[str, Any]]) -> JsonDict:
    names = [b.get("name") for b in blocks if b.get("type") == "server_tool_use"]
    return {"web_search_requests": names.count("web_search"), "web_fetch_requests": names.count("web_fetch")}


def written_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    """What the model wrote (text and thinking), for output tokens."""
    return "".join(str(b.get("text") or b.get("thinking") or "") for b in blocks)


# --------------------------------------------------------------------------- validation


def check_request(body: Mapping[str, Any], capabilities: Mapping[str, Any] | None) -> str | None:
    """Why the real API would refuse this request (None: it would not)."""
    for index, tool in enumerate(body.get("tools") or []):
        kind = str(tool.get("type", ""))
        if kind.startswith(("web_search", "web_fetch")):
            if kind not in WEB_SEARCH_VERSIONS + WEB_FETCH_VERSIONS:
                return f"tools.{index}: unknown tool type {kind!r}"
            if tool.get("allowed_domains") and tool.get("blocked_domains"):
                return f"tools.{index}: cannot specify both allowed_domains and blocked_domains"
            if "max_uses" in tool and not (isinstance(tool["max_uses"], int) and tool["max_uses"] >= 1):
                return f"tools.{index}.max_uses: Input should be greater than or equal to 1"
    caps = capabilities or {}
    searches = any(str(t.get("type", "")).startswith("web_search") for t in body.get("tools") or [])
    if searches and caps and not caps.get("server_tools", {}).get("web_search", {}).get("supported"):
        return "tools: the web search tool is not supported on this model"
    thinking_config = body.get("thinking")
    if isinstance(thinking_config, dict) and thinking_config.get("type") == "adaptive":
        if not caps.get("thinking", {}).get("types", {}).get("adaptive", {}).get("supported"):
            return "thinking.type: adaptive thinking is not supported on this model"
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and not caps.get("effort", {}).get(effort, {}).get("supported"):
        return f"output_config.effort: effort {effort!r} is not supported on this model"
    for m_index, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        for b_index, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict) and block.get("type") == "thinking":
                if block.get("signature") != sign(str(block.get("thinking", ""))):
                    return f"messages.{m_index}.content.{b_index}: Invalid `signature` in `thinking` block"
    return None


def tool_names(body: Mapping[str, Any]) -> set[str]:
    return {str(tool.get("name")) for tool in body.get("tools") or [] if isinstance(tool, dict)}


# --------------------------------------------------------------------------- streaming


def block_events(index: int, block: Mapping[str, Any]) -> list[JsonDict]:
    """The events that stream one content block (start, deltas, stop)."""
    kind = block["type"]
    if kind == "text":
        events: list[JsonDict] = [_start(index, {"type": "text", "text": ""})]
        for citation in block.get("citations") or []:
            events.append(_delta(index, {"type": "citations_delta", "citation": citation}))
        events += [_delta(index, {"type": "text_delta", "text": w}) for w in _WORDS.findall(block["text"])]
    elif kind == "thinking":
        events = [_start(index, {"type": "thinking", "thinking": "", "signature": ""})]
        events += [_delta(index, {"type": "thinking_delta", "thinking": w}) for w in _WORDS.findall(block["thinking"])]
        events.append(_delta(index, {"type": "signature_delta", "signature": block["signature"]}))
    elif kind == "server_tool_use":
        events = [
            _start(index, {**block, "input": {}}),
            _delta(index, {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}),
        ]
    else:  # tool results arrive whole
        events = [_start(index, dict(block))]
    events.append({"type": "content_block_stop", "index": index})
    return events


def _start(index: int, block: JsonDict) -> JsonDict:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: JsonDict) -> JsonDict:
    return {"type": "content_block_delta", "index": index, "delta": delta}
