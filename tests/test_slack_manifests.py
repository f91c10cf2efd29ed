"""The Slack app manifests (slack-manifest.yml for Socket Mode, slack-manifest-http.yml
for HTTP mode) subscribe to every event the adapter listens to and grant exactly the
scopes of the Web API methods it calls.

PyYAML is not a dependency of the project, so the manifests are read by `load_manifest`,
a reader for the small block-style subset of YAML they are written in (mappings,
sequences, plain/quoted scalars, comments); anything else in them is refused rather
than misread. When PyYAML happens to be installed, its reading is compared too.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOCKET_MANIFEST = ROOT / "slack-manifest.yml"
HTTP_MANIFEST = ROOT / "slack-manifest-http.yml"
ADAPTER_SOURCES = sorted((ROOT / "adapters" / "slack").glob("*.py"))
PLACEHOLDER_URL = "https://YOUR-HOST/slack/events"

# Every Events API listener of adapters/slack/ -> the bot events that deliver it.
# A `message` listener gets the message events of each conversation type.
LISTENED_EVENTS: dict[str, set[str]] = {
    "app_mention": {"app_mention"},
    "message": {"message.channels", "message.groups", "message.im", "message.mpim"},
    "assistant_thread_started": {"assistant_thread_started"},
    "assistant_thread_context_changed": {"assistant_thread_context_changed"},
    "app_home_opened": {"app_home_opened"},
    "app_context_changed": {"app_context_changed"},
    "agent_session_stopped": {"agent_session_stopped"},
    # Leaving a workspace (OAuth installs): its tokens are deleted.
    "app_uninstalled": {"app_uninstalled"},
    "tokens_revoked": {"tokens_revoked"},
}
# Listened to for installs still on `assistant_view`; the manifests (agent_view) no longer subscribe them.
LEGACY_EVENTS = {"assistant_thread_started", "assistant_thread_context_changed"}
# What the agent messaging experience needs (docs.slack.dev/ai/migrating-to-agent-messaging).
AGENT_EVENTS = {"app_home_opened", "app_context_changed", "message.im", "agent_session_stopped"}

# The bot scope each subscribed event needs.
EVENT_SCOPES: dict[str, set[str]] = {
    "app_mention": {"app_mentions:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.im": {"im:history"},
    "message.mpim": {"mpim:history"},
    "assistant_thread_started": {"assistant:write"},
    "assistant_thread_context_changed": {"assistant:write"},
    "app_home_opened": set(),
    "app_context_changed": {"assistant:write"},  # agent_view only, which brings assistant:write
    "agent_session_stopped": {"assistant:write"},
    "app_uninstalled": set(),
    "tokens_revoked": set(),
}

# Every Web API method the adapter calls with the bot token -> the bot scopes it needs.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.delete": {"chat:write"},  # its own message, withdrawn to post a part with a link afresh
    "chat.startStream": {"chat:write"},
    "chat.appendStream": {"chat:write"},
    "chat.stopStream": {"chat:write"},
    "reactions.add": {"reactions:write"},
    "reactions.remove": {"reactions:write"},
    "assistant.threads.setStatus": {"assistant:write"},
    "assistant.threads.setSuggestedPrompts": {"assistant:write"},
    "assistant.threads.setTitle": {"assistant:write"},
    "users.info": {"users:read"},
    "chat.postEphemeral": {"chat:write"},  # "only ... can do this" to who pressed a button they may not
    "agents.sessions.setStatus": {"chat:write"},  # thread-based sessions (docs: agent sessions)
    "conversations.history": {"im:history"},  # only on the app's DM: has it greeted there yet?
    # Thread context is read wherever the bot is mentioned mid-thread: any conversation type.
    "conversations.replies": {"channels:history", "groups:history", "im:history", "mpim:history"},
}
COMMAND_SCOPES = {"commands"}  # the `/claude` slash command
# Files on messages are downloaded from url_private_download with the bot token (not a Web API method).
FILE_DOWNLOAD_SCOPES = {"files:read"}
# apps.connections.open (Socket Mode) uses the app-level token's connections:write,
# which is not part of a manifest.


# --------------------------------------------------------------------------- a small YAML reader


def _strip_comment(line: str) -> str:
    """`line` without a trailing ` # comment` (a `#` inside quotes is kept)."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] == " "):
            return line[:index].rstrip()
    return line.rstrip()


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"unterminated quoted scalar: {text}")
        return text[1:-1].replace("''", "'")
    if text[:1] in ("[", "{", "|", ">", "&", "*", "!", "%", "@", "`"):
        raise ValueError(f"YAML construct outside the supported subset: {text}")
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~", ""):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if ": " in text:
        raise ValueError(f"ambiguous plain scalar (quote it): {text}")
    return text


def _split_key(content: str) -> tuple[str, str] | None:
    """`key: value` or `key:` -> (key, value); None when `content` is not a mapping entry."""
    match = re.fullmatch(r"([A-Za-z_][\w.\-]*):(?: (.*))?", content)
    if match is None:
        return None
    return match.group(1), match.group(2) or ""


def load_manifest(text: str) -> Any:
    """Block-style YAML: mappings, `- ` sequences (of scalars or mappings) and scalars."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError("tabs in indentation")
        stripped = _strip_comment(raw)
        if stripped.strip():
            lines.append((len(stripped) - len(stripped.lstrip()), stripped.strip()))

    def block(index: int, indent: int) -> tuple[Any, int]:
        if lines[index][1].startswith("- ") or lines[index][1] == "-":
            return sequence(index, indent)
        return mapping(index, indent)

    def mapping(index: int, indent: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        while index < len(lines) and lines[index][0] == indent and not lines[index][1].startswith("-"):
            entry = _split_key(lines[index][1])
            if entry is None:
                raise ValueError(f"not a mapping entry: {lines[index][1]}")
            key, value = entry
            if key in result:
                raise ValueError(f"duplicate key: {key}")
            index += 1
            if value.strip():
                result[key] = _scalar(value)
            elif index < len(lines) and (
                lines[index][0] > indent or (lines[index][0] == indent and lines[index][1].startswith("- "))
            ):
                result[key], index = block(index, lines[index][0])
            else:
                result[key] = None
        if index < len(lines) and lines[index][0] > indent:
            raise ValueError(f"unexpected indentation: {lines[index][1]}")
        return result, index

    def sequence(index: int, indent: int) -> tuple[list[Any], int]:
        result: list[Any] = []
        while index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("- "):
            item = lines[index][1][2:].strip()
            if _split_key(item) is not None:  # `- key: value` opens a mapping indented past the dash
                lines[index] = (indent + 2, item)
                value, index = mapping(index, indent + 2)
                result.append(value)
            else:
                result.append(_scalar(item))
                index += 1
        return result, index

    if not lines:
        return None
    value, end = block(0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"could not read past: {lines[end][1]}")
    return value


@pytest.fixture(params=[SOCKET_MANIFEST, HTTP_MANIFEST], ids=["socket-mode", "http"])
def manifest(request: pytest.FixtureRequest) -> dict[str, Any]:
    loaded = load_manifest(request.param.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


# --------------------------------------------------------------------------- what the adapter does


def _adapter_trees() -> list[ast.AST]:
    return [ast.parse(path.read_text(encoding="utf-8")) for path in ADAPTER_SOURCES]


def listened_events() -> set[str]:
    """The `@app.event("...")` listeners registered in adapters/slack/."""
    events = set()
    for tree in _adapter_trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "event"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                events.add(str(node.args[0].value))
    return events


def called_methods() -> set[str]:
    """The Web API methods the adapter calls: `<...>client.<method_name>(...)` in its sources,
    `chat_startStream` -> `chat.startStream`."""
    methods = set()
    for tree in _adapter_trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr in ("client", "_client")
            ):
                methods.add(node.func.attr.replace("_", "."))
    return methods


# --------------------------------------------------------------------------- tests


def test_the_reader_reads_the_subset_and_refuses_the_rest() -> None:
    text = 'a:\n  b: "x: #1"  # note\n  c:\n    - one\n    - k: 2\n      v: true\n  d: /claude\n'
    assert load_manifest(text) == {"a": {"b": "x: #1", "c": ["one", {"k": 2, "v": True}], "d": "/claude"}}
    for unsupported in ("a: [1, 2]\n", "a: |\n  text\n", "a: b: c\n", "a: 1\na: 2\n"):
        with pytest.raises(ValueError):
            load_manifest(unsupported)


def test_the_explicit_lists_match_the_adapter_source() -> None:
    """When the adapter starts listening to another event or calling another method, the lists
    above (and so the manifests) must follow."""
    assert listened_events() == set(LISTENED_EVENTS)
    assert called_methods() == set(METHOD_SCOPES)


def test_pyyaml_reads_the_manifests_the_same_way() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the built-in reader is used alone")
    for path in (SOCKET_MANIFEST, HTTP_MANIFEST):
        text = path.read_text(encoding="utf-8")
        assert yaml.safe_load(text) == load_manifest(text), path.name


def test_every_listened_event_is_subscribed(manifest: dict[str, Any]) -> None:
    subscribed = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert AGENT_EVENTS <= subscribed, "the agent messaging experience's events"
    assert not LEGACY_EVENTS & subscribed, "assistant_view's events are for old installs only"
    for listener, events in LISTENED_EVENTS.items():
        if listener in LEGACY_EVENTS:
            continue
        assert events <= subscribed, f"`{listener}` listener: {sorted(events - subscribed)} not subscribed"
    assert subscribed <= set().union(*LISTENED_EVENTS.values()), "an event nobody listens to is subscribed"


def test_the_bot_scopes_are_exactly_what_the_adapter_needs(manifest: dict[str, Any]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    needed = set(COMMAND_SCOPES) | FILE_DOWNLOAD_SCOPES
    for method, method_scopes in METHOD_SCOPES.items():
        assert method_scopes <= scopes, f"{method} needs {sorted(method_scopes - scopes)}"
        needed |= method_scopes
    for event in events:
        assert EVENT_SCOPES[event] <= scopes, f"event {event} needs {sorted(EVENT_SCOPES[event] - scopes)}"
        needed |= EVENT_SCOPES[event]
    assert scopes == needed, f"scopes the service does not use: {sorted(scopes - needed)}"
    assert len(manifest["oauth_config"]["scopes"]["bot"]) == len(scopes), "a scope is listed twice"


def test_the_features_serve_mentions_dms_the_agent_view_and_the_command(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    assert features["bot_user"]["display_name"]
    assert features["app_home"]["messages_tab_enabled"] is True, "people can DM the bot"
    assert features["app_home"]["messages_tab_read_only_enabled"] is False
    assert "assistant_view" not in features, "new apps can only use the agent messaging experience"
    agent = features["agent_view"]  # Slack requires it (or assistant_view) for the assistant:write scope
    assert agent["agent_description"]
    prompts = agent["suggested_prompts"]
    assert 1 <= len(prompts) <= 4 and all(p["title"] and p["message"] for p in prompts)
    [command] = features["slash_commands"]
    assert command["command"] == "/claude" and command["description"] and command["usage_hint"]
    display = manifest["display_information"]
    assert display["name"] and len(display["description"]) <= 140
    assert 174 <= len(display["long_description"]) <= 4000, "Slack refuses a shorter long_description"
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", display["background_color"])


def test_the_socket_mode_manifest_needs_no_public_url() -> None:
    manifest = load_manifest(SOCKET_MANIFEST.read_text(encoding="utf-8"))
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["token_rotation_enabled"] is False
    assert "request_url" not in settings["event_subscriptions"]
    assert settings["interactivity"] == {"is_enabled": True}
    assert "url" not in manifest["features"]["slash_commands"][0]
    assert "YOUR-HOST" not in SOCKET_MANIFEST.read_text(encoding="utf-8")


def test_the_http_manifest_sends_everything_to_the_events_route() -> None:
    manifest = load_manifest(HTTP_MANIFEST.read_text(encoding="utf-8"))
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == PLACEHOLDER_URL
    assert settings["interactivity"] == {"is_enabled": True, "request_url": PLACEHOLDER_URL}
    assert manifest["features"]["slash_commands"][0]["url"] == PLACEHOLDER_URL


def test_the_two_manifests_differ_only_in_how_slack_reaches_the_service() -> None:
    socket = load_manifest(SOCKET_MANIFEST.read_text(encoding="utf-8"))
    http = load_manifest(HTTP_MANIFEST.read_text(encoding="utf-8"))
    for manifest in (socket, http):
        manifest["settings"]["event_subscriptions"].pop("request_url", None)
        manifest["settings"]["interactivity"].pop("request_url", None)
        manifest["settings"].pop("socket_mode_enabled")
        manifest["features"]["slash_commands"][0].pop("url", None)
    assert socket == http
