"""Fuzzing `POST /slack/events`, and properties of the command parser and the message splitter.

The endpoint fuzz runs ONE service (the in-process `slack_service`: aiohttp, real Bolt, the fake
Slack and the fake Anthropic APIs, the test's database) in the test's event loop, and drives it from
Hypothesis running in a worker thread: `@given` decorates a plain sync function that posts each
generated request into the running loop with `asyncio.run_coroutine_threadsafe` and waits for the
answer. This way

* Hypothesis does the generating, the reporting ("Falsifying example: ...") and the shrinking, with
  its own example budget (no giant `st.data()` draw that would overrun Hypothesis' buffer, no
  discouraged `.example()`), seeded (`@seed`, no example database);
* the service, its background answers and both fakes keep running between examples, so answers to
  the mentions sent early are produced while later requests arrive, as in production;
* everything a request must be unique in (its token, its `ts`, its signature and timestamp) is made
  when it is sent, not when it is generated: a replayed or shrunk example is a new request.

`FUZZ_EXAMPLES` and `FUZZ_SEED` (environment) change the budget and the seed.

Below the fuzz: the smallest reproductions of the product bugs it found (all fixed since, kept as
regression tests), then properties of `parse_command` and of the part splitter at
Discord's 2,000 and Slack's 12,000 characters.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapters.streaming import PartSplitter, split_all
from bot.commands import Command, parse_command
from bot.schema import messages
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack, event_body, sign_request
from tests.slack_harness import SIGNING_SECRET, SlackHarness, channel_message, mention

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20240611"))
DISCORD_LIMIT = 2_000
SLACK_LIMIT = 12_000

# --------------------------------------------------------------------------------------------
# Requests: what a generated example is, and how it becomes bytes on the wire when it is sent.
# --------------------------------------------------------------------------------------------

_tokens = itertools.count(1)
_fresh_ts = itertools.count(1)
TOKEN = re.compile(r"FZ(\d{7})Q")
# Channels of the well-formed mentions; no other generated event is ever in them.
WELL_FORMED_CHANNELS = ("CWELL", "DWELL")


@dataclass(frozen=True)
class Tokened:
    """A message text carrying the sending request's unique token (`FZ0000001Q`), so every
    Claude request and every stored turn can be traced back to the request it came from."""

    rest: str
    mention: bool = False

    def render(self, token: str) -> str:
        return f"{'<@UBOT> ' if self.mention else ''}{token} {self.rest}"


@dataclass(frozen=True)
class FreshTs:
    """A message `ts` never used before (dedupe must not merge two well-formed mentions)."""


@dataclass(frozen=True)
class FormPayload:
    """A form field holding JSON (`payload=` of interactive requests)."""

    value: Any


@dataclass(frozen=True)
class ResponseUrl:
    """The fake Slack's response URL for this request (never a host beyond 127.0.0.1)."""


@dataclass(frozen=True)
class Body:
    kind: str  # what family the body is from (for the statistics and the expectations)
    content: Any  # bytes | str | JSON-able structure with Tokened/FreshTs | list of form pairs
    content_type: str | None
    well_formed_mention: bool = False  # must be answered exactly once when signed
    well_formed_command: bool = False  # must get exactly one answer at its response URL when signed
    has_text: bool = True  # False: an event whose text may not carry the token (missing, any JSON)


@dataclass(frozen=True)
class FuzzRequest:
    signing: str
    body: Body


VALID_SIGNINGS = ("valid", "valid_aged")
INVALID_SIGNINGS = (
    "unsigned",
    "no_timestamp",
    "no_signature",
    "wrong_secret",
    "tampered_body",
    "other_timestamp",
    "stale",
    "future",
    "bad_timestamp",
    "bad_prefix",
    "uppercase_hex",
    "empty_signature",
)


@dataclass
class Rendered:
    data: bytes
    headers: dict[str, str]
    token: str
    fresh: str | None = None  # the fresh `ts` used, if any
    response_id: str | None = None


def _render(value: Any, token: str, slack: FakeSlack, rendered: Rendered) -> Any:
    if isinstance(value, Tokened):
        return value.render(token)
    if isinstance(value, FreshTs):
        rendered.fresh = rendered.fresh or f"{1_900_000_000 + next(_fresh_ts)}.000300"
        return rendered.fresh
    if isinstance(value, FormPayload):
        return json.dumps(_render(value.value, token, slack, rendered))
    if isinstance(value, ResponseUrl):
        rendered.response_id = f"fz{token}"
        return slack.response_url(rendered.response_id)
    if isinstance(value, dict):
        return {k: _render(v, token, slack, rendered) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, token, slack, rendered) for v in value]
    return value


def render(request: FuzzRequest, slack: FakeSlack) -> Rendered:
    token = f"FZ{next(_tokens):07d}Q"
    rendered = Rendered(b"", {}, token)
    body = request.body
    content = body.content
    if request.signing not in VALID_SIGNINGS and body.kind == "envelope" and not body.has_text:
        content = {**content, "event": {**content["event"], "text": Tokened("unsigned")}}
    if isinstance(content, bytes):
        data = content
    elif isinstance(content, str):
        data = content.encode("utf-8", "surrogatepass")
    elif body.kind.startswith("form"):
        pairs = [(k, _render(v, token, slack, rendered)) for k, v in content]
        data = urlencode(pairs).encode()
    else:
        data = json.dumps(_render(content, token, slack, rendered)).encode()
    rendered.data = data
    headers = {} if body.content_type is None else {"Content-Type": body.content_type}
    headers.update(_signature_headers(request.signing, data))
    rendered.headers = headers
    return rendered


def _signature_headers(signing: str, data: bytes) -> dict[str, str]:
    now = int(time.time())
    if signing == "valid":
        return sign_request(SIGNING_SECRET, data)
    if signing == "valid_aged":  # well inside Slack's five minutes
        return sign_request(SIGNING_SECRET, data, now - 240)
    if signing == "unsigned":
        return {}
    if signing == "no_timestamp":
        return {"X-Slack-Signature": sign_request(SIGNING_SECRET, data)["X-Slack-Signature"]}
    if signing == "no_signature":
        return {"X-Slack-Request-Timestamp": str(now)}
    if signing == "wrong_secret":
        return sign_request(SIGNING_SECRET + "x", data)
    if signing == "tampered_body":  # signed, then one byte more was sent
        return sign_request(SIGNING_SECRET, data[:-1] if data else b"x")
    if signing == "other_timestamp":
        return {**sign_request(SIGNING_SECRET, data, now - 10), "X-Slack-Request-Timestamp": str(now)}
    if signing == "stale":  # a correct signature, replayed later than five minutes
        return sign_request(SIGNING_SECRET, data, now - 330 - hash(data) % 100_000)
    if signing == "future":
        return sign_request(SIGNING_SECRET, data, now + 330 + hash(data) % 100_000)
    if signing == "bad_timestamp":
        good = sign_request(SIGNING_SECRET, data)
        return {**good, "X-Slack-Request-Timestamp": ["abc", "", "1e9", "-1", "9" * 40, f"{now}.5"][len(data) % 6]}
    if signing == "bad_prefix":
        return {**sign_request(SIGNING_SECRET, data), "X-Slack-Signature": "v1=" + "0" * 64}
    if signing == "uppercase_hex":
        good = sign_request(SIGNING_SECRET, data)
        return {**good, "X-Slack-Signature": "v0=" + good["X-Slack-Signature"][3:].upper()}
    if signing == "empty_signature":
        return {**sign_request(SIGNING_SECRET, data), "X-Slack-Signature": ""}
    raise AssertionError(signing)


# --------------------------------------------------------------------------------------------
# Strategies.
# --------------------------------------------------------------------------------------------

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Top-level keys Bolt (or the adapter) reads with a type in mind: in the typed families they only
# ever hold values of Slack's types (see test_signed_bodies_of_any_shape_never_get_a_5xx for the rest).
SLACK_KEYS = frozenset(
    """type event authorizations enterprise enterprise_id team team_id user user_id channel channel_id view
    message previous_message item assistant_thread is_enterprise_install is_ext_shared_channel response_url
    response_urls function_execution_id function_data bot_access_token thread_ts command actions payload
    ssl_check challenge token callback_id trigger_id container api_app_id event_id event_time user_team
    context_team_id context_enterprise_id subtype ts text bot_id channel_type state inputs""".split()
)
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=zz",
    None,
)
EVENT_TYPES = (
    "app_mention",
    "message",
    "assistant_thread_started",
    "assistant_thread_context_changed",
    "reaction_added",
    "member_joined_channel",
    "app_home_opened",
    "app_uninstalled",
    "tokens_revoked",
    "channel_created",
    "link_shared",
    "file_shared",
    "message.channels",
    "",
)
SUBTYPES = (
    "bot_message",
    "message_changed",
    "message_deleted",
    "message_replied",
    "file_share",
    "thread_broadcast",
    "channel_join",
    "channel_topic",
    "me_message",
    "ekm_access_denied",
    "huddle_thread",
    "assistant_app_thread",
    "",
)
CHANNEL_TYPES = ("im", "channel", "group", "mpim", "app_home", "")

texts = st.text(max_size=120)
short_texts = st.text(max_size=30)
slack_ids = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["C", "D", "G", "U", "W", "B", "T", "E"]),
    st.text(ID_CHARS, min_size=1, max_size=11),
).filter(lambda value: value not in WELL_FORMED_CHANNELS)
timestamps = st.one_of(
    st.builds(lambda s, us: f"{s}.{us:06d}", st.integers(1_000_000_000, 1_899_999_999), st.integers(0, 999_999)),
    st.sampled_from(["1.1", "0", "1700000000.000100", "-1", "1e9", "NaN"]),
    st.text("0123456789.", min_size=1, max_size=24),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=False), texts
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(short_texts, children, max_size=5),
    max_leaves=25,
)
free_keys = short_texts.filter(lambda key: key not in SLACK_KEYS)
extra_fields = st.dictionaries(free_keys, json_values, max_size=3)


def optional(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with any subset of `fields` (missing fields are part of the fuzz)."""
    return st.fixed_dictionaries({}, optional=fields)


def deep_json(max_depth: int) -> st.SearchStrategy[str]:
    """Arrays and objects nested up to `max_depth` levels, valid or cut off."""

    def build(depth: int, style: int, closed: bool) -> str:
        opener, closer = [("[", "]"), ('{"a":', "}"), ('{"event":', "}")][style]
        innermost = "{}" if style == 2 else "1"  # an event is an object (see FIVE_HUNDREDS)
        return opener * depth + (innermost + closer * depth if closed else "")

    return st.builds(build, st.integers(1, max_depth), st.integers(0, 2), st.booleans())


def typed_event() -> st.SearchStrategy[dict[str, Any]]:
    """An event with Slack's field types, odd types/subtypes and any field missing (but a channel)."""
    def build(required: dict[str, Any], fields: dict[str, Any], extra: dict[str, Any], thread: dict[str, Any]) -> Any:
        event = {**extra, **required, **fields}
        if event.get("type", "").startswith("assistant_thread_"):
            # Always with its thread: see FIVE_HUNDREDS["assistant-thread-started-without-its-thread"].
            event["assistant_thread"] = {**event.get("assistant_thread", {}), **thread}
        return event

    return st.builds(
        build,
        st.fixed_dictionaries({"channel": slack_ids}),
        optional(
            {
                "type": st.sampled_from(EVENT_TYPES) | short_texts,
                "subtype": st.sampled_from(SUBTYPES) | short_texts,
                "user": slack_ids | st.just("U1") | st.just("UBOT"),
                "ts": timestamps,
                "thread_ts": timestamps,
                "channel_type": st.sampled_from(CHANNEL_TYPES) | short_texts,
                "bot_id": slack_ids,
                "team": slack_ids,
                "user_team": slack_ids,
                "event_ts": timestamps,
                "text": st.builds(Tokened, texts, st.booleans()),
                "blocks": st.lists(st.dictionaries(free_keys, json_values, max_size=3), max_size=3),
                "message": st.fixed_dictionaries({}, optional={"user": slack_ids, "ts": timestamps, "text": texts}),
                "previous_message": st.fixed_dictionaries({}, optional={"user": slack_ids, "ts": timestamps}),
                "item": st.fixed_dictionaries({}, optional={"channel": slack_ids, "ts": timestamps}),
                "assistant_thread": st.fixed_dictionaries(
                    {},
                    optional={"channel_id": slack_ids, "thread_ts": timestamps, "user_id": slack_ids},
                ),
            }
        ),
        extra_fields,
        st.fixed_dictionaries({"channel_id": slack_ids, "thread_ts": timestamps}),
    )


def typed_envelope() -> st.SearchStrategy[Body]:
    authorization = st.fixed_dictionaries(
        {"team_id": slack_ids, "user_id": st.just("UBOT"), "is_bot": st.booleans()},
        optional={"enterprise_id": st.none() | slack_ids, "is_enterprise_install": st.booleans()},
    )
    envelope = st.builds(
        lambda event, fields, extra: {**extra, **fields, "event": event},
        typed_event(),
        optional(
            {
                "type": st.sampled_from(["event_callback", "event_callback", "app_rate_limited"]) | short_texts,
                "token": short_texts,
                "team_id": slack_ids,
                "api_app_id": slack_ids,
                "event_id": short_texts,
                "event_time": st.integers(),
                "authorizations": st.lists(authorization, max_size=2),
                "is_ext_shared_channel": st.booleans(),
                "event_context": short_texts,
                "context_team_id": slack_ids,
            }
        ),
        extra_fields,
    )
    return st.builds(
        lambda env, content_type: Body(
            "envelope", env, content_type, has_text="text" in env["event"]
        ),
        envelope,
        st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None]),
    )


def well_formed_mention() -> st.SearchStrategy[Body]:
    """A mention (or a DM) exactly as Slack sends it, from a user, in a thread of its own."""

    def build(kind: str, rest: str) -> Body:
        if kind == "dm":
            event = {"type": "message", "channel_type": "im", "user": "U1", "text": Tokened(rest), "ts": FreshTs(),
                     "channel": "DWELL"}
        elif kind == "message":
            event = {"type": "message", "channel_type": "channel", "user": "U1", "text": Tokened(rest, mention=True),
                     "ts": FreshTs(), "channel": "CWELL"}
        else:
            event = {**mention(""), "text": Tokened(rest, mention=True), "ts": FreshTs(), "channel": "CWELL"}
        envelope = event_body(event, "EvFuzzWell")
        envelope["event_id"] = FreshTs()  # unique too
        return Body(f"mention:{kind}", envelope, "application/json", well_formed_mention=True)

    return st.builds(build, st.sampled_from(["app_mention", "message", "dm"]), texts)


def typed_command() -> st.SearchStrategy[Body]:
    """Slash-command form bodies: a well-formed `/claude` (its answer goes to the fake's response
    URL), or any fields missing, other commands, extra fields."""
    command_texts = st.one_of(
        texts, st.sampled_from(["help", "show", "model", "model nope", "system be brief", "reset", "usage", "new"])
    )

    def well_formed(text: str, user: str, channel: str) -> Body:
        pairs = _command_pairs(text, user, channel)
        return Body("form:command", pairs, "application/x-www-form-urlencoded", well_formed_command=True)

    def odd(fields: dict[str, Any], extra: dict[str, str], content_type: str | None) -> Body:
        pairs = [(k, v) for k, v in {**extra, **fields}.items()]
        return Body("form:odd-command", pairs, content_type)

    odd_fields = st.fixed_dictionaries(
        {"command": st.sampled_from(["/claude", "/other", "/CLAUDE", "claude", ""]) | short_texts},
        optional={
            "text": command_texts,
            "user_id": slack_ids,
            "user_name": short_texts,
            "channel_id": slack_ids,
            "team_id": slack_ids,
            "response_url": st.just(ResponseUrl()) | st.just("not a url"),
            "trigger_id": short_texts,
            "ssl_check": st.just("1"),
        },
    )
    odd_extra = st.dictionaries(free_keys, short_texts, max_size=3)
    return st.one_of(
        st.builds(well_formed, command_texts, slack_ids | st.just("U1"), slack_ids),
        st.builds(odd, odd_fields, odd_extra, st.sampled_from(CONTENT_TYPES)),
    )


def _command_pairs(text: str, user: str, channel: str) -> list[tuple[str, Any]]:
    """The fields `slash_command_body` sends, with this request's own response URL."""
    return [
        ("token", "fake-verification-token"),
        ("team_id", "T1"),
        ("team_domain", "fake"),
        ("channel_id", channel),
        ("channel_name", "general"),
        ("user_id", user),
        ("user_name", "mel"),
        ("command", "/claude"),
        ("text", text),
        ("api_app_id", "A1"),
        ("response_url", ResponseUrl()),
        ("trigger_id", "1.1.fake-trigger"),
    ]


def typed_interactive() -> st.SearchStrategy[Body]:
    """`payload=` bodies: interactive types with Slack's field types, or any JSON at all."""
    payload = st.builds(
        lambda fields, extra: {**extra, **fields},
        optional(
            {
                "type": st.sampled_from(
                    ["block_actions", "shortcut", "message_action", "view_submission", "view_closed",
                     "block_suggestion", "interactive_message", "dialog_submission"]
                )
                | short_texts,
                "user": st.fixed_dictionaries({"id": slack_ids}, optional={"team_id": slack_ids}),
                "team": st.none() | st.fixed_dictionaries({"id": slack_ids}),
                "channel": st.fixed_dictionaries({"id": slack_ids}),
                "actions": st.lists(
                    st.fixed_dictionaries(
                        {"action_id": short_texts, "block_id": short_texts, "type": short_texts},
                        optional={"value": short_texts, "action_ts": timestamps},
                    ),
                    min_size=1,  # an empty list: see FIVE_HUNDREDS["block-actions-without-actions"]
                    max_size=2,
                ),
                "view": st.fixed_dictionaries(
                    {"id": slack_ids, "type": st.just("modal"), "callback_id": short_texts},
                    optional={"team_id": slack_ids, "private_metadata": short_texts},
                ),
                "callback_id": short_texts,
                "trigger_id": short_texts,
                "response_url": st.just(ResponseUrl()),
                "container": st.fixed_dictionaries({"type": short_texts}, optional={"message_ts": timestamps}),
            }
        ),
        extra_fields,
    )
    # A JSON object whose top-level keys Bolt does not read, or any JSON value, or not JSON at all.
    anything = st.one_of(
        st.dictionaries(free_keys, json_values, max_size=4), json_values.filter(lambda v: not isinstance(v, dict))
    )
    value = st.one_of(
        payload.map(FormPayload),
        anything.map(FormPayload),
        texts,
    )
    extra = st.lists(st.tuples(free_keys.filter(lambda k: k != "payload"), short_texts), max_size=3)
    return st.builds(
        lambda v, pairs, content_type: Body("form:payload", [("payload", v), *pairs], content_type),
        value,
        extra,
        st.sampled_from(CONTENT_TYPES),
    )


def plausible_envelope() -> st.SearchStrategy[Body]:
    """A message or mention from a person with random extras, odd channel types and subtypes:
    mostly answerable, so the answering path gets fuzzed too."""
    event = st.builds(
        lambda base, fields, extra: {**extra, **base, **fields},
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["app_mention", "message"]),
                "user": st.sampled_from(["U1", "U2"]) | slack_ids,
                "ts": timestamps,
                "channel": slack_ids,
                "text": st.builds(Tokened, texts, st.booleans()),
            }
        ),
        optional(
            {
                "channel_type": st.sampled_from(CHANNEL_TYPES),
                "subtype": st.sampled_from(["file_share", "thread_broadcast", "bot_message", "message_changed"]),
                "thread_ts": timestamps,
                "team": slack_ids,
            }
        ),
        extra_fields,
    )
    return st.builds(
        lambda e, team: Body("envelope", {**event_body({}, "EvFuzz", team_id=team), "event": e}, "application/json"),
        event,
        slack_ids,
    )


def _families() -> dict[str, st.SearchStrategy[Body]]:
    return {
        "bytes": st.builds(Body, st.just("bytes"), st.binary(max_size=600), st.sampled_from(CONTENT_TYPES)),
        "text": st.builds(
            Body, st.just("text"), st.text(max_size=300),
            st.sampled_from(CONTENT_TYPES),
        ),
        "json": st.builds(
            lambda v, ct: Body("json", json.dumps(v), ct),
            st.one_of(
                json_values.filter(lambda v: not isinstance(v, dict)),  # a top-level object has free keys
                st.dictionaries(free_keys, json_values, max_size=6),
            ),
            st.sampled_from(CONTENT_TYPES),
        ),
        "deep": st.builds(lambda s, ct: Body("json:deep", s, ct), deep_json(400), st.sampled_from(CONTENT_TYPES)),
        "envelope": typed_envelope(),
        "plausible": plausible_envelope(),
        "mention": well_formed_mention(),
        "command": typed_command(),
        "interactive": typed_interactive(),
        "url_verification": st.builds(
            lambda challenge, ct: Body("json:url_verification", {"type": "url_verification", "challenge": challenge,
                                                                  "token": "t"}, ct),
            texts,
            st.sampled_from(["application/json", None]),
        ),
        "ssl_check": st.builds(
            Body, st.just("form:ssl_check"), st.just([("ssl_check", "1"), ("token", "t")]),
            st.just("application/x-www-form-urlencoded"),
        ),
        **_any_shape_families(),
    }


def _any_shape_families() -> dict[str, st.SearchStrategy[Body]]:
    """Bodies of any shape: Slack's and Bolt's own field names with values of any JSON type, text
    that is not valid Unicode (lone surrogates), ids with ':' or empty, nesting deeper than Python's
    recursion limit, a `payload` field twice."""
    anything = json_values | st.sampled_from(["", "C:1", "\ud800", ["x"], {"x": 1}, 7, "<@UBOT> \ud83d hi"])
    keys = st.sampled_from(sorted(SLACK_KEYS)) | short_texts
    event = st.dictionaries(keys, anything, max_size=8)
    envelope = st.dictionaries(keys, anything | event, max_size=8)
    return {
        "any-event": st.builds(
            lambda e, ct: Body("envelope:any", {"type": "event_callback", "event": e}, ct, has_text=False),
            anything | event,
            st.sampled_from(CONTENT_TYPES),
        ),
        "any-envelope": st.builds(lambda e: Body("envelope:any", e, "application/json", has_text=False), envelope),
        "deeper": st.builds(lambda s: Body("json:deeper", s, "application/json"), deep_json(5_000)),
        "any-payload": st.builds(lambda p: Body("form:payload-any", [("payload", FormPayload(p))], None), envelope),
        "payloads": st.builds(
            lambda a, b: Body("form:payloads", [("payload", FormPayload(a)), ("payload", b)], None), envelope, texts
        ),
    }


# Relative weights of the families. Hypothesis' mutations favour big structures, so the mix it
# sends is not these proportions: about half envelopes, a tenth well-formed mentions (printed at the end).
FAMILY_WEIGHTS = {
    "bytes": 7, "text": 6, "json": 10, "deep": 4, "envelope": 15, "plausible": 10, "mention": 30,
    "command": 12, "interactive": 9, "url_verification": 3, "ssl_check": 2,
    "any-event": 6, "any-envelope": 6, "deeper": 2, "any-payload": 4, "payloads": 2,
}


def bodies() -> st.SearchStrategy[Body]:
    """Every family: most with Slack's types where Bolt or the adapter reads a field (so that
    they get past the parsing and exercise the answering path), some of any shape."""
    families = _families()
    names = [name for name, weight in FAMILY_WEIGHTS.items() for _ in range(weight)]
    return st.sampled_from(names).flatmap(families.__getitem__)


# About 60 % correctly signed, 40 % not (each way of being wrong alike).
signings = st.sampled_from([*VALID_SIGNINGS * 9, *INVALID_SIGNINGS])


# --------------------------------------------------------------------------------------------
# The endpoint fuzz.
# --------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What was sent, for the checks after the run."""

    forbidden: set[str] = field(default_factory=set)  # tokens of requests without a valid signature
    allowed: set[str] = field(default_factory=set)  # tokens of validly signed requests
    well_formed: set[str] = field(default_factory=set)  # tokens of validly signed well-formed mentions
    commands: list[str] = field(default_factory=list)  # response ids of validly signed well-formed commands
    signed_textless_events: int = 0
    statuses: collections.Counter[tuple[str, str, int]] = field(default_factory=collections.Counter)
    sent: int = 0


async def _post(http: aiohttp.ClientSession, url: str, rendered: Rendered) -> tuple[int, bytes]:
    async with http.post(url, data=rendered.data, headers=rendered.headers) as response:
        return response.status, await response.read()


def fuzz_endpoint(
    harness: SlackHarness,
    loop: asyncio.AbstractEventLoop,
    ledger: Ledger,
    bodies: st.SearchStrategy[Body],
    examples: int,
) -> Callable[[], None]:
    """The sync, Hypothesis-driven part: meant to run in a worker thread while `loop` serves."""
    url = harness.url + "/slack/events"

    @seed(FUZZ_SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(request=st.builds(FuzzRequest, signings, bodies))
    def one_request(request: FuzzRequest) -> None:
        rendered = render(request, harness.slack)
        status, answer = asyncio.run_coroutine_threadsafe(_post(harness.http, url, rendered), loop).result(60)
        signed = request.signing in VALID_SIGNINGS
        body = request.body
        ledger.sent += 1
        ledger.statuses[(request.signing if not signed else "signed", body.kind.split(":")[0], status)] += 1
        (ledger.allowed if signed else ledger.forbidden).add(rendered.token)
        if signed and body.well_formed_mention:
            ledger.well_formed.add(rendered.token)
        if signed and body.well_formed_command and rendered.response_id:
            ledger.commands.append(rendered.response_id)
        if signed and body.kind.startswith("envelope") and not body.has_text:
            ledger.signed_textless_events += 1

        assert status < 500, f"{status} for {rendered.headers} {rendered.data[:2000]!r}: {answer[:500]!r}"
        if not signed:
            assert status == 401, (status, rendered.data[:500])
        elif body.well_formed_mention or body.well_formed_command or body.kind == "form:ssl_check":
            assert status == 200, (status, answer[:500])
        elif body.kind == "json:url_verification" and status == 200:
            assert json.loads(answer)["challenge"] == body.content["challenge"]

    return one_request


async def test_10000_fuzzed_requests_get_no_5xx_and_only_signed_ones_reach_claude(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    """10,000 requests (`FUZZ_EXAMPLES`) at one running service: about 40 % without a valid
    signature (none, missing headers, another secret, a tampered body, another timestamp, a replay
    older or newer than five minutes, a malformed timestamp or signature) and the rest correctly
    signed; bodies of random bytes and text, random JSON (scalars, arrays, objects, nesting up to
    5,000 levels), Events API envelopes with odd event types and subtypes and any field missing or of
    any JSON type, well-formed mentions and DMs, slash-command forms (well-formed `/claude` and odd
    ones), `payload=` forms with interactive payloads or any JSON or none or twice, `url_verification`
    and `ssl_check`.

    Proves: no request gets a 5xx; every request without a valid signature gets 401 and leaves no
    trace (its token is in no Claude request and no stored turn); every validly signed well-formed
    mention is answered by exactly one Claude request and every well-formed `/claude` command gets
    exactly one answer at its response URL; every Claude request comes from a validly signed request;
    and afterwards `/healthz` is 200 and a normal mention is answered."""
    loop = asyncio.get_running_loop()
    ledger = Ledger()
    started = time.monotonic()
    await asyncio.to_thread(fuzz_endpoint(slack, loop, ledger, bodies(), FUZZ_EXAMPLES))
    sent_in = time.monotonic() - started
    await slack.settle(within=120)

    requests = fake_anthropic.message_requests
    answered: collections.Counter[str] = collections.Counter()
    untraced = 0
    for request in requests:
        seen = set(TOKEN.findall(json.dumps(request["messages"])))
        found = {f"FZ{digits}Q" for digits in seen}
        assert not found & ledger.forbidden, f"a request without a valid signature reached Claude: {found}"
        assert found <= ledger.allowed
        last_user = json.dumps(request["messages"][-1])
        for token in ledger.well_formed & found:
            if token in last_user:
                answered[token] += 1
        untraced += not found
    assert set(answered) == ledger.well_formed and set(answered.values()) <= {1}, "one Claude call per mention"
    assert untraced <= ledger.signed_textless_events, "every Claude request comes from a validly signed request"

    async with slack.service.core.store.engine.connect() as conn:
        stored = " ".join(row.content for row in await conn.execute(select(messages.c.content)))
    stored_tokens = {f"FZ{digits}Q" for digits in TOKEN.findall(stored)}
    assert not stored_tokens & ledger.forbidden, "an unsigned request stored a turn"
    assert ledger.well_formed <= stored_tokens

    for response_id in ledger.commands:
        assert len(slack.slack.responses_to(response_id)) == 1, f"command {response_id} not answered once"

    async with slack.http.get(slack.url + "/healthz") as health:
        assert health.status == 200
    after = mention("are you still there?")
    assert (await slack.send_event(after)).status == 200
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", after["ts"])] == [
        'You said: <message from="mel">are you still there?</message>'
    ]

    total = time.monotonic() - started
    print(
        f"\nfuzz: {ledger.sent} requests in {sent_in:.1f} s ({total:.1f} s with the answers); "
        f"{len(ledger.well_formed)} well-formed mentions, {len(requests)} Claude requests, "
        f"{len(ledger.commands)} well-formed commands, {len(ledger.forbidden)} without a valid signature"
    )
    for key, count in sorted(ledger.statuses.items()):
        print(f"  {key}: {count}")
    assert ledger.sent >= FUZZ_EXAMPLES


# --------------------------------------------------------------------------------------------
# Product bugs the fuzz found, each with its smallest reproduction (fixed since: regression tests).
# --------------------------------------------------------------------------------------------

def _envelope(event: Any, **fields: Any) -> str:
    body: dict[str, Any] = event_body({}, "EvBug")
    body["event"] = event
    body.update(fields)
    return json.dumps(body)


_MENTION = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": "1700000001.000100", "channel": "C1"}
FIVE_HUNDREDS = {
    "event-without-channel": (_envelope({k: v for k, v in _MENTION.items() if k != "channel"}), "application/json"),
    "event-not-an-object": (_envelope(["x"]), "application/json"),
    "authorizations-not-a-list": (_envelope(_MENTION, authorizations="x"), "application/json"),
    "subtype-not-a-string": (_envelope({**_MENTION, "subtype": ["x"]}), "application/json"),
    "thread-ts-with-colon": (_envelope({**_MENTION, "thread_ts": "1:2"}), "application/json"),
    "channel-empty": (_envelope({**_MENTION, "channel": ""}), "application/json"),
    "text-with-lone-surrogate": (_envelope({**_MENTION, "text": "<@UBOT> a\ud800b"}), "application/json"),
    "json-nested-2000-deep": ("[" * 2000 + "]" * 2000, "application/json"),
    "payload-twice": ("payload=%7B%7D&payload=x", "application/x-www-form-urlencoded"),
    "block-actions-actions-not-a-list": (
        "payload=" + json.dumps({"type": "block_actions", "actions": 5}), "application/x-www-form-urlencoded"
    ),
    "assistant-thread-started-without-its-thread": (
        _envelope({"type": "assistant_thread_started", "channel": "D1"}), "application/json"
    ),
    "block-actions-without-actions": (
        "payload=" + json.dumps({"type": "block_actions", "actions": []}), "application/x-www-form-urlencoded"
    ),
    "view-submission-view-not-an-object": (
        "payload=" + json.dumps({"type": "view_submission", "view": "x"}), "application/x-www-form-urlencoded"
    ),
}


@pytest.mark.parametrize("case", sorted(FIVE_HUNDREDS))
async def test_a_signed_body_of_an_odd_shape_gets_a_4xx_or_200_not_a_500(
    slack: SlackHarness, fake_anthropic: FakeAnthropic, case: str
) -> None:
    """Each of these correctly signed bodies used to crash the handler (HTTP 500, which Slack retries)."""
    body, content_type = FIVE_HUNDREDS[case]
    response = await slack.post(body.encode("utf-8", "surrogatepass"), content_type=content_type)
    assert response.status in (200, 400, 404)
    await slack.settle()
    async with slack.http.get(slack.url + "/healthz") as health:
        assert health.status == 200


async def test_a_command_mentioning_payload_is_answered(slack: SlackHarness) -> None:
    """Bolt's parse_body takes any form body containing the letters "payload" for an interactive
    payload: `/claude system Explain the payload` used to be dropped with a 404."""
    response_id = await slack.send_command("system Explain the payload of each request")
    await slack.settle()
    [answer] = slack.slack.responses_to(response_id)
    assert "Only workspace admins" in answer.text


async def test_a_mention_containing_nul_is_answered(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    """A message whose text holds U+0000 (valid JSON: "\\u0000"). PostgreSQL text cannot hold it: storing
    the turn used to fail inside the listener, so the request got a 400 ("unprocessable request"),
    Slack retried and gave up, and the message was never answered (SQLite stored it)."""
    event = mention("a\0b")
    response = await slack.send_event(event)
    assert response.status == 200
    await slack.settle()
    assert len(slack.slack.bot_messages("C1", event["ts"])) == 1


async def test_an_answer_containing_nul_is_stored(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    """Claude's answer holds U+0000: on PostgreSQL `append_answer` used to fail after the answer was
    shown ("turn failed unexpectedly"), so the thread's history lacked it and the next turn went to
    Claude merged with the unanswered one."""
    fake_anthropic.queue_reply("before\0after")
    root = mention("print a NUL character")
    await slack.send_event(root)
    await slack.settle()
    await slack.send_event(channel_message("and again", thread_ts=root["ts"]))
    await slack.settle()
    assert [m["role"] for m in fake_anthropic.message_requests[-1]["messages"]] == ["user", "assistant", "user"]


# --------------------------------------------------------------------------------------------
# The command parser.
# --------------------------------------------------------------------------------------------

WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what str.split() splits at
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda name: not any(c.isspace() for c in name)
)
separators = st.text(WHITESPACE, min_size=1, max_size=4)
arguments = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
outer = st.text(WHITESPACE, max_size=3)


@settings(max_examples=500, deadline=None)
@given(lead=outer, name=names, sep=separators, argument=arguments, trail=outer)
def test_the_name_is_the_lowercased_first_word_and_the_argument_the_rest_stripped(
    lead: str, name: str, sep: str, argument: str, trail: str
) -> None:
    command = parse_command(lead + name + sep + argument + trail)
    assert command.name == name.lower()
    assert command.argument == (argument + trail).strip()


@settings(max_examples=500, deadline=None)
@given(prompt=arguments)
def test_a_system_prompt_keeps_its_inner_whitespace_and_line_breaks(prompt: str) -> None:
    assert parse_command("system " + prompt) == Command("system", prompt.strip())
    assert parse_command("system\n" + prompt) == Command("system", prompt.strip())
    assert parse_command("SyStEm " + prompt).name == "system"


@settings(max_examples=1000, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",))))
def test_parse_command_facts_for_any_text(text: str) -> None:
    command = parse_command(text)
    assert command.argument == command.argument.strip()
    assert command.argument in text, "the argument is the user's text, not a rewrite of it"
    assert (command.name == "") == (text.strip() == "")
    assert command == Command("", "") or command.name
    assert command.name == "".join(command.name.split()), "no whitespace in a name"
    assert command.name == (text.split()[0].lower() if text.split() else "")
    assert parse_command(text.strip()) == command == parse_command(f" \n{text}\n ")
    if command.name and command.name == command.name.lower():  # (lower() is not idempotent for a few letters)
        # Canonical form: parsing what the command says gives the same command back.
        assert parse_command(f"{command.name} {command.argument}".strip()) == command


def test_parse_command_examples() -> None:
    assert parse_command("") == Command("", "")
    assert parse_command("  MODEL   claude-x ") == Command("model", "claude-x")
    assert parse_command("system line one\n\n  line two  ") == Command("system", "line one\n\n  line two")
    assert parse_command("system\nline one\nline two") == Command("system", "line one\nline two")


@pytest.mark.parametrize("separator", ["\t", "\r\n", "\u00a0", "\u2003", "\x0b", "\u3000"])
def test_any_whitespace_ends_the_command_name(separator: str) -> None:
    """These used to give the names 'model\\tx', 'model\\r' (an unknown command) and so on."""
    assert parse_command(f"model{separator}claude-x") == Command("model", "claude-x")


# --------------------------------------------------------------------------------------------
# The message splitter at Discord's and Slack's limits.
# --------------------------------------------------------------------------------------------

FENCE = re.compile(r" {0,3}```")


def fence_open_after(text: str) -> bool:
    """Markdown's rule as the brief states it: ``` (an info string allowed) opens a block; only a
    bare ``` (spaces around allowed) closes it."""
    inside = False
    for line in text.split("\n"):
        if FENCE.match(line) and (not inside or line.strip() == "```"):
            inside = not inside
    return inside


def rejoined(splitter: PartSplitter) -> str:
    """The parts without what the splitter added around them (reopened and closing fences)."""
    return "".join(
        part[len(before) : len(part) - len(after)]
        for part, (before, after) in zip(splitter.finished, splitter.added, strict=True)
    )


def repeat(unit: str, times: int) -> str:
    return unit * times


segments = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=200),
    st.sampled_from(
        ["\n", "\n\n", " ", "```\n", "```python\n", "\n```\n", "   ```js\n", "```  \n", "````\n", "~~~\n",
         "👍", "\r\n", "\t", "é", "```" + "x" * 700 + "\n"]
    ),
    st.builds(repeat, st.sampled_from(["a", "word ", "line of text\n", " ", "\n", "x = 1\n", "```\n"]),
              st.integers(1, 1500)),
)


def _fill(pieces: list[str], size: int) -> str:
    """The pieces joined, repeated to at least `size` characters (so texts run to many parts)."""
    text = "".join(pieces)
    return text * (size // len(text) + 1) if text else text


def markdown_at(limit: int) -> st.SearchStrategy[tuple[int, str]]:
    text = st.builds(_fill, st.lists(segments, min_size=1, max_size=20), st.integers(limit // 2, 6 * limit))
    return st.tuples(st.just(limit), text)


limited_markdown = st.sampled_from([DISCORD_LIMIT, SLACK_LIMIT]).flatmap(markdown_at)


def check_parts(text: str, limit: int, splitter: PartSplitter) -> None:
    parts = splitter.finished
    assert all(len(part) <= limit for part in parts), [len(p) for p in parts]
    assert all(part.strip() for part in parts), "no part is empty or only whitespace"
    assert all(not fence_open_after(part) for part in parts[:-1]), "every part but the last closes its fences"
    if parts and not fence_open_after(text):
        assert not fence_open_after(parts[-1]), "a text whose fences are balanced gives balanced parts"
    back = rejoined(splitter)
    # Only whitespace may be lost: a run of it longer than a message (dropped), or at the end.
    assert re.sub(r"\s", "", back) == re.sub(r"\s", "", text)
    if not re.search(rf"\s{{{limit // 2}}}", text):
        assert text.startswith(back) and not text[len(back) :].strip(), "the parts rejoin to the text"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=limited_markdown)
def test_split_all_at_discord_and_slack_limits(case: tuple[int, str]) -> None:
    limit, text = case
    splitter = PartSplitter(limit)
    splitter.feed(text)
    splitter.close()
    check_parts(text, limit, splitter)
    assert split_all(text, limit) == splitter.finished


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=limited_markdown, chunk=st.integers(50, 3000))
def test_streamed_in_deltas_the_parts_are_the_same_and_what_was_stable_stays(case: tuple[int, str], chunk: int) -> None:
    limit, text = case
    splitter = PartSplitter(limit)
    promised: list[tuple[int, str]] = []
    for start in range(0, len(text), chunk):
        splitter.feed(text[start : start + chunk])
        promised.append((len(splitter.finished), splitter.current[: splitter.stable]))
    parts = splitter.close()
    check_parts(text, limit, splitter)
    assert parts == split_all(text, limit), "how the text arrives does not change the parts"
    for index, shown in promised:
        if shown:
            assert parts[index].startswith(shown), "text shown as stable never changes"


def test_a_cut_inside_a_long_line_does_not_open_a_code_block() -> None:
    """A line longer than a message used to be cut at the space right before an inline ```, which
    then started the next message and opened a code block there that never closed."""
    text = "see " + "a " * 996 + "```python and the rest of this sentence, which is not code"
    assert not fence_open_after(text)
    parts = split_all(text, DISCORD_LIMIT)
    assert len(parts) >= 2 and all(len(part) <= DISCORD_LIMIT for part in parts)
    assert not any(fence_open_after(part) for part in parts), parts
    assert re.sub(r"\s", "", "".join(parts)) == re.sub(r"\s", "", text)


def test_a_long_code_block_at_discords_limit_is_closed_and_reopened() -> None:
    code = "".join(f"print({i})\n" for i in range(1_000))
    text = "Intro\n```python\n" + code + "```\nAfter."
    parts = split_all(text, DISCORD_LIMIT)
    assert len(parts) > 5 and all(len(p) <= DISCORD_LIMIT for p in parts)
    assert all(p.startswith("```python\n") for p in parts[1:]) and all(p.endswith("\n```") for p in parts[:-1])
    assert not any(fence_open_after(p) for p in parts)
