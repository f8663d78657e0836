"""Which addresses a URL upload may dial: every non-public class refused, in every IPv6 form."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chitram_core.fetch.addresses import AddressPolicy, IPAddress, refusal

FORBIDDEN_V4 = [
    "0.0.0.0/8",  # this network, 0.0.0.0 included
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, cloud metadata
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast included
]
FORBIDDEN_V6 = [
    "::/128",
    "::1/128",
    "fe80::/10",  # link-local
    "fc00::/7",  # unique-local
    "fec0::/10",  # site-local
    "ff00::/8",  # multicast
    "2001:db8::/32",  # documentation
    "100::/64",  # discard
]


def in_network(cidr: str) -> st.SearchStrategy[IPAddress]:
    net = ipaddress.ip_network(cidr)
    return st.integers(0, net.num_addresses - 1).map(lambda i: net[i])


forbidden_v4 = st.sampled_from(FORBIDDEN_V4).flatmap(in_network)
forbidden_v6 = st.sampled_from(FORBIDDEN_V6).flatmap(in_network)


def ipv6_forms(ip: ipaddress.IPv4Address) -> list[ipaddress.IPv6Address]:
    """IPv6 addresses that reach ``ip``: IPv4-mapped, NAT64, 6to4, IPv4-compatible."""
    n = int(ip)
    return [
        ipaddress.IPv6Address((0xFFFF << 32) | n),
        ipaddress.IPv6Address((0x64FF9B << 96) | n),
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),
        ipaddress.IPv6Address(n),
    ]


@given(forbidden_v4)
def test_every_non_public_ipv4_class_is_refused(ip: IPAddress) -> None:
    assert refusal(ip) is not None


@given(forbidden_v6)
def test_every_non_public_ipv6_class_is_refused(ip: IPAddress) -> None:
    assert refusal(ip) is not None


@given(forbidden_v4)
def test_ipv6_forms_of_a_forbidden_ipv4_address_are_refused(ip: ipaddress.IPv4Address) -> None:
    for form in ipv6_forms(ip):
        assert refusal(form) is not None, form


@given(st.ip_addresses())
def test_only_global_addresses_pass(ip: IPAddress) -> None:
    if refusal(ip) is None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        assert ip.is_global
        assert not ip.is_multicast


@pytest.mark.parametrize(
    "text", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "93.184.216.34"]
)
def test_public_addresses_pass(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("100.64.1.1", "CGNAT"),
        ("0.0.0.0", "this-network"),
        ("::", "unspecified"),
        ("fd00::1", "unique-local"),
        ("10.1.2.3", "private"),
    ],
)
def test_the_reason_names_the_class(text: str, why: str) -> None:
    reason = refusal(ipaddress.ip_address(text))
    assert reason is not None and why in reason


@given(forbidden_v4, st.integers(8, 32))
def test_an_opened_network_lets_its_addresses_through_and_no_others(
    ip: ipaddress.IPv4Address, prefix: int
) -> None:
    net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    policy = AddressPolicy(ports=[80], allow=[str(net)])
    assert policy.why_not(ip) is None
    assert policy.why_not(ipaddress.IPv6Address((0xFFFF << 32) | int(ip))) is None
    edges = (int(net.network_address) - 1, int(net.broadcast_address) + 1)
    for other in (ipaddress.IPv4Address(n) for n in edges if 0 <= n < 2**32):
        if refusal(other) is not None:
            assert policy.why_not(other) is not None


def test_first_refused_reports_any_bad_answer_among_good_ones() -> None:
    policy = AddressPolicy(ports=[80])
    answers = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("127.0.0.1")]
    refused = policy.first_refused(answers)
    assert refused is not None and str(refused[0]) == "127.0.0.1"
