"""Files: the bytes sent to the Anthropic API over a thread whose first turn carried a
PDF, with the file uploaded once and referenced by `file_id`, versus resent inline (an
endpoint without the Files API). Counted from what the fake API received (uploads
included), so the figure does not depend on the machine's speed; the fake runs in this
process because only its records matter here."""

from __future__ import annotations

import dataclasses

from bench.harness import API_KEY, bench_core, recording_platform, require_answered
from bot.domain import FileRef
from fakes import sample_files
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import message, thread

MB = 1024 * 1024


async def _thread_bytes(database_url: str, name: str, *, files_api: bool, turns: int, pdf: bytes) -> int:
    async with FakeAnthropic(api_key=API_KEY) as fake:
        fake.files.enabled = files_api
        async with bench_core(database_url, fake.base_url) as core:
            platform = recording_platform()
            platform.files["https://files.test/spec.pdf"] = pdf
            where = thread(name)
            first = message(where, "Summarize this contract.")
            first = dataclasses.replace(first, files=(FileRef("F1", "spec.pdf", "https://files.test/spec.pdf"),))
            await platform.deliver(core.service, first)
            for i in range(1, turns):
                await platform.deliver(core.service, message(where, f"Follow-up {i}: and clause {i}?", mention=False))
            require_answered(platform, turns)
        sent = [r for r in fake.requests if r.path in ("/v1/messages", "/v1/files")]
        if files_api and not any(r.path == "/v1/files" and r.status == 200 for r in sent):
            raise RuntimeError("the PDF was not uploaded")
        return sum(r.size for r in sent)


async def file_request_bytes(
    database_url: str, anthropic_url: str, turns: int = 10, pdf_kb: int = 2048
) -> tuple[float, float, float]:
    """(MB sent with `file_id`, MB sent inline, inline / by reference) over `turns` turns."""
    del anthropic_url  # the fake runs in this process (see the module docstring)
    pdf = sample_files.pdf(pages=20, padding=pdf_kb * 1024)
    by_reference = await _thread_bytes(database_url, "by-reference", files_api=True, turns=turns, pdf=pdf)
    inline = await _thread_bytes(database_url, "inline", files_api=False, turns=turns, pdf=pdf)
    return by_reference / MB, inline / MB, inline / by_reference
