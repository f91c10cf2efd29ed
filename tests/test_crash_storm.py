"""A crash storm: `bot serve` (Slack HTTP mode) SIGKILLed at random moments while 200
conversations talk to it, restarted on the same database each time.

What the service guarantees, from bot/conversation.py, adapters/slack/ and bot/store/:

* Bolt runs with `process_before_response=True`: the listener runs BEFORE Slack's request is
  answered. It translates the event and awaits `ConversationService.accept`, which claims the event
  (`processed_events`, key `channel:ts`) and inserts the user turn in ONE transaction
  (`Store.accept_message`). Only when that transaction has committed does the listener return and
  Bolt answer 200. So an HTTP 200 means the turn is committed: a SIGKILL after the 200 cannot lose
  it (SQLite in WAL mode keeps a committed transaction across the death of the process; only an OS
  crash could lose it with `synchronous=NORMAL`, which a SIGKILL is not).
* A kill before the 200 may or may not have committed the turn. Slack then retries the delivery
  (same event id, `X-Slack-Retry-Num`), as this test's driver does until it gets a 200: if the turn
  was committed, the retry finds the claim taken and is dropped as a duplicate (stored once, never
  twice); if not, the retry stores it. Besides the kills, the driver gives up on about one first
  attempt in seven after a few milliseconds (Slack gives up after 3 s), so that acks lost after the
  commit are common, not just the few a kill happens to catch.
* The answer runs in the background under the per-thread lock and is stored (`append_answer`)
  before its final text is shown. A kill during the answer loses the answer but not the turn: it
  waits, stored, and is sent to Claude together with the next message of its thread (consecutive
  user turns merge), or is answered by recovery (bot/recovery.py) once the killed instance has been
  silent for INSTANCE_DEAD_AFTER_SECONDS; either way it is never answered twice and never lost from
  the context. Only a turn whose Claude request a kill cut off is asked of Claude again.
* A thread reply without a mention is a turn only in a thread that is already a conversation
  (`policy.is_addressed`). If a mention's delivery died with the instance and the user's next
  message in that thread reaches the restarted instance before Slack's retry of the mention, the
  follow-up is acked (200) and not taken then; the same happens when both deliveries are in flight
  at once and the follow-up's is handled first. So whenever a mention starts a conversation in a
  channel, the thread's later replies are read back (`conversations.replies`) under the thread lock
  and stored, claimed under their own event ids, before the answer. The main storm sends follow-ups
  once their mention was acked; its `slack-timing` variant sends them as Slack does.

(The claim and the turn are NOT written under the thread lock, nor after the ack: the lock is taken
only by the background answer; the claim and the turn are committed before Bolt acks.)

So this test asserts: every message that got a 200 was already in `messages` when the 200 arrived
(checked right then, from another connection) and is there exactly once at the end; every message
is eventually stored (the driver retries like Slack); no answer is given twice (neither posted twice
at the fake Slack, nor stored twice, nor asked of Claude again unless a kill cut its request off);
and after the storm one more follow-up in every thread is answered, with a Claude request carrying
exactly the thread's stored turns (earlier user turns, merged where their answer was lost, and the
answers that were stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import load_config
from bot.schema import conversations, messages
from bot.store import create_engine
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack, event_body, sign_request
from tests.conftest import API_KEY
from tests.processes import BOT, conversation, free_port
from tests.slack_harness import SlackHarness, channel_message, mention

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CRASH_STORM_SEED", "20240611"))
CONVERSATIONS = 200
KILLS = 5
START_EVERY = 0.08  # seconds between two conversations starting: the storm lasts about 16 s
SLACK_ACK_TIMEOUT = 3.0  # Slack gives up on a delivery after 3 s and retries it
LIMIT_SECONDS = 120.0  # a failure guard for each wait, not a speed requirement
SIGNING_SECRET = "crash-storm-signing-canary-5e0b"
# Slack retries a failed delivery nearly at once, then after 1 and 5 minutes: here 1.5 s and 3 s apart.
SLACK_RETRY_PAUSES = (1.5, 3.0)
CHANNEL = "C1"


async def eventually(condition: Callable[[], bool], what: str, service: Service | None = None) -> None:
    deadline = time.monotonic() + LIMIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}\n{service.output() if service else ''}")
        await asyncio.sleep(0.05)


class Service:
    """`bot serve` on one fixed port (as behind a load balancer), killed and started again."""

    def __init__(self, env: dict[str, str], cwd: Path, http: aiohttp.ClientSession) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.cwd = cwd
        self.http = http
        self.proc: asyncio.subprocess.Process | None = None
        self.readers: list[asyncio.Task[None]] = []
        self.lines: list[str] = []  # every process's output, in order
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip())

    async def start(self) -> None:
        assert self.proc is None or self.proc.returncode is not None
        self.proc = await asyncio.create_subprocess_exec(
            *BOT, "serve", cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [asyncio.create_task(self._drain(s)) for s in (self.proc.stdout, self.proc.stderr)]
        self.starts += 1
        deadline = time.monotonic() + LIMIT_SECONDS
        while True:
            if self.proc.returncode is not None:
                raise AssertionError(f"`bot serve` exited ({self.proc.returncode}) at start\n{self.output()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as health:
                    if health.status == 200:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"`bot serve` did not become healthy\n{self.output()}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kills += 1
        await asyncio.wait_for(self.proc.wait(), LIMIT_SECONDS)
        await asyncio.wait_for(asyncio.gather(*self.readers), LIMIT_SECONDS)
        assert self.proc.returncode == -signal.SIGKILL, (self.proc.returncode, self.output())


@dataclass
class Message:
    """One user message of the storm and what became of its deliveries."""

    thread: str  # the root's ts: the conversation's thread id
    ts: str
    text: str
    kind: str  # "root", "follow-up" or "final"
    event_id: str
    impatient: float | None = None  # a first attempt given up after this many seconds (a lost ack)
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    acked: bool = False

    @property
    def event(self) -> dict[str, Any]:
        if self.kind == "root":
            return {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {self.text}", "ts": self.ts,
                    "channel": CHANNEL, "event_ts": self.ts}
        return {"type": "message", "channel_type": "channel", "user": "U1", "text": self.text, "ts": self.ts,
                "channel": CHANNEL, "thread_ts": self.thread, "event_ts": self.ts}


@dataclass
class Storm:
    service: Service
    http: aiohttp.ClientSession
    engine: AsyncEngine  # the test's own connections to the service's database
    slack_timing: bool = False  # retry as late as Slack does (see SLACK_RETRY_PAUSES)
    claude_in_flight: Callable[[], int] = lambda: 0  # Claude requests under way right now
    slack: FakeSlack | None = None  # where a message is posted (and read back from), as in Slack
    in_flight_at_kills: list[int] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    not_stored_at_ack: list[Message] = field(default_factory=list)
    overtook_their_mention: list[Message] = field(default_factory=list)

    def mention_acked(self, message: Message) -> bool:
        return any(m.acked for m in self.sent if m.kind == "root" and m.ts == message.thread)

    async def deliver(self, message: Message) -> None:
        """Deliver as Slack does: until a 200, retrying a failed or timed-out delivery with the
        same event id; right after the 200, look the turn up in the database."""
        self.sent.append(message)
        if self.slack is not None:  # posted: in Slack's history from now on, whatever its delivery does
            thread_ts = message.thread if message.kind != "root" else None
            self.slack.seed_message(CHANNEL, message.event["text"], ts=message.ts, thread_ts=thread_ts)
        body = json.dumps(event_body(message.event, message.event_id, bot_user_id="UBOT")).encode()
        while True:
            headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
            if message.attempts:
                headers |= {"X-Slack-Retry-Num": str(message.attempts), "X-Slack-Retry-Reason": "http_error"}
            message.attempts += 1
            status: int | None = None
            mention_acked = self.mention_acked(message)  # before this attempt: its thread is a conversation
            patience = message.impatient if message.attempts == 1 and message.impatient else SLACK_ACK_TIMEOUT
            try:
                async with self.http.post(
                    self.service.url + "/slack/events", data=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=patience),
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                message.failures.append(type(exc).__name__)
            if status == 200:
                message.acked = True
                if await stored_turns(self.engine, message) != 1:
                    if message.kind == "follow-up" and not mention_acked:
                        # Its thread may have been no conversation yet (the mention's delivery still
                        # pending or in flight): acked and not taken; read back when the mention is accepted.
                        self.overtook_their_mention.append(message)
                    else:
                        self.not_stored_at_ack.append(message)
                return
            if status is not None:
                message.failures.append(str(status))
            assert message.attempts < 300, f"{message.ts}: never acked: {message.failures[-5:]}"
            if self.slack_timing:
                await asyncio.sleep(SLACK_RETRY_PAUSES[min(message.attempts, len(SLACK_RETRY_PAUSES)) - 1])
            else:
                await asyncio.sleep(0.1 + 0.3 * random.random())


async def stored_turns(engine: AsyncEngine, message: Message) -> int:
    """How many user turns with this message's id its thread has (a transaction of its own)."""
    query = (
        select(func.count())
        .select_from(messages.join(conversations))
        .where(
            conversations.c.channel_id == CHANNEL,
            conversations.c.thread_id == message.thread,
            messages.c.role == "user",
            messages.c.platform_message_id == message.ts,
        )
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


@dataclass
class StoredTurn:
    id: int
    role: str
    author: str | None
    content: str
    order: int
    rank: int
    message_id: str | None


async def thread_turns(engine: AsyncEngine) -> dict[str, list[StoredTurn]]:
    """Every conversation's turns in the order the service sends them (schema.messages.position)."""
    order = func.coalesce(messages.c.position, messages.c.id)
    query = (
        select(
            conversations.c.thread_id, messages.c.id, messages.c.role, messages.c.author, messages.c.content,
            order.label("order"), messages.c.rank, messages.c.platform_message_id,
        )
        .select_from(messages.join(conversations))
        .where(conversations.c.channel_id == CHANNEL)
        .order_by(conversations.c.thread_id, order, messages.c.rank, messages.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    turns: dict[str, list[StoredTurn]] = {}
    for row in rows:
        turns.setdefault(row.thread_id, []).append(
            StoredTurn(row.id, row.role, row.author, row.content, row.order, row.rank, row.platform_message_id)
        )
    return turns


def expected_messages(turns: list[StoredTurn]) -> list[tuple[str, str]]:
    """What a Claude request for these turns must carry: user turns as `<message from="name">text</message>`,
    consecutive user turns merged (a turn whose answer was lost goes along with the next one)."""
    result: list[tuple[str, str]] = []
    for turn in turns:
        if turn.role == "user":
            text = f'<message from="{turn.author}">{html.escape(turn.content, quote=False)}</message>'
        else:
            text = turn.content
        if result and result[-1][0] == turn.role:
            result[-1] = (turn.role, result[-1][1] + "\n\n" + text)
        elif result or turn.role == "user":
            result.append((turn.role, text))
    return result


@pytest.mark.parametrize(
    "slack_timing",
    [
        pytest.param(False, id="follow-ups-after-the-mention-is-acked"),
        pytest.param(True, id="slack-timing"),
    ],
)
async def test_200_conversations_through_5_sigkills_lose_no_turn_and_answer_nothing_twice(
    tmp_path: Path, database_url: str, fake_anthropic: FakeAnthropic, fake_slack: FakeSlack, slack_timing: bool
) -> None:
    """See the module docstring for what is guaranteed and therefore asserted.

    follow-ups-after-the-mention-is-acked: a thread's follow-up is sent once its mention got a 200,
    and a failed delivery is retried within 0.1-0.4 s: the ordering under which the guarantees hold.

    slack-timing: as Slack and its users behave: the follow-up is posted a random pause after the
    mention whatever became of the mention's delivery, and failed deliveries are retried only
    SLACK_RETRY_PAUSES later. A follow-up that reaches the restarted instance before its mention's
    retry (or while its first delivery is still in flight) is acked and not taken then; it is read
    back from the thread when the mention is accepted."""
    rng = random.Random(SEED)
    fake_anthropic.latency = 0.3
    fake_anthropic.chunk_delay = 0.02
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {
        "PATH": ":".join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "SLACK_BOT_TOKEN": fake_slack.bot_token or "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "RATE_USER_PER_MINUTE": "0",  # one person sends the whole storm
        "RATE_CHANNEL_PER_MINUTE": "0",
        "LOG_LEVEL": "INFO",
        # A killed instance counts as dead after 2 s: its thread leases (PostgreSQL) are taken over
        # and, at each start, recovery answers what it left (see the module docstring).
        "INSTANCE_DEAD_AFTER_SECONDS": "2",
    }
    engine = create_engine(load_config(database_url=database_url).database_url)  # as the service reads it
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        service = Service(env, cwd, http)
        storm = Storm(
            service, http, engine, slack_timing, claude_in_flight=lambda: fake_anthropic.in_flight, slack=fake_slack
        )
        try:
            await service.start()
            await run_storm(storm, rng)
            storm_seconds = time.monotonic() - started
            storm_kills = service.kills
            landed = storm.in_flight_at_kills
            assert sum(landed) > 0, f"no kill landed while Claude was answering: {landed}"
            finals = await final_round(storm, fake_slack, service)
            await check(storm, finals, fake_anthropic, fake_slack, engine)
            async with http.get(service.url + "/healthz") as health:
                assert health.status == 200
        finally:
            if service.proc is not None and service.proc.returncode is None:
                await service.kill()
            await engine.dispose()
    output = "\n".join(service.lines)
    assert API_KEY not in output and SIGNING_SECRET not in output, "a secret was logged"
    assert "Traceback" not in output, "an unexpected error was logged:\n" + output[output.index("Traceback") - 2000:]

    retried = [m for m in storm.sent if m.attempts > 1]
    failures = Counter(f for m in storm.sent for f in m.failures)
    print(
        f"\ncrash storm: {CONVERSATIONS} conversations, {storm_kills} SIGKILLs, {service.starts} starts, "
        f"{len(storm.sent)} messages, {len(retried)} needed a retry ({dict(failures)}), "
        f"{sum('duplicate delivery dropped' in line for line in service.lines)} retries dropped as duplicates, "
        f"{len(fake_anthropic.message_requests)} Claude requests ({storm.in_flight_at_kills} under way at each kill); "
        f"storm {storm_seconds:.1f} s, "
        f"total {time.monotonic() - started:.1f} s"
    )


async def run_storm(storm: Storm, rng: random.Random) -> None:
    """Each conversation: a mention, then (after a random pause) a follow-up in its thread; the
    conversations start every START_EVERY seconds; KILLS kills at seeded random moments."""
    # A pause before the follow-up, the mention's length, and for about one delivery in seven a first attempt
    # that gives up within 8 ms (as Slack does after 3 s): the service may still store that turn,
    # and the retry must then be dropped as a duplicate.
    def impatience() -> float | None:
        return rng.uniform(0.001, 0.008) if rng.random() < 0.15 else None

    plans = [(rng.uniform(0.0, 1.5), rng.randint(1, 9), impatience(), impatience()) for _ in range(CONVERSATIONS)]
    span = CONVERSATIONS * START_EVERY
    kill_at = sorted(rng.uniform(0.5, span + 1.0) for _ in range(KILLS))
    downtimes = [rng.uniform(0.0, 1.0) for _ in range(KILLS)]
    begin = time.monotonic()

    async def converse(index: int) -> None:
        pause, words, root_impatience, follow_up_impatience = plans[index]
        await asyncio.sleep(index * START_EVERY)
        root_ts = f"{1_830_000_000 + index * 10}.000100"
        filler = " ".join(f"w{n}" for n in range(words))
        root = Message(root_ts, root_ts, f"conversation {index} opens {filler}", "root", f"EvRoot{index}",
                       root_impatience)
        follow_up = Message(root_ts, f"{1_830_000_000 + index * 10 + 1}.000100", f"conversation {index} follows up",
                            "follow-up", f"EvFollow{index}", follow_up_impatience)
        if storm.slack_timing:  # the user posts again whatever became of the mention's delivery
            async with asyncio.TaskGroup() as both:
                both.create_task(storm.deliver(root))
                await asyncio.sleep(pause)
                both.create_task(storm.deliver(follow_up))
        else:
            await storm.deliver(root)
            await asyncio.sleep(pause)
            await storm.deliver(follow_up)

    async def killer() -> None:
        for at, downtime in zip(kill_at, downtimes, strict=True):
            await asyncio.sleep(max(0.0, begin + at - time.monotonic()))
            storm.in_flight_at_kills.append(storm.claude_in_flight())
            await storm.service.kill()
            await asyncio.sleep(downtime)
            await storm.service.start()

    async with asyncio.TaskGroup() as group:  # a failure cancels the rest (and frees their connections)
        group.create_task(killer())
        for index in range(CONVERSATIONS):
            group.create_task(converse(index))


async def final_round(storm: Storm, slack: FakeSlack, service: Service) -> dict[str, Message]:
    """No more kills: one more follow-up in every thread, each answered."""
    roots = [m for m in storm.sent if m.kind == "root"]
    finals = {
        root.thread: Message(root.thread, f"{float(root.ts) + 5:.6f}", f"conversation {i} final question",
                             "final", f"EvFinal{i}")
        for i, root in enumerate(roots)
    }
    async with asyncio.TaskGroup() as group:
        for message in finals.values():
            group.create_task(storm.deliver(message))

    def answered() -> bool:
        return all(
            any(
                not m.is_streaming and m.text.endswith(f"{final.text}</message>")
                for m in slack.bot_messages(CHANNEL, thread)
            )
            for thread, final in finals.items()
        )

    await eventually(answered, "the final follow-up of every thread to be answered", service)
    return finals


async def check(
    storm: Storm, finals: dict[str, Message], fake_anthropic: FakeAnthropic, slack: FakeSlack, engine: AsyncEngine
) -> None:
    assert len(storm.sent) == 3 * CONVERSATIONS and all(m.acked for m in storm.sent)

    # No user turn lost: committed before the 200 (seen right then), and stored exactly once; only a
    # follow-up whose thread was no conversation yet may be acked unstored (read back later, below).
    lost = storm.not_stored_at_ack
    assert lost == [], f"{len(lost)} messages acked but not stored: {[(m.ts, m.kind, m.failures) for m in lost][:10]}"
    if storm.slack_timing:  # the variant exists to exercise this path: it must have happened
        assert storm.overtook_their_mention, "no follow-up overtook its mention: the variant proved nothing"
    else:
        assert storm.overtook_their_mention == []
    turns = await thread_turns(engine)
    assert set(turns) == set(finals), "one conversation per thread"
    for thread, thread_turns_ in turns.items():
        user_ids = [t.message_id for t in thread_turns_ if t.role == "user"]
        expected_ids = [m.ts for m in storm.sent if m.thread == thread]
        assert sorted(user_ids) == sorted(expected_ids), f"{thread}: stored {user_ids}, sent {expected_ids}"

    # Nothing answered twice: not stored twice, not posted twice; asked of Claude again only when a
    # kill cut its request off (at most what was under way at the kills, plus one per kill for an
    # answer that reached the process just as it died).
    asked = [conversation(r)[-1][1] for r in fake_anthropic.message_requests]
    again = sum(count - 1 for count in Counter(asked).values())
    cut_off = sum(storm.in_flight_at_kills) + len(storm.in_flight_at_kills)
    assert again <= cut_off, f"{again} turns asked of Claude again, only {cut_off} requests were cut off by kills"
    for thread, thread_turns_ in turns.items():
        answers = [t for t in thread_turns_ if t.role == "assistant"]
        assert len({t.order for t in answers}) == len(answers), f"{thread}: two answers to one turn"
        posted = slack.bot_messages(CHANNEL, thread)
        finished = [m.text for m in posted if not m.is_streaming]
        assert len(set(finished)) == len(finished), f"{thread}: an answer posted twice: {finished}"
        unfinished = [m.text for m in posted if m.is_streaming]  # streams cut off by a kill
        assert not set(unfinished) & set(finished), f"{thread}: an answer shown twice: {posted}"

    # Every thread continues: the final follow-up's request carries the thread's stored turns.
    for thread, final in finals.items():
        requests = [r for r in fake_anthropic.message_requests if final.text in conversation(r)[-1][1]]
        assert len(requests) == 1, f"{thread}: {len(requests)} Claude requests for the final follow-up"
        sent = conversation(requests[0])
        stored = turns[thread]
        last = stored[-1]
        assert last.role == "assistant", f"{thread}: the final follow-up's answer is not stored last"
        assert expected_messages(stored[:-1]) == sent, f"{thread}: the request lacks some of the thread's turns"
        users = "\n".join(text for role, text in sent if role == "user")
        positions = [users.find(m.text) for m in storm.sent if m.thread == thread]
        assert -1 not in positions and positions == sorted(positions), f"{thread}: {sent}"
        assert last.content == f"You said: {sent[-1][1]}"
        shown = [m.text for m in slack.bot_messages(CHANNEL, thread) if not m.is_streaming]
        assert shown[-1] == last.content



# --- the loss window -------------------------------------------------------------------------


async def test_a_follow_up_acked_before_its_mention_was_stored_is_not_lost(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    """Slack does not wait for a mention's 200 before delivering the user's next message: when the
    instance that received a mention is killed before storing it, Slack retries the mention later
    (after about 0 s, 1 min and 5 min), while the follow-up is a new event delivered at once to the
    restarted instance, which cannot take it (its thread is not a conversation yet). When the retried
    mention is accepted, the thread's later replies are read back and stored: the follow-up is
    answered with the mention, once."""
    root = mention("what is the capital of France?")  # delivered to an instance that was killed: no 200
    follow_up = channel_message("and of Spain, please", thread_ts=root["ts"])
    for posted in (root, follow_up):  # both are in the thread, as Slack shows it
        slack.slack.seed_message("C1", posted["text"], ts=posted["ts"], thread_ts=posted.get("thread_ts"))
    assert (await slack.send_event(follow_up)).status == 200  # the user's next message, to the new instance
    assert (await slack.send_event(root, event_id="EvRoot", retry=1)).status == 200  # Slack's retry
    await slack.settle()
    async with slack.service.core.store.engine.connect() as conn:
        stored = (await conn.execute(select(messages.c.platform_message_id).where(messages.c.role == "user"))).all()
    assert sorted(row.platform_message_id for row in stored) == sorted([root["ts"], follow_up["ts"]]), (
        "a message acked with a 200 was not stored"
    )
    assert "and of Spain" in json.dumps(fake_anthropic.message_requests[-1]["messages"])
