"""The thinnest service that keeps the same contract with Slack and Claude, for the burst
benchmark to measure this service against, on the same machine in the same run (issue 15).

What it keeps: the signature check (slack-sdk's verifier), the event claimed and the turn
stored in one transaction before the ack, one answer per thread at a time, the thread's
history resent to Claude with a cache breakpoint, one `chat.postMessage` per answer, the
answer stored. What it leaves out is everything else the product does (streaming, progress,
files, tools, limits, recovery, controls, several instances, PostgreSQL): the difference in
CPU and time is what those features cost. (One shared aiosqlite connection: concurrent
deliveries' writes may share a commit, which only makes the comparison kinder to this side.)

Run as its own process by `bench.burst` (`python -m bench.thinnest`), configured like
`bot serve` from the environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL,
ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, DATABASE_URL (sqlite:///path), HOST, PORT.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from typing import Any

import aiosqlite
import anthropic
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

MODEL = "claude-sonnet-5-5"
SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY, thread TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_thread ON turns (thread, id);
"""


class Thinnest:
    def __init__(self, db: aiosqlite.Connection, slack: AsyncWebClient, claude: anthropic.AsyncAnthropic) -> None:
        self.db = db
        self.slack = slack
        self.claude = claude
        self.verifier = SignatureVerifier(os.environ["SLACK_SIGNING_SECRET"])
        self.bot_user = ""
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.tasks: set[asyncio.Task[None]] = set()

    async def events(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        payload = json.loads(body)
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": payload["challenge"]})
        event = payload.get("event", {})
        if event.get("type") not in ("app_mention", "message") or event.get("subtype") or event.get("bot_id"):
            return web.Response()
        thread = f"{event['channel']}:{event.get('thread_ts') or event['ts']}"
        mentioned = f"<@{self.bot_user}>" in event.get("text", "")
        if await self._store(event, thread, mentioned):
            task = asyncio.create_task(self._answer(event, thread))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.Response()

    async def _store(self, event: dict[str, Any], thread: str, mentioned: bool) -> bool:
        """Claim the post and store its turn in one transaction; False for a duplicate or a
        message in a thread the bot is not part of."""
        if not mentioned:
            known = await self.db.execute_fetchall("SELECT 1 FROM turns WHERE thread = ? LIMIT 1", (thread,))
            if not known:
                return False
        claimed = await self.db.execute(
            "INSERT INTO claims (key) VALUES (?) ON CONFLICT DO NOTHING", (f"{event['channel']}:{event['ts']}",)
        )
        if claimed.rowcount == 0:
            await self.db.commit()
            return False
        text = event.get("text", "").replace(f"<@{self.bot_user}>", "").strip()
        await self.db.execute("INSERT INTO turns (thread, role, content) VALUES (?, 'user', ?)", (thread, text))
        await self.db.commit()
        return True

    async def _answer(self, event: dict[str, Any], thread: str) -> None:
        async with self.locks[thread]:
            rows = await self.db.execute_fetchall(
                "SELECT role, content FROM turns WHERE thread = ? ORDER BY id", (thread,)
            )
            messages: list[Any] = [{"role": role, "content": content} for role, content in rows]
            last = messages[-1]
            last["content"] = [{"type": "text", "text": last["content"], "cache_control": {"type": "ephemeral"}}]
            reply = await self.claude.messages.create(model=MODEL, max_tokens=1024, messages=messages)
            text = "".join(block.text for block in reply.content if block.type == "text")
            await self.slack.chat_postMessage(
                channel=event["channel"], thread_ts=event.get("thread_ts") or event["ts"], text=text
            )
            await self.db.execute(
                "INSERT INTO turns (thread, role, content) VALUES (?, 'assistant', ?)", (thread, text)
            )
            await self.db.commit()


async def serve() -> None:
    path = os.environ["DATABASE_URL"].removeprefix("sqlite:///")
    async with aiosqlite.connect(path) as db:
        await db.executescript("PRAGMA journal_mode=WAL;" + SCHEMA)
        slack = AsyncWebClient(
            token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"].rstrip("/") + "/"
        )
        claude = anthropic.AsyncAnthropic(http_client=anthropic.DefaultAioHttpClient())
        service = Thinnest(db, slack, claude)
        service.bot_user = str((await slack.auth_test())["user_id"])
        app = web.Application()
        app.router.add_post("/slack/events", service.events)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"]), backlog=4096)
        await site.start()
        print(f"serving on {os.environ.get('HOST', '127.0.0.1')}:{os.environ['PORT']}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    import uvloop

    uvloop.run(serve())


if __name__ == "__main__":
    main()
