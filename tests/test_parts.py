"""The streaming splitter shared by the Slack and Discord adapters."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.streaming import PartSplitter, split_all

FENCE = re.compile(r" {0,3}```")


def fences_balanced(part: str) -> bool:
    """Markdown's rule: ``` (info string allowed) opens a block; only a bare ``` closes it."""
    inside = False
    for line in part.split("\n"):
        if FENCE.match(line) and (not inside or line.strip() == "```"):
            inside = not inside
    return not inside


def rejoined(splitter: PartSplitter) -> str:
    return "".join(
        part[len(before) : len(part) - len(after)]
        for part, (before, after) in zip(splitter.finished, splitter.added, strict=True)
    )


def test_short_text_is_one_part() -> None:
    assert split_all("hello", 100) == ["hello"]


def test_parts_are_cut_at_line_breaks_and_kept_in_order() -> None:
    text = "".join(f"line {i:03d} of the answer\n" for i in range(300))
    parts = split_all(text, 2000)
    assert len(parts) >= 3 and all(len(p) <= 2000 for p in parts)
    assert all(p.endswith("\n") for p in parts[:-1])
    assert "".join(parts) == text


def test_a_code_block_cut_in_two_is_closed_and_reopened_with_its_language() -> None:
    code = "".join(f"x_{i} = {i}\n" for i in range(400))
    parts = split_all("Here:\n```python\n" + code + "```\nDone.", 2000)
    assert parts[0].startswith("Here:\n```python\n") and parts[0].endswith("\n```")
    assert all(p.startswith("```python\n") for p in parts[1:])
    assert all(fences_balanced(p) for p in parts)


def test_a_single_huge_word_is_hard_cut() -> None:
    parts = split_all("a" * 10_000, 2000)
    assert [len(p) for p in parts] == [1996] * 5 + [20]


markdownish = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300),
        st.sampled_from(["\n", "\n\n", "```\n", "```python\n", "\n```\n", " ", "👍", "<!here>", "\r\n"]),
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=markdownish, limit=st.integers(min_value=32, max_value=400), chunk=st.integers(1, 50))
def test_parts_fit_rejoin_and_what_was_stable_never_changes(text: str, limit: int, chunk: int) -> None:
    splitter = PartSplitter(limit)
    promised: list[tuple[int, str]] = []
    for start in range(0, len(text), chunk):
        splitter.feed(text[start : start + chunk])
        promised.append((len(splitter.finished), splitter.current[: splitter.stable]))
    parts = splitter.close()

    assert all(len(p) <= limit for p in parts)
    assert all(p.strip() for p in parts)
    assert all(fences_balanced(p) for p in parts[:-1])
    # Nothing but whitespace can go missing: a run too long for a message, or trailing.
    assert re.sub(r"\s", "", rejoined(splitter)) == re.sub(r"\s", "", text)
    if not re.search(rf"\s{{{limit // 2}}}", text):
        assert rejoined(splitter).rstrip() == text.rstrip()
    for index, shown in promised:
        if shown:
            assert parts[index].startswith(shown)


def test_a_cut_inside_a_long_line_never_starts_a_part_with_a_fence() -> None:
    text = "word " * 259 + "```" + "x" * 1000 + "\n"  # the ``` is inline: the text has no code block
    parts = split_all(text, 2000)
    assert len(parts) == 2
    assert not parts[1].lstrip(" ").startswith("```")
    assert "".join(parts) == text
