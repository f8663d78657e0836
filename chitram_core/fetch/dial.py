"""The connect-time guard: resolve, check every answer, connect to the checked address.

:class:`GuardedBackend` is httpx's network backend for URL uploads. httpx asks it for a TCP
connection to ``(host, port)``; it resolves ``host`` once (with the :data:`Resolver` it was
given), refuses the connection when the port or any answer is not open (``URL_NOT_ALLOWED``),
and otherwise connects to one of the very addresses it checked. A name that resolves differently
a moment later (DNS rebinding) changes nothing: nothing is resolved again. TLS still runs over
that connection with the URL's host name (SNI and certificate checks), and the ``Host`` header
is the URL's: only the address lookup is taken out of the socket layer's hands. Every redirect
hop is a new connection, so it passes through here too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import anyio
import httpcore

from chitram_core.errors import FetchFailed, UrlNotAllowed
from chitram_core.fetch.addresses import AddressPolicy, IPAddress

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""``(host, port) -> addresses``: every A/AAAA answer for ``host`` (a literal address: itself)."""


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is written as one (``[::1]`` included), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's answers for ``host``; a literal address is its own answer."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror
        raise FetchFailed(f"The name {host!r} could not be resolved", host=host) from exc
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """See the module docstring. ``dialled`` lists every address connected to, in order."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()  # anyio: asyncio and trio alike
        self.dialled: list[IPAddress] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if port not in self.policy.ports:
            raise UrlNotAllowed(f"Port {port} is not open to fetches", host=host, port=port)
        answers = await self.resolver(host, port)
        if not answers:
            raise FetchFailed(f"The name {host!r} has no address", host=host)
        refused = self.policy.first_refused(answers)
        if refused is not None:
            ip, why = refused
            raise UrlNotAllowed(
                f"{host} leads to {ip}, {why}, which is not open to fetches", host=host
            )
        failure: Exception | None = None
        for ip in answers:  # only ever the addresses just checked
            try:
                stream = await self.inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            self.dialled.append(ip)
            return stream
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UrlNotAllowed("Unix sockets are not open to fetches")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
