"""Files shipped in the package (the web UI's CSS, JavaScript and icon; the ``/docs``
explorer's Swagger UI), served with a content hash in the URL: read once at start-up."""

from __future__ import annotations

import hashlib
from importlib import resources

import falcon
import falcon.asgi

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
IMMUTABLE = "public, max-age=31536000, immutable"


class StaticFiles:
    """Every file of one package folder read once; ``url(name)`` carries ``?v=<hash>`` so a
    page always asks for the bytes it was written against, and those may be cached for good."""

    def __init__(self, package: str, folder: str, prefix: str) -> None:
        self.prefix = prefix
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for entry in resources.files(package).joinpath(folder).iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in _TYPES:
                data = entry.read_bytes()
                digest = hashlib.sha256(data).hexdigest()[:16]
                self.files[entry.name] = (data, _TYPES[suffix], digest)

    def url(self, name: str) -> str:
        return f"{self.prefix}/{name}?v={self.files[name][2]}"


class StaticResource:
    """``{prefix}/{name}``: immutable when asked with the current hash, five minutes without;
    ``ETag`` and ``If-None-Match`` for the latter (nosniff and HSTS: ``security.py``)."""

    def __init__(self, files: StaticFiles) -> None:
        self.files = files

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        found = self.files.files.get(name)
        if found is None:
            raise falcon.HTTPNotFound()
        data, content_type, digest = found
        etag = f'"{digest}"'
        resp.set_header("ETag", etag)
        resp.set_header(
            "Cache-Control", IMMUTABLE if req.get_param("v") == digest else "public, max-age=300"
        )
        if req.get_header("If-None-Match") == etag:
            resp.status = 304
            return
        resp.content_type = content_type
        resp.data = data
