"""TagService: tags on images, tag listing and search, and auto-tagging by the taggers.

Owners tag their own images, at most ``max_tags_per_image`` tags each; anyone may read an
image's tags. Tag listings are private: a caller sees the tags on their own images only
(anonymous callers none) unless ``public_tags`` turns the old global listing back on.
Auto-tagging runs as a durable job (``kind="tag"``, key = image id) enqueued in the upload's
transaction, so an upload never waits for a model and a model outage only delays the tags.
``auto_tag`` replaces the image's earlier AI tags and never touches (or duplicates) a tag a user
put there; AI tags beyond the image's room under the cap are dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import Database
from chitram_core.db import images as image_rows
from chitram_core.db import tags as sql
from chitram_core.engine.base import Engine
from chitram_core.engine.inline import InlineEngine
from chitram_core.engine.local import local_file
from chitram_core.engine.render import model_input_async
from chitram_core.errors import (
    ChitramError,
    Forbidden,
    ImageNotFound,
    InvalidImage,
    InvalidRequest,
    TaggerUnavailable,
    TagNotFound,
    ValidationError,
)
from chitram_core.jobs import JobFailed, JobRunner, RetryLater
from chitram_core.models import ImageTag, PopularTag, Principal, SuggestedTag, Tag
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, blob_key
from chitram_core.taggers import Tagger
from chitram_core.tags import names

log = logging.getLogger(__name__)

TAG_JOB = "tag"


def _limit(limit: int, *, default_max: int = 100) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= default_max:
        raise ValidationError(f"limit must be between 1 and {default_max}", field="limit")
    return limit


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return len(value) == 36


class TagService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        *,
        taggers: Sequence[Tagger] = (),
        jobs: JobRunner | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.storage = storage
        self.taggers = list(taggers)
        self.jobs = jobs
        # The model's input is decoded in the image engine, within its memory budget.
        self.engine: Engine = engine if engine is not None else InlineEngine.from_settings(settings)
        if jobs is not None and self.taggers:
            # Without taggers there is no tagging work: the runner then has no kind to poll.
            jobs.register(TAG_JOB, self._run_job)

    # owner's tags -------------------------------------------------------------------------

    async def add(
        self, image_id: str, tag: str, *, principal: Principal, category: str | None = None
    ) -> ImageTag:
        """Put a user tag on the owner's image (400 if it is already there)."""
        name = names.normalize(tag)
        cat = names.normalize_category(category)
        async with self.db.transaction() as conn:
            await self._authorize(conn, image_id, principal)
            await sql.lock_image(conn, image_id)
            if await sql.tag_on_image(conn, image_id, name) is not None:
                raise InvalidRequest(f"The image already has the tag '{name}'", tag=name)
            cap = self.settings.max_tags_per_image
            if await sql.count_on_image(conn, image_id) >= cap:
                raise InvalidRequest(
                    f"An image can have at most {cap} tags: remove one first", tag=name, limit=cap
                )
            tag_id = await sql.ensure_tag(conn, name, cat)
            if not await sql.attach_user_tag(conn, image_id, tag_id):
                # the same tag added concurrently, or the image just went
                raise InvalidRequest(f"The image already has the tag '{name}'", tag=name)
            current = [t for t in await sql.tags_of_image(conn, image_id) if t.name == name]
        return current[0]

    async def remove(self, image_id: str, tag: str, *, principal: Principal) -> None:
        """Take a tag (user or AI) off the owner's image; the name matches in any case."""
        name = tag.strip().lower() if isinstance(tag, str) else ""
        async with self.db.transaction() as conn:
            await self._authorize(conn, image_id, principal)
            found = await sql.tag_on_image(conn, image_id, name) if name else None
            if found is None:
                raise TagNotFound(f"The image has no tag '{name}'", tag=name)
            await sql.detach_tag(conn, image_id, found["tag_id"])

    async def _authorize(self, conn: AsyncConnection, image_id: str, principal: Principal) -> None:
        if not _is_uuid(image_id):
            raise ImageNotFound(image_id=image_id)
        found, owner = await image_rows.owner(conn, image_id)
        if not found:
            raise ImageNotFound(image_id=image_id)
        if owner is None or owner != principal.user_id:
            raise Forbidden("Only the owner can change this image's tags")

    # reading ------------------------------------------------------------------------------

    async def for_image(self, image_id: str) -> list[ImageTag]:
        """The image's tags by name; an unknown image has none (as in v1)."""
        if not _is_uuid(image_id):
            return []
        async with self.db.connect() as conn:
            return await sql.tags_of_image(conn, image_id)

    def _scope(self, principal: Principal | None) -> tuple[bool, str | None]:
        """(may list anything, the owner to list for): everything with ``public_tags``,
        the caller's own tags otherwise, nothing for an anonymous caller."""
        if self.settings.public_tags:
            return True, None
        if principal is None:
            return False, None
        return True, principal.user_id

    async def all(self, limit: int = 20, *, principal: Principal | None = None) -> list[Tag]:
        """Tags alphabetically: those on ``principal``'s images (see :meth:`_scope`)."""
        _limit(limit)
        allowed, owner = self._scope(principal)
        if not allowed:
            return []
        async with self.db.connect() as conn:
            return await sql.all_tags(conn, limit, owner_id=owner)

    async def popular(
        self, limit: int = 20, *, principal: Principal | None = None
    ) -> list[PopularTag]:
        """Most used first, counted over ``principal``'s images (see :meth:`_scope`)."""
        _limit(limit)
        allowed, owner = self._scope(principal)
        if not allowed:
            return []
        async with self.db.connect() as conn:
            return await sql.popular_tags(conn, limit, owner_id=owner)

    async def search(
        self, q: str, limit: int = 10, *, principal: Principal | None = None
    ) -> list[Tag]:
        """Tags whose name starts with ``q`` (any case); an empty ``q`` finds nothing."""
        _limit(limit)
        prefix = names.search_prefix(q or "")
        allowed, owner = self._scope(principal)
        if prefix is None or not allowed:
            return []
        async with self.db.connect() as conn:
            return await sql.search_tags(conn, prefix, limit, owner_id=owner)

    # auto-tagging -------------------------------------------------------------------------

    async def enqueue(self, conn: AsyncConnection, image_id: str) -> None:
        """The upload's hook: record the tagging job in its transaction (when taggers exist)."""
        if self.taggers and self.jobs is not None:
            await self.jobs.enqueue(conn, TAG_JOB, image_id)

    async def auto_tag(
        self, image_id: str, *, principal: Principal | None = None, background: bool = False
    ) -> list[ImageTag]:
        """Run every tagger on the image now and store the result; the AI tags applied.

        The image the model sees is made in the image engine (``background``: as work that
        yields to requests, as the tagging job's does).

        With ``principal``, only the owner may ask. 503 ``PROVIDER_UNAVAILABLE`` when a tagger
        cannot answer (nothing is changed then). With no tagger configured there is nothing to
        run: ``[]``, and the image's tags stay as they are.
        """
        if not _is_uuid(image_id):
            raise ImageNotFound(image_id=image_id)
        if principal is not None:
            async with self.db.connect() as conn:
                await self._authorize(conn, image_id, principal)
        if not self.taggers:
            return []
        owner = f"user:{principal.user_id}" if principal is not None else None
        image = await self._model_image(image_id, owner=owner, background=background)
        suggestions: list[SuggestedTag] = []
        for tagger in self.taggers:
            suggestions.extend(await self._ask(tagger, image))
        return await self._apply(image_id, suggestions)

    async def _model_image(self, image_id: str, *, owner: str | None, background: bool) -> bytes:
        async with self.db.connect() as conn:
            sha256 = await image_rows.sha256_of(conn, image_id)
        if sha256 is None:
            raise ImageNotFound(image_id=image_id)
        try:
            # The job reads the original itself: the server never holds it whole.
            async with local_file(self.storage, blob_key(sha256)) as data:
                return await model_input_async(
                    data,
                    engine=self.engine,
                    max_pixels=self.settings.max_pixels,
                    owner=owner,
                    background=background,
                )
        except (StorageError, OSError, InvalidImage) as exc:
            # Deleted while its bytes were read (the file gone from under the reader or the
            # engine): the image is not found, whatever the reading made of it.
            async with self.db.connect() as conn:
                if await image_rows.sha256_of(conn, image_id) is None:
                    raise ImageNotFound(image_id=image_id) from None
            if isinstance(exc, InvalidImage):
                raise
            raise TaggerUnavailable("Storage could not read the image for tagging") from exc

    async def _ask(self, tagger: Tagger, image: bytes) -> Sequence[SuggestedTag]:
        try:
            return await tagger.suggest(image, "image/jpeg")
        except ChitramError:
            raise
        except Exception as exc:  # a plugin's own failure must not become a 500 or kill the job
            log.exception("tagger %s failed", getattr(tagger, "name", tagger))
            raise TaggerUnavailable(
                f"The tagger {getattr(tagger, 'name', '?')!r} failed ({type(exc).__name__})"
            ) from exc

    def select(
        self, suggestions: Sequence[SuggestedTag], user_names: set[str]
    ) -> list[SuggestedTag]:
        """Clean names, drop weak ones and user tags' names, keep the best ``tags_max_ai``."""
        best: dict[str, SuggestedTag] = {}
        for s in suggestions:
            name = names.clean_suggestion(s.name)
            if (
                name is None
                or name in user_names
                or s.confidence < self.settings.tags_min_confidence
            ):
                continue
            category = names.normalize_category(s.category) if _category_ok(s.category) else None
            if name not in best or s.confidence > best[name].confidence:
                best[name] = SuggestedTag(name, s.confidence, category)
        ranked = sorted(best.values(), key=lambda s: (-s.confidence, s.name))
        return ranked[: self.settings.tags_max_ai]

    async def _apply(self, image_id: str, suggestions: Sequence[SuggestedTag]) -> list[ImageTag]:
        async with self.db.transaction() as conn:
            found, _ = await image_rows.owner(conn, image_id)
            if not found:
                raise ImageNotFound(image_id=image_id)
            await sql.lock_image(conn, image_id)
            present = await sql.tags_of_image(conn, image_id)
            user_names = {t.name for t in present if t.source == "user"}
            room = max(0, self.settings.max_tags_per_image - len(user_names))
            chosen = self.select(suggestions, user_names)[:room]  # beyond the cap: dropped
            tag_ids = await sql.ensure_tags(conn, chosen)
            await sql.lock_tags(conn, image_id, tag_ids)  # tag rows in one order: no deadlock
            await sql.detach_ai_tags(conn, image_id)
            if not await sql.attach_ai_tags(conn, image_id, chosen, tag_ids):
                raise ImageNotFound(image_id=image_id)  # the image was deleted meanwhile
            applied = {s.name for s in chosen}
            return [t for t in await sql.tags_of_image(conn, image_id) if t.name in applied]

    async def _run_job(self, image_id: str) -> None:
        try:
            applied = await self.auto_tag(image_id, background=True)
        except ImageNotFound:
            return  # deleted before it was tagged: nothing to do
        except InvalidImage as exc:
            raise JobFailed(exc.message) from exc
        except TaggerUnavailable as exc:
            raise RetryLater(exc.message) from exc
        log.info("image %s tagged: %s", image_id, ", ".join(t.name for t in applied) or "-")


def _category_ok(category: str | None) -> bool:
    try:
        names.normalize_category(category)
    except ValidationError:
        return False
    return True
