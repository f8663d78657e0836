"""Tags tests: a real Chitram (SQLite, and PostgreSQL where it runs) and a fake OpenAI server."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from PIL import Image as PILImage

from chitram_core import Chitram, Settings
from chitram_core.models import Principal


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.down()


@pytest.fixture
def openai(openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    openai_server.up()
    openai_server.reset()
    openai_server.answer = "Cat, sunny beach, dog."
    yield openai_server
    openai_server.up()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "web_ui": False,
        "jobs_poll_interval": 0.2,
        "jobs_max_backoff": 0.5,
        "openai_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/chitram.db"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def chitram(tmp_path: Path, database_url: str) -> AsyncIterator[Chitram]:
    settings = make_settings(tmp_path, database_url=database_url, auto_migrate=True)
    async with Chitram(settings, background=False) as instance:
        yield instance


async def new_user(chitram: Chitram, label: str = "owner") -> Principal:
    session = await chitram.auth.register(
        f"{label}-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    )
    return await chitram.auth.authenticate(session.access_token)


@pytest.fixture
async def user(chitram: Chitram) -> Principal:
    return await new_user(chitram, "owner")


@pytest.fixture
async def other_user(chitram: Chitram) -> Principal:
    return await new_user(chitram, "other")


def picture(seed: int = 0, size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, (seed % 256, (seed // 256) % 256, 90)).save(buf, fmt)
    return buf.getvalue()
