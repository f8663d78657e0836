"""The fake GoTrue for the web tests (it lives with the auth tests), and the person at the fake
provider's consent page, driven over HTTP."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "auth"))

from fake_gotrue import FakeGoTrue

SUPABASE_KEY = "anon-key"


def gotrue_settings(gotrue: FakeGoTrue) -> dict[str, object]:
    return {
        "auth_providers": ("supabase", "local"),
        "supabase_url": gotrue.url,
        "supabase_key": SUPABASE_KEY,
        "supabase_jwt_secret": gotrue.jwt_secret,
        "auth_timeout": 2.0,
        "oauth_providers": ("github",),
        # The callback URL's origin (the test client's Host is "testserver", not loopback).
        "public_url": "http://testserver",
    }


async def consent(authorize_url: str, email: str, *, decision: str = "allow") -> str:
    """Follow GoTrue's authorize URL to the provider page, answer it, and return the URL the
    browser is sent back to (``redirect_to`` with ``?code=`` or ``?error=``)."""
    async with httpx.AsyncClient() as browser:
        to_provider = await browser.get(authorize_url)
        assert to_provider.status_code == 302, to_provider.text
        page = to_provider.headers["location"]
        flow = parse_qs(urlsplit(page).query)["flow"][0]
        back = await browser.post(page, data={"flow": flow, "email": email, "decision": decision})
        assert back.status_code == 302, back.text
        return str(back.headers["location"])


__all__ = ["SUPABASE_KEY", "FakeGoTrue", "consent", "gotrue_settings"]
