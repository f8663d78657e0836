"""Hardening at the SDK level: the kept secret, email and password rules, hashing limits."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import jwt
import pytest
from argon2 import PasswordHasher
from auth_helpers import PASSWORD, fast_hasher
from hypothesis import given
from hypothesis import strategies as st

from chitram_core.auth import rules
from chitram_core.auth.local import LocalProvider
from chitram_core.auth.passwords import HashLimiter, Passwords
from chitram_core.db import Database
from chitram_core.errors import (
    ConfigurationError,
    InvalidEmail,
    InvalidToken,
    ServiceUnavailable,
    WeakPassword,
)
from chitram_core.settings import DEFAULT_JWT_SECRET, Settings

# The kept secret ------------------------------------------------------------------------------


def test_without_a_secret_one_is_made_once_and_kept_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Settings(data_dir=data).with_jwt_secret()
    assert first.jwt_secret is not None and len(first.jwt_secret) >= 32
    assert first.jwt_secret != DEFAULT_JWT_SECRET
    assert (data / "secret").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    assert Settings(data_dir=data).with_jwt_secret().jwt_secret == first.jwt_secret
    other = Settings(data_dir=tmp_path / "elsewhere").with_jwt_secret()
    assert other.jwt_secret != first.jwt_secret


def test_an_existing_data_dir_and_secret_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "secret").write_text("s" * 40)
    (data / "secret").chmod(0o644)
    assert Settings(data_dir=data).with_jwt_secret().jwt_secret == "s" * 40
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "secret").stat().st_mode & 0o777 == 0o600


def test_a_short_kept_secret_is_refused(tmp_path: Path) -> None:
    tmp_path.joinpath("secret").write_text("short")
    with pytest.raises(ConfigurationError):
        Settings(data_dir=tmp_path).with_jwt_secret()


def test_the_published_secret_is_never_used(tmp_path: Path) -> None:
    dev = Settings(data_dir=tmp_path, jwt_secret=DEFAULT_JWT_SECRET).with_jwt_secret()
    assert dev.jwt_secret != DEFAULT_JWT_SECRET
    assert dev.jwt_secret == (tmp_path / "secret").read_text().strip()
    with pytest.raises(ConfigurationError):
        Settings(env="production", jwt_secret=DEFAULT_JWT_SECRET).with_jwt_secret()
    with pytest.raises(ConfigurationError):
        _ = Settings(jwt_secret=DEFAULT_JWT_SECRET).signing_secret


@pytest.mark.anyio
async def test_tokens_signed_with_the_published_secret_are_refused(
    tmp_path: Path, database: Database
) -> None:
    provider = LocalProvider(Settings(data_dir=tmp_path), hasher=fast_hasher())
    await provider.start(database)
    session = await provider.register("real@example.com", PASSWORD)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, DEFAULT_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        await provider.authenticate(forged)
    assert (await provider.authenticate(session.access_token)).email == "real@example.com"


# Emails ---------------------------------------------------------------------------------------

_INVISIBLE = st.characters(categories=["Cc", "Cf", "Co", "Zl", "Zp"])


@given(local=st.from_regex(r"[a-z]{1,5}", fullmatch=True), bad=_INVISIBLE, at=st.integers(0, 5))
def test_any_control_or_invisible_character_makes_an_email_invalid(
    local: str, bad: str, at: int
) -> None:
    address = local[:at] + bad + local[at:] + "@example.com"
    if unicodedata.normalize("NFKC", address.strip()) != address:
        return  # stripping or NFKC removed or replaced it: the character is not there any more
    with pytest.raises(InvalidEmail):
        rules.clean_email(address)


@given(local=st.from_regex(r"[A-Za-z0-9._]{1,12}", fullmatch=True))
def test_the_unique_key_ignores_case_and_width(local: str) -> None:
    try:
        key = rules.normalize_email(local + "@Example.COM")
    except InvalidEmail:
        return  # e.g. dots in the wrong places
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in local.upper())
    assert rules.normalize_email(fullwidth + "@EXAMPLE.com") == key
    assert rules.normalize_email(key) == key


@pytest.mark.parametrize("email", ["no-at-sign", "a@b", "a@@example.com", "a b@example.com"])
def test_malformed_emails_are_invalid(email: str) -> None:
    with pytest.raises(InvalidEmail):
        rules.clean_email(email)


# Passwords ------------------------------------------------------------------------------------


@given(char=st.characters(exclude_categories=["Cs"]), length=st.integers(8, 64))
def test_one_character_repeated_is_never_a_password(char: str, length: int) -> None:
    with pytest.raises(WeakPassword):
        rules.check_password(char * length, common_check=False)


def test_the_shipped_list_holds_the_classics() -> None:
    common = rules.common_passwords()
    assert len(common) > 5000
    assert {"password", "12345678", "iloveyou", "qwertyuiop"} <= common
    assert all(len(p) >= rules.MIN_PASSWORD_LENGTH for p in common)
    for password in ("password", "PASSWORD", "12345678", " iloveyou "):
        with pytest.raises(WeakPassword):
            rules.check_password(password)
        if password.strip() != password.strip()[0] * len(password.strip()):
            rules.check_password(password, common_check=False)
    rules.check_password(PASSWORD)


# The hashing limiter --------------------------------------------------------------------------


class GatedHasher(PasswordHasher):
    """argon2 (tiny costs) that counts how many hashes run at once and can be held."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.lock = threading.Condition()
        self.running = 0
        self.most = 0
        self.overlap = 1  # a hash waits (up to overlap_wait seconds) until this many run at once
        self.overlap_wait = 1.0
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def _enter(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.lock.notify_all()
            # Tiny hashes rarely overlap by chance: hold this one until enough run together, so
            # a limiter that lets more through is seen every time, not only on a slow machine.
            self.lock.wait_for(lambda: self.running >= self.overlap, timeout=self.overlap_wait)
        self.started.set()
        self.gate.wait(timeout=30)

    def _leave(self) -> None:
        with self.lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            return super().hash(password, salt=salt)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            return super().verify(hash, password)
        finally:
            self._leave()


@pytest.fixture
async def gated(
    database: Database, tmp_path: Path
) -> AsyncIterator[tuple[LocalProvider, GatedHasher]]:
    hasher = GatedHasher()
    settings = Settings(data_dir=tmp_path, hash_concurrency=2, hash_wait_timeout=30.0)
    provider = LocalProvider(settings, hasher=hasher)
    await provider.start(database)
    yield provider, hasher
    await provider.close()


@pytest.mark.anyio
async def test_thirty_logins_at_once_run_at_most_the_limit_of_hashes(
    gated: tuple[LocalProvider, GatedHasher],
) -> None:
    provider, hasher = gated
    await provider.register("many@example.com", PASSWORD)
    hasher.most = 0
    # Each hash waits a moment for one more than the limit: the limit is reached every time,
    # and a limiter that lets a third through is caught every time.
    hasher.overlap, hasher.overlap_wait = 3, 0.05
    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(provider.login, "many@example.com", PASSWORD)
    assert hasher.most == 2


@pytest.mark.anyio
async def test_a_login_that_cannot_start_hashing_in_time_is_503_with_retry_after() -> None:
    hasher = GatedHasher()
    passwords = Passwords(hasher, limiter=HashLimiter(1, wait_timeout=0.2))
    stored = await passwords.hash(PASSWORD)
    hasher.gate.clear()  # the next hash holds the only slot until released
    hasher.started.clear()
    async with anyio.create_task_group() as tg:
        tg.start_soon(passwords.verify, stored, PASSWORD)
        await anyio.to_thread.run_sync(hasher.started.wait)
        with pytest.raises(ServiceUnavailable) as caught:
            await passwords.verify(stored, PASSWORD)
        hasher.gate.set()
    assert caught.value.retry_after >= 1
    assert await passwords.verify(stored, PASSWORD)
