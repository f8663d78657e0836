"""Stored filenames: cleaned for display, and always named after the type the bytes really are."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chitram_core.images.formats import ImageFormat
from chitram_core.intake import MAX_FILENAME, clean_filename

ALIASES = {
    ImageFormat.JPEG: {"jpg", "jpeg", "jpe", "jfif", "pjpeg", "pjp"},
    ImageFormat.PNG: {"png", "apng"},
    ImageFormat.GIF: {"gif"},
    ImageFormat.WEBP: {"webp"},
    ImageFormat.HEIF: {"heic", "heif", "hif"},
    ImageFormat.AVIF: {"avif"},
    ImageFormat.JXL: {"jxl"},
}


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("cat.png", ImageFormat.JPEG, "cat.jpg"),
        ("cat.png", ImageFormat.PNG, "cat.png"),
        ("Photo.JPEG", ImageFormat.JPEG, "Photo.JPEG"),
        ("scan", ImageFormat.PNG, "scan.png"),
        ("evil.html", ImageFormat.PNG, "evil.png"),
        ("holiday.photo.webp", ImageFormat.GIF, "holiday.photo.gif"),
        ("report.2024", ImageFormat.JPEG, "report.2024.jpg"),
        ("Mr. Smith", ImageFormat.WEBP, "Mr. Smith.webp"),
        ("猫の写真.png", ImageFormat.PNG, "猫の写真.png"),
        ("猫の写真.gif", ImageFormat.PNG, "猫の写真.png"),
        ("../../etc/passwd", ImageFormat.GIF, "passwd.gif"),
        ("C:\\Users\\me\\shot.bmp", ImageFormat.PNG, "shot.png"),
        ("", ImageFormat.JPEG, "image.jpg"),
        (None, ImageFormat.WEBP, "image.webp"),
        ("...", ImageFormat.GIF, "image.gif"),
        (".png", ImageFormat.JPEG, "png.jpg"),
        (" .jpg", ImageFormat.JPEG, "jpg.jpg"),
        (". ..png", ImageFormat.PNG, "image.png"),
        ("my cat .png", ImageFormat.PNG, "my cat.png"),
    ],
)
def test_the_extension_matches_the_detected_type(
    name: str | None, fmt: ImageFormat, expected: str
) -> None:
    assert clean_filename(name, fmt) == expected


def test_a_long_name_keeps_its_extension_within_the_limit() -> None:
    cleaned = clean_filename("a" * 400 + ".png", ImageFormat.JPEG)
    assert len(cleaned) == MAX_FILENAME and cleaned.endswith("a.jpg")


def test_without_a_format_only_the_cleaning_applies() -> None:
    assert clean_filename("dir/cat.png\x00") == "cat.png"
    assert clean_filename("") == "image"


@given(st.one_of(st.none(), st.text(max_size=300)), st.sampled_from(list(ImageFormat)))
def test_any_name_ends_in_an_extension_of_the_detected_type(
    name: str | None, fmt: ImageFormat
) -> None:
    cleaned = clean_filename(name, fmt)
    stem, _, extension = cleaned.rpartition(".")
    assert extension.lower() in ALIASES[fmt]
    assert stem.strip(" .") and stem == stem.rstrip(". ")
    assert 0 < len(cleaned) <= MAX_FILENAME
    assert "/" not in cleaned and "\\" not in cleaned
    assert clean_filename(cleaned, fmt) == cleaned
