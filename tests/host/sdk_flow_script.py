"""A host application's whole flow through the SDK, as a host would write it: ``anyio.run``
around opening Chitram on the embedded default (SQLite + files, memory cache, local auth, the
image engine, the job runner). Run as ``python -W error sdk_flow_script.py BACKEND DATA_DIR``;
prints ``flow ok`` and exits 0, or fails with a traceback."""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import AsyncIterator

import anyio
from PIL import Image as PILImage

from chitram_core import Chitram, Settings
from chitram_core.errors import (
    EmailExists,
    ImageNotFound,
    InvalidCredentials,
    InvalidFileFormat,
    InvalidToken,
)


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (800, 600), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


async def expect(error: type[BaseException], call: object) -> None:
    try:
        await call  # type: ignore[misc]
    except error:
        return
    raise AssertionError(f"expected {error.__name__}")


async def main(data_dir: str) -> None:
    settings = Settings(env="test", data_dir=data_dir, password_hash_profile="fast")
    async with Chitram(settings) as chitram:
        session = await chitram.auth.register("ada@example.com", "correct horse battery")
        await expect(EmailExists, chitram.auth.register("ADA@example.com", "another one here"))
        await expect(InvalidCredentials, chitram.auth.login("ada@example.com", "wrong"))
        await expect(InvalidToken, chitram.auth.authenticate("not-a-token"))
        session = await chitram.auth.login("ada@example.com", "correct horse battery")
        ada = await chitram.auth.authenticate(session.access_token)

        red = jpeg((200, 30, 30))
        first = await chitram.images.upload(red, filename="red.jpg", owner=ada)
        assert (first.width, first.height, first.content_type) == (800, 600, "image/jpeg")
        again = await chitram.images.upload(chunks(red), filename="again.jpg", owner=ada)
        assert again.id != first.id and again.sha256 == first.sha256  # one stored copy
        blue = await chitram.images.upload(
            io.BytesIO(jpeg((20, 40, 200))), filename="blue.jpg", owner=ada
        )
        await expect(
            InvalidFileFormat,
            chitram.images.upload(b"plain text, not a picture", filename="x.jpg", owner=ada),
        )

        assert (await chitram.images.get(first.id)).filename == "red.jpg"
        body = b"".join([chunk async for chunk in chitram.images.read(first.id)])
        assert len(body) == first.file_size
        head = b"".join([c async for c in chitram.images.read(first.id, start=0, end=10)])
        assert head == body[:10]
        thumb = await chitram.images.thumbnail(blue.id)
        assert thumb.size > 0 and thumb.content_type == "image/jpeg"

        page = await chitram.images.list(owner=ada, limit=2)
        assert [image.id for image in page.items] == [blue.id, again.id]
        rest = await chitram.images.list(owner=ada, limit=2, cursor=page.next_cursor)
        assert [image.id for image in rest.items] == [first.id] and rest.next_cursor is None

        await chitram.images.delete(first.id, principal=ada)
        await expect(ImageNotFound, chitram.images.get(first.id))
        body = b"".join([chunk async for chunk in chitram.images.read(again.id)])
        assert len(body) == first.file_size  # the shared bytes outlive one of their images

        report = await chitram.health()
        assert report.status == "healthy", report
        await anyio.sleep(0.5)  # the job runner and thumbnail adopter get their turns
    gc.collect()  # an unclosed connection or file would warn here, and -W error fails the run
    print("flow ok")


if __name__ == "__main__":
    anyio.run(main, sys.argv[2], backend=sys.argv[1])
