"""X-Forwarded-For is believed only from trusted proxies, and read from the right."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chitram_core.limits import client_address
from chitram_core.limits.addresses import parse_address

PROXIES = ["10.0.0.0/8", "192.168.1.1"]


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("203.0.113.7", "1.2.3.4", []) == "203.0.113.7"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert client_address("203.0.113.7", "1.2.3.4", PROXIES) == "203.0.113.7"


def test_a_trusted_proxy_forwards_the_client() -> None:
    assert client_address("10.0.0.5", "198.51.100.20", PROXIES) == "198.51.100.20"


def test_trusted_proxies_are_skipped_from_the_right() -> None:
    xff = "198.51.100.20, 10.1.1.1, 192.168.1.1"
    assert client_address("10.0.0.5", xff, PROXIES) == "198.51.100.20"


def test_a_spoofed_leftmost_entry_is_ignored() -> None:
    xff = "6.6.6.6, 198.51.100.20, 10.1.1.1"
    assert client_address("10.0.0.5", xff, PROXIES) == "198.51.100.20"


def test_malformed_entries_are_skipped() -> None:
    xff = "198.51.100.20, unknown, not-an-ip, , 10.1.1.1"
    assert client_address("10.0.0.5", xff, PROXIES) == "198.51.100.20"


def test_when_every_entry_is_trusted_the_leftmost_is_the_client() -> None:
    assert client_address("10.0.0.5", "10.9.9.9, 10.1.1.1", PROXIES) == "10.9.9.9"


def test_an_empty_or_garbage_header_gives_the_peer() -> None:
    assert client_address("10.0.0.5", "", PROXIES) == "10.0.0.5"
    assert client_address("10.0.0.5", "garbage, , ;", PROXIES) == "10.0.0.5"


def test_ports_and_brackets_are_understood() -> None:
    assert client_address("10.0.0.5", "198.51.100.20:4711", PROXIES) == "198.51.100.20"
    assert client_address("10.0.0.5", "[2001:db8::1]:443", PROXIES) == "2001:db8::1"
    assert client_address("10.0.0.5", "2001:db8::2", PROXIES) == "2001:db8::2"


def test_ipv4_mapped_ipv6_peers_match_ipv4_networks() -> None:
    assert client_address("::ffff:10.0.0.5", "198.51.100.20", PROXIES) == "198.51.100.20"


def test_ipv6_proxies() -> None:
    assert client_address("fd00::1", "198.51.100.20, fd00::2", ["fd00::/8"]) == "198.51.100.20"


def test_a_peer_that_is_not_an_address_is_kept() -> None:
    assert client_address("testclient", "1.2.3.4", PROXIES) == "testclient"
    assert client_address(None, "1.2.3.4", PROXIES) == "unknown"


addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
junk = st.text(alphabet=st.characters(blacklist_characters=","), max_size=12)
trusted_lists = st.lists(
    st.sampled_from(["10.0.0.0/8", "fd00::/8", "127.0.0.1", "::1"]), max_size=3
)


def normalised(text: str) -> str | None:
    address = parse_address(text)
    return None if address is None else str(address)


@given(
    peer=addresses,
    entries=st.lists(st.one_of(addresses, junk), max_size=8),
    trusted=trusted_lists,
)
def test_the_answer_is_the_peer_or_a_header_entry(
    peer: str, entries: list[str], trusted: list[str]
) -> None:
    result = client_address(peer, ", ".join(entries), trusted)
    candidates = {normalised(peer)} | {normalised(e) for e in entries}
    assert result in candidates - {None}


@given(peer=addresses, entries=st.lists(addresses, max_size=8), trusted=trusted_lists)
def test_an_untrusted_peer_is_always_the_answer(
    peer: str, entries: list[str], trusted: list[str]
) -> None:
    address = parse_address(peer)
    assert address is not None
    networks = [ipaddress.ip_network(t) for t in trusted]
    assume(not any(address.version == n.version and address in n for n in networks))
    assert client_address(peer, ", ".join(entries), trusted) == str(address)


@given(
    client=st.ip_addresses(v=4).filter(lambda a: not a.is_private).map(str),
    spoofed=st.lists(st.one_of(addresses, junk), max_size=4),
    hops=st.lists(st.sampled_from(["10.1.2.3", "10.200.0.1", "192.168.1.1"]), max_size=4),
)
def test_whatever_the_client_writes_it_is_seen_as_itself(
    client: str, spoofed: list[str], hops: list[str]
) -> None:
    xff = ", ".join([*spoofed, client, *hops])
    assert client_address("10.0.0.5", xff, PROXIES) == client


@pytest.mark.parametrize("bad", ["[::1", "1.2.3.4.5", "::ffff:zz", "%eth0"])
def test_broken_entries_never_raise(bad: str) -> None:
    assert client_address("10.0.0.5", bad, PROXIES) == "10.0.0.5"


@given(network=st.integers(0, 2**64 - 1), a=st.integers(0, 2**64 - 1), b=st.integers(0, 2**64 - 1))
def test_ipv6_addresses_of_one_64_share_a_rate_limit_bucket(network: int, a: int, b: int) -> None:
    from chitram_core.limits import rate_limit_identity

    first = str(ipaddress.IPv6Address((network << 64) | a))
    second = str(ipaddress.IPv6Address((network << 64) | b))
    assume(ipaddress.IPv6Address(first).ipv4_mapped is None)
    assume(ipaddress.IPv6Address(second).ipv4_mapped is None)
    assert rate_limit_identity(first) == rate_limit_identity(second)
    assert rate_limit_identity(first).endswith("/64")
    neighbour = str(ipaddress.IPv6Address((((network + 1) % 2**64) << 64) | a))
    assume(ipaddress.IPv6Address(neighbour).ipv4_mapped is None)
    assert rate_limit_identity(neighbour) != rate_limit_identity(first)


@given(address=st.ip_addresses(v=4))
def test_ipv4_addresses_are_their_own_bucket(address: ipaddress.IPv4Address) -> None:
    from chitram_core.limits import rate_limit_identity

    assert rate_limit_identity(str(address)) == str(address)
    assert rate_limit_identity(f"::ffff:{address}") == str(address)
