"""The service's memory, by concern: `db` (engine, write transactions, exclusive jobs),
`turns` (conversations, claimed events, history), `channels` (settings rows and their
audit trail), `housekeeping` (usage reports, pruning, retention), `people` (one
person's data: export, erase; forgetting a conversation), `changes` (people deleting
and editing their messages), `shown` (the platform messages each answer was shown
in) and `stops` (the answer being written in each thread, and Stop requests for it, seen
by every instance). Persistence only: the rules that read these values live in `bot.policy`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.answers import AnswerStore
from bot.store.attachments import AttachmentStore
from bot.store.changes import MessageChangeStore
from bot.store.channels import ChannelStore, SettingsRows
from bot.store.db import Database, create_engine
from bot.store.housekeeping import Housekeeping
from bot.store.instances import InstanceRegistry
from bot.store.people import PeopleData
from bot.store.shown import ShownMessages
from bot.store.spend import SpendStore
from bot.store.stops import StopRequests
from bot.store.turns import TurnStore
from bot.store.workspaces import Departures

__all__ = ["Database", "SettingsRows", "Store", "create_engine"]


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.db = Database(engine)
        self.turns = TurnStore(self.db)
        self.channels = ChannelStore(self.db)
        self.housekeeping = Housekeeping(self.db)
        self.instances = InstanceRegistry(self.db)
        self.people = PeopleData(self.db)
        self.changes = MessageChangeStore(self.db)
        self.shown = ShownMessages(self.db)
        self.attachments = AttachmentStore(self.db)
        self.answers = AnswerStore(self.db)
        self.spend = SpendStore(self.db)
        self.workspaces = Departures(self.db)
        self.stops = StopRequests(self.db)

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine

    async def close(self) -> None:
        await self.db.close()
