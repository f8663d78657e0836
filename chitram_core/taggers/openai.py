"""The ``openai`` tagger: any OpenAI-compatible chat-completions endpoint (OpenAI, Azure
OpenAI, Ollama, vLLM, LiteLLM...).

One POST ``{base}/chat/completions`` per image, with one user message: the prompt and the image
as a ``data:image/jpeg;base64,`` URL (``detail: low``; the image is the ≤ 512 px JPEG Chitram
prepared, so a model never sees more). The answer's content is a comma-separated list or a JSON
array of names; each counts as confidence 90, as in v1. Timeouts, connection errors, 429 and
5xx are :class:`TaggerUnavailable` (the job retries); so is any other non-200 answer or a body
that is not a chat completion, with the reason in the job's error.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from chitram_core.errors import TaggerUnavailable
from chitram_core.models import Check, SuggestedTag
from chitram_core.settings import Settings

log = logging.getLogger(__name__)

CONFIDENCE = 90
PROMPT = (
    "List up to 10 short tags (one or two words each) for this image: the main objects, the "
    "scene, the setting and the mood. Answer only with the tags, comma-separated, lower case."
)


def parse_answer(content: str) -> list[str]:
    """Names from a model's answer: a JSON array of strings, or comma/newline-separated text
    (a Markdown code fence around either is tolerated)."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text.split("\n", 1)[1] if "\n" in text else text
        text = text.rsplit("```", 1)[0].strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return [str(item) for item in items if isinstance(item, str | int | float)]
    parts = text.replace("\n", ",").split(",")
    return [part.strip().lstrip("-*• ").strip() for part in parts if part.strip()]


class OpenAITagger:
    name = "openai"

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = settings.openai_base_url.rstrip("/")
        self.model = settings.openai_model
        self.api_key = settings.openai_api_key
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=settings.openai_timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def request_body(self, image: bytes, content_type: str) -> dict[str, Any]:
        data_url = f"data:{content_type};base64,{base64.b64encode(image).decode('ascii')}"
        return {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": PROMPT},
                        {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
                    ],
                }
            ],
            "max_tokens": 100,
            "temperature": 0,
        }

    async def suggest(self, image: bytes, content_type: str) -> Sequence[SuggestedTag]:
        url = f"{self.base_url}/chat/completions"
        try:
            response = await self.client.post(
                url, json=self.request_body(image, content_type), headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise TaggerUnavailable(
                f"The tagging model at {self.base_url} did not answer ({type(exc).__name__})",
                tagger=self.name,
            ) from exc
        if response.status_code != 200:
            raise TaggerUnavailable(
                f"The tagging model answered HTTP {response.status_code}",
                tagger=self.name,
                status=response.status_code,
                retry_after=_retry_after(response),
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TaggerUnavailable(
                "The tagging model's answer is not a chat completion", tagger=self.name
            ) from exc
        return [SuggestedTag(name, CONFIDENCE) for name in parse_answer(content)]

    async def health(self) -> Check:
        """``GET {base}/models``: reachable and answering (any non-5xx status)."""
        started = time.perf_counter()
        try:
            response = await self.client.get(
                f"{self.base_url}/models", headers=self._headers(), timeout=5.0
            )
        except httpx.HTTPError as exc:
            return Check(status="unhealthy", detail=f"{type(exc).__name__}")
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 500:
            return Check(
                status="unhealthy", latency_ms=latency, detail=f"HTTP {response.status_code}"
            )
        return Check(status="healthy", latency_ms=latency)

    async def close(self) -> None:
        if self._own_client:
            await self.client.aclose()


def _retry_after(response: httpx.Response) -> int:
    try:
        return max(1, int(response.headers.get("Retry-After", "5")))
    except ValueError:
        return 5


def create_tagger(settings: Settings) -> OpenAITagger:
    return OpenAITagger(settings)
