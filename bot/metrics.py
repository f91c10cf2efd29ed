"""What `GET /metrics` reports, in Prometheus' text format.

One registry for the process (not prometheus_client's global one), so what is
exported is exactly what is defined here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

REPLIES = Counter("bot_replies_total", "Answers shown in a thread", ["platform"], registry=REGISTRY)
ERRORS = Counter("bot_errors_total", "Turns that ended in an error, by kind", ["kind"], registry=REGISTRY)
DUPLICATES = Counter("bot_duplicates_dropped_total", "Deliveries of an already claimed event", registry=REGISTRY)
MESSAGE_CHANGES = Counter(
    "bot_message_changes_total", "Stored turns deleted or edited by their authors", ["kind"], registry=REGISTRY
)
TOKENS = Counter("bot_claude_tokens_total", "Claude tokens, by kind", ["kind"], registry=REGISTRY)
SERVER_TOOL_USES = Counter(
    "bot_claude_server_tool_uses_total", "Claude's web searches and fetches, by tool", ["tool"], registry=REGISTRY
)
FALLBACKS = Counter("bot_claude_fallbacks_total", "Refused requests sent to the fallback model", registry=REGISTRY)
CLAUDE_LATENCY = Histogram(
    "bot_claude_seconds",
    "Duration of a streamed Claude call",
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
    registry=REGISTRY,
)
TURN_SECONDS = Histogram(
    "bot_event_handling_seconds",
    "From a message handed to the core to its answer stored and shown",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
FEEDBACK = Counter("bot_feedback_votes", "Feedback votes on answers, by rating", ["rating"], registry=REGISTRY)
CLAUDE_IN_FLIGHT = Gauge("bot_claude_calls_in_flight", "Claude calls under way", registry=REGISTRY)
SPEND = Counter(
    "bot_spend_usd_total", "What answers cost at the configured prices, US$", ["platform"], registry=REGISTRY
)
LIMITED = Counter(
    "bot_limited_turns_total", "Turns that made no request: a spend limit, a rate limit, or waiting too long",
    ["reason"], registry=REGISTRY,
)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
