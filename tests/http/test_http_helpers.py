"""The pure HTTP helpers: Range parsing, validators, Content-Disposition (Hypothesis)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chitram_core.errors import InvalidToken
from chitram_falcon.http import (
    RangeNotSatisfiable,
    bearer_token,
    content_disposition,
    none_match,
    parse_range,
)

sizes = st.integers(min_value=1, max_value=10**12)
offsets = st.integers(min_value=0, max_value=10**13)


@given(size=sizes, start=offsets, end=st.none() | offsets)
def test_a_satisfiable_range_stays_inside_the_file(size: int, start: int, end: int | None) -> None:
    header = f"bytes={start}-{'' if end is None else end}"
    if end is not None and end < start:
        assert parse_range(header, size) is None
        return
    try:
        selected = parse_range(header, size)
    except RangeNotSatisfiable:
        assert start >= size
        return
    assert selected is not None
    assert 0 <= selected.start < selected.end <= size
    assert selected.start == start
    assert selected.end == (size if end is None else min(end + 1, size))


@given(size=sizes, suffix=offsets)
def test_a_suffix_range_is_the_last_bytes(size: int, suffix: int) -> None:
    try:
        selected = parse_range(f"bytes=-{suffix}", size)
    except RangeNotSatisfiable:
        assert suffix == 0
        return
    assert selected is not None
    assert selected.end == size and selected.length == min(suffix, size)


@given(header=st.text(max_size=40), size=sizes)
def test_any_header_parses_or_is_ignored_never_crashes(header: str, size: int) -> None:
    try:
        selected = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if selected is not None:
        assert 0 <= selected.start < selected.end <= size


@pytest.mark.parametrize("header", ["bytes=0-1,3-4", "pages=1-2", "bytes 0-1", "bytes=--1"])
def test_headers_we_ignore(header: str) -> None:
    assert parse_range(header, 100) is None


@given(name=st.text(min_size=1, max_size=80))
def test_content_disposition_is_ascii_and_round_trips(name: str) -> None:
    header = content_disposition(name, "image.png")
    assert header.isascii()
    assert "\r" not in header and "\n" not in header
    simple = header.split('filename="', 1)[1].split('"; filename*=', 1)[0]
    assert '"' not in simple and "\\" not in simple
    assert unquote(header.split("filename*=UTF-8''", 1)[1], errors="strict") == name


def test_ascii_fallback_keeps_what_it_can() -> None:
    assert 'filename="cafe.png"' in content_disposition("café.png", "image.png")
    assert 'filename="image.png"' in content_disposition("猫.png", "image.png")


def test_if_none_match_uses_weak_comparison() -> None:
    assert none_match('W/"abc"', '"abc"')
    assert none_match('"x", "abc"', '"abc"')
    assert none_match("*", '"abc"')
    assert not none_match('"abcd"', '"abc"')
    assert not none_match(None, '"abc"')


def test_bearer_token_parsing() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    for bad in ("Basic abc", "Bearer", "Bearer ", "abc"):
        with pytest.raises(InvalidToken):
            bearer_token(bad)
