"""``Fetcher``: a URL's image as an ingest source, the redirects walked one checked hop at a time.

Before each hop the URL itself is checked (``http``/``https`` only, an open port); the
connection is then made through :class:`~chitram_core.fetch.dial.GuardedBackend`, which checks
the addresses it dials. Redirects are followed here, not by httpx, at most
:data:`MAX_REDIRECTS`. The answer must be a 2xx; its ``Content-Type`` is ignored (the pipeline
reads the type from the bytes) and ``Content-Length`` only lets the size limit refuse early.
The body is asked for uncompressed and read raw, so the size limit counts the bytes received.
The whole fetch, body included, has ``CHITRAM_FETCH_TIMEOUT`` seconds; connecting at most
:data:`CONNECT_TIMEOUT` of them. No environment proxy is used (it would dial for us, unchecked).
"""

from __future__ import annotations

import math
import posixpath
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import unquote

import anyio
import attrs
import httpcore
import httpx

from chitram_core.errors import FetchFailed, UrlNotAllowed, ValidationError
from chitram_core.fetch.addresses import AddressPolicy
from chitram_core.fetch.dial import GuardedBackend, Resolver, system_resolver
from chitram_core.models import Principal
from chitram_core.settings import Settings

MAX_REDIRECTS = 3
CONNECT_TIMEOUT = 5.0
MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool dialling through ``backend``."""

    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, retries=0, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


@attrs.define
class Fetched:
    """An answer whose body has not been read yet."""

    response: httpx.Response
    url: str
    deadline: float
    """``anyio.current_time()`` past which reading the body fails."""
    _raw: AsyncIterator[bytes] | None = None

    def raw(self) -> AsyncIterator[bytes]:
        """The body as received (called once)."""
        self._raw = self.response.aiter_raw()
        return self._raw

    async def aclose(self) -> None:
        """Close the body's reader (a suspended one is otherwise left to the garbage
        collector) and the answer."""
        closer = getattr(self._raw, "aclose", None)
        if closer is not None:
            await closer()
        await self.response.aclose()

    @property
    def declared_length(self) -> int | None:
        raw = self.response.headers.get("content-length", "")
        return int(raw) if raw.isdigit() else None

    @property
    def filename(self) -> str | None:
        name = posixpath.basename(unquote(httpx.URL(self.url).path))
        return name[:255] or None


class Fetcher:
    """Fetches for URL uploads under ``settings``' ports, networks and time budget.
    ``resolver``: how names are resolved (the system's by default; tests give their own)."""

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None) -> None:
        self.policy = AddressPolicy(
            ports=settings.fetch_allow_ports, allow=settings.fetch_allow_networks
        )
        self.resolver: Resolver = resolver if resolver is not None else system_resolver
        self.timeout = settings.fetch_timeout
        self._ssl_context: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """One TLS context for every fetch (loading the CA bundle costs tens of ms)."""
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return self._ssl_context

    @asynccontextmanager
    async def open(self, url: object) -> AsyncIterator[Fetched]:
        """The final answer to ``url`` after its redirects, its body unread; closed on exit.
        ``URL_NOT_ALLOWED``, ``FETCH_FAILED`` (with the reason) or ``VALIDATION_ERROR``."""
        current = _checked_url(url, self.policy)
        deadline = anyio.current_time() + self.timeout
        backend = GuardedBackend(self.policy, self.resolver)
        timeout = httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout))
        async with httpx.AsyncClient(
            transport=_GuardedTransport(backend, self.ssl_context()),
            trust_env=False,
            follow_redirects=False,
            timeout=timeout,
        ) as client:
            response = await self._follow(client, current, deadline)
            fetched = Fetched(response, str(response.url), deadline)
            try:
                yield fetched
            finally:
                with anyio.CancelScope(shield=True):
                    await fetched.aclose()

    async def _follow(
        self, client: httpx.AsyncClient, url: httpx.URL, deadline: float
    ) -> httpx.Response:
        for _hop in range(MAX_REDIRECTS + 1):
            request = client.build_request(
                "GET",
                url,
                headers={
                    "Accept": "image/*",
                    "Accept-Encoding": "identity",
                    "User-Agent": "chitram-fetch",
                },
            )
            response = await _guarded(client.send(request, stream=True), deadline, self.timeout)
            if response.is_redirect:
                location = response.headers.get("location", "")
                await response.aclose()
                url = _checked_url(str(url.join(location)), self.policy)
                continue
            if not response.is_success:
                await response.aclose()
                raise FetchFailed(
                    f"The remote server answered {response.status_code}",
                    upstream_status=response.status_code,
                )
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                await response.aclose()
                raise FetchFailed(f"The remote server sent a {encoding}-encoded body")
            return response
        raise FetchFailed(f"More than {MAX_REDIRECTS} redirects")


async def _guarded(
    call: Awaitable[httpx.Response], deadline: float, budget: float
) -> httpx.Response:
    """``call`` within what is left of the budget, httpx's failures as ``FETCH_FAILED``."""
    try:
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            return await call
    except TimeoutError:
        raise FetchFailed(f"The remote server took longer than {budget:g} s") from None
    except httpx.TimeoutException as exc:
        raise FetchFailed(f"The remote server timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"The fetch failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _checked_url(url: object, policy: AddressPolicy) -> httpx.URL:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("url must be a non-empty string", field="url")
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"url is longer than {MAX_URL_LENGTH} characters", field="url")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValidationError(f"url is not a valid URL: {exc}", field="url") from None
    scheme = parsed.scheme.lower()
    if scheme not in SCHEMES:
        raise UrlNotAllowed(f"Only http and https URLs can be fetched, not {scheme or 'this'}")
    if not parsed.host:
        raise ValidationError("url has no host", field="url")
    port = parsed.port or SCHEMES[scheme]
    if port not in policy.ports:
        raise UrlNotAllowed(f"Port {port} is not open to fetches", port=port)
    return parsed


@attrs.frozen
class UrlSource:
    """An ingest source over a :class:`Fetched` answer. ``arrived`` is awaited once the last
    byte has been read (the HTTP app takes its upload slot there)."""

    fetched: Fetched
    owner: Principal | None = None
    arrived: Callable[[], Awaitable[None]] | None = None

    @property
    def filename(self) -> str | None:
        return self.fetched.filename

    @property
    def declared_length(self) -> int | None:
        return self.fetched.declared_length

    def chunks(self) -> AsyncIterator[bytes]:
        return _Body(self.fetched, self.arrived)


class _Body:
    """The raw body, each read within the fetch's deadline (a class rather than an async
    generator, for the reason given on :class:`~chitram_core.ingest.upload.Tapped`)."""

    def __init__(self, fetched: Fetched, arrived: Callable[[], Awaitable[None]] | None) -> None:
        self.fetched = fetched
        self.raw = fetched.raw()
        self.arrived = arrived

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        left = self.fetched.deadline - anyio.current_time()
        try:
            with anyio.fail_after(max(0.0, left) if math.isfinite(left) else None):
                return await self.raw.__anext__()
        except StopAsyncIteration:
            if self.arrived is not None:
                arrived, self.arrived = self.arrived, None
                await arrived()
            raise
        except TimeoutError:
            raise FetchFailed("The remote server took too long to send the image") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"The fetch failed: {_reason(exc)}") from None
