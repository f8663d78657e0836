"""Upload by URL: fetching a remote image without letting the URL reach inside the network.

:mod:`~chitram_core.fetch.addresses` decides which addresses may be dialled;
:mod:`~chitram_core.fetch.dial` resolves a name, checks every answer and connects to the checked
address (under httpx, as its network backend); :mod:`~chitram_core.fetch.fetcher` walks the
redirects and hands the body to the ingest pipeline as a :class:`UrlSource`. Needs httpx
(``pip install 'chitram[fetch]'``; the core and ``chitram[server]`` need no HTTP client).
"""

from chitram_core.fetch.addresses import AddressPolicy, refusal
from chitram_core.fetch.dial import Resolver, system_resolver
from chitram_core.fetch.fetcher import Fetched, Fetcher, UrlSource

__all__ = [
    "AddressPolicy",
    "Fetched",
    "Fetcher",
    "Resolver",
    "UrlSource",
    "refusal",
    "system_resolver",
]
