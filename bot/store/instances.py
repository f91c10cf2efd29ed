"""Running instances say they are alive; a turn owned by one that went quiet is an orphan."""

from __future__ import annotations

from bot.domain import now
from bot.schema import instances
from bot.store.db import Database


class InstanceRegistry:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def heartbeat(self, instance_id: str) -> None:
        moment = now()
        async with self._db.write() as conn:
            await conn.execute(
                self._db.insert(instances)
                .values(id=instance_id, seen_at=moment)
                .on_conflict_do_update(index_elements=["id"], set_={"seen_at": moment})
            )

    async def forget(self, instance_id: str) -> None:
        """A clean shutdown: the instance's turns are settled or drained."""
        async with self._db.write() as conn:
            await conn.execute(instances.delete().where(instances.c.id == instance_id))
