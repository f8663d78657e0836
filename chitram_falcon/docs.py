"""``/docs``: an interactive explorer of ``/openapi.json`` (Swagger UI), from files shipped in
the package (``chitram_falcon/apidocs``; no CDN), under the web UI's content security policy:
scripts, styles and requests to this server only."""

from __future__ import annotations

import hashlib
from importlib import resources

import falcon
import falcon.asgi

from chitram_falcon.security import Policy, use_policy

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chitram API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


class DocsFiles:
    """The explorer's files, read once; URLs carry ``?v=<hash>`` so they may be cached for good."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        folder = resources.files("chitram_falcon").joinpath("apidocs")
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in _TYPES:
                data = entry.read_bytes()
                self.files[entry.name] = (
                    data,
                    _TYPES[suffix],
                    hashlib.sha256(data).hexdigest()[:16],
                )
        self.page = _PAGE.format(
            css=self.url("swagger-ui.css"),
            bundle=self.url("swagger-ui-bundle.js"),
            init=self.url("init.js"),
        ).encode()

    def url(self, name: str) -> str:
        return f"/docs/static/{name}?v={self.files[name][2]}"


class DocsPage:
    def __init__(self, files: DocsFiles) -> None:
        self.files = files

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        use_policy(resp, Policy.PAGE)
        resp.content_type = "text/html; charset=utf-8"
        resp.cache_control = ["no-cache"]
        resp.data = self.files.page


class DocsAsset:
    def __init__(self, files: DocsFiles) -> None:
        self.files = files

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        found = self.files.files.get(name)
        if found is None:
            raise falcon.HTTPNotFound()
        data, content_type, digest = found
        resp.cache_control = [IMMUTABLE if req.get_param("v") == digest else "max-age=300"]
        resp.content_type = content_type
        resp.data = data


def add_docs(app: falcon.asgi.App) -> None:  # type: ignore[type-arg]
    """Mount ``/docs`` and its files on ``app``."""
    files = DocsFiles()
    app.add_route("/docs", DocsPage(files))
    app.add_route("/docs/static/{name}", DocsAsset(files))
