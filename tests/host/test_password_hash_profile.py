"""``CHITRAM_PASSWORD_HASH_PROFILE``: cheap hashing for test suites, never in production."""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest
from sqlalchemy import select

from chitram_core import Chitram, Settings
from chitram_core.db.tables import users
from chitram_core.errors import ConfigurationError


def test_fast_is_refused_in_production() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {
                "CHITRAM_ENV": "production",
                "CHITRAM_JWT_SECRET": "x" * 40,
                "CHITRAM_PASSWORD_HASH_PROFILE": "fast",
            }
        )
    assert "CHITRAM_PASSWORD_HASH_PROFILE" in caught.value.message


@pytest.mark.parametrize("value", ["quick", "FAST", "", "none"])
def test_an_unknown_profile_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"CHITRAM_PASSWORD_HASH_PROFILE": value})
    assert "CHITRAM_PASSWORD_HASH_PROFILE" in caught.value.message


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "memory_cost"),
    [("fast", 1024), ("default", argon2.PasswordHasher().memory_cost)],
)
async def test_registered_passwords_are_hashed_with_the_profile(
    tmp_path: Path, profile: str, memory_cost: int
) -> None:
    settings = Settings(env="test", data_dir=tmp_path / "data", password_hash_profile=profile)
    async with Chitram(settings, background=False) as chitram:
        await chitram.auth.register("hash@example.com", "correct horse battery")
        session = await chitram.auth.login("hash@example.com", "correct horse battery")
        assert session.user.email == "hash@example.com"
        async with chitram.database.connect() as conn:
            stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
    assert argon2.extract_parameters(stored).memory_cost == memory_cost
