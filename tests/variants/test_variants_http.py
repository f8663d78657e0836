"""GET/HEAD /api/v1/images/{id}/variants/{spec} (docs/http-api.md#variants) over the real app."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from httpkit import Env, assert_error, jpeg_bytes, open_env
from imagekit import other_rgb_profile, photo_png
from PIL import Image as PILImage
from PIL import ImageCms
from variantkit import KEYS

from chitram_core.images.variants import VariantSigner, avif_available

pytestmark = pytest.mark.anyio


def _noise_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    PILImage.effect_noise((width, height), 40).convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _rgba_png(width: int = 200, height: int = 100) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGBA", (width, height), (10, 200, 30, 128)).save(buf, "PNG")
    return buf.getvalue()


async def _upload(env: Env, data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg"):  # type: ignore[no-untyped-def]
    token = await env.register()
    return await env.uploaded(token, data, filename=name, content_type=ctype)


def _size(resp: httpx.Response) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(resp.content)) as img:
        return img.size


def _signed(image_id: str, spec: str, key: str = KEYS[0]) -> str:
    sig = VariantSigner([key.encode()]).sign(image_id, spec)
    return f"/api/v1/images/{image_id}/variants/{spec}?sig={sig}"


async def test_presets_are_served_unsigned_with_exact_sizes_and_etag_304(env: Env) -> None:
    image = await _upload(env, _noise_jpeg(2400, 1200))
    sizes = {}
    for preset, width in (("w320", 320), ("w640", 640), ("w1280", 1280), ("w1920", 1920)):
        url = f"/api/v1/images/{image['id']}/variants/{preset}"
        resp = await env.client.get(url)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/jpeg"  # a photo, no WebP in Accept
        assert _size(resp) == (width, width // 2)
        assert resp.headers["content-length"] == str(len(resp.content))
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert resp.headers["vary"] == "Accept"  # the content and Accept pick the format
        etag = resp.headers["etag"]
        sizes[preset] = etag
        again = await env.client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        head = await env.client.head(url)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(resp.content))
        assert head.headers["etag"] == etag
        part = await env.client.get(url, headers={"Range": "bytes=0-9"})
        assert part.status_code == 206
        assert part.content == resp.content[:10]
        assert part.headers["content-range"] == f"bytes 0-9/{len(resp.content)}"
    assert len(set(sizes.values())) == 4


async def test_a_variant_is_rendered_once_and_shared_by_identical_images(env: Env) -> None:
    data = _noise_jpeg(900, 600)
    first = await _upload(env, data)
    second = await _upload(env, data)
    engine = env.chitram.engine
    before = engine.jobs_by_op.get("variant", 0)
    a = await env.client.get(f"/api/v1/images/{first['id']}/variants/w320")
    b = await env.client.get(f"/api/v1/images/{second['id']}/variants/w320")
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    assert engine.jobs_by_op.get("variant", 0) - before == 1


async def test_concurrent_first_requests_share_one_render(env: Env) -> None:
    import anyio

    image = await _upload(env, _noise_jpeg(1600, 1200))
    engine = env.chitram.engine
    before = engine.jobs_by_op.get("variant", 0)
    results: list[httpx.Response] = []

    async def fetch() -> None:
        results.append(await env.client.get(f"/api/v1/images/{image['id']}/variants/w640"))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(fetch)
    assert [r.status_code for r in results] == [200] * 6
    assert len({r.content for r in results}) == 1
    assert engine.jobs_by_op.get("variant", 0) - before == 1


async def test_a_non_preset_spec_needs_a_signature(env: Env) -> None:
    image = await _upload(env, _noise_jpeg(800, 600))
    base = f"/api/v1/images/{image['id']}/variants/w200-h200-cover-webp-q70"
    assert_error(await env.client.get(base), 403, "FORBIDDEN")
    assert_error(await env.client.get(base + "?sig=AAAA"), 403, "FORBIDDEN")
    resp = await env.client.get(_signed(image["id"], "w200-h200-cover-webp-q70"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/webp"
    assert _size(resp) == (200, 200)


async def test_signed_by_an_older_key_is_accepted(env: Env) -> None:
    image = await _upload(env, _noise_jpeg(800, 600))
    resp = await env.client.get(_signed(image["id"], "w100-png", key=KEYS[1]))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert _size(resp) == (100, 75)


async def test_a_tampered_spec_or_id_is_403(env: Env) -> None:
    image = await _upload(env, _noise_jpeg(800, 600))
    other = await _upload(env, jpeg_bytes(50, 50))
    url = _signed(image["id"], "w100-webp")
    sig = url.split("sig=")[1]
    tampered = f"/api/v1/images/{image['id']}/variants/w101-webp?sig={sig}"
    assert_error(await env.client.get(tampered), 403, "FORBIDDEN")
    moved = f"/api/v1/images/{other['id']}/variants/w100-webp?sig={sig}"
    assert_error(await env.client.get(moved), 403, "FORBIDDEN")
    unknown_key = _signed(image["id"], "w100-webp", key="not-a-configured-key")
    assert_error(await env.client.get(unknown_key), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "spec", ["w0", "x100", "w100-w200", "webp-w100", "w100-contain", "cover", "q101", "w-1", "w01"]
)
async def test_a_malformed_spec_is_400(env: Env, spec: str) -> None:
    image = await _upload(env, jpeg_bytes(50, 50))
    assert_error(
        await env.client.get(f"/api/v1/images/{image['id']}/variants/{spec}"),
        400,
        "INVALID_REQUEST",
    )


async def test_auto_negotiates_by_accept_with_vary(env: Env) -> None:
    image = await _upload(env, _noise_jpeg(800, 600))
    url = _signed(image["id"], "w300-auto")
    cases = [
        ("image/avif,image/webp,*/*", "image/avif" if avif_available() else "image/webp"),
        ("image/webp,*/*;q=0.8", "image/webp"),
        ("image/avif;q=0,image/webp", "image/webp"),
        ("*/*", "image/jpeg"),
        (None, "image/jpeg"),
    ]
    etags = set()
    for accept, expected in cases:
        headers = {"Accept": accept} if accept else {}
        resp = await env.client.get(url, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == expected, accept
        assert resp.headers["vary"] == "Accept"
        assert _size(resp) == (300, 225)
        with PILImage.open(io.BytesIO(resp.content)) as img:
            assert img.get_format_mimetype() == expected
        etags.add((expected, resp.headers["etag"]))
        not_modified = await env.client.get(
            url, headers={**headers, "If-None-Match": resp.headers["etag"]}
        )
        assert not_modified.status_code == 304
        assert not_modified.headers["vary"] == "Accept"
    assert len({e for _, e in etags}) == len({m for m, _ in etags})  # one ETag per format


async def test_auto_falls_back_to_png_for_transparent_images(env: Env) -> None:
    image = await _upload(env, _rgba_png(), name="a.png", ctype="image/png")
    resp = await env.client.get(_signed(image["id"], "w100-auto"), headers={"Accept": "*/*"})
    assert resp.headers["content-type"] == "image/png"
    with PILImage.open(io.BytesIO(resp.content)) as img:
        assert img.mode == "RGBA"
        assert img.getpixel((5, 5))[3] == 128  # type: ignore[index]


async def test_variants_are_never_upscaled(env: Env) -> None:
    image = await _upload(env, _noise_jpeg(300, 200))
    resp = await env.client.get(f"/api/v1/images/{image['id']}/variants/w1920")
    assert resp.status_code == 200
    assert _size(resp) == (300, 200)
    cover = await env.client.get(_signed(image["id"], "w1000-h1000-cover"))
    assert _size(cover) == (200, 200)  # cropped to the request's shape, not enlarged
    tall = await env.client.get(_signed(image["id"], "h100"))
    assert _size(tall) == (150, 100)


async def test_exif_orientation_is_applied(env: Env) -> None:
    img = PILImage.effect_noise((400, 200), 30).convert("RGB")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display: shown 200 wide, 400 tall
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    image = await _upload(env, buf.getvalue())
    resp = await env.client.get(f"/api/v1/images/{image['id']}/variants/w320")
    assert _size(resp) == (200, 400)  # upright, and w320 > 200: not upscaled
    small = await env.client.get(_signed(image["id"], "w100"))
    assert _size(small) == (100, 200)


async def test_unknown_and_deleted_images_are_404_and_their_variant_bytes_go(env: Env) -> None:
    assert_error(
        await env.client.get(f"/api/v1/images/{uuid.uuid4()}/variants/w320"),
        404,
        "IMAGE_NOT_FOUND",
    )
    token = await env.register()
    image = await env.uploaded(
        token, _noise_jpeg(700, 500), filename="x.jpg", content_type="image/jpeg"
    )
    sha = image["sha256"]
    for url in (
        f"/api/v1/images/{image['id']}/variants/w320",
        _signed(image["id"], "w100-webp"),
    ):
        assert (await env.client.get(url)).status_code == 200
    keys = [k async for k in env.chitram.storage.keys("variants")]
    assert len(keys) == 2 and all(sha in k for k in keys)
    resp = await env.client.delete(
        f"/api/v1/images/{image['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 204
    assert_error(
        await env.client.get(f"/api/v1/images/{image['id']}/variants/w320"), 404, "IMAGE_NOT_FOUND"
    )
    assert [k async for k in env.chitram.storage.keys("variants")] == []


async def test_variants_survive_while_an_identical_image_remains(env: Env) -> None:
    data = _noise_jpeg(640, 480)
    token = await env.register()
    a = await env.uploaded(token, data, filename="a.jpg", content_type="image/jpeg")
    b = await env.uploaded(token, data, filename="b.jpg", content_type="image/jpeg")
    first = await env.client.get(f"/api/v1/images/{a['id']}/variants/w320")
    await env.client.delete(
        f"/api/v1/images/{a['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    again = await env.client.get(f"/api/v1/images/{b['id']}/variants/w320")
    assert again.status_code == 200 and again.content == first.content
    assert len([k async for k in env.chitram.storage.keys("variants")]) == 1


async def test_avif_unavailable_is_a_clear_400(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_env(tmp_path, variant_keys=KEYS) as env:
        image = await _upload(env, jpeg_bytes(80, 60))
        env.chitram.variants.avif = False  # as on a Pillow built without libavif
        detail = assert_error(
            await env.client.get(_signed(image["id"], "w50-avif")), 400, "INVALID_REQUEST"
        )
        assert "AVIF" in detail["message"]
        auto = await env.client.get(
            _signed(image["id"], "w50-auto"), headers={"Accept": "image/avif,image/webp"}
        )
        assert auto.headers["content-type"] == "image/webp"


async def test_signing_works_out_of_the_box_from_the_jwt_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_env(tmp_path) as env:
        image = await _upload(env, jpeg_bytes(80, 60))
        url = env.chitram.images.variant_url(image["id"], width=40, format="png")
        assert "?sig=" in url
        resp = await env.client.get(url)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/png"
        assert _size(resp) == (40, 30)
        forged = _signed(image["id"], "w40-png", key=env.chitram.settings.jwt_secret)
        assert_error(await env.client.get(forged), 403, "FORBIDDEN")  # domain-separated


async def test_capacity_is_503_with_retry_after(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_env(tmp_path, variant_keys=KEYS, image_wait_timeout=0.05) as env:
        image = await _upload(env, _noise_jpeg(400, 300))
        engine = env.chitram.engine
        await engine.budget.acquire(engine.budget.total)  # the engine is full
        try:
            resp = await env.client.get(f"/api/v1/images/{image['id']}/variants/w320")
        finally:
            engine.budget.release(engine.budget.total)
        assert_error(resp, 503, "SERVICE_UNAVAILABLE")
        assert int(resp.headers["retry-after"]) >= 1
        ok = await env.client.get(f"/api/v1/images/{image['id']}/variants/w320")
        assert ok.status_code == 200  # the failed attempt left no claim behind


async def test_upload_response_has_blurhash_and_dominant_color(env: Env) -> None:
    buf = io.BytesIO()
    PILImage.new("RGB", (120, 80), (250, 200, 10)).save(buf, "PNG")
    image = await _upload(env, buf.getvalue(), name="y.png", ctype="image/png")
    assert isinstance(image["blurhash"], str) and len(image["blurhash"]) == 28
    assert image["dominant_color"] == "#fac80a"
    fetched = (await env.client.get(f"/api/v1/images/{image['id']}")).json()
    assert fetched["blurhash"] == image["blurhash"]
    assert fetched["dominant_color"] == "#fac80a"


def _flat_png(width: int = 1200, height: int = 900) -> bytes:
    """A flat graphic: a few solid shapes, as a diagram or a screenshot of one."""
    img = PILImage.new("RGB", (width, height), (250, 250, 250))
    for i in range(6):
        img.paste((30 * i, 120, 200 - 30 * i), (i * 150, i * 100, i * 150 + 300, i * 100 + 200))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [("image/webp,*/*", "image/webp"), ("*/*", "image/jpeg"), (None, "image/jpeg")],
)
async def test_a_png_photo_gets_a_photo_codec(env: Env, accept: str | None, expected: str) -> None:
    data = photo_png()  # the case a source-format variant made 8x too large
    image = await _upload(env, data, name="photo.png", ctype="image/png")
    headers = {"Accept": accept} if accept else {}
    resp = await env.client.get(f"/api/v1/images/{image['id']}/variants/w640", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == expected
    assert resp.headers["vary"] == "Accept"
    assert _size(resp) == (640, 480)
    # What keeping the source format gave: a PNG of the same pixels.
    with PILImage.open(io.BytesIO(data)) as img:
        as_png = io.BytesIO()
        img.resize((640, 480), PILImage.Resampling.LANCZOS).save(as_png, "PNG")
    assert len(resp.content) * 3 < len(as_png.getvalue())


async def test_a_png_photos_w640_in_webp_is_a_web_sized_image(env: Env) -> None:
    data = photo_png()
    assert len(data) > 2_000_000
    image = await _upload(env, data, name="photo.png", ctype="image/png")
    resp = await env.client.get(
        f"/api/v1/images/{image['id']}/variants/w640", headers={"Accept": "image/webp,*/*"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/webp"
    assert _size(resp) == (640, 480)
    assert len(resp.content) <= 80_000, len(resp.content)


async def test_a_variant_drops_an_srgb_profile_and_keeps_another(env: Env) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for profile, kept in ((srgb, False), (other_rgb_profile(), True)):
        buf = io.BytesIO()
        with PILImage.open(io.BytesIO(photo_png(800, 600))) as img:
            img.save(buf, "PNG", icc_profile=profile)
        image = await _upload(env, buf.getvalue(), name="tagged.png", ctype="image/png")
        resp = await env.client.get(
            f"/api/v1/images/{image['id']}/variants/w320", headers={"Accept": "image/webp"}
        )
        assert resp.status_code == 200, resp.text
        with PILImage.open(io.BytesIO(resp.content)) as out:
            assert out.info.get("icc_profile") == (profile if kept else None)


@pytest.mark.parametrize(("accept", "expected"), [("image/webp,*/*", "WEBP"), ("*/*", "PNG")])
async def test_a_flat_graphic_stays_lossless(env: Env, accept: str, expected: str) -> None:
    image = await _upload(env, _flat_png(), name="diagram.png", ctype="image/png")
    resp = await env.client.get(
        f"/api/v1/images/{image['id']}/variants/w640", headers={"Accept": accept}
    )
    assert resp.status_code == 200, resp.text
    with PILImage.open(io.BytesIO(resp.content)) as img:
        assert img.format == expected and img.size == (640, 480)
        colours = img.convert("RGB").getcolors(maxcolors=100_000) or []
    # Lossless: the resize's edges add colours, but no codec noise spreads over the flat areas.
    assert len(colours) < 2_000


async def test_a_variant_is_never_larger_than_an_original_that_needs_no_resize(
    env: Env,
) -> None:
    data = _noise_jpeg(300, 200)  # noise: re-encoding it cannot win
    image = await _upload(env, data)
    resp = await env.client.get(f"/api/v1/images/{image['id']}/variants/w640")
    assert resp.status_code == 200
    assert _size(resp) == (300, 200)
    assert len(resp.content) <= image["file_size"]
