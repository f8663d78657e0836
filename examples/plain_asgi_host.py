"""Chitram inside a plain ASGI application, no framework: the host answers its own paths and
hands everything else to the Chitram app, and opens the Chitram instance in the lifespan.

Run it:  uvicorn examples.plain_asgi_host:app   (from the repository root)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from chitram_core import Chitram, Settings
from chitram_falcon import create_app

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Host:
    def __init__(self, settings: Settings | None = None) -> None:
        self.chitram = Chitram(settings or Settings.from_env())
        self.api = create_app(self.chitram)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == "/hello":
            await self._hello(send)
        else:
            await self.api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.chitram.__aenter__()
                except Exception as exc:  # tell the server why it cannot start
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.chitram.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _hello(self, send: Send) -> None:
        report = await self.chitram.health()
        body = json.dumps({"hello": "from the host", "chitram": report.status}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def __getattr__(name: str) -> Host:
    if name == "app":
        return Host()
    raise AttributeError(name)
