"""Hardening at the HTTP level: what an attacker or a careless client meets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from httpkit import PASSWORD, Env, assert_error, bearer, open_env, png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chitram_core import RateLimit
from chitram_core.settings import DEFAULT_JWT_SECRET
from chitram_falcon.app import create_app

pytestmark = pytest.mark.anyio

AUTH = "/api/v1/auth"
UPLOAD = "/api/v1/images/upload"


def client_for(env: Env, address: str, base_url: str = "http://testserver") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=env.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


# Secrets ------------------------------------------------------------------------------------


async def test_a_token_signed_with_the_published_secret_is_401(env: Env) -> None:
    token = await env.register("victim@example.com")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, DEFAULT_JWT_SECRET, algorithm="HS256")
    resp = await env.client.get(f"{AUTH}/me", headers=bearer(forged))
    assert_error(resp, 401, "INVALID_TOKEN")
    assert (await env.client.get(f"{AUTH}/me", headers=bearer(token))).status_code == 200


async def test_an_installation_without_a_secret_keeps_one_private_file(tmp_path: Path) -> None:
    async with open_env(tmp_path / "data") as env:
        token = await env.register("kept@example.com")
    secret = tmp_path / "data" / "secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data" / "chitram.db").stat().st_mode & 0o777 == 0o600
    claims = jwt.decode(token, secret.read_text().strip(), algorithms=["HS256"])
    assert claims["email"] == "kept@example.com"
    async with open_env(tmp_path / "data") as again:  # the same secret after a restart
        assert (await again.client.get(f"{AUTH}/me", headers=bearer(token))).status_code == 200


# Request bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 10_000])
async def test_json_nested_deeper_than_32_levels_is_422(env: Env, depth: int) -> None:
    body = '{"email": "a@example.com", "password": ' + "[" * depth + "]" * depth + "}"
    resp = await env.client.post(
        f"{AUTH}/login", content=body, headers={"Content-Type": "application/json"}
    )
    detail = assert_error(resp, 422, "VALIDATION_ERROR")
    assert "32" in detail["message"]


async def test_brackets_inside_strings_do_not_count_as_nesting(env: Env) -> None:
    await env.register("brackets@example.com")
    password_field = json.dumps("[" * 40)
    body = '{"email": "brackets@example.com", "password": ' + password_field + "}"
    resp = await env.client.post(
        f"{AUTH}/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 401, "INVALID_CREDENTIALS")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(json_values.map(json.dumps), st.binary(max_size=300).map(bytes.hex)))
async def test_no_login_body_is_ever_a_500(env: Env, body: str) -> None:
    resp = await env.client.post(
        f"{AUTH}/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= resp.status_code < 500, resp.text


# Accounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "a\x00b@example.com",
        "a\u200bb@example.com",  # zero-width space
        "a\u202eb@example.com",  # right-to-left override
        "\ufeffab@example.com",  # byte order mark
        "ab@exa\u200dmple.com",  # zero-width joiner in the domain
    ],
)
async def test_emails_with_control_or_invisible_characters_are_422(env: Env, email: str) -> None:
    resp = await env.client.post(f"{AUTH}/register", json={"email": email, "password": PASSWORD})
    assert_error(resp, 422, "INVALID_EMAIL")


async def test_look_alike_emails_are_one_account(env: Env) -> None:
    await env.register("ada@example.com")
    fullwidth = "\uff21\uff24\uff21@example.com"  # ADA in fullwidth letters
    for twin in (fullwidth, "Ada@EXAMPLE.COM", " ada@example.com "):
        resp = await env.client.post(f"{AUTH}/register", json={"email": twin, "password": PASSWORD})
        assert_error(resp, 400, "EMAIL_EXISTS")
    login = await env.client.post(
        f"{AUTH}/login", json={"email": "\uff41\uff44\uff41@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200


@pytest.mark.parametrize(
    "password", ["password", "12345678", " " * 8, "PassWord", "qwertyuiop", "zzzzzzzzzz"]
)
async def test_weak_passwords_are_422(env: Env, password: str) -> None:
    resp = await env.client.post(
        f"{AUTH}/register", json={"email": "weak@example.com", "password": password}
    )
    assert_error(resp, 422, "WEAK_PASSWORD")


async def test_the_email_is_not_a_password(env: Env) -> None:
    for password in ("same.as.email@example.com", "SAME.AS.EMAIL"):
        resp = await env.client.post(
            f"{AUTH}/register",
            json={"email": "same.as.email@example.com", "password": password},
        )
        assert_error(resp, 422, "WEAK_PASSWORD")


async def test_a_host_can_turn_the_common_password_list_off(tmp_path: Path) -> None:
    async with open_env(tmp_path, password_common_check=False) as env:
        resp = await env.client.post(
            f"{AUTH}/register", json={"email": "own@example.com", "password": "password"}
        )
        assert resp.status_code == 201
        resp = await env.client.post(
            f"{AUTH}/register", json={"email": "own2@example.com", "password": " " * 8}
        )
        assert_error(resp, 422, "WEAK_PASSWORD")  # the rules stay; only the list goes


# Sessions -----------------------------------------------------------------------------------


async def test_three_parallel_renewals_of_one_session_keep_it_alive(env: Env) -> None:
    registered = await env.client.post(
        f"{AUTH}/register", json={"email": "tabs@example.com", "password": PASSWORD}
    )
    refresh_token = registered.json()["refresh_token"]
    answers: list[httpx.Response] = []

    async def renew() -> None:
        answers.append(
            await env.client.post(f"{AUTH}/refresh", json={"refresh_token": refresh_token})
        )

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(renew)
    assert [a.status_code for a in answers] == [200, 200, 200]
    successors = {a.json()["refresh_token"] for a in answers}
    assert len(successors) == 1
    for answer in answers:
        me = await env.client.get(f"{AUTH}/me", headers=bearer(answer.json()["access_token"]))
        assert me.status_code == 200
    again = await env.client.post(f"{AUTH}/refresh", json={"refresh_token": successors.pop()})
    assert again.status_code == 200


async def test_reuse_after_the_interval_signs_the_whole_session_out(tmp_path: Path) -> None:
    async with open_env(tmp_path, refresh_reuse_interval=0) as env:
        first = (
            await env.client.post(
                f"{AUTH}/register", json={"email": "thief@example.com", "password": PASSWORD}
            )
        ).json()
        second = (
            await env.client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
        ).json()
        await anyio.sleep(0.01)
        replay = await env.client.post(
            f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert_error(replay, 401, "INVALID_TOKEN")
        after = await env.client.post(
            f"{AUTH}/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert_error(after, 401, "INVALID_TOKEN")
        me = await env.client.get(f"{AUTH}/me", headers=bearer(second["access_token"]))
        assert me.status_code == 401


# Headers ------------------------------------------------------------------------------------


async def test_every_answer_has_nosniff(env: Env) -> None:
    token = await env.register()
    for resp in (
        await env.client.get("/health"),
        await env.client.get(f"{AUTH}/me", headers=bearer(token)),
        await env.client.get(f"{AUTH}/me"),
        await env.client.get("/no/such/route"),
        await env.client.post(f"{AUTH}/login", content=b"{", headers={"Content-Type": "x/y"}),
        await env.client.get("/openapi.json"),
    ):
        assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.request.url


async def test_hsts_only_over_https(tmp_path: Path) -> None:
    async with open_env(tmp_path, trusted_proxies=("10.0.0.0/8",)) as env:
        plain = await env.client.get("/health/live")
        assert "Strict-Transport-Security" not in plain.headers
        forged = await env.client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
        assert "Strict-Transport-Security" not in forged.headers  # from an untrusted peer
        async with client_for(env, "127.0.0.1", "https://testserver") as tls:
            direct = await tls.get("/health/live")
        assert direct.headers["Strict-Transport-Security"].startswith("max-age=")
        async with client_for(env, "10.1.2.3") as proxy:
            relayed = await proxy.get("/health/live", headers={"X-Forwarded-Proto": "https"})
        assert relayed.headers["Strict-Transport-Security"].startswith("max-age=")


# Rate limits by network ----------------------------------------------------------------------


async def test_ipv6_clients_are_limited_per_64(tmp_path: Path) -> None:
    async with open_env(tmp_path, auth_rate_limit=RateLimit(2, 60)) as env:
        statuses = []
        for address in ("2001:db8:1:2::1", "2001:db8:1:2::abcd", "2001:db8:1:2:ffff::9"):
            async with client_for(env, address) as client:
                resp = await client.post(
                    f"{AUTH}/login",
                    json={"email": f"x{len(statuses)}@example.com", "password": PASSWORD},
                )
                statuses.append(resp.status_code)
        assert statuses == [401, 401, 429]
        async with client_for(env, "2001:db8:1:3::1") as neighbour:
            resp = await neighbour.post(
                f"{AUTH}/login", json={"email": "y@example.com", "password": PASSWORD}
            )
        assert resp.status_code == 401


# Health ---------------------------------------------------------------------------------------


async def test_health_details_are_for_this_machine_or_the_health_token(tmp_path: Path) -> None:
    async with open_env(tmp_path, health_token="h" * 40) as env:
        local = (await env.client.get("/health")).json()
        assert {"status", "version", "database", "checks"} <= set(local)
        async with client_for(env, "203.0.113.9") as remote:
            outside = await remote.get("/health")
            assert outside.status_code == 200 and outside.json() == {"status": local["status"]}
            wrong = await remote.get("/health", headers=bearer("not-it"))
            assert wrong.json() == {"status": local["status"]}
            allowed = await remote.get("/health", headers=bearer("h" * 40))
            assert {"status", "version", "database", "checks"} <= set(allowed.json())
        relayed = await env.client.get("/health", headers={"X-Forwarded-For": "203.0.113.9"})
        assert relayed.json() == {"status": local["status"]}


# Delete tokens --------------------------------------------------------------------------------


async def test_delete_token_in_a_header(tmp_path: Path) -> None:
    async with open_env(tmp_path, allow_anonymous_uploads=True) as env:
        image = await env.uploaded(None)
        url = f"/api/v1/images/{image['id']}"
        wrong = await env.client.delete(url, headers={"X-Delete-Token": "nope"})
        assert_error(wrong, 403, "INVALID_DELETE_TOKEN")
        resp = await env.client.delete(url, headers={"X-Delete-Token": image["delete_token"]})
        assert resp.status_code == 204
        assert (await env.client.get(url)).status_code == 404
        second = await env.uploaded(None, png_bytes(10, 10, "green"))
        query = await env.client.delete(
            f"/api/v1/images/{second['id']}", params={"delete_token": second["delete_token"]}
        )
        assert query.status_code == 204


# Share links ----------------------------------------------------------------------------------


async def test_share_links_use_the_public_url_not_the_host_header(tmp_path: Path) -> None:
    async with open_env(tmp_path, web_ui=True, public_url="https://img.example.org") as env:
        token = await env.register()
        image = await env.uploaded(token)
        app = create_app(env.chitram, web_ui=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.test") as client:
            page = await client.get(f"/images/{image['id']}")
        assert page.status_code == 200
        assert f"https://img.example.org/images/{image['id']}" in page.text
        assert "evil.test" not in page.text


# Uploads and slow clients ---------------------------------------------------------------------


class StalledBody:
    """A multipart upload that sends its headers and part of the file, then stops."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        head = (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="slow.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        self.piece = head + png_bytes()[:40]
        self.sent = False

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            self.sent = True
            self.started.set()
            return {"type": "http.request", "body": self.piece, "more_body": True}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


class TrickleBody(StalledBody):
    """Sends a byte every ``gap`` seconds, for ever: never idle, never done."""

    def __init__(self, gap: float) -> None:
        super().__init__()
        self.gap = gap

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            return await super().receive()
        await anyio.sleep(self.gap)
        return {"type": "http.request", "body": b"\0", "more_body": True}


async def raw_upload(env: Env, body: StalledBody, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = [(b"content-type", b"multipart/form-data; boundary=B"), (b"host", b"t")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": UPLOAD,
        "raw_path": UPLOAD.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("t", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await env.app(scope, body.receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(content)


async def test_stalled_uploads_hold_no_slot_and_are_cut_with_408(tmp_path: Path) -> None:
    async with open_env(
        tmp_path, upload_concurrency=2, upload_wait_timeout=0.5, upload_idle_timeout=5.0
    ) as env:
        tokens = [await env.register() for _ in range(4)]
        results: list[tuple[int, dict[str, Any]]] = []

        async def stalled(token: str, body: StalledBody) -> None:
            results.append(await raw_upload(env, body, token))

        async with anyio.create_task_group() as tg:
            bodies = []
            for i in range(12):  # three users, four uploads each: every one stalls mid-body
                body = StalledBody()
                bodies.append(body)
                tg.start_soon(stalled, tokens[i // 4], body)
            for body in bodies:
                await body.started.wait()
            # A fifth upload of a user who already has four in progress is refused.
            fifth = await env.upload(tokens[0])
            assert_error(fifth, 429, "RATE_LIMIT_EXCEEDED")
            assert fifth.headers["Retry-After"]
            # Another user's upload goes through though more uploads stall than there are slots.
            other = await env.upload(tokens[3])
            assert other.status_code == 201, other.text
        assert len(results) == 12
        for status, body in results:
            assert status == 408 and body["detail"]["code"] == "REQUEST_TIMEOUT"
        assert env.chitram.upload_slots.in_use == 0
        assert (await env.upload(tokens[0])).status_code == 201  # the user's count is back


async def test_a_body_that_never_finishes_is_cut_at_the_total_timeout(tmp_path: Path) -> None:
    async with open_env(tmp_path, upload_idle_timeout=5.0, upload_timeout=1.0) as env:
        token = await env.register()
        status, body = await raw_upload(env, TrickleBody(gap=0.05), token)
        assert status == 408
        assert body["detail"]["code"] == "REQUEST_TIMEOUT"
        assert "within" in body["detail"]["message"]


async def test_anonymous_clients_count_per_address_for_the_upload_cap(tmp_path: Path) -> None:
    async with (
        open_env(tmp_path, allow_anonymous_uploads=True, uploads_per_user=1) as env,
        anyio.create_task_group() as tg,
    ):
        body = StalledBody()
        results: list[int] = []

        async def stalled() -> None:
            results.append((await raw_upload(env, body, None))[0])

        tg.start_soon(stalled)
        await body.started.wait()
        same = await env.upload(None)  # the same address (127.0.0.1)
        assert_error(same, 429, "RATE_LIMIT_EXCEEDED")
        async with client_for(env, "198.51.100.7") as other:
            resp = await other.post(UPLOAD, files={"file": ("a.png", png_bytes(), "image/png")})
        assert resp.status_code == 201, resp.text
        tg.cancel_scope.cancel()
