"""Uploads over HTTP: what is served keeps no metadata outside the allow-list (http-api.md)."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tempfile

import pytest
from httpkit import Env, jpeg_bytes, png_bytes
from PIL import Image as PILImage

pytestmark = pytest.mark.anyio

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'dc:creator="Jane at 51.5N"/></rdf:RDF></x:xmpmeta>'
)
C2PA_JUMBF = b"JP\x00\x00\x00\x00\x00\x01" + struct.pack(">I", 26) + b"jumbc2pa.claim" + bytes(8)
DUCKY = b"Ducky\x00\x01\x00\x04\x00\x00\x00\x50\x00\x00"


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def app_markers(data: bytes) -> list[int]:
    """The markers before the first scan, read independently of the stripper."""
    markers, pos = [], 2
    while data[pos + 1] != 0xDA:
        markers.append(data[pos + 1])
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return markers


def exiftool_blocks(data: bytes) -> list[str] | None:
    tool = shutil.which("exiftool")
    if tool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("exiftool is not installed; CI=true needs the independent reader")
        return None
    with tempfile.NamedTemporaryFile(suffix=".jpg") as handle:
        handle.write(data)
        handle.flush()
        out = subprocess.run(
            [tool, "-v1", handle.name], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("JPEG ")]


async def test_c2pa_ducky_and_xmp_are_not_served_and_the_name_says_jpeg(env: Env) -> None:
    token = await env.register()
    clean = jpeg_bytes()
    extra = (
        segment(0xEB, C2PA_JUMBF)
        + segment(0xEC, DUCKY)
        + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP)
        + segment(0xE1, b"XMP\x00" + XMP)
    )
    data = clean[:20] + extra + clean[20:]  # after SOI and the 16-byte JFIF APP0
    assert {0xEB, 0xEC, 0xE1} <= set(app_markers(data))
    image = await env.uploaded(token, data, filename="cat.png", content_type="image/png")
    assert image["content_type"] == "image/jpeg"
    assert image["filename"] == "cat.jpg"
    resp = await env.client.get(image["url"])
    assert resp.status_code == 200
    served = resp.content
    assert served == clean
    assert not {0xE1, 0xEB, 0xEC} & set(app_markers(served))
    assert b"c2pa" not in served and b"Ducky" not in served and b"xmpmeta" not in served
    assert 'filename="cat.jpg"' in resp.headers["content-disposition"]
    with PILImage.open(io.BytesIO(served)) as img:
        assert "xmp" not in img.info and img.size == (64, 48)
    blocks = exiftool_blocks(served)
    if blocks is not None:
        assert blocks == exiftool_blocks(clean)
        assert not {"APP1", "APP11", "APP12"} & set(blocks)
    meta = await env.client.get(f"/api/v1/images/{image['id']}")
    assert meta.json()["filename"] == "cat.jpg"


async def test_a_name_without_an_extension_gets_the_detected_one(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, png_bytes(), filename="screenshot", content_type="image/png")
    assert image["filename"] == "screenshot.png"
