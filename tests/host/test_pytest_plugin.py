"""The ``chitram`` pytest plugin, as a host application uses it, under each async test runner.

Each case writes a small host test suite into a temporary folder and runs pytest on it in a
fresh process: the plugin is found through its ``pytest11`` entry point, as in a host's project.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostkit import HANG_TIMEOUT, clean_env

HOST_TESTS = '''
import attrs
import pytest
{imports}

pytestmark = {mark}

PASSWORD = "correct horse battery staple"


def png() -> bytes:
    import io
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, "PNG")
    return buffer.getvalue()


{fixture}
async def principal(chitram):
    """A host's own async fixture built on the plugin's."""
    session = await chitram.auth.register("ada@example.com", PASSWORD)
    return await chitram.auth.authenticate(session.access_token)


async def test_sdk_upload_and_read(chitram, principal):
    image = await chitram.images.upload(png(), filename="cat.png", owner=principal)
    assert (await chitram.images.get(image.id)).filename == "cat.png"
    data = b"".join([chunk async for chunk in chitram.images.read(image.id)])
    assert data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"


async def test_http_round_trip(chitram_client):
    resp = await chitram_client.post(
        "/api/v1/auth/register", json={{"email": "bo@example.com", "password": PASSWORD}}
    )
    assert resp.status_code == 201, resp.text
    headers = {{"Authorization": "Bearer " + resp.json()["access_token"]}}
    resp = await chitram_client.post(
        "/api/v1/images/upload", files={{"file": ("a.png", png(), "image/png")}}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    resp = await chitram_client.get("/api/v1/images/" + resp.json()["id"])
    assert resp.status_code == 200 and resp.json()["filename"] == "a.png"


async def test_the_client_and_the_sdk_share_one_chitram(chitram, chitram_client):
    await chitram.auth.register("cy@example.com", PASSWORD)
    resp = await chitram_client.post(
        "/api/v1/auth/login", json={{"email": "cy@example.com", "password": PASSWORD}}
    )
    assert resp.status_code == 200, resp.text


async def test_the_conftest_override_applies(chitram):
    assert chitram.settings.allow_anonymous_uploads
    image = await chitram.images.upload(png(), filename="anon.png", owner=None)
    assert image.delete_token
'''

SYNC_HOST_TESTS = """
def test_settings_are_per_test(chitram_settings, tmp_path):
    assert chitram_settings.data_dir.is_relative_to(tmp_path)
    assert chitram_settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert chitram_settings.storage_url.startswith("memory://")
    assert chitram_settings.password_hash_profile == "fast"
"""

CONFTEST = """
import attrs
import pytest


@pytest.fixture
def chitram_settings(chitram_settings):
    return attrs.evolve(chitram_settings, allow_anonymous_uploads=True)
{extra}
"""

ASYNCIO_BACKEND_ONLY = """

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

# Not in the list: anyio-marked tests under pytest-asyncio's *auto* mode. Both plugins then claim
# the async fixtures, and a host's own fixture runs on another loop than its test (without
# Chitram at all), so no fixture can work there; docs/testing.md says so.
MODES = {
    "pytest-asyncio-auto": dict(
        imports="",
        mark="[]",
        fixture="@pytest.fixture",
        args=["-p", "asyncio", "-o", "asyncio_mode=auto"],
        extra="",
    ),
    "pytest-asyncio-strict": dict(
        imports="import pytest_asyncio",
        mark="[pytest.mark.asyncio]",
        fixture="@pytest_asyncio.fixture",
        args=["-p", "asyncio", "-o", "asyncio_mode=strict"],
        extra="",
    ),
    "anyio": dict(
        imports="",
        mark="[pytest.mark.anyio]",
        fixture="@pytest.fixture",
        args=["-p", "no:asyncio"],
        extra=ASYNCIO_BACKEND_ONLY,
    ),
    "anyio-beside-pytest-asyncio-strict": dict(
        imports="",
        mark="[pytest.mark.anyio]",
        fixture="@pytest.fixture",
        args=["-p", "asyncio", "-o", "asyncio_mode=strict"],
        extra=ASYNCIO_BACKEND_ONLY,
    ),
}


def run_host_suite(
    folder: Path, *, imports: str, mark: str, fixture: str, args: list[str], extra: str
) -> subprocess.CompletedProcess[str]:
    folder.mkdir()
    ini = "[pytest]\n"
    if "no:asyncio" not in args:
        ini += "asyncio_default_fixture_loop_scope = function\n"
    (folder / "pytest.ini").write_text(ini)
    (folder / "conftest.py").write_text(CONFTEST.format(extra=extra))
    body = HOST_TESTS.format(imports=imports, mark=mark, fixture=fixture)
    (folder / "test_host_app.py").write_text(textwrap.dedent(body))
    (folder / "test_host_settings.py").write_text(SYNC_HOST_TESTS)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args],
            cwd=folder,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=HANG_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the host's test run hung: {exc.stdout!r}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_host_suite_passes_with_the_plugin_fixtures(tmp_path: Path, mode: str) -> None:
    result = run_host_suite(tmp_path / "host", **MODES[mode])  # type: ignore[arg-type]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout, result.stdout
    assert "warning" not in result.stdout, result.stdout  # none from the plugin either


@pytest.mark.slow
def test_under_anyio_the_fixtures_work_on_trio_as_on_asyncio(tmp_path: Path) -> None:
    pytest.importorskip("trio")
    trio_backend = '\n\n@pytest.fixture\ndef anyio_backend():\n    return "trio"\n'
    modes = dict(MODES["anyio"], extra=trio_backend)
    result = run_host_suite(tmp_path / "host", **modes)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout, result.stdout
    assert "skipped" not in result.stdout and "warning" not in result.stdout, result.stdout


@pytest.mark.slow
def test_a_sync_test_asking_for_chitram_gets_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_sync.py").write_text("def test_sync(chitram):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "needs an async test" in result.stdout, result.stdout
