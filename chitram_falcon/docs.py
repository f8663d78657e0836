"""``/docs``: an interactive explorer of ``/openapi.json`` (Swagger UI), from files shipped in
the package (``chitram_falcon/apidocs``; no CDN), under the web UI's content security policy:
scripts, styles and requests to this server only."""

from __future__ import annotations

import falcon
import falcon.asgi

from chitram_falcon.security import Policy, use_policy
from chitram_falcon.static import StaticFiles, StaticResource

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


def explorer_page(files: StaticFiles) -> bytes:
    return _PAGE.format(
        css=files.url("swagger-ui.css"),
        bundle=files.url("swagger-ui-bundle.js"),
        init=files.url("init.js"),
    ).encode()


class DocsPage:
    def __init__(self, files: StaticFiles) -> None:
        self.page = explorer_page(files)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        use_policy(resp, Policy.PAGE)
        resp.content_type = "text/html; charset=utf-8"
        resp.cache_control = ["no-cache"]
        resp.data = self.page


def add_docs(app: falcon.asgi.App) -> None:  # type: ignore[type-arg]
    """Mount ``/docs`` and its files on ``app``."""
    files = StaticFiles("chitram_falcon", "apidocs", "/docs/static")
    app.add_route("/docs", DocsPage(files))
    app.add_route("/docs/static/{name}", StaticResource(files))
