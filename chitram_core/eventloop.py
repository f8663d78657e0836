"""Which async backend runs the caller: asyncio or trio (the two anyio supports).

Most of the SDK needs no answer to this: it is written against anyio. The few places that hand
work between threads or spawn a task outside the caller's tree need the backend's own primitive
(asyncio's ``call_soon_threadsafe``, trio's ``TrioToken.run_sync_soon``), because anyio has no
non-blocking way for a foreign thread to wake a task. Trio is asked first, and only when it is
imported, so no asyncio function is called under trio.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chitram_core.settings import Settings

Backend = Literal["asyncio", "trio"]


def running_backend() -> Backend:
    """The backend of the running event loop; ``"asyncio"`` when it is not trio."""
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        return "trio"
    return "asyncio"


def asyncio_only_parts(settings: Settings) -> list[str]:
    """The configured parts whose client library runs on asyncio only, each with the setting
    that chose it and what to use instead under trio.

    PostgreSQL goes through asyncpg and Redis through redis-py's asyncio client: both are
    built on asyncio's streams. Storage is not among them: fsspec's synchronous API, which
    the storage calls in worker threads, runs even an asyncio filesystem (s3fs) on fsspec's
    own event loop thread, whatever the caller runs on.
    """
    parts: list[str] = []
    if not settings.is_sqlite:
        parts.append(
            "CHITRAM_DATABASE_URL: PostgreSQL (asyncpg) runs on asyncio only; "
            "use SQLite (the default) under trio"
        )
    for name, url in (
        ("CHITRAM_CACHE_URL", settings.cache_url),
        ("CHITRAM_RATE_LIMIT_URL", settings.resolved_rate_limit_url),
    ):
        if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
            parts.append(
                f"{name}: Redis (redis-py's asyncio client) runs on asyncio only; "
                "use memory:// under trio"
            )
    return parts
