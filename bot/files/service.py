"""The files of a conversation, end to end: a message's files are fetched through its
surface, judged (`kinds`, `limits`, the model's capabilities), uploaded once per
conversation (same sha256, same upload), stored with the turn, and turned into content
blocks for each request. Uploads whose turns were deleted are deleted at the Files API
by `sweep` (after a deletion, pruning, `/claude forget` and `bot erase`)."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.claude.catalog import DEFAULT_CONTEXT_WINDOW, ModelCatalog
from bot.claude.files import FILES_BETA, FilesApi
from bot.domain import Attachment, ContextMessage, FileRef, History, IncomingMessage, StoredTurn, ThreadKey
from bot.files import limits as rules
from bot.files.blocks import file_block
from bot.files.download import DownloadError, FileTooLarge, HostRefused
from bot.files.kinds import FileKind, Sniffed, image_size, pdf_pages, sniff
from bot.ports import MessageSurface
from bot.store.attachments import AttachmentStore

log = logging.getLogger(__name__)


@dataclass
class PreparedFiles:
    """The content blocks of a request's attachments, by turn id."""

    blocks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    file_ids: set[str] = field(default_factory=set)

    @property
    def betas(self) -> tuple[str, ...]:
        return (FILES_BETA,) if self.file_ids else ()


class _InlineBytes:
    """Bytes of files sent inline (no Files API), kept in memory up to a total size so each
    turn does not fetch them from the platform again; refetched when evicted."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._held: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, sha256: str) -> bytes | None:
        data = self._held.get(sha256)
        if data is not None:
            self._held.move_to_end(sha256)
        return data

    def put(self, sha256: str, data: bytes) -> None:
        if sha256 in self._held or len(data) > self._max:
            return
        self._held[sha256] = data
        self._size += len(data)
        while self._size > self._max:
            _, evicted = self._held.popitem(last=False)
            self._size -= len(evicted)


class Attachments:
    def __init__(
        self,
        store: AttachmentStore,
        files: FilesApi,
        catalog: ModelCatalog,
        limits: rules.FileLimits | None = None,
        *,
        inline_cache_bytes: int = 64 * rules.MB,
    ) -> None:
        self.store = store
        self.files = files
        self.catalog = catalog
        self.limits = limits or rules.FileLimits()
        self._inline = _InlineBytes(inline_cache_bytes)

    # --- a new message's files -------------------------------------------------------

    async def ingest(self, message: IncomingMessage, surface: MessageSurface, model: str) -> list[str]:
        """Fetch, judge, upload (once per conversation) and store the message's files;
        returns a line for each file not read."""
        notes: list[str] = []
        files = message.files
        if files and await self.store.turn_has_files(message.thread, message.message_id) is not False:
            return notes  # read before (an answer started again after a restart), or the turn is gone
        if len(files) > self.limits.files_per_message:
            notes.append(rules.too_many_files_note(len(files), self.limits))
            files = files[: self.limits.files_per_message]
        for ref in files:
            note = await self._ingest_one(message, surface, model, ref)
            if note:
                notes.append(note)
        return notes

    def with_context_files(self, message: IncomingMessage, earlier: Sequence[ContextMessage]) -> IncomingMessage:
        """The message with the files of the thread's earlier messages (the newest few) after
        its own: they are stored with its turn, next to the quoted context."""
        brought = rules.files_from_context(earlier, self.limits)
        return replace(message, files=(*message.files, *brought)) if brought else message

    async def _ingest_one(
        self, message: IncomingMessage, surface: MessageSurface, model: str, ref: FileRef
    ) -> str | None:
        if ref.size is not None and ref.size > self.limits.max_bytes():
            return rules.too_large_note(ref.name, None, self.limits)
        try:
            data = await surface.download_file(ref, self.limits.max_bytes())
        except FileTooLarge:
            return rules.too_large_note(ref.name, None, self.limits)
        except HostRefused:
            return rules.refused_note(ref.name)
        except DownloadError as exc:
            log.warning("file download failed: thread=%s file=%s (%s)", message.thread, ref.platform_file_id, exc)
            return rules.unavailable_note(ref.name)
        sniffed = sniff(data)
        pages = pdf_pages(data) if sniffed.kind is FileKind.PDF else None
        why = rules.rejection(sniffed.kind, len(data), pages, self.limits)
        if why == "unsupported":
            return rules.unsupported_note(ref.name)
        if why == "too_large":
            return rules.too_large_note(ref.name, sniffed.kind, self.limits)
        if why == "too_many_pages":
            return rules.too_many_pages_note(ref.name, pages or 0, self.limits)
        if not await self._model_reads(model, sniffed.kind):
            return rules.model_cannot_note(ref.name, sniffed.kind, model)
        sha256 = hashlib.sha256(data).hexdigest()
        same = await self.store.same_file(message.thread, sha256)
        tokens = same.tokens if same is not None else await self._measure(model, sniffed, ref.name, data, pages)
        if not rules.fits_window(tokens, await self._window(model)):
            return rules.too_long_note(ref.name, model)
        file_id = same.file_id if same is not None else await self._upload(ref.name, data, sniffed.media_type)
        if file_id is None:
            self._inline.put(sha256, data)
        attachment = Attachment(
            source=replace(ref, size=len(data)),
            kind=sniffed.kind.value,
            media_type=sniffed.media_type,
            size=len(data),
            sha256=sha256,
            tokens=tokens,
            file_id=file_id,
        )
        if not await self.store.add(message.thread, message.message_id, attachment) and same is None and file_id:
            await self.files.delete(file_id)  # the turn was deleted while its file was uploading
        return None

    async def _measure(self, model: str, sniffed: Sniffed, name: str, data: bytes, pages: int | None) -> int:
        """The file's tokens: estimated, or for a PDF whose pages cannot be counted
        (compressed object streams), as the API counts it."""
        if sniffed.kind is FileKind.PDF and pages is None:
            probe = Attachment(FileRef("", name, ""), sniffed.kind.value, sniffed.media_type, len(data), "", 0, None)
            counted = await self.files.count_tokens(model, file_block(probe, data))
            if counted:
                return counted
        return _tokens(sniffed.kind, data, pages)

    async def _window(self, model: str) -> int:
        info = await self.catalog.get(model)
        return info.context_window if info is not None else DEFAULT_CONTEXT_WINDOW

    async def _upload(self, name: str, data: bytes, media_type: str) -> str | None:
        try:
            return await self.files.upload(name, data, media_type)
        except Exception as exc:  # sent inline this time; the answer matters more than the upload
            log.warning("file upload failed (%s); sending it inline", type(exc).__name__)
            return None

    async def _model_reads(self, model: str, kind: FileKind) -> bool:
        info = await self.catalog.get(model)
        if info is None:
            return True  # unknown to the catalogue: let the API decide
        if kind is FileKind.IMAGE:
            return info.image_input is not False
        if kind is FileKind.PDF:
            return info.pdf_input is not False
        return True

    # --- the history's files -----------------------------------------------------------

    async def with_attachments(self, thread: ThreadKey, history: History) -> History:
        """The history with each user turn's attachments."""
        found = await self.store.of_conversation(thread) if history.turns and history.has_attachments else {}
        if not found:
            return history
        turns = [replace(t, attachments=tuple(found[t.id])) if t.id in found else t for t in history.turns]
        return replace(history, turns=turns)

    async def prepare(self, turns: Sequence[StoredTurn], surface: MessageSurface, model: str) -> PreparedFiles:
        """The blocks of the attachments of `turns`; inline bytes from memory or the platform.
        Left out: a file the platform no longer serves, images or PDFs posted before the channel
        switched to a model that cannot read them, and the oldest files past what one request
        may carry (`limits.RequestAllowance`)."""
        prepared = PreparedFiles()
        allowance = rules.RequestAllowance.of(self.limits)
        for turn in reversed(turns):  # newest first: the allowance keeps the newest files
            blocks = []
            for attachment in reversed(turn.attachments):
                kind = FileKind(attachment.kind)
                inline_size = 0 if attachment.file_id is not None else attachment.size
                if not await self._model_reads(model, kind) or not allowance.take(kind, inline_size):
                    continue
                if attachment.file_id is not None:
                    prepared.file_ids.add(attachment.file_id)
                    blocks.append(file_block(attachment))
                elif (data := await self._bytes_of(attachment, surface)) is not None:
                    blocks.append(file_block(attachment, data))
            if blocks:
                prepared.blocks[turn.id] = blocks[::-1]
        return prepared

    async def _bytes_of(self, attachment: Attachment, surface: MessageSurface) -> bytes | None:
        data = self._inline.get(attachment.sha256)
        if data is not None:
            return data
        try:
            data = await surface.download_file(attachment.source, self.limits.max_bytes())
        except DownloadError as exc:
            log.warning("file no longer available from the platform: %s (%s)", attachment.source.platform_file_id, exc)
            return None
        if hashlib.sha256(data).hexdigest() != attachment.sha256:
            log.warning("file changed on the platform: %s", attachment.source.platform_file_id)
            return None
        self._inline.put(attachment.sha256, data)
        return data

    async def restore(
        self, thread: ThreadKey, turns: Sequence[StoredTurn], surface: MessageSurface
    ) -> list[StoredTurn] | None:
        """After a refused request: upload again, from the platform, each file the Files API
        no longer has. The turns with their new ids when one was restored (the request is
        worth one more try), else None."""
        renewed: dict[str, str | None] = {}  # sha256 -> its new file_id
        seen: set[str] = set()
        for attachment in (a for t in turns for a in t.attachments):
            if attachment.file_id is None or attachment.file_id in seen:
                continue
            seen.add(attachment.file_id)
            if await self.files.exists(attachment.file_id):
                continue
            log.info("uploaded file gone; fetching it again: thread=%s", thread)
            try:
                data = await surface.download_file(attachment.source, self.limits.max_bytes())
            except DownloadError:
                data = None
            if data is None or hashlib.sha256(data).hexdigest() != attachment.sha256:
                continue
            file_id = await self._upload(attachment.source.name, data, attachment.media_type)
            if file_id is None:
                self._inline.put(attachment.sha256, data)
            await self.store.replace_file_id(thread, attachment.sha256, file_id)
            renewed[attachment.sha256] = file_id
        if not renewed:
            return None
        return [
            replace(turn, attachments=tuple(
                replace(a, file_id=renewed[a.sha256]) if a.sha256 in renewed else a for a in turn.attachments
            ))
            for turn in turns
        ]

    # --- clean-up ----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete at the Files API the uploads whose turns are all gone, then their rows;
        returns how many uploads were deleted. A failed delete is tried again next time."""
        deleted = 0
        while file_ids := await self.store.orphaned_file_ids():
            done = []
            for file_id in file_ids:
                try:
                    await self.files.delete(file_id)
                except Exception as exc:
                    log.warning("deleting an uploaded file failed (%s); will retry", type(exc).__name__)
                    continue
                done.append(file_id)
            await self.store.forget_orphans(done)
            deleted += len(done)
            if len(done) < len(file_ids):
                break
        else:
            await self.store.forget_orphans()
        return deleted


def _tokens(kind: FileKind, data: bytes, pages: int | None) -> int:
    if kind is FileKind.IMAGE:
        size = image_size(data)
        return rules.image_tokens(*size) if size else rules.UNKNOWN_IMAGE_TOKENS
    if kind is FileKind.PDF:
        # Without visible page objects: one page per 3 KB is what text-heavy PDFs average.
        return rules.pdf_tokens(pages if pages is not None else max(1, len(data) // 3000))
    return rules.text_tokens(len(data))
