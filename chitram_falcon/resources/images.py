"""The image routes: upload, list, metadata, the file and its thumbnail, delete."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import attrs
import falcon
import falcon.asgi
from falcon.asgi.multipart import MultipartForm
from falcon.asgi.reader import BufferedReader
from falcon.errors import DelimiterError
from falcon.media import MultipartFormHandler
from falcon.media.multipart import MultipartParseError, MultipartParseOptions
from falcon.util.mediatypes import parse_header

from chitram_core import Chitram, Image, Principal, to_json
from chitram_core.errors import (
    FileTooLarge,
    InvalidRequest,
    RequestTimeout,
    ValidationError,
)
from chitram_core.limits.slots import Room
from chitram_core.models import Thumbnail
from chitram_falcon.answers import Prepared
from chitram_falcon.context import (
    DELETE,
    READ,
    WRITE,
    ChitramHandle,
    authenticate,
    limit_upload,
)
from chitram_falcon.fastread import Answer, Lines
from chitram_falcon.http import (
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    if_range_allows,
    none_match,
    parse_range,
)
from chitram_falcon.listing import list_query, page_json
from chitram_falcon.security import Policy

log = logging.getLogger("chitram_falcon")

MULTIPART_OVERHEAD = 64 * 1024
"""Room for the boundaries, part headers and small extra fields around the file itself."""

IMMUTABLE = "public, max-age=31536000, immutable"
PREPARED_LIMIT = 4096
"""Images whose response headers (or JSON) each resource keeps ready; past it, start over."""
T = TypeVar("T")
S = TypeVar("S")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


def multipart_options() -> MultipartParseOptions:
    """Falcon's parser limits, chosen for streaming: the file part is never buffered by Falcon
    (so its 1 MiB ``get_data`` cap does not apply to it); a few small fields and part headers
    are all a form may carry besides it. The total body is capped separately."""
    options = MultipartParseOptions()
    options.max_body_part_count = 16
    options.max_body_part_headers_size = 8 * 1024
    options.max_body_part_buffer_size = 64 * 1024
    return options


_MULTIPART = MultipartFormHandler(multipart_options())


_END = object()
"""The end of the body (an empty chunk from the server is not)."""


async def _capped(
    stream: AsyncIterator[bytes], cap: int, limit: int, *, idle: float, total_time: float
) -> AsyncIterator[bytes]:
    """The request body, cut off with 413 once it passes ``cap`` bytes (no Content-Length), and
    with 408 when nothing arrives for ``idle`` seconds or all of it takes over ``total_time``."""
    total = 0
    deadline = anyio.current_time() + total_time
    while True:
        left = deadline - anyio.current_time()
        wait = min(idle, left)
        chunk: bytes | object | None = None
        if wait > 0:
            with anyio.move_on_after(wait):
                chunk = await anext(stream, _END)
        if chunk is None:
            what = "was idle for" if wait < left else "was not complete within"
            span = idle if wait < left else total_time
            raise _RequestTimeout(f"The upload {what} {span:g} seconds", timeout=span)
        if chunk is _END:
            return
        assert isinstance(chunk, bytes)
        if not chunk:
            continue
        total += len(chunk)
        if total > cap:
            raise FileTooLarge(f"The file is larger than the {limit} byte limit", max_bytes=limit)
        yield chunk


class _RequestTimeout(RequestTimeout):
    """408, and the connection closes: the rest of the body is never read."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message, **details)
        self.http_headers = {"Connection": "close"}


async def _slot_at_end(
    chunks: AsyncIterator[bytes], arrived: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The file's bytes; once the last has arrived, ``arrived`` takes the upload slot (waiting
    for it here: :meth:`UploadSlots.on_arrival`)."""
    async for chunk in chunks:
        yield chunk
    await arrived()


async def _part_chunks(
    part: falcon.asgi.multipart.BodyPart, body: BufferedReader, delimiter: bytes
) -> AsyncIterator[bytes]:
    """The file part's bytes; a body that ends before the part's closing delimiter (a client
    that went away, a truncated request) is an error, never a shorter file."""
    try:
        async for chunk in part.stream:
            yield chunk
        complete = await body.peek(len(delimiter)) == delimiter
    except (MultipartParseError, DelimiterError) as exc:
        raise InvalidRequest("The multipart body is malformed or truncated") from exc
    if not complete:
        raise InvalidRequest("The multipart body ended before the file part was complete")


def _is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "multipart/form-data"


class UploadAdmission:
    """The front door every upload route shares: POST takes room for one more upload, then the
    caller, then the route's own :meth:`accept`."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        required = not chitram.settings.allow_anonymous_uploads
        await self.admit(
            req, resp, lambda: authenticate(req, chitram, required=required, scope=WRITE)
        )

    async def admit(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        identify: Callable[[], Awaitable[Principal | None]],
    ) -> None:
        """An upload through any front door (the API, the web UI): room for it first, then
        ``identify`` (who uploads; it may refuse), then :meth:`accept`.

        Room for one more upload (a free slot or a place in the queue) is waited for a little,
        else 503: before authentication's database reads and the body, so that refusing costs
        the server as little as possible.
        """
        async with self.handle.chitram.upload_slots.room() as room:
            principal = await identify()
            await self.accept(req, resp, principal, room)

    async def accept(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        principal: Principal | None,
        room: Room | None = None,
    ) -> None:
        raise NotImplementedError


class UploadResource(UploadAdmission):
    """POST /api/v1/images/upload.

    Everything that can refuse the request from its headers does so before a byte of the body
    is read: room for one more upload (503 when every slot is busy and the slot queue full
    after a wait of up to 0.5 s, first, before authentication), the caller (401),
    Content-Length against the size limit (413), the rate limit and the per-user count of
    uploads in progress (429). Only then is the multipart body parsed, as a stream, and the
    file part fed chunk by chunk to the SDK, which enforces the size limit as it reads; a body
    idle or slow past its timeouts is cut with 408. The process-wide upload slot (503 when none
    frees up in time) is taken once the file has arrived, for the work on it: a client stalling
    mid-body never holds one (docs/decisions.md).
    """

    async def accept(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        principal: Principal | None,
        room: Room | None = None,
    ) -> None:
        """Everything after authentication (see :meth:`admit`, which gives ``room``)."""
        chitram = self.handle.chitram
        settings = chitram.settings
        limit = settings.max_upload_bytes
        cap = limit + MULTIPART_OVERHEAD
        if req.content_length is not None and req.content_length > cap:
            raise FileTooLarge(f"The file is larger than the {limit} byte limit", max_bytes=limit)
        if not _is_multipart(req.content_type):
            raise ValidationError(
                "The body must be multipart/form-data with a 'file' field", field="file"
            )
        identity = await limit_upload(req, resp, chitram, principal)
        # Every slot busy and the queue full: 503 now, before a byte of the body is read (the
        # server discards the unread body and keeps the connection), not after receiving and
        # parsing a file only to refuse it. Checked again when the file has arrived (take).
        chitram.upload_slots.check_room()
        if principal is not None:  # a quota the declared body would pass: 413 before reading it
            declared = req.content_length
            file_at_least = max(0, declared - MULTIPART_OVERHEAD) if declared is not None else None
            await chitram.users.check_declared(principal.user_id, file_at_least)
        async with chitram.upload_slots.on_arrival(room, identity) as arrived:
            image = await self._receive(req, chitram, principal, cap, limit, arrived)
        resp.status = 201
        resp.media = to_json(image)
        resp.location = image.url.removesuffix("/file")
        resp.cache_control = ["no-store"]

    async def _receive(
        self,
        req: falcon.asgi.Request,
        chitram: Chitram,
        principal: Principal | None,
        cap: int,
        limit: int,
        arrived: Callable[[], Awaitable[None]],
    ) -> Image:
        """The multipart body's file, uploaded; ``arrived`` is called when it has all come."""
        settings = chitram.settings
        try:
            stream = _capped(
                req.stream.__aiter__(),
                cap,
                limit,
                idle=settings.upload_idle_timeout,
                total_time=settings.upload_timeout,
            )
            body = BufferedReader(stream)
            form = await _MULTIPART.deserialize_async(body, req.content_type, req.content_length)
            assert isinstance(form, MultipartForm)
            _, params = parse_header(req.content_type or "")
            delimiter = b"\r\n--" + params["boundary"].rstrip().encode()
            async for part in form:
                if part.name != "file":
                    continue
                return await chitram.images.upload(
                    _slot_at_end(_part_chunks(part, body, delimiter), arrived),
                    filename=part.filename,
                    owner=principal,
                    max_bytes=limit,
                )
        except (MultipartParseError, DelimiterError, UnicodeDecodeError) as exc:
            raise InvalidRequest("The multipart body is malformed") from exc
        except falcon.HTTPInvalidHeader as exc:
            raise InvalidRequest(f"Invalid Content-Type: {exc.description}") from exc
        raise ValidationError("The multipart field 'file' is required", field="file")


class ImageListResource:
    """GET /api/v1/images: the caller's images, newest first, by keyset cursor."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True, scope=READ)
        assert principal is not None
        query = list_query(req)
        page = await chitram.images.list(
            principal,
            limit=query.limit,
            cursor=query.cursor,
            tags=query.tags,
            query=query.query,
        )
        resp.media = page_json(page)
        resp.cache_control = ["private, no-store"]


class _Prepared(Generic[T]):
    """What a response needs that depends only on one image: computed once per process.

    Entries are keyed by image id and hold the value they were computed from; a lookup hits
    only while the caller's freshly looked-up value is that same (or an equal) one, so nothing
    here decides whether an image may be served: the lookup on every request does.
    """

    def __init__(self, limit: int = PREPARED_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[str, tuple[object, T]] = {}

    def get(self, key: str, source: object) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] is not source:
            if entry[0] != source:
                return None
            self._entries[key] = (source, entry[1])  # the next lookup is an identity check
        return entry[1]

    def has(self, key: str) -> bool:
        """Whether anything is prepared for ``key`` (for whichever value): cheap, no lookup."""
        return key in self._entries

    def put(self, key: str, source: object, value: T) -> T:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (source, value)
        return value


_HIT = b"x-cache: HIT\r\n"
"""What the metadata answer says of a lookup held in this process: always a cache hit."""


def _held(handle: ChitramHandle, image_id: str) -> Image | None:
    try:
        return handle.chitram.images.held(image_id)
    except Exception:  # closed, or not open yet: Falcon answers
        return None


class ImageResource:
    """GET /api/v1/images/{id} (metadata, with X-Cache) and DELETE."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle
        self._bodies = _Prepared[tuple[Prepared, bytes]]()

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        chitram = self.handle.chitram
        if req.auth is not None:
            await authenticate(req, chitram, required=False, scope=READ)
        image, cache_status = await chitram.images.get_with_cache_status(image_id)
        found = self._bodies.get(image.id, image)
        if found is None:
            # Serialised once per image by the app's own JSON handler, as resp.media would.
            handler = resp.options.media_handlers[falcon.MEDIA_JSON]
            rendered = handler.serialize(to_json(image), falcon.MEDIA_JSON)
            answer = Prepared(fields=(), content_type=falcon.MEDIA_JSON, length=len(rendered))
            found = self._bodies.put(image.id, image, (answer, rendered))
        answer, body = found
        resp.set_header("X-Cache", cache_status)
        answer.apply(resp)
        resp.content_type = answer.content_type
        resp.data = body

    async def prepared(self, image_id: str, https: bool) -> Answer | None:
        """The answer to an anonymous GET when this image's JSON is prepared (see
        ``chitram_falcon.fastread``); None to let Falcon answer."""
        if not self._bodies.has(image_id):
            return None
        try:
            image, cache_status = await self.handle.chitram.images.get_with_cache_status(image_id)
        except Exception:  # Falcon looks it up again and answers as for any error
            return None
        found = self._bodies.get(image_id, image)
        if found is None:
            return None
        answer, body = found
        return ((b"x-cache", cache_status.encode()), *answer.raw_headers(https)), body

    def prepared_now(self, image_id: str, https: bool) -> Lines | None:
        """:meth:`prepared` as header lines, when the lookup is a cache hit held in this
        process (no I/O); None otherwise, and :meth:`prepared` or Falcon answers."""
        if not self._bodies.has(image_id):
            return None
        image = _held(self.handle, image_id)
        if image is None:
            return None
        found = self._bodies.get(image_id, image)
        if found is None:
            return None
        answer, body = found
        lines = answer.header_lines(https)
        return None if lines is None else (_HIT + lines, body)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=False, scope=DELETE)
        token = req.get_header("X-Delete-Token") or req.get_param("delete_token") or None
        await chitram.images.delete(image_id, principal=principal, delete_token=token)
        resp.status = 204


def _fallback_name(image: Image, suffix: str = "") -> str:
    return f"image{suffix}.{_EXTENSIONS.get(image.content_type, 'bin')}"


def _stem(filename: str) -> str:
    return filename.rsplit(".", 1)[0] if "." in filename.strip(".") else filename


async def _prefetched(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    except Exception:
        log.exception("streaming a response body failed after its headers were sent")
        raise
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def _send_body(resp: falcon.asgi.Response, body: AsyncIterator[bytes], length: int) -> None:
    """Start the stream before the status line goes out, so a missing object is still an error
    response; a body that fits in one chunk is sent in one piece."""
    first = await anext(body, b"")
    if len(first) >= length:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()
        resp.data = first
    else:
        resp.stream = _prefetched(first, body)
    resp.content_length = length


@attrs.frozen
class _Served:
    """What /file, /thumbnail and a variant answer for one image, apart from the body: prepared
    once per image (see :class:`_Prepared`) so a request only copies the headers."""

    etag: str
    answer: Prepared
    """ETag, Cache-Control, Accept-Ranges, Content-Disposition, Content-Type and the file
    policy's security headers: what both the Falcon answer and the prepared one carry."""

    @property
    def size(self) -> int:
        return self.answer.length

    @classmethod
    def build(
        cls, *, etag: str, size: int, content_type: str, filename: str, fallback: str
    ) -> _Served:
        fields = (
            ("etag", etag),
            ("cache-control", IMMUTABLE),
            ("accept-ranges", "bytes"),
            ("content-disposition", content_disposition(filename, fallback)),
        )
        answer = Prepared(fields, content_type, size, Policy.FILE)
        return cls(etag=etag, answer=answer)


class _BinaryResource(Generic[S]):
    """What /file and /thumbnail share: validators, ranges, HEAD and the security headers.

    The hot path (a public GET of a small, cached image) costs one metadata lookup, which is
    what refuses a deleted image, a dict lookup for the prepared headers and, for the body,
    one for the bytes held in memory; no thread hop, no header built per request.
    """

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle
        self._served = _Prepared[_Served]()

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        await self._serve(req, resp, image_id, body=True)

    async def on_head(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        await self._serve(req, resp, image_id, body=False)

    async def prepared(self, image_id: str, https: bool) -> Answer | None:
        """The answer to an anonymous GET or HEAD without validators or a range, when this
        image's response is prepared and its bytes are in memory (see
        ``chitram_falcon.fastread``); None to let Falcon answer. The lookup is the one every
        request makes, so a deleted image is never answered here either."""
        if not self._served.has(image_id):
            return None
        try:
            chitram = self.handle.chitram
            source = await self._source(chitram, image_id)
        except Exception:  # Falcon looks it up again and answers as for any error
            return None
        ready = self._ready(chitram, image_id, source)
        return None if ready is None else (ready[0].answer.raw_headers(https), ready[1])

    def prepared_now(self, image_id: str, https: bool) -> Lines | None:
        """:meth:`prepared` as header lines, when the lookup is answered in this process with
        no I/O (a cache hit held here, a thumbnail remembered); None otherwise, and
        :meth:`prepared` or Falcon answers."""
        if not self._served.has(image_id):
            return None
        try:
            chitram = self.handle.chitram
            source = self._held(chitram, image_id)
        except Exception:  # closed, or not open yet: Falcon answers
            return None
        ready = None if source is None else self._ready(chitram, image_id, source)
        if ready is None:
            return None
        lines = ready[0].answer.header_lines(https)
        return None if lines is None else (lines, ready[1])

    def _ready(self, chitram: Chitram, image_id: str, source: S) -> tuple[_Served, bytes] | None:
        """The prepared answer for ``source`` just looked up and its whole body in memory, or
        None when either is missing (what both prepared reads need)."""
        served = self._served.get(image_id, source)
        if served is None:
            return None
        data = self._in_memory(chitram, source)
        if data is None or len(data) != served.size:
            return None
        return served, data

    async def _source(self, chitram: Chitram, image_id: str) -> S:
        """What is served, looked up afresh (404 for an image that is gone)."""
        raise NotImplementedError

    def _held(self, chitram: Chitram, image_id: str) -> S | None:
        """What :meth:`_source` would find, when this process holds it (no I/O), else None."""
        raise NotImplementedError

    def _prepare(self, source: S) -> _Served:
        raise NotImplementedError

    def _in_memory(self, chitram: Chitram, source: S) -> bytes | None:
        raise NotImplementedError

    def _stream(self, chitram: Chitram, source: S, start: int, end: int) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def _serve(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str, *, body: bool
    ) -> None:
        chitram = self.handle.chitram
        if req.auth is not None:
            await authenticate(req, chitram, required=False, scope=READ)
        source = await self._source(chitram, image_id)
        served = self._served.get(image_id, source)
        if served is None:
            served = self._served.put(image_id, source, self._prepare(source))
        await self._respond(
            req,
            resp,
            served,
            body=body,
            in_memory=lambda: self._in_memory(chitram, source),
            stream=lambda start, end: self._stream(chitram, source, start, end),
        )

    async def _respond(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        served: _Served,
        *,
        body: bool,
        in_memory: Callable[[], bytes | None],
        stream: Callable[[int, int], AsyncIterator[bytes]],
    ) -> None:
        """Validators, 304, ranges, HEAD and the body for any ``_Served`` (shared by all)."""
        served.answer.apply(resp)
        if_none_match = req.get_header("If-None-Match")
        if if_none_match is not None and none_match(if_none_match, served.etag):
            resp.status = 304
            return
        size = served.size
        selected = self._range(req, served.etag, size)
        resp.content_type = served.answer.content_type
        start, end = 0, size
        if selected is not None:
            start, end = selected.start, selected.end
            resp.status = 206
            resp.set_header("Content-Range", selected.content_range(size))
        if not body:
            resp.content_length = end - start
            return
        data = in_memory()
        if data is not None:
            resp.data = data if end - start == len(data) else data[start:end]
            resp.content_length = end - start
            return
        await _send_body(resp, stream(start, end), end - start)

    def _range(self, req: falcon.asgi.Request, etag: str, size: int) -> ByteRange | None:
        """The single range to send, None for everything; 416 when nothing of it exists."""
        header = req.get_header("Range")
        if header is None or not if_range_allows(req.get_header("If-Range"), etag):
            return None
        try:
            return parse_range(header, size)
        except RangeNotSatisfiable:
            raise _Unsatisfiable(size) from None


class _Unsatisfiable(InvalidRequest):
    """416: rendered through the envelope with ``Content-Range: bytes */size``."""

    status = 416
    default_message = "The requested range is not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(size=size)
        self.http_headers = {"Content-Range": f"bytes */{size}"}


class ImageFileResource(_BinaryResource[Image]):
    """GET/HEAD /api/v1/images/{id}/file: the stored bytes, under the detected type."""

    async def _source(self, chitram: Chitram, image_id: str) -> Image:
        image, _ = await chitram.images.get_with_cache_status(image_id)
        return image

    def _held(self, chitram: Chitram, image_id: str) -> Image | None:
        return chitram.images.held(image_id)

    def _prepare(self, image: Image) -> _Served:
        return _Served.build(
            etag=image.etag,
            size=image.file_size,
            content_type=image.content_type,
            filename=image.filename,
            fallback=_fallback_name(image),
        )

    def _in_memory(self, chitram: Chitram, image: Image) -> bytes | None:
        return chitram.images.small_object(image)

    def _stream(self, chitram: Chitram, image: Image, start: int, end: int) -> AsyncIterator[bytes]:
        return chitram.images.stream(image, start, end)


class ThumbnailResource(_BinaryResource[tuple[Image, Thumbnail]]):
    """GET/HEAD /api/v1/images/{id}/thumbnail: made on demand if it is not there yet."""

    async def _source(self, chitram: Chitram, image_id: str) -> tuple[Image, Thumbnail]:
        image = await chitram.images.get(image_id)
        return image, await chitram.images.thumbnail_of(image)

    def _held(self, chitram: Chitram, image_id: str) -> tuple[Image, Thumbnail] | None:
        image = chitram.images.held(image_id)
        if image is None:
            return None
        thumb = chitram.images.held_thumbnail(image)
        return None if thumb is None else (image, thumb)

    def _prepare(self, source: tuple[Image, Thumbnail]) -> _Served:
        image, thumb = source
        ext = _EXTENSIONS.get(thumb.content_type, "jpg")
        return _Served.build(
            etag=f'"{thumb.sha256}"',
            size=thumb.size,
            content_type=thumb.content_type,
            filename=f"{_stem(image.filename)}.thumbnail.{ext}",
            fallback=f"thumbnail.{ext}",
        )

    def _in_memory(self, chitram: Chitram, source: tuple[Image, Thumbnail]) -> bytes | None:
        return chitram.images.small_thumbnail(source[1])

    def _stream(
        self, chitram: Chitram, source: tuple[Image, Thumbnail], start: int, end: int
    ) -> AsyncIterator[bytes]:
        return chitram.images.stream_thumbnail(source[1], start, end)


# variants (docs/http-api.md#variants)
_VARIANT_EXTENSIONS = {**_EXTENSIONS, "image/avif": "avif"}


class VariantResource(_BinaryResource[Image]):
    """GET/HEAD /api/v1/images/{id}/variants/{spec}: presets unsigned, anything else signed.

    The spec and signature are checked before any lookup (400 malformed, 403 unsigned), so an
    unsigned request costs no database or storage work; then it is served exactly as /file.
    """

    async def on_get(  # type: ignore[override]
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str, spec: str
    ) -> None:
        await self._variant(req, resp, image_id, spec, body=True)

    async def on_head(  # type: ignore[override]
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str, spec: str
    ) -> None:
        await self._variant(req, resp, image_id, spec, body=False)

    async def _variant(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        image_id: str,
        spec: str,
        *,
        body: bool,
    ) -> None:
        chitram = self.handle.chitram
        if req.auth is not None:
            await authenticate(req, chitram, required=False, scope=READ)
        parsed = chitram.variants.authorize(image_id, spec, req.get_param("sig"))
        if parsed.format in (None, "auto"):
            # The content and Accept pick the format: on errors and 304s too.
            resp.set_header("Vary", "Accept")
        image = await chitram.images.get(image_id)
        variant = await chitram.variants.get(image, parsed, accept=req.get_header("Accept"))
        ext = _VARIANT_EXTENSIONS.get(variant.content_type, "bin")
        served = _Served.build(
            etag=variant.etag,
            size=variant.size,
            content_type=variant.content_type,
            filename=f"{_stem(image.filename)}.{variant.spec}.{ext}",
            fallback=f"variant.{ext}",
        )
        await self._respond(
            req,
            resp,
            served,
            body=body,
            in_memory=lambda: None,
            stream=lambda start, end: chitram.variants.stream(variant, start, end),
        )
