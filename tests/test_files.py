"""Files end to end through the core: RecordingPlatform serves the bytes, the real SDK
uploads them to the fake Files API and sends Messages requests the fake checks."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bot.app import Core
from bot.domain import FileRef, IncomingMessage
from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, thread

READS = "I read images (PNG, JPEG, GIF, WebP), PDFs and text files."


def with_files(platform: RecordingPlatform, incoming: IncomingMessage, *files: tuple[str, bytes]) -> IncomingMessage:
    refs = []
    for name, data in files:
        url = f"https://files.test/{incoming.message_id}/{name}"
        platform.files[url] = data
        refs.append(FileRef(f"F-{incoming.message_id}-{name}", name, url, len(data)))
    return dataclasses.replace(incoming, files=tuple(refs))


def blocks_of(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        block
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == kind
    ]


def uploads(fake: FakeAnthropic) -> list[str]:
    return list(fake.files.uploads)


async def test_a_screenshot_and_a_question_send_an_image_block_referencing_the_uploaded_file(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    asked = with_files(adapter, message(where, "what does this error mean?"), ("screenshot.png", samples.png()))
    await adapter.deliver(core.service, asked)

    [file_id] = uploads(fake_anthropic)
    stored = fake_anthropic.files.files[file_id]
    assert (stored.filename, stored.mime_type, stored.data) == ("screenshot.png", "image/png", samples.png())
    request = fake_anthropic.message_requests[-1]
    content = request["messages"][-1]["content"]
    assert content[0] == {"type": "image", "source": {"type": "file", "file_id": file_id}}
    assert content[-1]["text"].endswith("what does this error mean?</message>"), "the question after the file"
    upload_request = next(r for r in fake_anthropic.requests if r.path == "/v1/files")
    assert "files-api-2025-04-14" in upload_request.headers["anthropic-beta"]
    messages_request = [r for r in fake_anthropic.requests if r.path == "/v1/messages"][-1]
    assert "files-api-2025-04-14" in messages_request.headers["anthropic-beta"]
    assert adapter.finals()[-1].startswith("You said:")


async def test_a_pdf_goes_as_a_document_with_citations_and_text_as_a_titled_plain_text_document(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    asked = with_files(
        adapter, message(thread(), "summarize"), ("contract.pdf", samples.pdf(3)), ("worker.log", samples.LOG)
    )
    await adapter.deliver(core.service, asked)

    pdf_id, log_id = uploads(fake_anthropic)
    assert fake_anthropic.files.files[log_id].mime_type == "text/plain"
    documents = blocks_of(fake_anthropic.message_requests[-1], "document")
    assert documents == [
        {"type": "document", "source": {"type": "file", "file_id": pdf_id}, "title": "contract.pdf",
         "citations": {"enabled": True}},
        {"type": "document", "source": {"type": "file", "file_id": log_id}, "title": "worker.log"},
    ]


async def test_the_next_turn_references_the_same_file_id_uploads_nothing_and_keeps_the_prefix(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await adapter.deliver(core.service, with_files(adapter, message(where, "look"), ("shot.png", samples.png())))
    adapter.downloads.clear()
    await adapter.deliver(core.service, message(where, "and now?", mention=False))

    assert len(uploads(fake_anthropic)) == 1, "the second turn uploads nothing"
    assert adapter.downloads == [], "nor fetches anything from the platform"
    first, second = fake_anthropic.message_requests
    assert blocks_of(second, "image") == blocks_of(first, "image")
    previous = json.dumps(first["messages"])[:-1]
    assert json.dumps(second["messages"]).startswith(previous), "the resent prefix is byte-identical"
    assert fake_anthropic.usages[-1]["cache_read_input_tokens"] > 0


async def test_the_same_file_twice_in_a_conversation_is_uploaded_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await adapter.deliver(core.service, with_files(adapter, message(where, "one"), ("a.pdf", samples.pdf())))
    again = with_files(adapter, message(where, "two", mention=False), ("copy of a.pdf", samples.pdf()))
    await adapter.deliver(core.service, again)

    [file_id] = uploads(fake_anthropic)
    documents = blocks_of(fake_anthropic.message_requests[-1], "document")
    assert [d["source"]["file_id"] for d in documents] == [file_id, file_id]
    assert [d["title"] for d in documents] == ["a.pdf", "copy of a.pdf"]


async def test_an_oversized_file_and_an_exe_get_clear_lines_and_the_text_is_answered(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    big = samples.png() + bytes(6 * 1024 * 1024)  # a PNG over the 5 MB image limit
    asked = with_files(adapter, message(thread(), "hello"), ("setup.exe", samples.EXE), ("big.png", big))
    await adapter.deliver(core.service, asked)

    final = adapter.finals()[-1]
    assert final.startswith("You said:") and "hello" in final
    assert "(I can't read `setup.exe`: I read images (PNG, JPEG, GIF, WebP), PDFs and text files.)" in final
    assert "(I didn't read `big.png`: an image can be at most 5 MB.)" in final
    assert uploads(fake_anthropic) == []
    assert blocks_of(fake_anthropic.message_requests[-1], "image") == []


async def test_a_file_declared_larger_than_any_limit_is_not_even_downloaded(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    asked = message(thread(), "hi")
    asked = dataclasses.replace(asked, files=(FileRef("F9", "movie.mp4", "https://files.test/movie", 2**31),))
    await adapter.deliver(core.service, asked)
    assert adapter.downloads == []
    assert "(I didn't read `movie.mp4`: a file can be at most 32 MB.)" in adapter.finals()[-1]


async def test_without_a_files_api_the_file_goes_inline_and_that_is_remembered(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.files.enabled = False
    where = thread()
    await adapter.deliver(core.service, with_files(adapter, message(where, "see"), ("s.png", samples.png())))
    later = with_files(adapter, message(where, "and", mention=False), ("d.pdf", samples.pdf()))
    await adapter.deliver(core.service, later)

    upload_attempts = [r for r in fake_anthropic.requests if r.path == "/v1/files"]
    assert len(upload_attempts) == 1, "the 404 is remembered: no second upload attempt"
    last = fake_anthropic.message_requests[-1]
    [image] = blocks_of(last, "image")
    assert image["source"]["type"] == "base64" and image["source"]["media_type"] == "image/png"
    [document] = blocks_of(last, "document")
    assert document["source"]["media_type"] == "application/pdf"
    assert all("anthropic-beta" not in r.headers for r in fake_anthropic.requests if r.path == "/v1/messages")


async def test_a_file_the_files_api_lost_is_fetched_again_and_uploaded_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await adapter.deliver(core.service, with_files(adapter, message(where, "see"), ("s.png", samples.png())))
    [lost] = uploads(fake_anthropic)
    fake_anthropic.files.forget(lost)
    adapter.downloads.clear()

    await adapter.deliver(core.service, message(where, "again?", mention=False))

    assert len(adapter.downloads) == 1, "fetched again from the platform"
    [lost_again, renewed] = uploads(fake_anthropic)
    assert lost_again == lost
    assert blocks_of(fake_anthropic.message_requests[-1], "image")[0]["source"]["file_id"] == renewed
    assert adapter.finals()[-1].startswith("You said:")
    await adapter.deliver(core.service, message(where, "third", mention=False))
    assert len(uploads(fake_anthropic)) == 2, "the new id is stored: nothing uploaded after"


async def test_a_model_that_cannot_read_images_gets_a_clear_line_and_no_400(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models[0] = dataclasses.replace(fake_anthropic.models[0], image_input=False, pdf_input=True)
    asked = with_files(adapter, message(thread(), "what is it?"), ("x.png", samples.png()), ("d.pdf", samples.pdf()))
    await adapter.deliver(core.service, asked)

    final = adapter.finals()[-1]
    assert "(I didn't read `x.png`: the model `claude-sonnet-5-5` cannot read images.)" in final
    assert final.startswith("You said:")
    assert len(uploads(fake_anthropic)) == 1, "the PDF is read"
    assert all(r.status == 200 for r in fake_anthropic.requests if r.path == "/v1/messages")


async def test_the_fake_refuses_malformed_image_and_document_blocks_as_the_api_does(
    fake_anthropic: FakeAnthropic,
) -> None:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="sk-ant-test-canary-0123456789", base_url=fake_anthropic.base_url)
    cases = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "R0lGODlhAQABAAAAADs="}},
        {"type": "document", "source": {"type": "base64", "media_type": "text/html", "data": "AAAA"}},
        {"type": "image", "source": {"type": "file", "file_id": "file_unknown"}},
    ]
    async with client:
        for block in cases:
            try:
                await client.messages.create(
                    model="claude-sonnet-5-5", max_tokens=10,
                    messages=[{"role": "user", "content": [block, {"type": "text", "text": "?"}]}],  # type: ignore[list-item]
                    extra_headers={"anthropic-beta": "files-api-2025-04-14"},
                )
            except anthropic.BadRequestError:
                continue
            raise AssertionError(f"accepted a malformed block: {block}")
        metadata = await client.beta.files.upload(file=("a.txt", b"hi", "text/plain"), betas=["files-api-2025-04-14"])
        assert (await client.beta.files.retrieve_metadata(metadata.id, betas=["files-api-2025-04-14"])).size_bytes == 2
        await client.beta.files.delete(metadata.id, betas=["files-api-2025-04-14"])
        try:
            await client.beta.files.retrieve_metadata(metadata.id, betas=["files-api-2025-04-14"])
        except anthropic.NotFoundError:
            pass
        else:
            raise AssertionError("a deleted file is still there")




async def test_a_file_too_long_for_the_models_window_gets_a_line_not_a_silent_cut(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models[0] = dataclasses.replace(fake_anthropic.models[0], max_input_tokens=100_000)
    asked = with_files(adapter, message(thread(), "summarize the book"), ("book.pdf", samples.pdf(40)))
    await adapter.deliver(core.service, asked)

    final = adapter.finals()[-1]
    assert "(I didn't read `book.pdf`: it is too long for the context window of the model" in final
    assert final.startswith("You said:")
    assert uploads(fake_anthropic) == [], "nothing uploaded that no request will carry"
    assert blocks_of(fake_anthropic.message_requests[-1], "document") == []


async def test_images_posted_before_a_switch_to_a_model_without_image_input_are_left_out(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models.append(
        dataclasses.replace(fake_anthropic.models[0], id="claude-textonly-1", image_input=False, pdf_input=False)
    )
    where = thread()
    await adapter.deliver(core.service, with_files(adapter, message(where, "see"), ("s.png", samples.png())))
    core.service.settings.defaults = dataclasses.replace(core.service.settings.defaults, model="claude-textonly-1")
    await adapter.deliver(core.service, message(where, "and now?", mention=False))

    assert blocks_of(fake_anthropic.message_requests[-1], "image") == []
    assert all(r.status == 200 for r in fake_anthropic.requests if r.path == "/v1/messages")


async def test_an_answer_started_again_does_not_read_the_files_twice(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    asked = with_files(adapter, message(thread(), "look"), ("s.png", samples.png()))
    turn = await core.service.accept(asked)
    assert turn is not None
    await core.service.answer(turn, adapter.surface(asked))
    await core.service.answer(turn, adapter.surface(asked))  # as recovery would, after a crash

    assert len(adapter.downloads) == 1
    assert len(blocks_of(fake_anthropic.message_requests[-1], "image")) == 1


async def test_the_file_of_a_reply_that_overtook_the_mention_is_read_with_it(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    mention = message(where, "what is in this picture?")
    overtaking = with_files(adapter, message(where, "here it is", mention=False), ("p.png", samples.png()))
    assert await core.service.accept(overtaking) is None  # no conversation yet: acked, not taken
    adapter.later_messages[where] = [overtaking]

    await adapter.deliver(core.service, mention)

    [file_id] = uploads(fake_anthropic)
    assert blocks_of(fake_anthropic.message_requests[-1], "image")[0]["source"]["file_id"] == file_id


async def test_a_request_keeps_the_newest_files_within_what_one_request_may_carry(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    core.service.files.limits = dataclasses.replace(core.service.files.limits, images_per_request=2)
    where = thread()
    for n in range(3):
        sent = with_files(adapter, message(where, f"image {n}", mention=n == 0), (f"{n}.png", samples.png(50 + n, 50)))
        await adapter.deliver(core.service, sent)

    _oldest, second, third = uploads(fake_anthropic)
    images = blocks_of(fake_anthropic.message_requests[-1], "image")
    assert [i["source"]["file_id"] for i in images] == [second, third], "the oldest image is left out"


async def test_a_message_answered_along_with_an_earlier_one_still_gets_the_lines_about_its_files(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    first = message(where, "hello")
    second = with_files(adapter, message(where, "and this", mention=False), ("tool.exe", samples.EXE))
    first_turn = await core.service.accept(first)
    second_turn = await core.service.accept(second)
    assert first_turn is not None and second_turn is not None
    await core.service.answer(first_turn, adapter.surface(first))  # covers the second message too

    outcome = await core.service.answer(second_turn, adapter.surface(second))

    assert not outcome.answered
    assert len(fake_anthropic.message_requests) == 1
    assert adapter.finals()[-1] == f"(I can't read `tool.exe`: {READS})"


async def test_the_fake_refuses_an_image_for_a_model_without_image_input_and_a_file_without_the_beta(
    fake_anthropic: FakeAnthropic,
) -> None:
    import anthropic

    fake_anthropic.models[0] = dataclasses.replace(fake_anthropic.models[0], image_input=False, pdf_input=True)
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test-canary-0123456789", base_url=fake_anthropic.base_url)
    async with client:
        uploaded = await client.beta.files.upload(
            file=("s.png", samples.png(), "image/png"), betas=["files-api-2025-04-14"]
        )
        image = {"type": "image", "source": {"type": "file", "file_id": uploaded.id}}
        beta = {"anthropic-beta": "files-api-2025-04-14"}
        for model, headers in (("claude-sonnet-5-5", beta), ("claude-opus-5-5", None)):
            try:
                await client.messages.create(
                    model=model, max_tokens=10, extra_headers=headers,
                    messages=[{"role": "user", "content": [image, {"type": "text", "text": "?"}]}],  # type: ignore[list-item]
                )
            except anthropic.BadRequestError:
                continue
            raise AssertionError(f"accepted an image for {model} (beta header: {headers is not None})")
        accepted = await client.messages.create(
            model="claude-opus-5-5", max_tokens=10, extra_headers=beta,
            messages=[{"role": "user", "content": [image, {"type": "text", "text": "?"}]}],  # type: ignore[list-item]
        )
        assert accepted.content
