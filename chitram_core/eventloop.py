"""Which async backend runs the caller: asyncio or trio (the two anyio supports).

Most of the SDK needs no answer to this: it is written against anyio. The few places that hand
work between threads or spawn a task outside the caller's tree need the backend's own primitive
(asyncio's ``call_soon_threadsafe``, trio's ``TrioToken.run_sync_soon``), because anyio has no
non-blocking way for a foreign thread to wake a task. Trio is asked first, and only when it is
imported, so no asyncio function is called under trio.
"""

from __future__ import annotations

import sys
from typing import Literal

Backend = Literal["asyncio", "trio"]


def running_backend() -> Backend:
    """The backend of the running event loop; ``"asyncio"`` when it is not trio."""
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        return "trio"
    return "asyncio"
