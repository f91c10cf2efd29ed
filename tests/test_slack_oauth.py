"""Many Slack workspaces: the OAuth install flow through Bolt against the fake Slack's
`oauth.v2.access`, each workspace's events answered with its own token, tokens encrypted in
the database, and a workspace that uninstalls the app losing its tokens at once."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from slack_sdk.oauth.installation_store import Bot
from sqlalchemy import select

from adapters.slack.oauth import TokenCipher
from bot.app import running_service, slack_config
from bot.config import Config
from bot.domain import Actor, IncomingMessage, ThreadKey
from bot.errors import StartupError
from bot.logs import RedactingFilter
from bot.scheduler import prune_once
from bot.schema import conversations, slack_bots, slack_installations
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack, block_actions_body, event_body
from tests.slack_harness import SIGNING_SECRET, SlackHarness, mention

KEY = Fernet.generate_key().decode()


def oauth_config(config: Config, fake: FakeSlack, **changes: Any) -> Config:
    return config.model_copy(
        update={
            "slack_client_id": fake.client_id,
            "slack_client_secret": SecretStr(fake.client_secret),
            "slack_state_secret": SecretStr("state-secret-canary"),
            "encryption_key": SecretStr(KEY),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": fake.api_url,
            "host": "127.0.0.1",
            "port": 0,
            **changes,
        }
    )


@asynccontextmanager
async def oauth_service(config: Config, fake: FakeSlack) -> AsyncIterator[SlackHarness]:
    async with running_service(oauth_config(config, fake)) as service, aiohttp.ClientSession() as http:
        yield SlackHarness(service, fake, http)


async def install(slack: SlackHarness, team_id: str, *, state: str | None = None) -> aiohttp.ClientResponse:
    """A person clicks "Add to Slack", approves on Slack's page, and is sent back with a code."""
    async with slack.http.get(slack.url + "/slack/install") as page:
        assert page.status == 200
        html = await page.text()
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]  # Secure: sent back by hand over http
    link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', html)
    assert link is not None, html
    issued = re.search(r"state=([^&\"]+)", link.group(1))
    assert issued is not None and f"client_id={slack.slack.client_id}" in link.group(1)
    code = slack.slack.authorize_install(team_id, f"Team {team_id}")
    query = {"code": code, "state": state or issued.group(1)}
    async with slack.http.get(slack.url + "/slack/oauth_redirect", params=query, headers={"Cookie": cookie}) as back:
        await back.read()
        return back


async def mention_in(slack: SlackHarness, team_id: str, text: str, channel: str) -> dict[str, Any]:
    event = mention(text, channel=channel)
    body = event_body(event, f"Ev-{team_id}-{event['ts']}", team_id=team_id, bot_user_id=f"UBOT{team_id}")
    event["text"] = f"<@UBOT{team_id}> {text}"
    body["event"] = event
    response = await slack.post(json.dumps(body))
    assert response.status == 200
    await slack.settle()
    return event


async def test_two_workspaces_install_and_each_mention_is_answered_with_its_own_token(
    config: Config, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    async with oauth_service(config, fake_slack) as slack:
        for team in ("T100", "T200"):
            assert (await install(slack, team)).status == 200
        [first_token], [second_token] = fake_slack.tokens_of("T100"), fake_slack.tokens_of("T200")

        first = await mention_in(slack, "T100", "hello from one", channel="C100")
        second = await mention_in(slack, "T200", "hello from two", channel="C200")
        for channel, event in (("C100", first), ("C200", second)):
            [answer] = fake_slack.bot_messages(channel, event["ts"])
            assert answer.text.startswith("You said")
        for channel, token in (("C100", first_token), ("C200", second_token)):
            calls = [c for c in fake_slack.calls if c.params.get("channel") == channel]
            assert calls and {c.token for c in calls} == {token}, f"every call for {channel} used its workspace's token"
        requests = fake_anthropic.message_requests
        assert [r["messages"][0]["content"] for r in requests] == [
            '<message from="mel">hello from one</message>', '<message from="mel">hello from two</message>'
        ], "each workspace's bot mention was recognized and stripped"
    # slack-sdk logs oauth.v2.access's answer at DEBUG; the service's log filter masks it.
    shown = RedactingFilter().redact(caplog.text)
    assert first_token not in shown and second_token not in shown, "no token in the logs"


async def test_tokens_are_unreadable_in_the_database_without_the_key(
    config: Config, fake_slack: FakeSlack
) -> None:
    async with oauth_service(config, fake_slack) as slack:
        await install(slack, "T100")
        [token] = fake_slack.tokens_of("T100")
        async with slack.service.core.store.engine.connect() as conn:
            stored = [
                value
                for table in (slack_bots, slack_installations)
                for row in await conn.execute(select(table))
                for value in row
            ]
            [sealed] = (await conn.execute(select(slack_bots.c.bot_token))).scalars().all()
    assert not any(token in str(value) for value in stored), "the token is nowhere in plain text"
    assert TokenCipher(KEY).open(sealed) == token
    assert TokenCipher(Fernet.generate_key().decode()).open(sealed) is None, "another key cannot read it"


async def test_app_uninstalled_deletes_the_workspaces_tokens_at_once(
    config: Config, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    async with oauth_service(config, fake_slack) as slack:
        await install(slack, "T100")
        await install(slack, "T200")
        body = event_body({"type": "app_uninstalled"}, "Ev-uninstall", team_id="T100", bot_user_id="UBOTT100")
        assert (await slack.post(json.dumps(body))).status == 200
        await slack.settle()
        async with slack.service.core.store.engine.connect() as conn:
            teams = (await conn.execute(select(slack_bots.c.team_id))).scalars().all()
            installs = (await conn.execute(select(slack_installations.c.team_id))).scalars().all()
        assert (teams, installs) == (["T200"], ["T200"])

        fake_slack.revoke("T100")
        await mention_in(slack, "T100", "still there?", channel="C100")
        await mention_in(slack, "T200", "and here?", channel="C200")
        assert [r["messages"][0]["content"] for r in fake_anthropic.message_requests] == [
            '<message from="mel">and here?</message>'
        ], "the uninstalled workspace is not answered; the other still is"


async def test_a_redirect_with_a_state_this_service_did_not_sign_installs_nothing(
    config: Config, fake_slack: FakeSlack
) -> None:
    async with oauth_service(config, fake_slack) as slack:
        response = await install(slack, "T100", state="forged-state.0123")
        assert response.status != 200
        assert fake_slack.tokens_of("T100") == []


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"encryption_key": None}, "ENCRYPTION_KEY is not set"),
        ({"encryption_key": SecretStr("not-a-key")}, "ENCRYPTION_KEY must be a Fernet key"),
        ({"slack_app_token": SecretStr("xapp-test")}, "unset SLACK_APP_TOKEN"),
    ],
)
def test_oauth_mode_refuses_to_start_without_a_usable_key_or_in_socket_mode(
    config: Config, fake_slack: FakeSlack, changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(StartupError, match=says):
        slack_config(oauth_config(config, fake_slack, **changes))


async def test_a_stored_message_is_answered_again_with_its_workspaces_token(
    config: Config, fake_slack: FakeSlack
) -> None:
    """Recovery rebuilds a surface from the store: it speaks with the token of the message's
    workspace, and a workspace without the app gets none."""
    async with oauth_service(config, fake_slack) as slack:
        await install(slack, "T100")
        [token] = fake_slack.tokens_of("T100")
        stored = IncomingMessage(
            ThreadKey("slack", "T100", "C100", "1800000999.000100"), "Ev1", "1800000999.000100",
            Actor("slack", "U1", "mel"), "hello",
        )
        surface = await slack.adapter.surface_for_stored(stored)
        assert surface is not None
        reply = await surface.open_reply()
        await reply.finish("recovered")
        assert {c.token for c in fake_slack.calls if c.params.get("channel") == "C100"} == {token}
        gone = replace(stored, thread=replace(stored.thread, workspace_id="T999"))
        assert await slack.adapter.surface_for_stored(gone) is None


async def test_a_workspace_that_left_loses_its_conversations_after_the_grace_period_unless_it_returns(
    config: Config, fake_slack: FakeSlack
) -> None:
    async with oauth_service(config, fake_slack) as slack:
        store = slack.service.core.store
        for team in ("T100", "T200", "T300"):
            await install(slack, team)
            await mention_in(slack, team, f"remember me, {team}", channel=f"C{team}")
        for team in ("T100", "T300"):
            body = event_body({"type": "app_uninstalled"}, f"Ev-bye-{team}", team_id=team, bot_user_id=f"UBOT{team}")
            assert (await slack.post(json.dumps(body))).status == 200
        await slack.settle()
        await install(slack, "T300")  # came back within the grace period

        await prune_once(store, thread_ttl_days=30, uninstall_grace_days=7)
        assert await workspaces_with_conversations(slack) == ["T100", "T200", "T300"], "within the grace period"
        await prune_once(store, thread_ttl_days=30, uninstall_grace_days=0)
        assert await workspaces_with_conversations(slack) == ["T200", "T300"]


async def workspaces_with_conversations(slack: SlackHarness) -> list[str]:
    async with slack.service.core.store.engine.connect() as conn:
        workspace = conversations.c.workspace_id
        return list((await conn.execute(select(workspace).distinct().order_by(workspace))).scalars())


async def test_with_token_rotation_an_expiring_token_is_renewed_and_kept_encrypted(
    config: Config, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    fake_slack.token_rotation = True
    fake_slack.token_lifetime = 60  # less than Bolt's margin (two hours): renewed at the next event
    async with oauth_service(config, fake_slack) as slack:
        await install(slack, "T100")
        [first] = fake_slack.tokens_of("T100")
        event = await mention_in(slack, "T100", "still me?", channel="C100")
        [renewed] = fake_slack.tokens_of("T100")
        assert renewed != first, "the expiring token was rotated (the old one no longer works)"
        [answer] = fake_slack.bot_messages("C100", event["ts"])
        assert answer.text.startswith("You said")
        assert {c.token for c in fake_slack.calls if c.params.get("channel") == "C100"} == {renewed}
        async with slack.service.core.store.engine.connect() as conn:
            token, refresh = (await conn.execute(select(slack_bots.c.bot_token, slack_bots.c.bot_refresh_token))).one()
        cipher = TokenCipher(KEY)
        assert cipher.open(token) == renewed and token != renewed
        assert str(cipher.open(refresh)).startswith("xoxe-1-") and not refresh.startswith("xoxe")


async def test_a_stored_message_of_an_org_wide_install_is_answered_with_the_orgs_token(
    config: Config, fake_slack: FakeSlack
) -> None:
    """Enterprise Grid: installed once for the org, the app's token serves each of its workspaces."""
    async with oauth_service(config, fake_slack) as slack:
        await install(slack, "T100")  # a workspace of its own
        [token] = fake_slack.tokens_of("T100")
        store = slack.adapter._installations
        assert store is not None
        org_bot = Bot(
            app_id="A1", enterprise_id="E1", team_id=None, bot_token=token, bot_id="BORG", bot_user_id="UORG",
            bot_scopes="chat:write", is_enterprise_install=True, installed_at=1_800_000_000.0,
        )
        await store.async_save_bot(org_bot)
        stored = IncomingMessage(
            ThreadKey("slack", "T555", "C555", "1800000998.000100"), "Ev2", "1800000998.000100",
            Actor("slack", "U1", "mel"), "hello",
        )
        surface = await slack.adapter.surface_for_stored(stored)
        assert surface is not None
        reply = await surface.open_reply()
        await reply.finish("recovered")
        assert {c.token for c in fake_slack.calls if c.params.get("channel") == "C555"} == {token}


async def test_controls_and_the_agent_home_of_a_workspace_use_that_workspaces_token(
    config: Config, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    """Regenerate's new answer, the presser's notice and the DM greeting are sent with the token
    of the workspace the click or event came from (there is no app-wide token in this mode)."""
    async with oauth_service(config, fake_slack) as slack:
        await install(slack, "T100")
        [token] = fake_slack.tokens_of("T100")
        root = await mention_in(slack, "T100", "tell me a joke", channel="C100")
        [first] = fake_slack.bot_messages("C100", root["ts"])
        fake_anthropic.queue_reply("a better joke")
        regenerate = {
            "type": "button", "action_id": "claude_regenerate", "block_id": "b",
            "value": next(
                e["value"] for b in first.blocks or [] for e in b.get("elements", [])
                if e.get("action_id") == "claude_regenerate"
            ),
        }
        body = block_actions_body(
            regenerate, user_id="U1", channel_id="C100", message_ts=first.ts, thread_ts=first.thread_ts,
            team_id="T100",
        )
        assert (await slack.post(body, content_type="application/x-www-form-urlencoded")).status == 200
        await slack.settle()
        assert [m.text for m in fake_slack.bot_messages("C100", root["ts"])][1:] == ["a better joke"]

        rated = block_actions_body(
            {**regenerate, "action_id": "claude_regenerate"}, user_id="U2", channel_id="C100",
            message_ts=first.ts, thread_ts=first.thread_ts, team_id="T100",
        )
        assert (await slack.post(rated, content_type="application/x-www-form-urlencoded")).status == 200
        await slack.settle()
        assert fake_slack.ephemeral, "the presser was told"

        opened = {"type": "app_home_opened", "user": "U1", "channel": "D100", "tab": "messages", "event_ts": "1.1"}
        home = event_body(opened, "Ev-home-T100", team_id="T100", bot_user_id="UBOTT100")
        assert (await slack.post(json.dumps(home))).status == 200
        await slack.settle()
        assert [m.channel for m in fake_slack.messages if m.channel == "D100"] == ["D100"], "greeted"
        used = {c.token for c in fake_slack.calls if c.params.get("channel") in ("C100", "D100")}
        assert used == {token}
