"""An out-of-tree storage plugin, installed with pip at run time and used by its URL."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from examplekit import EXAMPLES
from PIL import Image as PILImage

from chitram_core import Chitram, Settings, plugins
from chitram_core.storage import open_storage
from chitram_core.storage.base import Storage
from chitram_core.testing.storage_conformance import StorageConformance
from chitram_falcon import create_app

PLUGIN = EXAMPLES / "plugin_storage"
DIST = "chitram-prefixed-memory"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    """pip-installs examples/plugin_storage into this very interpreter, then forgets it."""
    try:
        importlib.import_module("hatchling")
        isolation = ["--no-build-isolation"]
    except ImportError:  # pip fetches the build backend itself
        isolation = []
    result = _pip("install", "--no-deps", *isolation, str(PLUGIN))
    assert result.returncode == 0, result.stderr
    importlib.invalidate_caches()
    plugins.refresh()
    try:
        yield
    finally:
        _pip("uninstall", "-y", DIST)
        importlib.invalidate_caches()
        plugins.refresh()


def test_the_entry_point_is_discovered_by_name(installed: None) -> None:
    assert "pmem" in plugins.available(plugins.STORAGE)
    storage = open_storage("pmem://found/prefix")
    assert type(storage).__name__ == "PrefixedMemoryStorage"
    assert isinstance(storage, Storage)


class TestPluginPassesTheStorageConformanceSuite(StorageConformance):
    @pytest.fixture
    def storage(self, installed: None) -> Storage:
        return open_storage(f"pmem://conformance-{uuid.uuid4().hex}/some/prefix")


@pytest.mark.anyio
async def test_chitram_serves_images_from_the_plugin(installed: None, tmp_path: Path) -> None:
    namespace = f"app-{uuid.uuid4().hex}"
    settings = Settings(
        data_dir=tmp_path,
        storage_url=f"pmem://{namespace}/images",
        upload_rate_limit=None,
        auth_rate_limit=None,
        web_ui=False,
    )
    buffer = io.BytesIO()
    PILImage.new("RGB", (20, 20), "yellow").save(buffer, "PNG")
    data = buffer.getvalue()
    async with Chitram(settings, background=False) as chitram:
        assert type(chitram.storage).__name__ == "PrefixedMemoryStorage"
        app = create_app(chitram)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            token = (
                await client.post(
                    "/api/v1/auth/register",
                    json={"email": "plugin@example.com", "password": "correct horse"},
                )
            ).json()["access_token"]
            up = await client.post(
                "/api/v1/images/upload",
                files={"file": ("y.png", data, "image/png")},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert up.status_code == 201, up.text
            assert (await client.get(up.json()["url"])).content == data
            health = (await client.get("/health")).json()
            assert health["storage"] == "connected"
        keys = [key async for key in chitram.storage.keys("blobs")]
        assert len(keys) == 1 and keys[0].endswith(up.json()["sha256"])
    # The bytes really are in the plugin's store (a second store on the namespace sees them).
    other = open_storage(f"pmem://{namespace}/images")
    assert [key async for key in other.keys("blobs")] == keys
