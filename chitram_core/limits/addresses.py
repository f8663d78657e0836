"""Which address a request comes from, trusting proxy headers only from our proxies.

v1 believed the leftmost X-Forwarded-For entry from anyone, so a client chose its own rate-limit
bucket. Here the header counts only when the peer is a configured trusted proxy, and it is read
from the right: each trusted proxy appended the address it saw, so the first untrusted entry is
the client as seen by our own infrastructure. Whatever the client wrote further left is ignored.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=64)
def _networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in trusted)


def parse_address(text: str | None) -> IPAddress | None:
    """An IP address from a peer or header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``)."""
    if not text:
        return None
    value = text.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        value = value[1:end]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    if "%" in value:
        value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def forwarded_for_entries(forwarded: str) -> str:
    """The ``for=`` addresses of an RFC 7239 ``Forwarded`` value, comma-joined in order (as
    X-Forwarded-For lists them); obfuscated or unknown identifiers come out as they are and
    are skipped later as malformed."""
    found: list[str] = []
    for element in forwarded.split(","):
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                found.append(value.strip().strip('"'))
    return ",".join(found)


def relayed_for(
    forwarded_for: str | None, forwarded: str | None, real_ip: str | None
) -> str | None:
    """What a proxy said about the client, in the order chitram reads the headers:
    ``X-Forwarded-For``, else ``Forwarded``'s ``for=``, else ``X-Real-IP`` (each only counts
    when the peer is a trusted proxy)."""
    if forwarded_for and forwarded_for.strip():
        return forwarded_for
    if forwarded and forwarded.strip():
        entries = forwarded_for_entries(forwarded)
        if entries:
            return entries
    if real_ip and real_ip.strip():
        return real_ip
    return None


_RELAY_HEADERS = {b"x-forwarded-for": 0, b"forwarded": 1, b"x-real-ip": 2}


def client_address_from_headers(
    peer: str | None, headers: Sequence[tuple[bytes, bytes]], trusted_proxies: Sequence[str]
) -> str:
    """:func:`client_address` from an ASGI scope's raw (lower-case) header list."""
    if not trusted_proxies:
        return client_address(peer, None, trusted_proxies)
    values: list[list[str]] = [[], [], []]
    for name, value in headers:
        index = _RELAY_HEADERS.get(name)
        if index is not None:
            values[index].append(value.decode("latin-1"))
    joined = [",".join(v) or None for v in values]
    return client_address(peer, relayed_for(*joined), trusted_proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str:
    """The client's address for rate limiting, ``/health`` and the access line.

    ``forwarded_for`` is what the proxies said (:func:`relayed_for`: the X-Forwarded-For value,
    several headers joined with ``,``, or ``Forwarded``'s ``for=`` entries, or X-Real-IP).
    ``trusted_proxies`` are addresses or networks (``10.0.0.0/8``). Malformed entries are
    skipped. When every entry is a trusted proxy, the leftmost one is the client. A peer that is
    not an IP address (a Unix socket, a test client) is returned as given, or ``"unknown"``.
    """
    peer_address = parse_address(peer)
    if peer_address is None:
        return (peer or "").strip() or "unknown"
    networks = _networks(tuple(trusted_proxies))
    if not forwarded_for or not networks or not _trusted(peer_address, networks):
        return str(peer_address)
    leftmost: IPAddress | None = None
    for entry in reversed(forwarded_for.split(",")):
        address = parse_address(entry)
        if address is None:
            continue
        if not _trusted(address, networks):
            return str(address)
        leftmost = address
    return str(leftmost if leftmost is not None else peer_address)


IPV6_PREFIX = 64


def rate_limit_identity(address: str) -> str:
    """The bucket a client address counts in: IPv4 addresses alone, IPv6 addresses by their
    /64 network. One IPv6 subscriber is usually handed a whole /64 (often more), so counting per
    address would give each client 2**64 buckets to rotate through."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((int(parsed), IPV6_PREFIX), strict=False)
        return str(network)
    return str(parsed) if parsed is not None else address
