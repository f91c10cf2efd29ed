"""Which of Slack's real `message_changed` / `message_deleted` payloads (from the shared
corpus of Slack's own SDK tests) are a person's deletion or edit, table-tested on the
translation alone; end to end in tests/test_message_changes.py."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import changes
from adapters.slack.translate import SlackTranslator
from adapters.slack.users import SlackUsers
from bot.domain import PostedMessage
from tests.test_slack_corpus import SAMPLES


def event_of(sample_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sample = SAMPLES[sample_id]
    body = sample.payload if sample.body == "json" else {"team_id": "T1", "event": sample.payload}
    return body["event"], body


def translator() -> SlackTranslator:
    return SlackTranslator(SlackUsers(AsyncWebClient(token="xoxb-unused")), bot_user_id="UBOT", team_id="T1")


@pytest.mark.parametrize(
    ("sample_id", "expected"),
    [
        ("bolt-message-deleted", ("T111", "C111", "1665368619.804829")),
        ("java-message-changed-tombstone-im", ("T1", "D0697V", "1728639839.746989")),  # a root with replies
        ("java-message-changed-previous-array", ("T1", "C03E94MKU", "1626775604.004900")),
        ("java-message-deleted-bot", None),  # a bot's message
        ("bolt-message-changed", None),  # an edit, not a deletion
    ],
)
def test_deletions_in_real_payloads(sample_id: str, expected: tuple[str, str, str] | None) -> None:
    event, body = event_of(sample_id)
    found = changes.deletion(event, body, translator())
    if expected is None:
        assert found is None
        return
    team, channel, ts = expected
    assert found == PostedMessage("slack", team, channel, ts, f"{channel}:{ts}")


@pytest.mark.parametrize(
    ("sample_id", "expected"),
    [
        ("bolt-message-changed", None),  # Bolt's sample has no ts on the message: nothing to find
        ("bolt-message-changed-minimal", ("C2147483705", "Hello, world!")),
        ("java-message-changed-in-thread", ("C111", "updated message")),
        ("java-message-changed-files", ("C111", "Here you are - let me know if you need other files as well")),
        ("java-message-changed-tombstone-im", None),
        ("bolt-message-deleted", None),
    ],
)
async def test_edits_in_real_payloads(sample_id: str, expected: tuple[str, str] | None) -> None:
    event, body = event_of(sample_id)
    found = await changes.edit(event, body, translator())
    if expected is None:
        assert found is None
        return
    posted, text = found or (None, None)
    assert posted is not None and (posted.channel_id, text) == expected
    assert posted.message_id == event["message"]["ts"]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "message", "user": "U1", "text": "see <https://x.example>", "ts": "1.1",
         "attachments": [{"from_url": "https://x.example"}]},  # a link preview: no `edited`
        {"type": "message", "user": "UBOT", "bot_id": "BBOT", "text": "streamed", "ts": "1.1",
         "edited": {"user": "UBOT", "ts": "1.2"}},  # the bot's own answer being updated
        {"type": "message", "subtype": "bot_message", "text": "x", "ts": "1.1", "edited": {"ts": "1.2"}},
    ],
)
async def test_previews_and_bot_updates_are_not_edits(message: dict[str, Any]) -> None:
    event = {"type": "message", "subtype": "message_changed", "channel": "C1", "message": message,
             "previous_message": {"type": "message", "user": "U1", "text": "before", "ts": "1.1"}}
    assert await changes.edit(event, {"team_id": "T1"}, translator()) is None
