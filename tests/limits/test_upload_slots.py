"""Bounded concurrent uploads per process."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chitram_core.errors import ServiceUnavailable
from chitram_core.limits import UploadSlots

pytestmark = pytest.mark.anyio


async def test_slots_count_in_use() -> None:
    slots = UploadSlots(capacity=2, wait_timeout=1)
    assert slots.snapshot() == {"limit": 2, "in_use": 0, "waiting": 0, "waiting_for_room": 0}
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
    assert slots.snapshot() == {"limit": 1, "in_use": 0, "waiting": 0, "waiting_for_room": 0}


async def test_a_request_that_waits_too_long_gets_503_with_retry_after() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=0.1)
    async with slots.acquire():
        with pytest.raises(ServiceUnavailable) as caught:
            async with slots.acquire():
                pass  # pragma: no cover
    assert caught.value.status == 503
    assert caught.value.retry_after >= 1
    assert slots.snapshot() == {"limit": 1, "in_use": 0, "waiting": 0, "waiting_for_room": 0}


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
        await anyio.sleep(0.01)  # queued in this order (trio starts new tasks in any order)
        tg.start_soon(upload, "queued 2")
        await anyio.sleep(0.01)
        assert slots.snapshot() == {"limit": 1, "in_use": 1, "waiting": 2, "waiting_for_room": 0}
        with anyio.fail_after(1):  # refused at once, not after the 30 s wait
            with pytest.raises(ServiceUnavailable) as caught:
                async with slots.acquire():
                    pass  # pragma: no cover
        assert caught.value.status == 503 and caught.value.retry_after == 1
        released.set()
    assert served == ["holder", "queued 1", "queued 2"]  # the queued ones were served
    assert slots.snapshot() == {"limit": 1, "in_use": 0, "waiting": 0, "waiting_for_room": 0}


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


async def test_an_upload_let_in_at_once_holds_no_room() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0, room_wait=5)
    # Room to spare: in at once, and nothing is kept for it, so the next is let in at once too
    # (take decides).
    with anyio.fail_after(0.5):
        async with slots.room(), slots.room():
            pass


async def test_with_room_an_upload_goes_on_at_once() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=1, room_wait=5)
    async with slots.acquire():  # the slot is busy but the queue has a place
        with anyio.fail_after(0.5):
            async with slots.room():
                pass
        slots.check_room()
    unbounded = UploadSlots(capacity=1, wait_timeout=30, room_wait=5)  # no queue bound
    async with unbounded.acquire():
        with anyio.fail_after(0.5):
            async with unbounded.room(), unbounded.room():
                pass


async def test_without_room_an_upload_is_refused_after_room_wait() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0, room_wait=0.2)
    async with slots.acquire():
        with pytest.raises(ServiceUnavailable) as now:
            slots.check_room()
        started = anyio.current_time()
        with pytest.raises(ServiceUnavailable) as caught:
            async with slots.room():
                pass  # pragma: no cover
        waited = anyio.current_time() - started
    assert now.value.retry_after == 1 and caught.value.retry_after == 1
    assert 0.15 <= waited < 2
    async with slots.room():  # a waiter that gave up left nothing behind
        pass


async def test_room_is_promised_to_one_upload_at_a_time_in_arrival_order() -> None:
    # One slot, a queue of one, both taken: no room. Three uploads wait for room.
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=1, room_wait=30)
    await slots.take()
    queued = anyio.Event()
    let_in: list[str] = []
    go_on = {name: anyio.Event() for name in ("first", "second", "third", "newcomer")}

    async def queue_up() -> None:
        await slots.take()
        queued.set()

    async def arrive(name: str) -> None:
        async with slots.room() as room:
            let_in.append(name)
            await go_on[name].wait()
            await slots.take(room)  # its file has arrived: it queues for the slot

    async with anyio.create_task_group() as tg:
        tg.start_soon(queue_up)
        await anyio.sleep(0.01)
        for name in ("first", "second", "third"):
            tg.start_soon(arrive, name)
            await anyio.sleep(0.01)
        assert let_in == []
        slots.release()  # the slot passes to the queued upload; its place in the queue frees
        await queued.wait()
        await anyio.sleep(0.02)
        assert let_in == ["first"]  # one place: promised to the longest waiting, only to it
        tg.start_soon(arrive, "newcomer")
        await anyio.sleep(0.02)
        assert let_in == ["first"]  # the promised place is not given to anyone else
        go_on["first"].set()  # "first" takes its place in the queue: still no room
        await anyio.sleep(0.02)
        assert slots.waiting == 1 and let_in == ["first"]
        slots.release()  # "first" gets the slot, its place in the queue goes to "second"
        await anyio.sleep(0.02)
        assert let_in == ["first", "second"]
        tg.cancel_scope.cancel()


async def test_a_room_not_used_is_handed_on() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0, room_wait=30)
    await slots.take()
    let_in: list[str] = []
    leave = anyio.Event()

    async def arrive(name: str) -> None:
        async with slots.room():
            let_in.append(name)
            if name == "first":
                await leave.wait()  # e.g. refused with 401 after being let in
            else:
                await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(arrive, "first")
        await anyio.sleep(0.01)
        tg.start_soon(arrive, "second")
        await anyio.sleep(0.01)
        slots.release()
        await anyio.sleep(0.02)
        assert let_in == ["first"]
        leave.set()  # "first" ends without taking the slot: the room goes to "second"
        await anyio.sleep(0.02)
        assert let_in == ["first", "second"]
        tg.cancel_scope.cancel()


async def test_a_promised_room_lapses_after_room_hold() -> None:
    slots = UploadSlots(capacity=1, wait_timeout=30, queue=0, room_wait=5, room_hold=0.1)
    let_in: list[str] = []

    async def arrive(name: str) -> None:
        async with slots.room():
            let_in.append(name)
            await anyio.sleep_forever()  # let in, then stalls before taking its slot

    await slots.take()
    async with anyio.create_task_group() as tg:
        tg.start_soon(arrive, "stalled")
        await anyio.sleep(0.01)
        tg.start_soon(arrive, "next")
        await anyio.sleep(0.01)
        slots.release()  # the free slot is promised to "stalled", the first waiting
        await anyio.sleep(0.02)
        assert let_in == ["stalled"]
        await anyio.sleep(0.15)
        tg.start_soon(arrive, "later")  # any arrival or departure hands out lapsed rooms
        await anyio.sleep(0.02)
        assert let_in == ["stalled", "next"]
        tg.cancel_scope.cancel()


# --- fair by identity --------------------------------------------------------------------


async def _settle() -> None:
    """Let the waiting tasks run (what a release hands out is taken at their next step)."""
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_the_reserved_slots_go_only_to_an_identity_holding_none() -> None:
    """Three slots, one reserved: user a takes two, a's third waits although a slot is free,
    and user b, holding none, takes that slot at once."""
    slots = UploadSlots(capacity=3, wait_timeout=30, reserve=1)
    await slots.take(identity="user:a")
    await slots.take(identity="user:a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: slots.take(identity="user:a"))
        await _settle()
        assert slots.waiting == 1 and slots.available == 1
        with anyio.fail_after(5):
            await slots.take(identity="user:b")
        assert slots.available == 0
        slots.release("user:b")  # free again, but still the reserved one: a waits on
        await _settle()
        assert slots.waiting == 1
        slots.release("user:a")  # two free: a may take one
        await _settle()
        assert slots.waiting == 0
    assert slots.in_use == 2


async def test_a_freed_slot_goes_to_the_waiting_identity_holding_fewest() -> None:
    """a holds two slots, b one; a's next upload waits, then c's. When one of a's ends, c
    (holding none) gets the slot although a waited longer; a gets the next."""
    slots = UploadSlots(capacity=3, wait_timeout=30)
    for identity in ("user:a", "user:a", "user:b"):
        await slots.take(identity=identity)
    served: list[str] = []

    async def upload(identity: str) -> None:
        await slots.take(identity=identity)
        served.append(identity)

    async with anyio.create_task_group() as tg:
        for identity in ("user:a", "user:c"):
            tg.start_soon(upload, identity)
            await _settle()  # queued in this order
        assert slots.waiting == 2
        slots.release("user:a")
        await _settle()
        assert served == ["user:c"]
        slots.release("user:b")
    assert served == ["user:c", "user:a"]


def test_a_negative_reserve_is_refused() -> None:
    with pytest.raises(ValueError, match="reserve"):
        UploadSlots(capacity=1, wait_timeout=1, reserve=-1)


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(1, 5),
    reserve=st.integers(0, 3),
    steps=st.lists(st.one_of(st.sampled_from("abc"), st.integers(0, 9)), min_size=1, max_size=25),
)
def test_slots_are_never_idle_while_an_upload_may_take_one(
    capacity: int, reserve: int, steps: list[str | int]
) -> None:
    """Whatever uploads arrive (a letter: that user takes a slot) and end (a number: the
    n-th upload holding one gives it back): never more than ``capacity`` held; an upload waits
    only while no slot is free for it (none free, or only reserved ones and it holds one)."""

    async def scenario() -> None:
        slots = UploadSlots(capacity=capacity, wait_timeout=60, reserve=reserve)
        holding: list[str] = []
        waiting: list[str] = []

        async def upload(identity: str) -> None:
            waiting.append(identity)
            await slots.take(identity=identity)
            waiting.remove(identity)
            holding.append(identity)

        async with anyio.create_task_group() as tg:
            for step in steps:
                if isinstance(step, str):
                    tg.start_soon(upload, f"user:{step}")
                elif holding:
                    slots.release(holding.pop(step % len(holding)))
                await _settle()
                assert slots.in_use == len(holding) <= capacity
                assert slots.waiting == len(waiting)
                free = slots.available
                for identity in waiting:
                    assert free == 0 or (identity in holding and free <= reserve)
            tg.cancel_scope.cancel()

    anyio.run(scenario)
