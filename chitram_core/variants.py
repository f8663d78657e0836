"""Variants (docs/http-api.md#variants): authorised, negotiated, rendered once by the engine.

A variant is keyed by (content hash, spec with its format resolved): identical images share it,
and ``auto`` shares the object of the format it resolved to. The ``variants`` row is both the
record and the cross-process lock: ``rendering`` with ``claimed_at`` while one process renders
(others poll it; a claim older than the decode timeout + grace is taken over), then ``ready``
or ``failed``. In one process, concurrent requests for one key share one job (an event map).
Renders in flight per process are capped (``variant_max_renders``): beyond it, 503 with
``Retry-After`` at once, and the engine's own admission bounds the wait for memory and a worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio

from chitram_core.db import Database
from chitram_core.db import blobs as blobs_sql
from chitram_core.db import variants as sql
from chitram_core.db.tables import utcnow
from chitram_core.errors import (
    DecodeTimeout,
    Forbidden,
    ImageNotFound,
    InvalidImage,
    ServiceUnavailable,
)
from chitram_core.images.formats import ImageFormat, jpeg_progressive, probe
from chitram_core.images.variants import (
    Adapted,
    VariantSigner,
    VariantSpec,
    adapted_formats,
    avif_available,
    parse_spec,
    resolve_format,
    spec_for,
    variant_key,
)
from chitram_core.models import Image, Variant
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, StorageKeyNotFound, blob_key

if TYPE_CHECKING:
    from chitram_core.engine.base import Engine

log = logging.getLogger(__name__)

CLAIM_GRACE = 30.0
"""Seconds past the decode timeout after which another process's render claim is stale."""
POLL_INTERVAL = 0.05


class VariantService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        engine: Engine,
    ) -> None:
        self.settings = settings
        self.db = database
        self.storage = storage
        self.engine = engine
        # The derived default key needs the real secret (the kept per-installation one when
        # CHITRAM_JWT_SECRET is unset), never the unset setting itself.
        secret = settings.with_jwt_secret().jwt_secret
        assert secret is not None
        self.signer = VariantSigner.from_settings(settings.variant_keys, secret)
        self.presets = frozenset(settings.variant_presets)
        self.avif = avif_available()
        self._jobs: dict[str, anyio.Event] = {}
        self._rendering = 0
        # Counters for monitoring.
        self.renders = 0
        self.hits = 0
        self.shed = 0

    # naming and authorising ---------------------------------------------------------------

    def url(
        self,
        image_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fit: str = "contain",
        format: str | None = None,
        quality: int | None = None,
    ) -> str:
        """A signed relative URL for the variant (for host templates)."""
        spec = str(spec_for(width=width, height=height, fit=fit, format=format, quality=quality))
        sig = self.signer.sign(image_id, spec)
        return f"/api/v1/images/{quote(image_id)}/variants/{spec}?sig={sig}"

    def authorize(self, image_id: str, spec_text: str, signature: str | None) -> VariantSpec:
        """The parsed spec when it is a preset or correctly signed; 400 malformed, 403 else."""
        spec = parse_spec(spec_text)
        if spec_text in self.presets or self.signer.verify(image_id, spec_text, signature):
            return spec
        raise Forbidden(
            "This variant is not a preset and its URL is not signed (or the signature is wrong)"
        )

    # getting ------------------------------------------------------------------------------

    async def get(self, image: Image, spec: VariantSpec, *, accept: str | None = None) -> Variant:
        """The rendered variant of ``image``, rendered now if needed (shared with others)."""
        adapt: Adapted | None = None
        original = ImageFormat.from_mime(image.content_type)
        if spec.format in (None, "auto"):
            # The content picks the format (lossless for flat images, a photo codec for
            # photos) among what the client accepts: one object per set of candidates.
            adapt = adapted_formats(accept, avif=self.avif, original=original)
            resolved = spec.with_format(None)
        else:
            fmt = resolve_format(spec, original, accept=accept, has_alpha=False, avif=self.avif)
            resolved = spec.with_format(fmt)
        key = variant_key(image.sha256, resolved, adapt)
        row = await self._row(key)
        if row is None or row["status"] != "ready":
            if row is not None and row["status"] == "failed":
                raise InvalidImage(f"This variant cannot be made: {row['error']}")
            await self._render_shared(image.sha256, resolved, key, adapt)
            row = await self._row(key)
            if row is None or row["status"] != "ready":
                if row is not None and row["status"] == "failed":
                    raise InvalidImage(f"This variant cannot be made: {row['error']}")
                raise ServiceUnavailable("The variant is not ready yet", retry_after=2)
        else:
            self.hits += 1
        return Variant(
            image_id=image.id,
            spec=str(resolved),
            key=key,
            content_type=row["content_type"],
            size=row["size"],
            width=row["width"],
            height=row["height"],
            negotiated=adapt is not None,
        )

    async def stream(
        self, variant: Variant, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        stop = variant.size if end is None else min(end, variant.size)
        try:
            async for chunk in self.storage.read(variant.key, start, stop):
                yield chunk
        except StorageKeyNotFound as exc:
            # The row said ready but the bytes are gone: forget the row so it is made again.
            async with self.db.transaction() as conn:
                await sql.forget(conn, variant.key)
            raise ServiceUnavailable("The variant is being remade", retry_after=2) from exc

    async def _row(self, key: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            return await sql.get(conn, key)

    # rendering ----------------------------------------------------------------------------

    async def _render_shared(
        self, sha256: str, spec: VariantSpec, key: str, adapt: Adapted | None
    ) -> None:
        running = self._jobs.get(key)
        if running is not None:
            await running.wait()
            return
        if self._rendering >= self.settings.variant_max_renders:
            self.shed += 1
            raise ServiceUnavailable("Too many variants are being made; try again", retry_after=1)
        done = self._jobs[key] = anyio.Event()
        self._rendering += 1
        try:
            if await self._claim(sha256, spec, key):
                await self._render(sha256, spec, key, adapt)
        finally:
            self._rendering -= 1
            del self._jobs[key]
            done.set()

    async def _claim(self, sha256: str, spec: VariantSpec, key: str) -> bool:
        """True when this process must render; False when the row became ready or failed
        meanwhile (another process rendered it). 503 when another process is still at it."""
        stale_after = timedelta(seconds=self.settings.decode_timeout + CLAIM_GRACE)
        waited = 0.0
        while True:
            now = utcnow()
            async with self.db.transaction() as conn:
                if not await blobs_sql.exists(conn, sha256):
                    raise ImageNotFound("The image was deleted")
                state = await sql.claim_state(conn, key)
                if state is None:
                    if await sql.insert_claim(conn, key, sha256, str(spec), now):
                        return True
                    # another process claimed it first: look again
                elif state[0] != "rendering":
                    return False
                elif (state[1] is None or now - state[1] > stale_after) and await sql.take_over(
                    conn, key, state[1], now
                ):
                    return True
            if waited > self.settings.image_wait_timeout:
                raise ServiceUnavailable("The variant is still being made", retry_after=2)
            await anyio.sleep(POLL_INTERVAL)
            waited += POLL_INTERVAL

    async def _release(self, key: str) -> None:
        with anyio.CancelScope(shield=True):
            try:
                async with self.db.transaction() as conn:
                    await sql.release_claim(conn, key)
            except Exception:
                log.exception("could not release the render claim on %s", key)

    async def _render(
        self, sha256: str, spec: VariantSpec, key: str, adapt: Adapted | None
    ) -> None:
        from chitram_core.engine.local import local_file
        from chitram_core.engine.render import head_and_size
        from chitram_core.engine.work import variant_cost, variant_image
        from chitram_core.images.variants import variant_cost_side

        try:
            try:
                # The job reads the original itself: the server never holds it whole.
                async with local_file(self.storage, blob_key(sha256)) as data:
                    head, size = await head_and_size(data)
                    info = probe(head)
                    progressive = False
                    if info.format is ImageFormat.JPEG:
                        progressive = jpeg_progressive(head)
                    memory = variant_cost(
                        info,
                        file_size=size,
                        progressive=progressive,
                        side=variant_cost_side(spec, info.width, info.height),
                    )
                    rendered = await self.engine.run(
                        variant_image,
                        data,
                        spec,
                        max_pixels=self.settings.max_pixels,
                        adapt=adapt,
                        memory=memory,
                        op="variant",
                    )
            except StorageKeyNotFound as exc:
                raise ImageNotFound("The image's bytes are missing") from exc
            self.renders += 1

            async def body() -> AsyncIterator[bytes]:
                yield rendered.data

            await self.storage.write(key, body())
        except (InvalidImage, DecodeTimeout) as exc:
            await self._fail(key, exc.message)
            raise
        except (StorageError, OSError) as exc:
            await self._release(key)
            raise ServiceUnavailable("Storage is unavailable", retry_after=5) from exc
        except BaseException:
            await self._release(key)  # capacity, a crashed worker, cancellation: try again later
            raise
        async with self.db.transaction() as conn:
            if not await blobs_sql.exists(conn, sha256):
                await self.storage.delete(key)  # deleted while rendering: no row, no bytes
                return
            await sql.mark_ready(
                conn,
                key,
                sha256=sha256,
                spec=str(spec),
                now=utcnow(),
                content_type=rendered.content_type,
                size=len(rendered.data),
                width=rendered.width,
                height=rendered.height,
            )

    async def _fail(self, key: str, reason: str) -> None:
        with anyio.CancelScope(shield=True):
            async with self.db.transaction() as conn:
                await sql.mark_failed(conn, key, reason[:1000])
        log.warning("variant %s cannot be made: %s", key, reason)

    # placeholders -------------------------------------------------------------------------

    async def placeholders(self, data: bytes, size: int) -> tuple[str | None, str | None]:
        """(blurhash, dominant colour) of verified image bytes; (None, None) when the engine
        could not do it now (the sweep fills them in later)."""
        if not self.settings.placeholders:
            return None, None
        from chitram_core.engine.render import placeholders_async

        return await placeholders_async(
            data,
            size,
            engine=self.engine,
            max_pixels=self.settings.max_pixels,
            max_scans=self.settings.jpeg_max_scans,
        )

    async def backfill_placeholders(self, limit: int = 1000) -> list[str]:
        """Compute missing placeholders (images uploaded before them); the SHA-256s filled."""
        if not self.settings.placeholders:
            return []
        async with self.db.connect() as conn:
            todo = await sql.without_placeholders(conn, limit)
        filled = []
        for sha256, size in todo:
            try:
                data = b"".join([c async for c in self.storage.read(blob_key(sha256))])
            except (StorageError, OSError) as exc:
                log.warning("placeholders for %s: cannot read the blob: %s", sha256, exc)
                continue
            blurhash, color = await self.placeholders(data, size)
            if blurhash is None:
                continue
            async with self.db.transaction() as conn:
                await sql.set_placeholders(conn, sha256, blurhash, color)
            filled.append(sha256)
        return filled
