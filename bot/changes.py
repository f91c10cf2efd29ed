"""People deleting and editing their own messages: deleted means deleted.

A deleted message's turn leaves the stored history, so no later request carries it (and
`bot.prompt.resendable` leaves out an answer whose every question is gone). If it was still
waiting for its answer, it gets none: the answer's task finds its turn gone
(`policy.already_answered`) and shows nothing. An answer already under way when the
message is deleted is finished (the person is watching it appear), then not resent. An
edited message's turn gets the new text, which later requests carry; edits never start an
answer. What was already shown in the chat stays there.
"""

from __future__ import annotations

import logging

from bot import metrics
from bot.domain import PostedMessage
from bot.errors import ServiceUnavailable
from bot.store import Store
from bot.store.db import is_outage

log = logging.getLogger(__name__)


class MessageChanges:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def deleted(self, posted: PostedMessage) -> bool:
        """Forget a deleted message; True if it had a stored turn. Raises `ServiceUnavailable`
        when the database cannot be reached (the platform should deliver the event again)."""
        try:
            count = await self.store.changes.delete(posted)
        except Exception as error:
            if is_outage(error):
                raise _unavailable(error) from error
            raise
        if count:
            metrics.MESSAGE_CHANGES.labels("deleted").inc()
            log.info("deleted by its author, turn forgotten: message %s in %s", posted.message_id, _where(posted))
        return bool(count)

    async def edited(self, posted: PostedMessage, text: str) -> bool:
        """Store an edited message's new text; True if a stored turn changed."""
        try:
            count = await self.store.changes.edit(posted, text)
        except Exception as error:
            if is_outage(error):
                raise _unavailable(error) from error
            raise
        if count:
            metrics.MESSAGE_CHANGES.labels("edited").inc()
            log.info("edited by its author, turn updated: message %s in %s", posted.message_id, _where(posted))
        return bool(count)


def _where(posted: PostedMessage) -> str:
    return f"{posted.platform}:{posted.workspace_id}:{posted.channel_id}"


def _unavailable(error: Exception) -> ServiceUnavailable:
    """An outage, said once without details."""
    log.warning("database unavailable; a deletion or edit is not applied now: %s", type(error).__name__)
    metrics.ERRORS.labels("database").inc()
    return ServiceUnavailable("the database is unavailable")
