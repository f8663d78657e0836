"""Run by test_ops_tracing in its own process (tracing is process-wide): serve a few requests
over the real app with OpenTelemetry on, and print every finished span as one JSON line."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

import anyio
import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opskit import PASSWORD, jpeg_bytes, make_settings

from chitram_core import tracing

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


async def main(data_dir: Path, cache_url: str, observer: tracing.TracingObserver) -> None:
    from chitram_core import Chitram
    from chitram_falcon import create_app

    # Thumbnails as a separate render (on request), so both kinds of image work make a span:
    # with thumbnails made at upload the upload's one engine job is "image.verify".
    settings = make_settings(data_dir, cache_url=cache_url, thumbnail_at_upload=False)
    async with Chitram(settings, background=False, observer=observer) as chitram:
        transport = httpx.ASGITransport(app=create_app(chitram))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            reg = await client.post(
                "/api/v1/auth/register", json={"email": "t@example.com", "password": PASSWORD}
            )
            auth = {"Authorization": f"Bearer {reg.json()['access_token']}"}
            up = await client.post(
                "/api/v1/images/upload",
                files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")},
                headers={**auth, "traceparent": TRACEPARENT},
            )
            image_id = up.json()["id"]
            await client.get(f"/api/v1/images/{image_id}")
            await client.get(f"/api/v1/images/{image_id}/thumbnail")
    # an outgoing HTTP call, as the Supabase provider or a tagger makes
    server = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        async with httpx.AsyncClient() as outgoing:
            await outgoing.get(f"http://127.0.0.1:{server.server_port}/ping")
    finally:
        server.shutdown()


if __name__ == "__main__":
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    anyio.run(main, Path(sys.argv[1]), sys.argv[2], tracing.observer(provider))
    for span in exporter.get_finished_spans():
        parent = span.parent
        print(
            json.dumps(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": f"{span.context.trace_id:032x}",
                    "parent": f"{parent.span_id:016x}" if parent else None,
                    "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
                }
            )
        )
