"""X-Forwarded-For, Forwarded and X-Real-IP name the same client the same way."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from chitram_core.limits.addresses import (
    client_address,
    client_address_from_headers,
    relayed_for,
)

TRUSTED = ("10.0.0.0/8",)
ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str),
)


def forwarded_value(address: str) -> str:
    """RFC 7239: an IPv6 address is quoted and bracketed."""
    return f'for="[{address}]"' if ":" in address else f"for={address}"


@given(st.lists(ADDRESSES, min_size=1, max_size=4))
def test_forwarded_names_the_client_as_x_forwarded_for_does(chain: list[str]) -> None:
    xff = ", ".join(chain)
    forwarded = ", ".join(f"{forwarded_value(a)};proto=https" for a in chain)
    expected = client_address("10.0.0.1", xff, TRUSTED)
    assert client_address("10.0.0.1", relayed_for(None, forwarded, None), TRUSTED) == expected
    headers = [(b"forwarded", forwarded.encode())]
    assert client_address_from_headers("10.0.0.1", headers, TRUSTED) == expected


@given(ADDRESSES)
def test_x_real_ip_names_the_client_behind_a_trusted_proxy_only(address: str) -> None:
    relayed = relayed_for(None, None, address)
    # (an address inside the trusted network is the leftmost entry, so the client all the same)
    assert client_address("10.0.0.1", relayed, TRUSTED) == str(ipaddress.ip_address(address))
    assert client_address("203.0.113.5", relayed, TRUSTED) == "203.0.113.5"  # untrusted peer


def test_x_forwarded_for_wins_over_the_others() -> None:
    assert relayed_for("198.51.100.1", "for=198.51.100.2", "198.51.100.3") == "198.51.100.1"
    assert relayed_for(None, "for=198.51.100.2", "198.51.100.3") == "198.51.100.2"
    assert relayed_for(None, "by=10.0.0.1", "198.51.100.3") == "198.51.100.3"
