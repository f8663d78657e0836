"""Each Chitram instance reports to its own observer; nothing observes process-wide."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from chitram_core import Chitram, Settings, observe
from chitram_core.observe import Fanout, Observer, combine
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio


class Recorder(Observer):
    enabled = True

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.events.append(("http", method, route, status))

    def upload(self, result: str) -> None:
        self.events.append(("upload", result))

    def cache(self, result: str) -> None:
        self.events.append(("cache", result))

    @contextlib.contextmanager
    def image_work(self, op: str) -> Iterator[None]:
        self.events.append(("work", op))
        yield

    def auth_provider(self, provider: str, state: str) -> None:
        self.events.append(("auth", provider, state))

    def upload_slots(self, in_use: int, waiting: int, capacity: int) -> None:
        self.events.append(("slots", in_use, waiting, capacity))

    def jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        self.events.append(("jobs",))

    def kinds(self) -> set[str]:
        return {e[0] for e in self.events}


def _settings(path: Path, capacity: int) -> Settings:
    return Settings(
        env="test",
        data_dir=path,
        upload_rate_limit=None,
        auth_rate_limit=None,
        cache_url="memory://",
        upload_concurrency=capacity,
        web_ui=False,
    )


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), "red").save(buffer, "PNG")
    return buffer.getvalue()


async def test_two_instances_in_one_process_each_see_only_their_own_events(
    tmp_path: Path,
) -> None:
    first, second = Recorder(), Recorder()
    async with (
        Chitram(_settings(tmp_path / "a", 3), background=False, observer=first) as a,
        Chitram(_settings(tmp_path / "b", 5), background=False, observer=second) as b,
    ):
        assert a.observer is first and b.observer is second
        # Opening reports each instance's own slots and providers.
        assert ("slots", 0, 0, 3) in first.events and ("slots", 0, 0, 5) not in first.events
        assert ("slots", 0, 0, 5) in second.events and ("slots", 0, 0, 3) not in second.events
        assert ("auth", "local", "closed") in first.events
        first.events.clear()
        second.events.clear()

        image = await a.images.upload(_png(), filename="a.png")
        await a.images.get(image.id)  # a miss, filled
        await a.images.get(image.id)  # a hit
        assert ("upload", "stored") in first.events
        assert ("cache", "miss") in first.events and ("cache", "hit") in first.events
        assert ("work", "verify") in first.events
        assert second.events == []

        first.events.clear()
        async with b.upload_slots.acquire():
            pass
        assert ("slots", 1, 0, 5) in second.events
        assert first.events == []


async def test_an_instance_without_an_observer_has_one_that_does_nothing(tmp_path: Path) -> None:
    async with Chitram(_settings(tmp_path, 2), background=False) as chitram:
        assert type(chitram.observer) is Observer
        assert not chitram.observer.enabled
        await chitram.images.upload(_png(), filename="a.png")


async def test_the_app_observes_requests_with_its_instances_observer(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    async with (
        Chitram(_settings(tmp_path / "a", 2), background=False, observer=first) as a,
        Chitram(_settings(tmp_path / "b", 2), background=False, observer=second) as b,
    ):
        for chitram in (a, b):
            transport = httpx.ASGITransport(app=create_app(chitram))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/health/live")).status_code == 200
        assert [e for e in first.events if e[0] == "http"] == [("http", "GET", "/health/live", 200)]
        assert [e for e in second.events if e[0] == "http"] == [
            ("http", "GET", "/health/live", 200)
        ]


def test_the_observe_module_holds_no_observer() -> None:
    """No module-level observer, tracer or install function: every observer is an instance's."""
    for name, value in vars(observe).items():
        assert not isinstance(value, Observer), name
    for gone in ("observer", "request_tracer", "install", "uninstall"):
        assert not hasattr(observe, gone), gone


def test_combine() -> None:
    one, two = Recorder(), Recorder()
    assert type(combine([])) is Observer
    assert combine([one]) is one
    both = combine([one, two])
    assert isinstance(both, Fanout) and both.enabled
    both.upload("stored")
    with both.image_work("strip"):
        pass
    assert one.events == two.events == [("upload", "stored"), ("work", "strip")]
    assert both.request_span({}) is None
