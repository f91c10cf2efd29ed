"""Files on Slack messages, end to end: signed events in, downloads from the fake Slack's
file host with the bot token, uploads to the fake Files API."""

from __future__ import annotations

from typing import Any

from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack
from tests.slack_harness import SlackHarness, channel_message, dm, mention, next_ts
from tests.test_message_changes import deleted

READS = "I read images (PNG, JPEG, GIF, WebP), PDFs and text files."


def blocks(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == kind]


async def test_a_screenshot_on_a_mention_is_downloaded_with_the_bot_token_and_sent_as_an_uploaded_image(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    shot = slack.slack.add_file("screenshot.png", samples.png(), mimetype="image/png")
    event = mention("what does this error mean?", files=[shot], subtype="file_share")
    await slack.send_event(event)
    await slack.settle()

    [download] = slack.slack.file_host.downloads
    assert (download.file_id, download.token, download.served) == (shot["id"], slack.slack.bot_token, True)
    [file_id] = fake_anthropic.files.uploads
    assert fake_anthropic.files.files[file_id].data == samples.png()
    [image] = blocks(fake_anthropic.message_requests[-1], "image")
    assert image == {"type": "image", "source": {"type": "file", "file_id": file_id}}
    assert slack.slack.bot_texts("C1", event["ts"])[-1].startswith("You said:")


async def test_a_pdf_in_a_thread_follow_up_and_a_log_in_a_dm_are_read(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("hello")
    await slack.send_event(root)
    await slack.settle()
    pdf = slack.slack.add_file("contract.pdf", samples.pdf(4))
    await slack.send_event(channel_message("summarize it", thread_ts=root["ts"], files=[pdf]))
    await slack.settle()
    [document] = blocks(fake_anthropic.message_requests[-1], "document")
    assert document["citations"] == {"enabled": True} and document["title"] == "contract.pdf"

    log = slack.slack.add_file("worker.log", samples.LOG)
    await slack.send_event(dm("why did it crash?", files=[log]))
    await slack.settle()
    [document] = blocks(fake_anthropic.message_requests[-1], "document")
    assert document["title"] == "worker.log" and "citations" not in document


async def test_an_exe_and_an_oversized_file_get_a_line_each_and_the_text_is_answered(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    exe = slack.slack.add_file("setup.exe", samples.EXE)
    # No Content-Length (chunked) and larger than any limit: only counting can stop it.
    huge = slack.slack.add_file("dump.bin", b"", generated_bytes=1024**3)
    huge["size"] = 1000  # and Slack's own figure is wrong: the download is checked anyway
    event = mention("hi there", files=[exe, huge])
    await slack.send_event(event)
    await slack.settle()

    final = slack.slack.bot_texts("C1", event["ts"])[-1]
    assert final.startswith("You said:") and "hi there" in final
    assert f"(I can't read `setup.exe`: {READS})" in final
    assert "(I didn't read `dump.bin`: a file can be at most 32 MB.)" in final
    huge_download = next(d for d in slack.slack.file_host.downloads if d.file_id == huge["id"])
    assert not huge_download.completed, "the download stopped past the limit"
    assert fake_anthropic.files.uploads == []


async def test_the_token_is_never_sent_off_slacks_file_hosts_not_even_by_a_redirect(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    async with FakeSlack() as elsewhere:  # another host, ready to record any token it gets
        bait = elsewhere.add_file("bait.png", samples.png())
        redirected = slack.slack.add_file("moved.png", samples.png(), redirect_to=bait["url_private_download"])
        foreign = {**bait, "id": "F9999999", "name": "foreign.png"}  # a file URL pointing elsewhere
        event = mention("look", files=[redirected, foreign])
        await slack.send_event(event)
        await slack.settle()

        assert elsewhere.file_host.downloads == [], "nothing reached the other host"
    final = slack.slack.bot_texts("C1", event["ts"])[-1]
    assert "(I didn't fetch `moved.png`: it is not on the chat's own file host.)" in final
    assert "(I didn't fetch `foreign.png`: it is not on the chat's own file host.)" in final
    assert final.startswith("You said:")


async def test_a_refused_download_is_said_and_the_sign_in_page_is_never_sent_as_the_file(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.file_host.accepted_token = "xoxb-another-token"  # as if files:read were missing
    report = slack.slack.add_file("report.pdf", samples.pdf())
    event = mention("read this", files=[report])
    await slack.send_event(event)
    await slack.settle()

    final = slack.slack.bot_texts("C1", event["ts"])[-1]
    assert "(I couldn't fetch `report.pdf` from the chat, so I answered without it.)" in final
    assert fake_anthropic.files.uploads == []
    assert blocks(fake_anthropic.message_requests[-1], "document") == []


async def test_summoned_mid_thread_the_newest_earlier_files_come_along_with_the_quoted_context(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root_ts = next_ts()
    files = [slack.slack.add_file(f"shot{n}.png", samples.png(100 + n, 100)) for n in range(4)]
    slack.slack.seed_thread(
        "C1",
        root_ts,
        [
            {"user": "U1", "text": "the build is red", "ts": root_ts, "files": [files[0]]},
            {"user": "UADMIN", "text": "same here", "ts": next_ts(), "files": files[1:3]},
            {"user": "U1", "text": "", "ts": next_ts(), "files": [files[3]]},
        ],
    )
    await slack.send_event(mention("why?", thread_ts=root_ts))
    await slack.settle()

    brought = [d.file_id for d in slack.slack.file_host.downloads]
    assert brought == [files[3]["id"], files[2]["id"], files[1]["id"]], "the newest three, newest first"
    content = fake_anthropic.message_requests[0]["messages"][0]["content"]
    assert "the build is red" in content[0]["text"], "the quoted context comes first"
    assert [b["type"] for b in content[1:-1]] == ["image", "image", "image"]
    assert content[-1]["text"] == '<message from="mel">why?</message>'


async def test_deleting_the_message_deletes_its_file_at_the_files_api(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("hello")
    await slack.send_event(root)
    await slack.settle()
    shot = slack.slack.add_file("secret.png", samples.png())
    posted = channel_message("see this", thread_ts=root["ts"], files=[shot])
    await slack.send_event(posted)
    await slack.settle()
    [file_id] = fake_anthropic.files.uploads

    await slack.send_event(deleted(posted["ts"], thread_ts=root["ts"]))
    await slack.settle()

    assert fake_anthropic.files.deleted == [file_id]
    await slack.send_event(channel_message("and now?", thread_ts=root["ts"]))
    await slack.settle()
    assert blocks(fake_anthropic.message_requests[-1], "image") == []


async def test_a_file_a_slack_connect_event_only_names_is_located_with_files_info(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    shot = slack.slack.add_file("shared.png", samples.png())
    event = mention("from the partner", files=[slack.slack.file_host.as_shared_externally(shot)])
    await slack.send_event(event)
    await slack.settle()

    assert [c.params["file"] for c in slack.slack.calls_to("files.info")] == [shot["id"]]
    [download] = slack.slack.file_host.downloads
    assert download.served and download.token == slack.slack.bot_token
    assert len(blocks(fake_anthropic.message_requests[-1], "image")) == 1
