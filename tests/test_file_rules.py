"""The pure rules of files: the kind from the bytes, the limits, the words, the token estimates."""

from __future__ import annotations

import pytest

from bot.domain import ContextMessage, FileRef
from bot.files import limits as rules
from bot.files.download import host_allowed, with_api_host
from bot.files.kinds import FileKind, image_size, pdf_pages, sniff
from fakes import sample_files as samples


@pytest.mark.parametrize(
    ("data", "kind", "media_type"),
    [
        (samples.png(), FileKind.IMAGE, "image/png"),
        (samples.jpeg(), FileKind.IMAGE, "image/jpeg"),
        (samples.gif(), FileKind.IMAGE, "image/gif"),
        (b"GIF87a" + bytes(10), FileKind.IMAGE, "image/gif"),
        (samples.webp(), FileKind.IMAGE, "image/webp"),
        (samples.pdf(), FileKind.PDF, "application/pdf"),
        (samples.LOG, FileKind.TEXT, "text/plain"),
        (b"name,age\nAda,36\n", FileKind.TEXT, "text/plain"),
        (b'{"a": [1, 2]}', FileKind.TEXT, "text/plain"),
        ("def f():\n\treturn 'ü'\n".encode(), FileKind.TEXT, "text/plain"),
        (samples.EXE, FileKind.UNSUPPORTED, ""),
        (samples.ZIP, FileKind.UNSUPPORTED, ""),
        (b"\xff\xfe\x00h\x00i", FileKind.UNSUPPORTED, ""),  # UTF-16: not UTF-8
        (b"abc\x00def", FileKind.UNSUPPORTED, ""),  # decodes, but NUL says binary
        (b"\x80\x81\x82", FileKind.UNSUPPORTED, ""),
        (b"", FileKind.UNSUPPORTED, ""),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", FileKind.UNSUPPORTED, ""),  # RIFF, but audio
    ],
)
def test_the_kind_comes_from_the_bytes(data: bytes, kind: FileKind, media_type: str) -> None:
    sniffed = sniff(data)
    assert (sniffed.kind, sniffed.media_type) == (kind, media_type)


def test_a_png_named_like_a_pdf_is_still_a_png() -> None:
    # The rule sees bytes only: there is no name or declared type to mislead it.
    assert sniff(samples.png()).kind is FileKind.IMAGE


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (samples.png(800, 600), (800, 600)),
        (samples.jpeg(640, 480), (640, 480)),
        (samples.gif(10, 20), (10, 20)),
        (samples.webp(300, 200), (300, 200)),
        (b"\x89PNG\r\n\x1a\n", None),  # truncated header
        (samples.pdf(), None),
    ],
)
def test_image_dimensions_from_the_header(data: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(data) == size


@pytest.mark.parametrize(("pages", "counted"), [(1, 1), (3, 3), (0, None)])
def test_pdf_pages_are_counted_from_page_objects(pages: int, counted: int | None) -> None:
    assert pdf_pages(samples.pdf(pages)) == counted


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (750, 1, 1),
        (200, 200, 54),  # 40,000 / 750
        (1000, 1000, 1334),  # within both limits: as is
        (1568, 700, 1464),
        (4000, 3000, 1598),  # scaled to about 1,600 tokens first
        (0, 0, rules.UNKNOWN_IMAGE_TOKENS),
    ],
)
def test_image_tokens_follow_anthropics_published_formula(width: int, height: int, tokens: int) -> None:
    assert rules.image_tokens(width, height) == tokens


LIMITS = rules.FileLimits(image_bytes=100, pdf_bytes=1000, pdf_pages=3, text_bytes=50)


@pytest.mark.parametrize(
    ("kind", "size", "pages", "why"),
    [
        (FileKind.IMAGE, 100, None, None),
        (FileKind.IMAGE, 101, None, "too_large"),
        (FileKind.PDF, 1000, 3, None),
        (FileKind.PDF, 1001, 3, "too_large"),
        (FileKind.PDF, 10, 4, "too_many_pages"),
        (FileKind.PDF, 10, None, None),
        (FileKind.TEXT, 51, None, "too_large"),
        (FileKind.UNSUPPORTED, 1, None, "unsupported"),
    ],
)
def test_what_is_not_read_and_why(kind: FileKind, size: int, pages: int | None, why: str | None) -> None:
    assert rules.rejection(kind, size, pages, LIMITS) == why


def test_the_download_limit_before_the_kind_is_known_is_the_largest() -> None:
    assert LIMITS.max_bytes() == 1000
    assert rules.FileLimits().max_bytes(FileKind.IMAGE) == 5 * rules.MB


READS = "I read images (PNG, JPEG, GIF, WebP), PDFs and text files."


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        (rules.unsupported_note("setup.exe"), f"(I can't read `setup.exe`: {READS})"),
        (
            rules.too_large_note("big.png", FileKind.IMAGE, rules.FileLimits()),
            "(I didn't read `big.png`: an image can be at most 5 MB.)",
        ),
        (
            rules.too_large_note("huge.bin", None, rules.FileLimits()),
            "(I didn't read `huge.bin`: a file can be at most 32 MB.)",
        ),
        (
            rules.model_cannot_note("shot.png", FileKind.IMAGE, "m1"),
            "(I didn't read `shot.png`: the model `m1` cannot read images.)",
        ),
        (rules.unsupported_note("a`b\nc.exe"), f"(I can't read `a'b c.exe`: {READS})"),
    ],
)
def test_the_lines_people_get_name_the_file_and_the_limit(note: str, expected: str) -> None:
    assert note == expected


SLACK_HOSTS = ("files.slack.com", ".slack-edge.com")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/download/a.png", True),
        ("https://a.slack-edge.com/x.png", True),
        ("https://slack-edge.com/x.png", True),
        ("http://files.slack.com/x", False),  # no token over plain http
        ("https://files.slack.com.evil.example/x", False),
        ("https://evilslack-edge.com/x", False),
        ("https://user:pw@files.slack.com/x", False),
        ("https://example.com/files.slack.com", False),
        ("ftp://files.slack.com/x", False),
        ("not a url", False),
    ],
)
def test_the_token_goes_only_to_the_platforms_own_file_hosts(url: str, allowed: bool) -> None:
    assert host_allowed(url, SLACK_HOSTS) is allowed


def test_loopback_over_http_is_allowed_when_named_for_tests() -> None:
    assert host_allowed("http://127.0.0.1:8123/f", ("127.0.0.1:8123",))
    assert not host_allowed("http://127.0.0.1:9999/f", ("127.0.0.1:8123",))


@pytest.mark.parametrize(
    ("api_url", "hosts"),
    [
        (None, ("files.slack.com",)),
        ("https://slack.com/api/", ("files.slack.com",)),
        ("http://127.0.0.1:8123/api/", ("files.slack.com", "127.0.0.1:8123")),
        ("https://slack-proxy.corp.example/api/", ("files.slack.com", "slack-proxy.corp.example")),
    ],
)
def test_a_configured_api_host_that_is_not_the_platforms_serves_files_too(
    api_url: str | None, hosts: tuple[str, ...]
) -> None:
    assert with_api_host(("files.slack.com",), api_url, "slack.com") == hosts


def _ref(name: str) -> FileRef:
    return FileRef(name, name, f"https://files.test/{name}")


@pytest.mark.parametrize(
    ("earlier", "brought"),
    [
        ([], []),
        ([ContextMessage("a", "no files")], []),
        ([ContextMessage("a", "one", files=(_ref("1"),))], ["1"]),
        (
            [
                ContextMessage("a", "old", files=(_ref("1"), _ref("2"))),
                ContextMessage("b", "text only"),
                ContextMessage("c", "newer", files=(_ref("3"), _ref("4"))),
                ContextMessage("d", "newest", files=(_ref("5"),)),
            ],
            ["5", "4", "3"],
        ),
    ],
)
def test_the_newest_few_files_of_a_thread_come_along_newest_first(
    earlier: list[ContextMessage], brought: list[str]
) -> None:
    assert [ref.name for ref in rules.files_from_context(earlier, rules.FileLimits(context_files=3))] == brought


def test_a_request_carries_at_most_so_many_images_and_inline_bytes() -> None:
    allowance = rules.RequestAllowance.of(rules.FileLimits(images_per_request=2, inline_bytes_per_request=100))
    taken = [
        allowance.take(FileKind.IMAGE, 0),  # by file_id: no bytes
        allowance.take(FileKind.PDF, 60),
        allowance.take(FileKind.PDF, 60),  # over the inline bytes
        allowance.take(FileKind.IMAGE, 40),
        allowance.take(FileKind.IMAGE, 0),  # a third image
        allowance.take(FileKind.TEXT, 0),
    ]
    assert taken == [True, True, False, True, False, True]
