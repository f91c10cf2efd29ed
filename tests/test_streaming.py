"""The `StreamedReply` skeleton on a recording platform: no network, a hand-driven clock.

The platform below records every primitive the base calls, so each case reads as a
table: what was streamed and when -> what the platform was asked to do.
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple

import pytest

from adapters.streaming import ReplyLimits, StreamedReply, StreamingRefused, split_all

LIMIT = 40  # small, so a few words make several parts
INTERVAL = 1.0


class Clock:
    """Time that moves only when the test (or a slow platform call) moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RealClock(Clock):
    def __call__(self) -> float:
        return time.monotonic()


class RecordingReply(StreamedReply[int]):
    """A platform whose messages are numbered; every call is recorded and takes `latency`
    seconds of the clock; the stream calls named in `refuse` are refused."""

    def __init__(
        self,
        limits: ReplyLimits,
        *,
        native: bool = False,
        refuse: frozenset[str] = frozenset(),
        latency: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        super().__init__(limits, native_streaming=native, clock=self.clock)
        self.refuse = refuse
        self.latency = latency
        self.calls: list[tuple[str, int, str]] = []  # (primitive, message, text)
        self.screen: dict[int, str] = {}  # what each message shows

    async def _post_part(self, index: int, text: str) -> int:
        handle = len(self.screen)
        self._record("post", handle, text)
        self.screen[handle] = text
        return handle

    async def _edit_part(self, handle: int, text: str) -> None:
        self._record("edit", handle, text)
        self.screen[handle] = text

    async def _start_stream(self, index: int, text: str) -> int:
        handle = len(self.screen)
        self._record("start", handle, text)
        self.screen[handle] = text
        return handle

    async def _append_stream(self, handle: int, text: str) -> None:
        self._record("append", handle, text)
        self.screen[handle] += text

    async def _stop_stream(self, handle: int, text: str) -> None:
        self._record("stop", handle, text)
        self.screen[handle] += text

    def _record(self, primitive: str, handle: int, text: str) -> None:
        self.clock.now += self.latency
        if primitive in self.refuse:
            self.calls.append(("refused", handle, primitive))
            raise StreamingRefused(f"{primitive}_refused")
        self.calls.append((primitive, handle, text))


LOOSE = ReplyLimits(max_chars=LIMIT, edit_interval=INTERVAL, strict_cadence=False)
STRICT = ReplyLimits(max_chars=LIMIT, edit_interval=INTERVAL, strict_cadence=True)

Call = tuple[str, int, str]  # (primitive, message, text)


class Case(NamedTuple):
    name: str
    deltas: list[tuple[float, str]]  # (seconds after the previous delta, delta)
    final: str  # the text `finish` gets
    expected: list[Call]
    native: bool = False
    refuse: frozenset[str] = frozenset()


CASES = [
    Case(
        "a short answer is posted at once, interim edits inside the interval are skipped, the final is not",
        [(0, "one "), (0.3, "two "), (0.3, "three")],
        "one two three (cut off)",
        [("post", 0, "one "), ("edit", 0, "one two three (cut off)")],
    ),
    Case(
        "an edit is due again once the interval has passed since the last one; a final already shown is not resent",
        [(0, "one "), (0.5, "two "), (0.6, "three")],
        "one two three",
        [("post", 0, "one "), ("edit", 0, "one two three")],
    ),
    Case(
        "an answer over the limit continues in new messages, each cut at a line break",
        [(0, "first line of the answer\n"), (0.1, "second line of the answer\n"), (0.1, "third line, a bit longer")],
        "first line of the answer\nsecond line of the answer\nthird line, a bit longer",
        [
            ("post", 0, "first line of the answer\n"),
            ("post", 1, "second line of the answer\n"),
            ("post", 2, "third line, a bit longer"),
        ],
    ),
    Case(
        "a native stream gets only complete lines while streaming, the rest when it stops",
        [(0, "alpha\nbe"), (1.0, "ta\nga"), (1.0, "mma")],
        "alpha\nbeta\ngamma",
        [("start", 0, "alpha\n"), ("append", 0, "beta\n"), ("stop", 0, "gamma")],
        native=True,
    ),
    Case(
        "a refused stream start falls back to a post, then edits with the whole text",
        [(0, "alpha\nbe"), (1.0, "ta\n")],
        "alpha\nbeta\ngamma",
        [
            ("refused", 0, "start"),
            ("post", 0, "alpha\n"),
            ("edit", 0, "alpha\nbeta\n"),
            ("edit", 0, "alpha\nbeta\ngamma"),
        ],
        native=True,
        refuse=frozenset({"start"}),
    ),
    Case(
        "after a refusal the reply's later parts are posted without trying to stream again",
        [(0, "first line of the answer\n"), (0.1, "second line of the answer\n")],
        "first line of the answer\nsecond line of the answer\n",
        [
            ("refused", 0, "start"),
            ("post", 0, "first line of the answer\n"),
            ("post", 1, "second line of the answer\n"),
        ],
        native=True,
        refuse=frozenset({"start"}),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_what_the_platform_is_asked_to_do(case: Case) -> None:
    reply = RecordingReply(LOOSE, native=case.native, refuse=case.refuse)
    for pause, delta in case.deltas:
        reply.clock.now += pause
        await reply.append(delta)
    await reply.finish(case.final)
    assert reply.calls == case.expected
    assert list(reply.screen.values()) == split_all(case.final, LIMIT), "the messages end showing the whole answer"
    assert reply.streaming_refused == ("start_refused" if case.refuse else None)


async def test_parts_never_exceed_the_limit_and_rejoin_to_the_answer() -> None:
    answer = "".join(f"line {i} of a rather long answer\n" for i in range(30))
    reply = RecordingReply(LOOSE)
    for word in re.findall(r"\S+\s*", answer):
        reply.clock.now += 0.25
        await reply.append(word)
    await reply.finish(answer)
    shown = list(reply.screen.values())
    assert len(shown) > 1 and all(len(text) <= LIMIT for text in shown)
    assert "".join(shown) == answer
    assert all(text.strip() for _, _, text in reply.calls), "no call shows only whitespace"


@pytest.mark.parametrize("refused", ["append", "stop"])
async def test_a_stream_refused_midway_is_finished_by_editing_in_the_whole_text(refused: str) -> None:
    reply = RecordingReply(LOOSE, native=True, refuse=frozenset({refused}))
    await reply.append("alpha\n")
    reply.clock.now += 1.0
    await reply.append("beta\n")
    reply.clock.now += 1.0
    await reply.finish("alpha\nbeta\ngamma")
    assert reply.calls[0] == ("start", 0, "alpha\n")
    assert ("refused", 0, refused) in reply.calls
    assert reply.calls[-1] == ("edit", 0, "alpha\nbeta\ngamma"), "the fallback edits in everything, not a delta"
    assert reply.streaming_refused == f"{refused}_refused"
    assert reply.screen == {0: "alpha\nbeta\ngamma"}


async def test_a_final_that_failed_is_shown_whole_when_tried_again() -> None:
    class FlakyReply(RecordingReply):
        failures = 1

        async def _edit_part(self, handle: int, text: str) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("platform down")
            await super()._edit_part(handle, text)

    reply = FlakyReply(LOOSE)
    await reply.append("one ")
    with pytest.raises(ConnectionError):
        await reply.finish("one two")
    await reply.finish("one two")  # what the core does when the final text failed
    assert reply.calls == [("post", 0, "one "), ("edit", 0, "one two")]


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        # Counted from the start of the slow post (100.0): due at 101.0.
        (LOOSE, [("post", 0, "one "), ("edit", 0, "one two ")]),
        # Counted from when the platform accepted the post (100.5): not due at 101.0, due at 101.5.
        (STRICT, [("post", 0, "one "), ("edit", 0, "one two three ")]),
    ],
    ids=["loose", "strict"],
)
async def test_where_the_interval_is_counted_from(limits: ReplyLimits, expected: list[Call]) -> None:
    reply = RecordingReply(limits, latency=0.5)
    await reply.append("one ")  # takes until 100.5
    reply.clock.now = 101.0
    await reply.append("two ")
    reply.clock.now = 101.5
    await reply.append("three ")
    assert reply.calls == expected


async def test_with_a_strict_cadence_the_final_edit_waits_its_turn_and_is_never_skipped() -> None:
    limits = ReplyLimits(max_chars=LIMIT, edit_interval=0.1, strict_cadence=True)
    reply = RecordingReply(limits, clock=RealClock())
    await reply.append("one ")
    posted = time.monotonic()
    await reply.append("two ")  # inside the interval: skipped
    await reply.finish("one two three")
    assert reply.calls == [("post", 0, "one "), ("edit", 0, "one two three")]
    assert time.monotonic() - posted >= 0.09, "the final edit waited out the interval"
