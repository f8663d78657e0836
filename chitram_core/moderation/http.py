"""The built-in ``http`` moderator: asks a moderation service over HTTP.

It POSTs the preview JPEG (``Content-Type: image/jpeg``) to ``CHITRAM_MODERATION_URL``, with
what is known of the upload in ``Chitram-*`` headers, and reads a 2xx JSON answer
``{"verdict": "allow" | "reject", "reason": "..."}``. Anything else (no answer within
``CHITRAM_MODERATION_TIMEOUT``, a refused connection, a non-2xx status, another body) means the
service is unavailable. The URL is the operator's, so it is not subject to the fetch guard.
"""

from __future__ import annotations

from typing import Any

import httpx

from chitram_core.errors import ConfigurationError, ModeratorUnavailable
from chitram_core.moderation import ModerationInput, Verdict
from chitram_core.settings import Settings


class HttpModerator:
    name = "http"

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None) -> None:
        if not settings.moderation_url:
            raise ConfigurationError("CHITRAM_MODERATION_URL is required by the http moderator")
        self.url = settings.moderation_url
        self.client = client or httpx.AsyncClient(
            timeout=settings.moderation_timeout, trust_env=False
        )

    async def check(self, item: ModerationInput) -> Verdict:
        headers = {
            "Content-Type": "image/jpeg",
            "Chitram-Content-Type": item.content_type,
            "Chitram-Width": str(item.width),
            "Chitram-Height": str(item.height),
            "Chitram-Size": str(item.size),
            "Chitram-Sha256": item.sha256,
        }
        if item.owner_id:
            headers["Chitram-Owner"] = item.owner_id
        try:
            response = await self.client.post(self.url, content=item.image, headers=headers)
        except httpx.HTTPError as exc:
            raise ModeratorUnavailable(
                f"The moderation service did not answer ({type(exc).__name__})"
            ) from None
        if not response.is_success:
            raise ModeratorUnavailable(f"The moderation service answered {response.status_code}")
        return parse_verdict(response)

    async def close(self) -> None:
        await self.client.aclose()


def parse_verdict(response: httpx.Response) -> Verdict:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    verdict = body.get("verdict") if isinstance(body, dict) else None
    if verdict == "allow":
        return Verdict.allow()
    if verdict == "reject":
        reason = body.get("reason")
        return Verdict.reject(reason if isinstance(reason, str) and reason else "rejected")
    raise ModeratorUnavailable("The moderation service's answer has no verdict")


def create_moderator(settings: Settings) -> HttpModerator:
    return HttpModerator(settings)
