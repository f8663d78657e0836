"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, speaking the real protocol.

It records every request (the JSON body, the Authorization header, and what the image in the
``data:`` URL really is: format, size, whether it carries EXIF or an ICC profile) and answers
with ``answer`` as the assistant message's content. ``down()`` closes the listening socket (so a
client gets "connection refused", as with a stopped server); ``up()`` listens again on the same
port. ``status`` other than 200 answers every completion with that status; ``delay`` seconds
(default 0) pass between a completion's request and its answer, as with a slow model.

Run it by hand: ``python tests/tags/fake_openai.py --port 8765 --answer "cat, beach"``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from PIL import Image


@attrs.define
class SeenImage:
    format: str
    width: int
    height: int
    has_exif: bool
    has_icc: bool
    size: int


@attrs.define
class SeenRequest:
    body: dict[str, Any]
    authorization: str | None
    image: SeenImage | None


class FakeOpenAI:
    def __init__(self, port: int = 0, answer: str = "Cat, sunny beach, dog.") -> None:
        self.answer = answer
        self.status = 200
        self.delay = 0.0
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.up()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def up(self) -> None:
        if self._server is not None:
            return
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "gpt-4o-mini"}]})
                elif self.path.rstrip("/") == "/_seen":  # for checks by hand: what came in
                    with fake._lock:
                        seen = [
                            {
                                "authorization": r.authorization,
                                "model": r.body.get("model"),
                                "image": attrs.asdict(r.image) if r.image else None,
                            }
                            for r in fake.requests
                        ]
                    self._send(200, {"requests": seen})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                seen = SeenRequest(body, self.headers.get("Authorization"), _image_in(body))
                with fake._lock:
                    fake.requests.append(seen)
                    status, answer, delay = fake.status, fake.answer, fake.delay
                time.sleep(delay)
                if status != 200:
                    self._send(status, {"error": {"message": "unavailable"}})
                    return
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.status = 200


def _image_in(body: dict[str, Any]) -> SeenImage | None:
    try:
        content = body["messages"][0]["content"]
        url = next(part["image_url"]["url"] for part in content if part["type"] == "image_url")
    except (KeyError, IndexError, StopIteration, TypeError):
        return None
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        return None
    data = base64.b64decode(payload)
    with Image.open(io.BytesIO(data)) as img:
        return SeenImage(
            format=str(img.format),
            width=img.width,
            height=img.height,
            has_exif=bool(img.getexif()) or "exif" in img.info,
            has_icc="icc_profile" in img.info,
            size=len(data),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--answer", default="Cat, sunny beach, dog.")
    args = parser.parse_args()
    fake = FakeOpenAI(args.port, args.answer)
    print(f"fake OpenAI at {fake.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.down()


if __name__ == "__main__":
    main()
