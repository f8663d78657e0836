"""``InlineEngine``: the :class:`~chitram_core.engine.base.Engine` without worker processes.

Jobs run in worker threads of this process, after the same memory reservation as in the
process engine. Python cannot kill a thread: a job past its timeout is *abandoned* (it runs on
to the end of its decode, which ``max_pixels`` bounds, and its result is dropped) and the
caller gets :class:`~chitram_core.errors.DecodeTimeout` at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from chitram_core.engine.budget import FairGate, MemoryBudget
from chitram_core.errors import DecodeTimeout, ImageTooLarge, ServiceUnavailable

if TYPE_CHECKING:
    from chitram_core.settings import Settings

T = TypeVar("T")

MiB = 1024 * 1024


class InlineEngine:
    """Image work in worker threads (at most ``limiter``'s at once, when given)."""

    def __init__(
        self,
        *,
        memory_budget: int = 512 * MiB,
        decode_timeout: float = 15.0,
        wait_timeout: float = 10.0,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.budget = MemoryBudget(memory_budget)
        self.decode_timeout = decode_timeout
        self.wait_timeout = wait_timeout
        self.limiter = limiter
        self._gate = FairGate()
        self.jobs_started = 0
        self.timeouts = 0
        self.rejected = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> InlineEngine:
        return cls(
            memory_budget=settings.image_memory_budget,
            decode_timeout=settings.decode_timeout,
            wait_timeout=settings.image_wait_timeout,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "workers": 0,
            "memory_reserved": self.budget.used,
            "memory_budget": self.budget.total,
            "jobs_started": self.jobs_started,
            "timeouts": self.timeouts,
            "rejected": self.rejected,
        }

    async def run(
        self,
        function: Callable[..., T],
        *args: Any,
        memory: int,
        timeout: float | None = None,  # noqa: ASYNC109 - the thread is abandoned past it
        op: str = "job",
        background: bool = False,
        owner: str | None = None,
        **kwargs: Any,
    ) -> T:
        if memory > self.budget.total:
            raise ImageTooLarge(
                f"Decoding this image needs about {memory // MiB} MiB, more than the "
                f"{self.budget.total // MiB} MiB image-work budget",
                memory=memory,
                budget=self.budget.total,
            )

        async def room() -> None:
            await self.budget.acquire(memory, background=background)

        admitted = False
        with anyio.move_on_after(self.wait_timeout):
            await self._gate.admit(owner, room)
            admitted = True
        if not admitted:
            self.rejected += 1
            raise ServiceUnavailable(
                "Image work is at capacity; try again shortly",
                retry_after=max(1, round(self.wait_timeout / 2)),
            )
        limit = self.decode_timeout if timeout is None else timeout
        call = functools.partial(function, *args, **kwargs)
        self.jobs_started += 1
        try:
            with anyio.move_on_after(limit):
                return await anyio.to_thread.run_sync(
                    call, abandon_on_cancel=True, limiter=self.limiter
                )
        finally:
            self.budget.release(memory)
            self._gate.done(owner)
        # Only reached when the scope above timed out (it returns otherwise).
        self.timeouts += 1
        raise DecodeTimeout(f"decoding took longer than {limit:g} s", timeout=limit)

    async def aclose(self) -> None:
        """Nothing to stop: abandoned threads end with their decode."""
