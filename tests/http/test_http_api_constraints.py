"""The OpenAPI document states the constraints the server enforces on a new account."""

from __future__ import annotations

import pytest
from httpkit import Env

pytestmark = pytest.mark.anyio


async def test_register_states_and_enforces_the_email_format_and_password_length(
    env: Env,
) -> None:
    document = (await env.client.get("/openapi.json")).json()
    body = document["paths"]["/api/v1/auth/register"]["post"]["requestBody"]
    fields = body["content"]["application/json"]["schema"]["properties"]
    assert fields["email"]["format"] == "email"
    low, high = fields["password"]["minLength"], fields["password"]["maxLength"]
    too_short = await env.client.post(
        "/api/v1/auth/register", json={"email": "d@example.com", "password": "Qz9!Lm2"[: low - 1]}
    )
    assert too_short.status_code == 422
    too_long = await env.client.post(
        "/api/v1/auth/register", json={"email": "e@example.com", "password": "Qz9!" * high}
    )
    assert too_long.status_code == 422
    not_email = await env.client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": "Qz9!Lm2#Vb"}
    )
    assert not_email.status_code == 422
