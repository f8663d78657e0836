"""The ``chitram`` pytest plugin: fixtures for host applications that embed Chitram.

Installed with the package (entry point ``pytest11: chitram``); ``pip install 'chitram[testing]'``
brings pytest, Hypothesis and httpx. Fixtures:

- ``chitram_settings``: ``Settings`` for one test: SQLite in ``tmp_path``, a ``memory://`` store
  of its own (emptied afterwards), fast password hashing, rate limits off.
- ``chitram``: an open :class:`~chitram_core.Chitram` over those settings, closed after the test.
- ``chitram_app``: the reference Falcon app over ``chitram`` (needs ``chitram[server]``).
- ``chitram_client``: an ``httpx.AsyncClient`` that calls ``chitram_app`` in-process.

They work under pytest-asyncio (auto or strict mode) and under anyio's pytest plugin, on either
of its backends (asyncio or trio; on trio with the settings' SQLite, ``memory://`` storage and
memory cache, as the defaults are, since PostgreSQL and Redis run on asyncio only). The public
fixtures are plain functions that hand the async work to whichever plugin runs the test
(``_chitram_*_anyio`` or ``_chitram_*_asyncio``), so neither plugin runs it on a loop other than
the test's. This module imports nothing beyond pytest until a fixture is used: it is loaded by
every pytest run in an environment where Chitram is installed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from chitram_core import Chitram, Settings

try:  # optional: the asyncio variants exist only when pytest-asyncio is installed
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the environment
    pytest_asyncio = None  # type: ignore[assignment]

_NEEDS_ASYNC = (
    "The {name} fixture needs an async test run by anyio's pytest plugin "
    "(@pytest.mark.anyio) or by pytest-asyncio (@pytest.mark.asyncio, or asyncio_mode = auto)."
)


@pytest.fixture
def chitram_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test; override this fixture (it may take this one) to change them."""
    from chitram_core import Settings

    store = f"memory://chitram-test-{uuid.uuid4().hex}"
    settings = Settings(
        env="test",
        data_dir=tmp_path / "chitram",
        storage_url=store,
        password_hash_profile="fast",
        upload_rate_limit=None,
        auth_rate_limit=None,
        login_guard=None,
    )
    yield settings
    _forget_memory_store(store)


@pytest.fixture
def chitram(request: pytest.FixtureRequest, chitram_settings: Settings) -> Chitram:
    """An open ``Chitram`` on the test's event loop, closed (jobs drained) after the test."""
    opened: Chitram = request.getfixturevalue(f"_chitram_open_{_runner(request, 'chitram')}")
    return opened


@pytest.fixture
def chitram_app(chitram: Chitram) -> Any:
    """The reference Falcon ASGI app over ``chitram`` (the host owns the lifecycle)."""
    pytest.importorskip(
        "falcon", reason="chitram_app needs the Falcon app: pip install 'chitram[server]'"
    )
    from chitram_falcon import create_app

    return create_app(chitram)


@pytest.fixture
def chitram_client(request: pytest.FixtureRequest, chitram_app: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` calling ``chitram_app`` in-process (base URL http://testserver)."""
    name = f"_chitram_client_{_runner(request, 'chitram_client')}"
    client: httpx.AsyncClient = request.getfixturevalue(name)
    return client


# The async halves, one per test runner --------------------------------------------------------


async def _open_chitram(settings: Settings) -> AsyncIterator[Chitram]:
    from chitram_core import Chitram

    async with Chitram(settings) as opened:
        yield opened


async def _open_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def _chitram_open_anyio(chitram_settings: Settings) -> AsyncIterator[Chitram]:
    async for opened in _open_chitram(chitram_settings):
        yield opened


@pytest.fixture
async def _chitram_client_anyio(chitram_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _open_client(chitram_app):
        yield client


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def _chitram_open_asyncio(chitram_settings: Settings) -> AsyncIterator[Chitram]:
        async for opened in _open_chitram(chitram_settings):
            yield opened

    @pytest_asyncio.fixture
    async def _chitram_client_asyncio(chitram_app: Any) -> AsyncIterator[httpx.AsyncClient]:
        async for client in _open_client(chitram_app):
            yield client


def _runner(request: pytest.FixtureRequest, name: str) -> str:
    """Which plugin runs this test: ``anyio`` or ``asyncio`` (pytest-asyncio); else fail."""
    if "anyio_backend" in request.fixturenames:
        return "anyio"  # asyncio or trio: the embedded default runs on both
    if pytest_asyncio is not None and request.config.pluginmanager.has_plugin("asyncio"):
        from pytest_asyncio import is_async_test

        if is_async_test(request.node):
            return "asyncio"
    pytest.fail(_NEEDS_ASYNC.format(name=name), pytrace=False)


def _forget_memory_store(url: str) -> None:
    """Free the bytes a test left in fsspec's process-wide memory filesystem."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)
