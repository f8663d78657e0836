"""Which address a request comes from, trusting ``X-Forwarded-For`` only from our proxies.

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


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str:
    """The client's address for rate limiting and logs.

    ``forwarded_for`` is the X-Forwarded-For value (several headers joined with ``,``).
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
