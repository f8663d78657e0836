from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chitram_core import Chitram, Settings


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "upload_rate_limit": None,
        "auth_rate_limit": None,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def thumbnail_at_upload() -> bool:
    """``CHITRAM_THUMBNAIL_AT_UPLOAD`` for ``chitram`` and ``settings_factory``; a module about
    the thumbnail job path overrides it with False (uploads then leave a pending job)."""
    return True


@pytest.fixture
def settings_factory(tmp_path: Path, thumbnail_at_upload: bool):  # type: ignore[no-untyped-def]
    def factory(**overrides: object) -> Settings:
        return make_settings(tmp_path, **{"thumbnail_at_upload": thumbnail_at_upload, **overrides})

    return factory


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/chitram.db"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def chitram(
    tmp_path: Path, database_url: str, thumbnail_at_upload: bool
) -> AsyncIterator[Chitram]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        auto_migrate=True,
        thumbnail_at_upload=thumbnail_at_upload,
    )
    async with Chitram(settings, background=False) as instance:
        yield instance


@pytest.fixture
async def user(chitram: Chitram):  # type: ignore[no-untyped-def]
    import uuid

    session = await chitram.auth.register(
        f"owner-{uuid.uuid4().hex[:8]}@example.com", "correct horse"
    )
    return await chitram.auth.authenticate(session.access_token)


@pytest.fixture
async def other_user(chitram: Chitram):  # type: ignore[no-untyped-def]
    import uuid

    session = await chitram.auth.register(
        f"other-{uuid.uuid4().hex[:8]}@example.com", "battery staple"
    )
    return await chitram.auth.authenticate(session.access_token)
