"""The one interface every piece of image work is run through.

:class:`~chitram_core.engine.pool.ImageEngine` (worker processes) and
:class:`~chitram_core.engine.inline.InlineEngine` (worker threads of this process) both
satisfy :class:`Engine`; a flow is given one of them and never asks which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from chitram_core.engine.budget import MemoryBudget

T = TypeVar("T")


class Engine(Protocol):
    """Runs module-level functions of picklable arguments (the jobs of
    :mod:`chitram_core.engine.work`) after reserving their worst-case ``memory``."""

    budget: MemoryBudget
    decode_timeout: float

    async def run(
        self,
        function: Callable[..., T],
        *args: Any,
        memory: int,
        timeout: float | None = None,  # noqa: ASYNC109 - each engine enforces it its own way
        op: str = "job",
        background: bool = False,
        owner: str | None = None,
        **kwargs: Any,
    ) -> T:
        """``function(*args, **kwargs)``: what it returns or raises (a ``ChitramError``);
        :class:`~chitram_core.errors.DecodeTimeout` past ``timeout`` (default: the engine's
        decode timeout), :class:`~chitram_core.errors.ImageTooLarge` when ``memory`` exceeds
        the whole budget, :class:`~chitram_core.errors.ServiceUnavailable` when no room was
        free in time. ``background`` work yields to work a request waits for; waiting work
        is admitted fairly by ``owner``: the owner with the fewest jobs running goes first, so
        another user's queue holds a job with nothing of its owner running only until the next
        room frees up."""
        ...

    def snapshot(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
