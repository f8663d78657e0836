"""Personal API tokens at the SDK level: made, listed, checked, revoked, across instances."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from conftest import make_settings

from chitram_core import Chitram
from chitram_core.auth.api_tokens import PREFIX, SCOPES, require_scope
from chitram_core.errors import (
    InsufficientScope,
    InvalidToken,
    NotFound,
    UserInactive,
    ValidationError,
)
from chitram_core.models import Principal

pytestmark = pytest.mark.anyio


async def test_a_token_authenticates_with_its_scopes_until_revoked(
    chitram: Chitram, user: Principal
) -> None:
    made = await chitram.tokens.create(user, "backup", ["images:read", "tags:write"], 7)
    assert made.token.startswith(PREFIX) and made.scopes == ("images:read", "tags:write")
    assert made.expires_at is not None and (made.expires_at - made.created_at).days == 7
    caller = await chitram.auth.authenticate(made.token)
    assert (caller.user_id, caller.email) == (user.user_id, user.email)
    assert caller.scopes == frozenset({"images:read", "tags:write"})
    require_scope(caller, "images:read")
    with pytest.raises(InsufficientScope):
        require_scope(caller, "images:delete")
    [listed] = await chitram.tokens.list(user)
    assert (listed.id, listed.name, listed.scopes) == (made.id, "backup", made.scopes)
    assert not hasattr(listed, "token")
    with pytest.raises(InsufficientScope):  # a token cannot make, list or revoke tokens
        await chitram.tokens.create(caller, "more", ["images:read"])
    with pytest.raises(InsufficientScope):
        await chitram.tokens.list(caller)
    await chitram.tokens.revoke(user, made.id)
    with pytest.raises(InvalidToken):
        await chitram.auth.authenticate(made.token)
    with pytest.raises(NotFound):
        await chitram.tokens.revoke(user, made.id)


async def test_tokens_are_checked_and_refused_for_a_disabled_user(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    for scopes in ([], ["root"], "images:read"):
        with pytest.raises(ValidationError):
            await chitram.tokens.create(user, "x", scopes)
    with pytest.raises(ValidationError):
        await chitram.tokens.create(user, "x", SCOPES, 0)
    made = await chitram.tokens.create(user, "x", SCOPES)
    assert made.expires_at is None
    with pytest.raises(NotFound):  # someone else's token
        await chitram.tokens.revoke(other_user, made.id)
    await chitram.admin.disable_user(user.user_id)
    with pytest.raises(UserInactive):
        await chitram.auth.authenticate(made.token)


async def test_a_revoked_token_is_refused_at_once_by_another_instance(
    tmp_path: Path, database_url: str
) -> None:
    """Two instances over one database (as two processes would be): nothing is cached."""
    one = make_settings(tmp_path / "a", database_url=database_url, auto_migrate=True)
    two = make_settings(
        tmp_path / "b", database_url=database_url, jwt_secret=None, auto_migrate=False
    )
    async with Chitram(one, background=False) as first:
        secret = first.settings.jwt_secret
        async with Chitram(attrs.evolve(two, jwt_secret=secret), background=False) as second:
            session = await first.auth.register("shared@example.com", "correct horse")
            owner = await first.auth.authenticate(session.access_token)
            made = await first.tokens.create(owner, "ci", ["images:write"])
            assert (await second.auth.authenticate(made.token)).user_id == owner.user_id
            await first.tokens.revoke(owner, made.id)
            with pytest.raises(InvalidToken):
                await second.auth.authenticate(made.token)
