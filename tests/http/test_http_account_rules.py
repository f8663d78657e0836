"""Emails are NFKC + lower-cased, never case-folded, and a local part mixing look-alike scripts is
refused; new passwords must be hard to guess by a strength estimate, not only off a list."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from httpkit import PASSWORD, Env, assert_error, open_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagekit import make_settings

from chitram_core import Chitram
from chitram_core.admin import Admin
from chitram_core.auth import rules
from chitram_core.db.tables import users
from chitram_core.errors import InvalidEmail

pytestmark = pytest.mark.anyio

AUTH = "/api/v1/auth"


async def _register(env: Env, email: str, password: str = PASSWORD) -> dict[str, object]:
    resp = await env.client.post(f"{AUTH}/register", json={"email": email, "password": password})
    assert resp.status_code == 201, resp.text
    user: dict[str, object] = resp.json()["user"]
    return user


async def _login_id(env: Env, email: str) -> object:
    resp = await env.client.post(f"{AUTH}/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return resp.json()["user"]["id"]


# Emails -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [("straße@example.com", "strasse@example.com"), ("ada@faß.de", "ada@fass.de")],
)
async def test_addresses_only_case_folding_merges_are_two_accounts(
    env: Env, one: str, other: str
) -> None:
    first, second = await _register(env, one), await _register(env, other)
    assert first["id"] != second["id"]
    assert await _login_id(env, one) == first["id"]
    assert await _login_id(env, other) == second["id"]
    assert await _login_id(env, other.upper()) == second["id"]


async def test_case_still_does_not_make_a_second_account(env: Env) -> None:
    await _register(env, "Straße@Example.com")
    resp = await env.client.post(
        f"{AUTH}/register", json={"email": "STRAßE@example.COM", "password": PASSWORD}
    )
    assert_error(resp, 400, "EMAIL_EXISTS")


@pytest.mark.parametrize(
    "email",
    [
        "\u0430lice@example.com",  # Cyrillic a, then Latin
        "alic\u0435@example.com",  # Latin, then Cyrillic e
        "\u03bfscar@example.com",  # Greek omicron
        "ad\u0430.lovelace@example.com",
    ],
)
async def test_a_local_part_mixing_look_alike_scripts_is_422(env: Env, email: str) -> None:
    await _register(env, "alice@example.com")
    for path in ("register", "login"):
        resp = await env.client.post(f"{AUTH}/{path}", json={"email": email, "password": PASSWORD})
        detail = assert_error(resp, 422, "INVALID_EMAIL")
        assert "scripts" in detail["message"]


async def test_one_script_is_fine_whichever_it_is(env: Env) -> None:
    for email in ("алиса@example.com", "όσκαρ@example.com", "ada2@example.com"):
        await _register(env, email)


latin = st.characters(min_codepoint=ord("a"), max_codepoint=ord("z"))
cyrillic_or_greek = st.characters(min_codepoint=0x0430, max_codepoint=0x044F) | st.characters(
    min_codepoint=0x03B1, max_codepoint=0x03C9
)


@given(
    prefix=st.text(latin, min_size=1, max_size=6),
    alien=cyrillic_or_greek,
    suffix=st.text(latin, max_size=6),
)
def test_any_latin_local_part_with_a_cyrillic_or_greek_letter_is_refused(
    prefix: str, alien: str, suffix: str
) -> None:
    with pytest.raises(InvalidEmail):
        rules.normalize_email(f"{prefix}{alien}{suffix}@example.com")


local_parts = st.text(
    st.characters(codec="utf-8", categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12
)


@given(local=local_parts)
def test_the_key_is_stable_and_ignores_case_but_does_not_fold(local: str) -> None:
    try:
        key = rules.normalize_email(f"{local}@example.com")
    except InvalidEmail:
        return
    assert rules.normalize_email(key) == key
    assert rules.normalize_email(f"{local.lower()}@EXAMPLE.com") == key
    assert key == key.lower()
    if "ß" in key:
        assert rules.normalize_email(key.replace("ß", "ss")) != key


async def test_accounts_keyed_by_the_old_case_folding_still_sign_in(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auto_migrate=False)
    async with Admin.open(settings) as admin:
        await admin.upgrade()
        await admin.create_user("Straße@Example.com", PASSWORD)
        await admin.downgrade("0002_variants")  # back to the key the old rules stored
        async with admin.database.connect() as conn:
            stored = (await conn.execute(sa.select(users.c.email_normalized))).scalar_one()
        assert stored == "strasse@example.com"
        await admin.upgrade()
    async with open_env(tmp_path) as env:
        assert await _login_id(env, "straße@example.com")
        await _register(env, "strasse@example.com")  # the other mailbox is free now


# Passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["abababab", "aaaaaaab", "Summer2024", "Passw0rd!"])
async def test_guessable_passwords_are_weak(env: Env, password: str) -> None:
    resp = await env.client.post(
        f"{AUTH}/register", json={"email": "weak@example.com", "password": password}
    )
    detail = assert_error(resp, 422, "WEAK_PASSWORD")
    assert "guess" in detail["message"]
    assert detail["details"]["score"] < detail["details"]["min_score"] == 3


async def test_a_password_built_from_the_email_is_weak(env: Env) -> None:
    resp = await env.client.post(
        f"{AUTH}/register",
        json={"email": "grace.hopper@example.com", "password": "gracehopper1"},
    )
    assert_error(resp, 422, "WEAK_PASSWORD")


@pytest.mark.parametrize("password", [PASSWORD, "violet tractor minus 7", "x7#Lq!92mZ"])
async def test_strong_passwords_register(env: Env, password: str) -> None:
    await _register(env, f"strong{len(password)}@example.com", password)


async def test_the_admin_refuses_weak_passwords_too(tmp_path: Path) -> None:
    async with Chitram(make_settings(tmp_path), background=False) as chitram:
        with pytest.raises(Exception) as caught:
            await chitram.admin.create_user("admin@example.com", "Summer2024")
        assert getattr(caught.value, "code", None) == "WEAK_PASSWORD"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=st.text(min_size=8, max_size=1024))
def test_the_rules_answer_for_any_password_in_bounded_time(password: str) -> None:
    try:
        rules.check_password(password, email="any@example.com")
    except Exception as exc:
        assert getattr(exc, "code", None) == "WEAK_PASSWORD"
