"""Bounded concurrent uploads per process."""

from __future__ import annotations

import anyio
import pytest

from chitram_core.errors import ServiceUnavailable
from chitram_core.limits import UploadSlots

pytestmark = pytest.mark.anyio


async def test_slots_count_in_use() -> None:
    slots = UploadSlots(capacity=2, wait_timeout=1)
    assert slots.snapshot() == {"limit": 2, "in_use": 0, "waiting": 0}
    async with slots.acquire():
        assert slots.in_use == 1
    assert slots.in_use == 0


async def test_a_request_waits_for_a_free_slot() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=5)
    released = anyio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with slots.acquire():
            order.append("first")
            await released.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await anyio.sleep(0.01)

        async def waiter() -> None:
            async with slots.acquire():
                order.append("second")

        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        assert slots.waiting == 1
        released.set()
    assert order == ["first", "second"]
    assert slots.snapshot() == {"limit": 1, "in_use": 0, "waiting": 0}


async def test_a_request_that_waits_too_long_gets_503_with_retry_after() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=0.1)
    async with slots.acquire():
        with pytest.raises(ServiceUnavailable) as caught:
            async with slots.acquire():
                pass  # pragma: no cover
    assert caught.value.status == 503
    assert caught.value.retry_after >= 1
    assert slots.snapshot() == {"limit": 1, "in_use": 0, "waiting": 0}


async def test_a_failing_upload_releases_its_slot() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=0.1)
    with pytest.raises(ValueError, match="bad"):
        async with slots.acquire():
            raise ValueError("bad")
    async with slots.acquire():
        assert slots.in_use == 1


async def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=10)
    async with slots.acquire():
        with anyio.move_on_after(0.05):
            async with slots.acquire():
                pass  # pragma: no cover
        assert slots.waiting == 0
    assert slots.in_use == 0


async def test_never_more_than_capacity_at_once() -> None:
    slots = UploadSlots(capacity=3, wait_timeout=5)
    peak = 0

    async def upload() -> None:
        nonlocal peak
        async with slots.acquire():
            peak = max(peak, slots.in_use)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(upload)
    assert peak == 3


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        UploadSlots(capacity=0, wait_timeout=1)


async def test_one_identity_has_at_most_its_cap_of_uploads_at_once() -> None:
    from chitram_core.errors import RateLimitExceeded

    slots = UploadSlots(capacity=10, wait_timeout=1, per_identity=2)
    async with slots.per_identity("user:a"), slots.per_identity("user:a"):
        with pytest.raises(RateLimitExceeded) as caught:
            async with slots.per_identity("user:a"):
                pass
        assert caught.value.limit == 2
        async with slots.per_identity("user:b"):
            pass
    async with slots.per_identity("user:a"):  # counted down again
        pass


async def test_take_and_release_are_the_slot_without_a_block() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=0.05)
    await slots.take()
    with pytest.raises(ServiceUnavailable):
        await slots.take()
    slots.release()
    await slots.take()
    slots.release()
    assert slots.in_use == 0


async def test_when_the_queue_is_full_the_next_upload_gets_503_at_once() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=2)
    released = anyio.Event()
    served: list[str] = []

    async def upload(name: str) -> None:
        async with slots.acquire():
            served.append(name)
            if name == "holder":
                await released.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(upload, "holder")
        await anyio.sleep(0.01)
        tg.start_soon(upload, "queued 1")
        tg.start_soon(upload, "queued 2")
        await anyio.sleep(0.01)
        assert slots.snapshot() == {"limit": 1, "in_use": 1, "waiting": 2}
        with anyio.fail_after(1):  # refused at once, not after the 30 s wait
            with pytest.raises(ServiceUnavailable) as caught:
                async with slots.acquire():
                    pass  # pragma: no cover
        assert caught.value.status == 503 and caught.value.retry_after == 1
        released.set()
    assert served == ["holder", "queued 1", "queued 2"]  # the queued ones were served
    assert slots.snapshot() == {"limit": 1, "in_use": 0, "waiting": 0}


async def test_a_queue_of_zero_never_waits() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0)
    async with slots.acquire():
        with anyio.fail_after(1), pytest.raises(ServiceUnavailable):
            async with slots.acquire():
                pass  # pragma: no cover
    async with slots.acquire():  # a free slot is still taken
        assert slots.in_use == 1


def test_a_negative_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="queue"):
        UploadSlots(capacity=1, wait_timeout=1, queue=-1)


async def test_with_room_an_upload_goes_on_at_once() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=1, room_wait=5)
    async with slots.acquire():  # the slot is busy but the queue has a place
        with anyio.fail_after(0.5):
            await slots.wait_for_room()
        slots.check_room()
    unbounded = UploadSlots(capacity=1, wait_timeout=30, room_wait=5)  # no queue bound
    async with unbounded.acquire():
        with anyio.fail_after(0.5):
            await unbounded.wait_for_room()


async def test_without_room_an_upload_is_refused_after_room_wait() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0, room_wait=0.2)
    async with slots.acquire():
        with pytest.raises(ServiceUnavailable) as now:
            slots.check_room()
        started = anyio.current_time()
        with pytest.raises(ServiceUnavailable) as caught:
            await slots.wait_for_room()
        waited = anyio.current_time() - started
    assert now.value.retry_after == 1 and caught.value.retry_after == 1
    assert 0.15 <= waited < 2
    assert not slots._room_waiters  # a waiter that gave up leaves no trace


async def test_room_is_handed_out_one_at_a_time_in_arrival_order() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0, room_wait=30)
    await slots.take()
    let_in: list[str] = []

    async def arrive(name: str) -> None:
        await slots.wait_for_room()
        let_in.append(name)

    async with anyio.create_task_group() as tg:
        for name in ("first", "second", "third"):
            tg.start_soon(arrive, name)
            await anyio.sleep(0.01)
        assert let_in == []
        slots.release()  # one room: only the longest waiting goes on
        await anyio.sleep(0.05)
        assert let_in == ["first"]
        # A newcomer does not jump the line while others wait for room.
        tg.start_soon(arrive, "newcomer")
        await anyio.sleep(0.05)
        assert let_in == ["first"]
        await slots.take()  # what "first" goes on to do; its finish frees the next room
        slots.release()
        await anyio.sleep(0.05)
        assert let_in == ["first", "second"]
        tg.cancel_scope.cancel()
    assert not slots._room_waiters  # cancelled waiters leave no trace


async def test_a_slot_handed_to_a_queued_upload_frees_no_room() -> None:
    # capacity 1, queue 1: a holder and one queued. When the holder releases, the slot passes
    # to the queued upload, and only its leaving the queue makes room for one more.
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=1, room_wait=30)
    await slots.take()
    queued = anyio.Event()
    let_in: list[str] = []

    async def queue_up() -> None:
        await slots.take()
        queued.set()

    async def arrive(name: str) -> None:
        await slots.wait_for_room()
        let_in.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(queue_up)
        await anyio.sleep(0.01)
        assert slots.waiting == 1
        tg.start_soon(arrive, "a")
        tg.start_soon(arrive, "b")
        await anyio.sleep(0.01)
        slots.release()
        await queued.wait()
        await anyio.sleep(0.05)
        assert let_in == ["a"]  # one place in the queue freed up, one upload let in
        tg.cancel_scope.cancel()
    slots.release()
