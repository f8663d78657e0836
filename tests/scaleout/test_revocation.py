"""Signing out and revoking are seen by every process at once: two real ``chitram serve``
processes over one PostgreSQL and one Redis, and no process may go on trusting a credential
another one revoked (no cache of who a token belongs to outlives the revocation).

Each credential is used on B right before it is revoked on A, so anything B could have
remembered about it is warm when the revocation happens.
"""

from __future__ import annotations

import httpx
import pytest
from serverkit import PASSWORD, Cluster, Server, bearer, jpeg_bytes, register, upload_files

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]

TIMEOUT = 60.0


def me(server: Server, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/auth/me", headers=bearer(token), timeout=TIMEOUT)


def upload(server: Server, token: str, shade: int) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/images/upload",
        files=upload_files(jpeg_bytes(color=(shade, 10, 10))),
        headers=bearer(token),
        timeout=TIMEOUT,
    )


def assert_refused(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.json()["detail"]["code"] == "INVALID_TOKEN", resp.text


def test_a_session_signed_out_on_one_process_is_refused_by_the_other_at_once(
    cluster: Cluster,
) -> None:
    a, b = cluster.ready("a", "b")
    token = register(a.url, "signout@example.com")
    second = httpx.post(
        f"{b.url}/api/v1/auth/login",
        json={"email": "signout@example.com", "password": PASSWORD},
        timeout=TIMEOUT,
    )
    assert second.status_code == 200, second.text
    for _ in range(3):  # warm whatever B might keep about the token
        assert me(b, token).status_code == 200
    assert upload(b, token, 1).status_code == 201

    out = httpx.post(f"{a.url}/api/v1/auth/logout", headers=bearer(token), timeout=TIMEOUT)
    assert out.status_code == 204, out.text

    assert_refused(me(b, token))
    assert_refused(upload(b, token, 2))
    assert_refused(me(a, token))
    listed = httpx.get(f"{b.url}/api/v1/images", headers=bearer(token), timeout=TIMEOUT)
    assert_refused(listed)
    # Another session of the same user is not signed out.
    assert me(a, second.json()["access_token"]).status_code == 200


def test_an_api_token_revoked_on_one_process_is_refused_by_the_other_at_once(
    cluster: Cluster,
) -> None:
    a, b = cluster.ready("a", "b")
    session = register(a.url, "revoke@example.com")
    made = httpx.post(
        f"{a.url}/api/v1/auth/tokens",
        json={"name": "script", "scopes": ["images:read", "images:write"]},
        headers=bearer(session),
        timeout=TIMEOUT,
    )
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["id"]
    for shade in range(3):  # warm whatever B might keep about the token
        assert upload(b, token, shade).status_code == 201
        listed = httpx.get(f"{b.url}/api/v1/images", headers=bearer(token), timeout=TIMEOUT)
        assert listed.status_code == 200

    gone = httpx.delete(
        f"{a.url}/api/v1/auth/tokens/{token_id}", headers=bearer(session), timeout=TIMEOUT
    )
    assert gone.status_code == 204, gone.text

    assert_refused(upload(b, token, 9))
    assert_refused(httpx.get(f"{b.url}/api/v1/images", headers=bearer(token), timeout=TIMEOUT))
    assert_refused(upload(a, token, 9))
    # The session that made it still works, on both processes; the three uploads stay.
    for server in (a, b):
        listed = httpx.get(f"{server.url}/api/v1/images", headers=bearer(session))
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 3
