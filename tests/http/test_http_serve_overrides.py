"""``chitram serve`` hands its workers the settings it changed explicitly, leaving the
operator's ``CHITRAM_*`` variables as they were."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from netkit import free_port

from chitram_falcon import cli
from chitram_falcon.cli import SERVE_OVERRIDES, app_factory, main


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("CHITRAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHITRAM_DATA_DIR", str(tmp_path))


@pytest.mark.usefixtures("clean_env")
def test_workers_get_the_changed_settings_in_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: list[dict[str, str | None]] = []

    def run(app: object, **options: object) -> None:
        seen.append({k: os.environ.get(k) for k in (SERVE_OVERRIDES, "CHITRAM_CACHE_URL")})

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["serve", "--port", str(free_port()), "--workers", "2", "--quiet"]) == 0
    [during] = seen
    assert during["CHITRAM_CACHE_URL"] is None
    assert json.loads(during[SERVE_OVERRIDES] or "") == {"cache_url": "off", "log_level": "WARNING"}
    assert SERVE_OVERRIDES not in os.environ and "CHITRAM_LOG_LEVEL" not in os.environ


@pytest.mark.usefixtures("clean_env")
def test_one_worker_gets_them_as_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    # One worker runs uvicorn's Server itself (with the drain before shutdown).
    monkeypatch.setattr(cli, "_serve_one", lambda app, options, drain: apps.append(app))
    assert main(["serve", "--port", str(free_port()), "--quiet"]) == 0
    [app] = apps
    assert app.handle.settings.log_level == "WARNING"  # type: ignore[attr-defined]
    assert SERVE_OVERRIDES not in os.environ and "CHITRAM_LOG_LEVEL" not in os.environ


@pytest.mark.usefixtures("clean_env")
def test_the_factory_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVE_OVERRIDES, json.dumps({"cache_url": "off"}))
    assert app_factory().handle.settings.cache_url == "off"
    monkeypatch.setenv(SERVE_OVERRIDES, "[1]")
    with pytest.raises(Exception, match=SERVE_OVERRIDES):
        app_factory()


@pytest.mark.usefixtures("clean_env")
@pytest.mark.anyio
async def test_a_served_app_freezes_the_heap_once_its_instance_is_open() -> None:
    """Full collections then skip what startup made (modules, the app, pools): a stall per
    collection that every request in flight waited for (docs/decisions.md)."""
    import gc

    app = app_factory({"web_ui": False})
    before = gc.get_freeze_count()
    await app.handle.process_startup({}, {})
    try:
        assert app.handle.is_open
        assert gc.get_freeze_count() > before
    finally:
        await app.handle.process_shutdown({}, {})
        gc.unfreeze()


@pytest.mark.anyio
async def test_an_app_a_host_builds_leaves_the_collector_alone(tmp_path: Path) -> None:
    import gc

    from chitram_core import Settings
    from chitram_falcon import create_app

    app = create_app(settings=Settings(data_dir=tmp_path, web_ui=False))
    before = gc.get_freeze_count()
    await app.handle.process_startup({}, {})
    try:
        assert app.handle.is_open
        assert gc.get_freeze_count() == before
    finally:
        await app.handle.process_shutdown({}, {})
