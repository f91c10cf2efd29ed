"""Workspaces the app was removed from: when, so that their conversations go after a grace period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from bot.domain import now
from bot.schema import conversations, departed_workspaces, messages
from bot.store.db import Database


class Departures:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def mark(self, platform: str, workspace_id: str, *, left: bool) -> None:
        """The app left `workspace_id` now (the first departure counts), or came back."""
        key = (departed_workspaces.c.platform == platform, departed_workspaces.c.workspace_id == workspace_id)
        async with self._db.write() as conn:
            if not left:
                await conn.execute(delete(departed_workspaces).where(*key))
                return
            await conn.execute(
                self._db.insert(departed_workspaces)
                .values(platform=platform, workspace_id=workspace_id, left_at=now())
                .on_conflict_do_nothing(index_elements=["platform", "workspace_id"])
            )

    async def forget_departed(self, left_before: datetime) -> int:
        """Delete the conversations of workspaces left before `left_before`; how many workspaces."""
        async with self._db.engine.connect() as conn:
            gone = (
                await conn.execute(
                    select(departed_workspaces.c.platform, departed_workspaces.c.workspace_id).where(
                        departed_workspaces.c.left_at < left_before
                    )
                )
            ).all()
        for platform, workspace_id in gone:
            theirs = select(conversations.c.id).where(
                conversations.c.platform == platform, conversations.c.workspace_id == workspace_id
            )
            async with self._db.write() as conn:
                await conn.execute(delete(messages).where(messages.c.conversation_id.in_(theirs)))
                await conn.execute(
                    delete(conversations).where(
                        conversations.c.platform == platform, conversations.c.workspace_id == workspace_id
                    )
                )
                await conn.execute(
                    delete(departed_workspaces).where(
                        departed_workspaces.c.platform == platform, departed_workspaces.c.workspace_id == workspace_id
                    )
                )
        return len(gone)
