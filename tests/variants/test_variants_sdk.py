"""The SDK side of variants and placeholders: c.images.variant_url / variant, upload, sweep."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import blurhash
import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import insert, update
from variantkit import KEYS

from chitram_core import Chitram, Settings
from chitram_core.db.tables import blobs, utcnow, variants
from chitram_core.errors import ImageNotFound, InvalidRequest, ServiceUnavailable
from chitram_core.images.variants import adapted_formats, parse_spec, variant_key
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/chitram.db"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def _settings(tmp_path: Path, database_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "auto_migrate": True,
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "web_ui": False,
        "variant_keys": KEYS,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def chitram(tmp_path: Path, database_url: str) -> AsyncIterator[Chitram]:
    async with Chitram(_settings(tmp_path, database_url), background=False) as instance:
        yield instance


def _photo(
    width: int = 600, height: int = 400, color: tuple[int, int, int] = (30, 90, 200)
) -> bytes:
    img = PILImage.new("RGB", (width, height), color)
    img.paste((250, 250, 250), (0, 0, width // 6, height // 6))  # a small light corner
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


async def _bytes(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_variant_streams_the_rendered_bytes(chitram: Chitram) -> None:
    image = await chitram.images.upload(_photo(), filename="p.jpg")
    data = await _bytes(chitram.images.variant(image.id, "w300-h300-cover-webp-q70"))
    with PILImage.open(io.BytesIO(data)) as img:
        assert img.format == "WEBP" and img.size == (300, 300)
    again = await _bytes(chitram.images.variant(image.id, "w300-h300-cover-webp-q70"))
    assert again == data
    with pytest.raises(InvalidRequest):
        await _bytes(chitram.images.variant(image.id, "w300-bogus"))
    with pytest.raises(ImageNotFound):
        await _bytes(chitram.images.variant("6f1c1f8e-8b7a-4c1e-9f55-3d2c1b0a9e88", "w320"))


async def test_a_url_from_variant_url_is_served_by_the_app(chitram: Chitram) -> None:
    image = await chitram.images.upload(_photo(), filename="p.jpg")
    url = chitram.images.variant_url(image.id, width=200, height=100, fit="cover", format="png")
    assert url.startswith(f"/api/v1/images/{image.id}/variants/w200-h100-cover-png?sig=")
    transport = httpx.ASGITransport(app=create_app(chitram))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        resp = await client.get(url)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/png"
        with PILImage.open(io.BytesIO(resp.content)) as img:
            assert img.size == (200, 100)
        preset = await client.get(chitram.images.variant_url(image.id, width=320))
        assert preset.status_code == 200
        assert resp.content == await _bytes(chitram.images.variant(image.id, "w200-h100-cover-png"))


async def test_upload_computes_blurhash_and_dominant_color(chitram: Chitram) -> None:
    image = await chitram.images.upload(_photo(color=(30, 90, 200)), filename="p.jpg")
    assert image.blurhash is not None and image.dominant_color is not None
    assert len(image.blurhash) == 28  # 4x3 components
    assert blurhash.components(image.blurhash) == (4, 3)
    r, g, b = (int(image.dominant_color[i : i + 2], 16) for i in (1, 3, 5))
    assert abs(r - 30) < 12 and abs(g - 90) < 12 and abs(b - 200) < 12
    loaded = await chitram.images.get(image.id)
    assert (loaded.blurhash, loaded.dominant_color) == (image.blurhash, image.dominant_color)
    other = await chitram.images.upload(_photo(color=(200, 40, 40)), filename="q.jpg")
    assert other.blurhash != image.blurhash and other.dominant_color != image.dominant_color


async def test_sweep_backfills_missing_placeholders(chitram: Chitram) -> None:
    image = await chitram.images.upload(_photo(color=(20, 160, 60)), filename="p.jpg")
    async with chitram.database.transaction() as conn:  # as if uploaded before placeholders
        await conn.execute(
            update(blobs)
            .where(blobs.c.sha256 == image.sha256)
            .values(blurhash=None, dominant_color=None)
        )
    assert (await chitram.images.get(image.id)).blurhash is None
    report = await chitram.sweep(older_than=3600)
    assert report.placeholders_made == 1
    filled = await chitram.images.get(image.id)
    assert filled.blurhash == image.blurhash
    assert filled.dominant_color == image.dominant_color
    assert (await chitram.sweep(older_than=3600)).placeholders_made == 0


async def test_another_process_render_claim_is_waited_for_then_taken_over(
    tmp_path: Path, database_url: str
) -> None:
    settings = _settings(tmp_path, database_url, image_wait_timeout=0.3, decode_timeout=1.0)
    async with Chitram(settings, background=False) as chitram:
        image = await chitram.images.upload(_photo(), filename="p.jpg")
        spec = parse_spec("w320")  # no format: the content picks it among the candidates
        key = variant_key(image.sha256, spec, adapted_formats(None, avif=False))
        now = utcnow()
        async with chitram.database.transaction() as conn:  # another process is rendering it
            await conn.execute(
                insert(variants).values(
                    key=key,
                    sha256=image.sha256,
                    spec=str(spec),
                    status="rendering",
                    claimed_at=now,
                    created_at=now,
                )
            )
        with pytest.raises(ServiceUnavailable):
            await _bytes(chitram.images.variant(image.id, "w320"))
        assert chitram.engine.jobs_by_op.get("variant", 0) == 0
        async with chitram.database.transaction() as conn:  # ... and died long ago
            await conn.execute(
                update(variants)
                .where(variants.c.key == key)
                .values(claimed_at=now - timedelta(minutes=5))
            )
        data = await _bytes(chitram.images.variant(image.id, "w320"))
        with PILImage.open(io.BytesIO(data)) as img:
            assert img.size == (320, 213)
        assert chitram.engine.jobs_by_op["variant"] == 1


async def test_sweep_removes_variant_bytes_without_a_row_and_keeps_live_ones(
    chitram: Chitram,
) -> None:
    image = await chitram.images.upload(_photo(), filename="p.jpg")
    await _bytes(chitram.images.variant(image.id, "w320"))
    live = [k async for k in chitram.storage.keys("variants")]
    assert len(live) == 1

    async def body() -> AsyncIterator[bytes]:
        yield b"left behind by a crash"

    orphan = f"variants/ab/{'ab' * 32}/v1-w320.jpg"
    await chitram.storage.write(orphan, body())
    report = await chitram.sweep(older_than=0)
    assert report.orphans_removed == 1
    assert [k async for k in chitram.storage.keys("variants")] == live
