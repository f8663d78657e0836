"""The admin surface: ``chitram.admin`` and ``Admin.open``, for migrations, sweeps, moving the
store and users; every mistake a typed ChitramError."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagekit import make_settings as _make_settings
from imagekit import png_bytes

from chitram_core import Chitram, Settings, SweepReport
from chitram_core.admin import Admin
from chitram_core.errors import (
    EmailExists,
    InvalidEmail,
    InvalidRequest,
    InvalidRevision,
    InvalidToken,
    OperationUnavailable,
    UserInactive,
    UserNotFound,
    ValidationError,
    WeakPassword,
)

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    return _make_settings(tmp_path / "data", env="test", **overrides)


async def test_migrations_run_on_a_database_that_is_behind(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auto_migrate=False)
    async with Admin.open(settings) as admin:
        fresh = await admin.current()
        assert fresh.current == () and fresh.heads and not fresh.at_head
        await admin.upgrade()
        state = await admin.current()
        assert state.at_head and state.current == state.heads
        await admin.downgrade("base")
        assert (await admin.current()).current == ()
        await admin.upgrade(state.heads[0])
        assert (await admin.current()).at_head


@pytest.mark.parametrize(
    ("operation", "revision"), [("upgrade", "0999"), ("downgrade", "nonsense")]
)
async def test_an_unknown_revision_is_invalid_revision(
    tmp_path: Path, operation: str, revision: str
) -> None:
    async with Admin.open(make_settings(tmp_path)) as admin:
        await admin.upgrade()
        with pytest.raises(InvalidRevision) as caught:
            await getattr(admin, operation)(revision)
    assert revision in caught.value.message


async def test_admin_open_disposes_of_its_database(tmp_path: Path) -> None:
    async with Admin.open(make_settings(tmp_path)) as admin:
        await admin.upgrade()
        engine = admin.database.engine
    assert engine.pool.checkedout() == 0


async def test_a_user_is_created_listed_disabled_and_enabled(chitram: Chitram) -> None:
    admin = chitram.admin
    user = await admin.create_user("Ada@Example.com", PASSWORD)
    assert user.email == "Ada@example.com" and user.is_active and user.provider == "local"
    session = await chitram.auth.login("ada@example.com", PASSWORD)

    assert [u.id for u in await admin.list_users()] == [user.id]
    disabled = await admin.disable_user("ADA@example.com")  # by email, in any case
    assert disabled.id == user.id and not disabled.is_active
    with pytest.raises(UserInactive):
        await chitram.auth.login("ada@example.com", PASSWORD)
    # A token issued before is refused at once (its session is revoked, its user disabled).
    with pytest.raises((UserInactive, InvalidToken)):
        await chitram.auth.authenticate(session.access_token)
    with pytest.raises((UserInactive, InvalidToken)):  # and its session is over
        await chitram.auth.refresh(session.refresh_token)
    assert [u.id for u in await admin.list_users(active=False)] == [user.id]
    assert await admin.list_users(active=True) == []

    enabled = await admin.enable_user(user.id)  # by id
    assert enabled.is_active
    again = await chitram.auth.login("ada@example.com", PASSWORD)
    assert (await chitram.auth.authenticate(again.access_token)).user_id == user.id
    with pytest.raises(InvalidToken):  # the revoked session stays revoked
        await chitram.auth.refresh(session.refresh_token)


async def test_users_page_oldest_first(chitram: Chitram) -> None:
    made = [await chitram.admin.create_user(f"u{i}@example.com", PASSWORD) for i in range(3)]
    assert [u.id for u in await chitram.admin.list_users(limit=2)] == [u.id for u in made[:2]]
    assert [u.id for u in await chitram.admin.list_users(offset=2)] == [made[2].id]


async def test_user_mistakes_are_typed(chitram: Chitram) -> None:
    admin = chitram.admin
    await admin.create_user("grace@example.com", PASSWORD)
    with pytest.raises(EmailExists):
        await admin.create_user("GRACE@example.com", PASSWORD)
    with pytest.raises(InvalidEmail):
        await admin.create_user("not an email", PASSWORD)
    with pytest.raises(WeakPassword):
        await admin.create_user("short@example.com", "short")
    for unknown in ("nobody@example.com", "no-such-id"):
        with pytest.raises(UserNotFound):
            await admin.disable_user(unknown)
        with pytest.raises(UserNotFound):
            await admin.enable_user(unknown)
    with pytest.raises(ValidationError):
        await admin.list_users(limit=0)
    with pytest.raises(ValidationError):
        await admin.list_users(offset=-1)


async def test_users_are_managed_without_opening_the_whole_sdk(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with Admin.open(settings) as admin:
        await admin.upgrade()
        user = await admin.create_user("linus@example.com", PASSWORD)
        await admin.disable_user(user.id)
    async with Chitram(settings, background=False) as chitram:
        with pytest.raises(UserInactive):
            await chitram.auth.login("linus@example.com", PASSWORD)
        assert not (await chitram.admin.list_users())[0].is_active


async def test_sweep_needs_the_whole_sdk(chitram: Chitram, tmp_path: Path) -> None:
    assert isinstance(await chitram.admin.sweep(older_than=0), SweepReport)
    with pytest.raises(ValidationError):
        await chitram.admin.sweep(older_than=-1)
    async with Admin.open(chitram.settings) as admin:
        with pytest.raises(OperationUnavailable):
            await admin.sweep()


async def test_migrate_storage_copies_every_object(chitram: Chitram, tmp_path: Path) -> None:
    await chitram.images.upload(png_bytes(), filename="a.png")
    dest = (tmp_path / "moved").as_uri()
    report = await chitram.admin.migrate_storage(dest)
    assert report.ok and report.copied >= 1 and report.missing == []
    async with Admin.open(chitram.settings) as admin:  # opens the source store itself
        again = await admin.migrate_storage(dest, {})
    assert again.ok and again.copied == 0 and again.skipped == report.copied
    assert again.summary()["skipped"] == report.copied


async def test_bad_destinations_are_refused(chitram: Chitram, tmp_path: Path) -> None:
    admin = chitram.admin
    with pytest.raises(InvalidRequest):
        await admin.migrate_storage(chitram.settings.resolved_storage_url + "/")
    with pytest.raises(InvalidRequest):
        await admin.migrate_storage("nosuchscheme://bucket/x")
    with pytest.raises(ValidationError):
        await admin.migrate_storage((tmp_path / "x").as_uri(), concurrency=0)
    assert not (tmp_path / "x").exists()


async def test_data_operations_refuse_a_schema_behind_and_open_can_migrate(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, auto_migrate=False)
    async with Admin.open(settings) as admin:
        with pytest.raises(OperationUnavailable) as caught:
            await admin.list_users()
        assert "chitram db upgrade" in caught.value.message
        with pytest.raises(OperationUnavailable):
            await admin.create_user("early@example.com", PASSWORD)
    async with Admin.open(settings, migrate=True) as admin:
        assert (await admin.current()).at_head
        assert await admin.list_users() == []
