"""Chitram inside a Starlette app: the host owns the Chitram instance, mounts the API, and
calls the SDK directly from its own routes.

Run it:  uvicorn examples.starlette_host:app   (from the repository root)

The API is mounted at "/" after the host's own routes, so the image URLs Chitram returns
(``/api/v1/images/<id>/file``) are valid as they are. Starlette does not forward the lifespan to
mounted apps, which is why the host opens the instance in its own lifespan and hands it over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route

from chitram_core import Chitram, Settings, to_json
from chitram_core.errors import ChitramError
from chitram_falcon import create_app


def build(settings: Settings | None = None) -> Starlette:
    chitram = Chitram(settings or Settings.from_env())

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("<h1>My site</h1><p>Images are served under /api/v1/</p>")

    async def gallery_item(request: Request) -> HTMLResponse | JSONResponse:
        """A host page built from the SDK, no HTTP round trip to the API."""
        try:
            image = await chitram.images.get(request.path_params["image_id"])
        except ChitramError as exc:
            return JSONResponse({"detail": exc.to_dict()}, status_code=exc.status)
        data = to_json(image)
        return HTMLResponse(
            f'<figure><img src="{data["url"]}" width="{image.width}" height="{image.height}">'
            f"<figcaption>{image.width} x {image.height}</figcaption></figure>"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with chitram:
            yield

    return Starlette(
        routes=[
            Route("/", home),
            Route("/gallery/{image_id}", gallery_item),
            Mount("/", app=create_app(chitram)),
        ],
        lifespan=lifespan,
    )


def __getattr__(name: str) -> Starlette:
    # ``uvicorn examples.starlette_host:app`` builds the app on first access, from CHITRAM_*.
    if name == "app":
        return build()
    raise AttributeError(name)
