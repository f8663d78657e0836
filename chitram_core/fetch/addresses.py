"""Which addresses a URL upload may connect to.

Only public unicast addresses, unless an operator opened a network
(``CHITRAM_FETCH_ALLOW_NETWORKS``). An IPv6 address that carries an IPv4 one (IPv4-mapped
``::ffff:a.b.c.d``, IPv4-compatible, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) is judged
by the IPv4 address inside as well: ``::ffff:127.0.0.1`` is loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
SPECIAL: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", "a this-network address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("100::/64", "a discard address"),
        ("2001::/23", "an IETF protocol address"),
        ("2001:db8::/32", "a documentation address"),
    )
)
"""IANA special-purpose blocks, listed here too: Python's own flags differ between versions."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, if it stands for one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be dialled (a short phrase), or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped IPv6 address"
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = refusal(inner)
            if why is not None:
                return f"{why} (as IPv6)"
            if ip.ipv4_mapped is not None:
                return None  # it is the IPv4 address, which passed
        if ip in NAT64_LOCAL:
            return "a local NAT64 address"
    for net, why in SPECIAL:
        if ip.version == net.version and ip in net:
            return why
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT, "a shared (CGNAT) address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (
            isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.IPv6Network("fc00::/7"),
            "a unique-local address",
        ),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    for hit, why in checks:
        if hit:
            return why
    return None


class AddressPolicy:
    """The addresses and ports a fetch may connect to: public unicast ones, plus ``allow``."""

    def __init__(self, *, ports: Iterable[int], allow: Iterable[str | Network] = ()) -> None:
        self.ports = frozenset(ports)
        self.allow: tuple[Network, ...] = tuple(
            net if not isinstance(net, str) else ipaddress.ip_network(net, strict=False)
            for net in allow
        )

    def opened(self, ip: IPAddress) -> bool:
        """Whether an operator opened a network holding ``ip`` (or the IPv4 address in it)."""
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_ipv4(ip)) is not None:
            forms.append(inner)
        return any(
            form.version == net.version and form in net for form in forms for net in self.allow
        )

    def why_not(self, ip: IPAddress) -> str | None:
        """None when ``ip`` may be dialled, else the reason."""
        if self.opened(ip):
            return None
        return refusal(ip)

    def first_refused(self, answers: Sequence[IPAddress]) -> tuple[IPAddress, str] | None:
        """The first answer that may not be dialled, with the reason; None when all may."""
        for ip in answers:
            why = self.why_not(ip)
            if why is not None:
                return ip, why
        return None
