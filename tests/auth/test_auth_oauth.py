"""Social sign-in through Supabase with server-side PKCE, at the SDK: ``chitram.auth.oauth_start``
and ``oauth_finish`` against the fake GoTrue's real HTTP PKCE flow (authorize, a fake provider
page, ``/token?grant_type=pkce``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest
import sqlalchemy as sa
from auth_helpers import PASSWORD, fast_hasher
from fake_gotrue import FakeGoTrue
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chitram_core.auth import oauth
from chitram_core.auth.chain import AuthChain
from chitram_core.auth.local import LocalProvider
from chitram_core.auth.passwords import Passwords
from chitram_core.auth.supabase import SupabaseProvider
from chitram_core.db import Database
from chitram_core.db.tables import refresh_tokens
from chitram_core.errors import (
    AccountLinkRefused,
    ConfigurationError,
    EmailExists,
    InvalidRequest,
    InvalidToken,
    NotFound,
    ProviderUnavailable,
)
from chitram_core.settings import Settings

pytestmark = pytest.mark.anyio

APP = "https://app.example.com/auth/done"


@pytest.fixture
def oauth_settings(settings: Settings) -> Settings:
    return attrs.evolve(settings, oauth_providers=("github", "google"), oauth_redirects=(APP,))


@pytest.fixture
async def chain(
    oauth_settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> AsyncIterator[AuthChain]:
    providers = [
        SupabaseProvider(
            oauth_settings, http_client=http_client, passwords=Passwords(fast_hasher())
        ),
        LocalProvider(oauth_settings, hasher=fast_hasher()),
    ]
    chain = await AuthChain.open(oauth_settings, database, providers=providers)
    yield chain
    await chain.close()


async def consent(url: str, email: str, *, decision: str = "allow") -> dict[str, str]:
    """What a person does in the browser: follow the authorize URL to the provider's page,
    approve, and land on redirect_to. Returns redirect_to's query (state, code)."""
    async with httpx.AsyncClient() as browser:
        to_provider = await browser.get(url)
        assert to_provider.status_code == 302, to_provider.text
        page = to_provider.headers["location"]
        flow = parse_qs(urlsplit(page).query)["flow"][0]
        back = await browser.post(page, data={"flow": flow, "email": email, "decision": decision})
        assert back.status_code == 302, back.text
        location = back.headers["location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    query["_url"] = location
    return query


# Starting ----------------------------------------------------------------------------------------


async def test_start_gives_gotrues_pkce_authorize_url_with_the_callers_redirect(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    start = await chain.oauth_start("github", APP)
    parts = urlsplit(start.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{gotrue.url}/auth/v1/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["provider"] == "github"
    assert query["code_challenge_method"] == "s256"
    assert start.verifier is not None
    assert query["code_challenge"] == oauth.challenge_of(start.verifier)
    assert query["redirect_to"] == start.redirect_to == f"{APP}?state={start.state}"
    assert len(start.verifier) >= 43 and len(start.state) >= 32
    # starting costs one health check (nobody is sent to a dead Supabase), nothing else
    assert [(m, p) for m, p, _ in gotrue.requests] == [("GET", "/auth/v1/health")]


async def test_every_start_has_its_own_state_and_verifier(chain: AuthChain) -> None:
    first, second = await chain.oauth_start("github", APP), await chain.oauth_start("github", APP)
    assert first.state != second.state and first.verifier != second.verifier


async def test_an_unconfigured_provider_is_not_found(chain: AuthChain) -> None:
    with pytest.raises(NotFound):
        await chain.oauth_start("gitlab", APP)


async def test_without_oauth_providers_social_sign_in_is_not_found(
    settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> None:
    supabase = SupabaseProvider(settings, http_client=http_client)
    async with await AuthChain.open(settings, database, providers=[supabase]) as chain:
        assert chain.oauth_providers == ()
        with pytest.raises(NotFound):
            await chain.oauth_start("github", APP)
        with pytest.raises(NotFound):
            await chain.oauth_finish("code", "v" * 43)


@pytest.mark.parametrize(
    "redirect_to",
    [
        "https://evil.example.com/auth/done",
        "https://app.example.com/auth/done/../../evil",
        "https://app.example.com/other",
        "https://app.example.com.evil.test/auth/done",
        "https://app.example.com@evil.test/auth/done",
        "http://app.example.com/auth/done",
        "https://app.example.com:8443/auth/done",
        "//evil.test/auth/done",
        "/auth/done",
        "javascript:alert(1)",
        "https://app.example.com/auth/done#frag",
        " https://app.example.com/auth/done",
        "https://app.example.com\\@evil.test/auth/done",
    ],
)
async def test_a_redirect_outside_the_allow_list_is_refused(
    chain: AuthChain, redirect_to: str
) -> None:
    with pytest.raises(InvalidRequest):
        await chain.oauth_start("github", redirect_to)


async def test_the_allow_list_keeps_the_callers_own_query(chain: AuthChain) -> None:
    start = await chain.oauth_start("google", APP + "?app_state=xyz")
    query = parse_qs(urlsplit(start.redirect_to).query)
    assert query == {"app_state": ["xyz"], "state": [start.state]}


@given(url=st.text(max_size=80))
@hsettings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_only_allow_listed_urls_pass(url: str) -> None:
    allowed = oauth.redirect_allowed(url, (APP,))
    if allowed:
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.path) == (
            "https",
            "app.example.com",
            "/auth/done",
        )
        assert parts.port in (None, 443) and parts.username is None and not parts.fragment


async def test_a_client_may_bring_its_own_code_challenge(chain: AuthChain) -> None:
    verifier = oauth.new_verifier()
    start = await chain.oauth_start("github", APP, code_challenge=oauth.challenge_of(verifier))
    assert start.verifier is None
    assert parse_qs(urlsplit(start.url).query)["code_challenge"] == [oauth.challenge_of(verifier)]
    with pytest.raises(InvalidRequest):
        await chain.oauth_start("github", APP, code_challenge="plain-text-challenge")


async def test_an_open_circuit_refuses_to_start(chain: AuthChain, gotrue: FakeGoTrue) -> None:
    gotrue.mode = "down"
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await chain.oauth_finish("some-code", oauth.new_verifier())
    with pytest.raises(ProviderUnavailable):
        await chain.oauth_start("github", APP)


def test_settings_need_supabase_in_the_chain_for_oauth() -> None:
    with pytest.raises(ValueError, match="supabase"):
        Settings(oauth_providers=("github",))
    with pytest.raises(ConfigurationError, match="CHITRAM_OAUTH_PROVIDERS"):
        Settings.from_env({"CHITRAM_OAUTH_PROVIDERS": "github"})
    parsed = Settings.from_env(
        {
            "CHITRAM_AUTH_PROVIDERS": "supabase,local",
            "CHITRAM_OAUTH_PROVIDERS": "GitHub, google",
            "CHITRAM_OAUTH_REDIRECTS": "https://a.example/cb, myapp://x",
        }
        | {"CHITRAM_OAUTH_REDIRECTS": "https://a.example/cb,http://127.0.0.1:9000/cb"}
    )
    assert parsed.oauth_providers == ("github", "google")
    assert parsed.oauth_redirects == ("https://a.example/cb", "http://127.0.0.1:9000/cb")
    assert (
        Settings.from_env(
            {"CHITRAM_AUTH_PROVIDERS": "supabase", "CHITRAM_OAUTH_PROVIDERS": ""}
        ).oauth_providers
        == ()
    )
    with pytest.raises(ConfigurationError, match="CHITRAM_OAUTH_REDIRECTS"):
        Settings.from_env({"CHITRAM_OAUTH_REDIRECTS": "not a url"})


# Finishing ---------------------------------------------------------------------------------------


async def test_the_whole_flow_signs_in_a_new_user(
    chain: AuthChain, gotrue: FakeGoTrue, database: Database
) -> None:
    gotrue.redirect_allow_list = [APP + "**"]  # as the Supabase dashboard's Redirect URLs
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "octo@example.com")
    assert back["_url"].startswith(APP + "?")
    assert back["state"] == start.state
    assert start.verifier is not None
    session = await chain.oauth_finish(back["code"], start.verifier)
    assert session.user.email == "octo@example.com"
    assert session.user.provider == "supabase"
    principal = await chain.authenticate(session.access_token)
    assert principal.user_id == session.user.id
    assert ("POST", "/auth/v1/token") in [(m, p) for m, p, _ in gotrue.requests]
    # the same identity again is the same local user
    again = await chain.oauth_start("github", APP)
    back = await consent(again.url, "octo@example.com")
    assert again.verifier is not None
    assert (await chain.oauth_finish(back["code"], again.verifier)).user.id == session.user.id


async def test_a_code_is_good_once(chain: AuthChain) -> None:
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "once@example.com")
    assert start.verifier is not None
    await chain.oauth_finish(back["code"], start.verifier)
    with pytest.raises(InvalidRequest):
        await chain.oauth_finish(back["code"], start.verifier)


async def test_the_wrong_verifier_is_refused(chain: AuthChain) -> None:
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "stolen@example.com")
    with pytest.raises(InvalidRequest):
        await chain.oauth_finish(back["code"], oauth.new_verifier())


async def test_a_client_held_verifier_finishes_the_flow(chain: AuthChain) -> None:
    verifier = oauth.new_verifier()
    start = await chain.oauth_start("google", APP, code_challenge=oauth.challenge_of(verifier))
    back = await consent(start.url, "native@example.com")
    assert (await chain.oauth_finish(back["code"], verifier)).user.email == "native@example.com"


@pytest.mark.parametrize(
    ("code", "verifier"),
    [("", "v" * 43), ("c", "short"), ("c", "v" * 129), ("c", "v" * 42 + " "), ("c\n", "v" * 43)],
)
async def test_malformed_codes_and_verifiers_are_invalid_requests(
    chain: AuthChain, gotrue: FakeGoTrue, code: str, verifier: str
) -> None:
    with pytest.raises(InvalidRequest):
        await chain.oauth_finish(code, verifier)
    assert gotrue.requests == []


async def test_a_made_up_code_is_an_invalid_request(chain: AuthChain) -> None:
    with pytest.raises(InvalidRequest):
        await chain.oauth_finish(str(uuid.uuid4()), oauth.new_verifier())


async def test_supabase_down_at_the_exchange_is_unavailable_and_local_login_still_works(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    local = await chain.register("local@example.com", PASSWORD)  # Supabase first: it signs up
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "late@example.com")
    gotrue.mode = "down"
    assert start.verifier is not None
    with pytest.raises(ProviderUnavailable):
        await chain.oauth_finish(back["code"], start.verifier)
    assert (await chain.login("local@example.com", PASSWORD)).user.id == local.user.id


# Linking -----------------------------------------------------------------------------------------


async def local_user(database: Database, email: str) -> str:
    local = LocalProvider(Settings(env="test", jwt_secret="x" * 40), hasher=fast_hasher())
    await local.start(database)
    session = await local.register(email, PASSWORD)
    await local.login(email, PASSWORD)
    return session.user.id


async def live_refresh_tokens(database: Database, user_id: str) -> int:
    async with database.connect() as conn:
        query = sa.select(sa.func.count()).where(
            refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None)
        )
        return int((await conn.execute(query)).scalar_one())


async def test_an_identity_never_takes_over_a_local_account_with_a_password(
    chain: AuthChain, database: Database
) -> None:
    user_id = await local_user(database, "ada@example.com")
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "Ada@Example.com")
    assert start.verifier is not None
    with pytest.raises(AccountLinkRefused) as refused:
        await chain.oauth_finish(back["code"], start.verifier)
    assert refused.value.code == "INVALID_REQUEST" and refused.value.status == 400
    assert "password" in refused.value.message
    user = await chain.get_user(user_id)
    assert user.supabase_id is None and user.provider == "local"
    assert await live_refresh_tokens(database, user_id) == 2


async def test_the_account_owner_signed_in_links_it_and_loses_local_sessions(
    chain: AuthChain, database: Database
) -> None:
    user_id = await local_user(database, "grace@example.com")
    signed_in = await chain.login("grace@example.com", PASSWORD)
    principal = await chain.authenticate(signed_in.access_token)
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "grace@example.com")
    assert start.verifier is not None
    session = await chain.oauth_finish(back["code"], start.verifier, principal=principal)
    assert session.user.id == user_id and session.user.supabase_id is not None
    assert await live_refresh_tokens(database, user_id) == 0
    with pytest.raises(InvalidToken):
        await chain.refresh(signed_in.refresh_token)
    # both ways in lead to the same account: the password, and GitHub again
    assert (await chain.login("grace@example.com", PASSWORD)).user.id == user_id
    again = await chain.oauth_start("github", APP)
    back = await consent(again.url, "grace@example.com")
    assert again.verifier is not None
    assert (await chain.oauth_finish(back["code"], again.verifier)).user.id == user_id


async def test_someone_elses_session_is_no_proof(chain: AuthChain, database: Database) -> None:
    await local_user(database, "victim@example.com")
    other = await chain.authenticate(
        (await chain.register("mallory@example.com", PASSWORD)).access_token
    )
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "victim@example.com")
    assert start.verifier is not None
    with pytest.raises(AccountLinkRefused):
        await chain.oauth_finish(back["code"], start.verifier, principal=other)


async def test_an_unconfirmed_identity_email_never_links(
    chain: AuthChain, database: Database, gotrue: FakeGoTrue
) -> None:
    from chitram_core.auth import users as user_repo

    async with database.transaction() as conn:
        await user_repo.create(
            conn,
            email="nopass@example.com",
            email_normalized="nopass@example.com",
            provider="local",
        )
    gotrue.identity_confirmed = False
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "nopass@example.com")
    assert start.verifier is not None
    with pytest.raises(EmailExists):
        await chain.oauth_finish(back["code"], start.verifier)
    gotrue.identity_confirmed = True
    start = await chain.oauth_start("github", APP)
    back = await consent(start.url, "nopass@example.com")
    assert start.verifier is not None
    linked = await chain.oauth_finish(back["code"], start.verifier)
    assert linked.user.email == "nopass@example.com" and linked.user.supabase_id is not None
