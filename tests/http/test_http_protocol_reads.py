"""Warm public reads written by ``chitram serve``'s HTTP protocol without an ASGI call: the bytes
on the wire are the ones uvicorn writes for the app's own answer, and everything else still goes
to the app.

The protocol is fed requests as a socket would feed it, and writes into a transport that keeps
the bytes. An answer written before the event loop has run anything was written by the protocol
itself (the app runs in a task, which needs the loop); the same request through the app, with
the protocol's shortcut hidden, gives the bytes to compare with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import pytest
from httpkit import Env, png_bytes
from uvicorn.config import Config
from uvicorn.server import ServerState

from chitram_falcon import access
from chitram_falcon.serving import BoundedHttpToolsProtocol

pytestmark = [pytest.mark.anyio, pytest.mark.asyncio_only]

VARYING = (b"date", b"x-request-id")
"""Header lines that differ between any two answers (the clock, a new id per request)."""


class Wire(asyncio.Transport):
    """A connection's server side: what the protocol wrote, and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class AppOnly:
    """The app with the protocol's shortcut hidden: every request is an ASGI call."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def connect(app: Any) -> tuple[BoundedHttpToolsProtocol, Wire]:
    config = Config(
        app,
        http=BoundedHttpToolsProtocol,
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_level="warning",
    )
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Mon, 07 Dec 2026 03:00:00 GMT")]
    protocol = BoundedHttpToolsProtocol(config=config, server_state=state, app_state={})
    wire = Wire()
    protocol.connection_made(wire)
    return protocol, wire


async def settle(protocol: BoundedHttpToolsProtocol) -> None:
    """Let the app's tasks run to their answers (a database lookup takes a thread's time)."""
    with anyio.fail_after(10):
        await asyncio.sleep(0)
        while protocol.tasks or protocol.pipeline:  # noqa: ASYNC110 - uvicorn's own state
            await asyncio.sleep(0.005)


def request(path: str, method: str = "GET", *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: testserver", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def comparable(answer: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(status line, header lines but the varying ones, body)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    kept = [line for line in lines if line.split(b":", 1)[0].lower() not in VARYING]
    return status, kept, body


async def through_app(env: Env, raw: bytes) -> bytes:
    protocol, wire = connect(AppOnly(env.app))
    protocol.data_received(raw)
    await settle(protocol)
    return bytes(wire.written)


async def warm(env: Env) -> dict[str, str]:
    """A public image whose three reads are prepared and held (cache hit, bytes in memory)."""
    token = await env.register()
    image = await env.uploaded(token, png_bytes(120, 80, "teal"))
    paths = {
        "file": f"/api/v1/images/{image['id']}/file",
        "thumbnail": f"/api/v1/images/{image['id']}/thumbnail",
        "metadata": f"/api/v1/images/{image['id']}",
    }
    for _ in range(3):
        for path in paths.values():
            assert (await env.client.get(path)).status_code == 200
    return paths


ROUTES = [("file", "GET"), ("file", "HEAD"), ("thumbnail", "GET"), ("thumbnail", "HEAD")]


@pytest.mark.parametrize(("route", "method"), [*ROUTES, ("metadata", "GET")])
async def test_a_warm_public_read_is_written_at_once_as_the_app_answers_it(
    env: Env, route: str, method: str
) -> None:
    paths = await warm(env)
    raw = request(paths[route], method)
    protocol, wire = connect(env.app)
    protocol.data_received(raw)
    written = bytes(wire.written)  # before the loop ran anything: no ASGI call
    assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written[:200]
    assert comparable(written) == comparable(await through_app(env, raw))
    assert b"\r\nx-request-id: " in written
    assert not wire.closed
    if route == "metadata":
        assert b"\r\nx-cache: HIT\r\n" in written
    if method == "HEAD":
        assert written.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "extra",
    [
        "Authorization: Bearer not-a-token",
        "Range: bytes=0-9",
        'If-None-Match: "anything"',
        'If-Range: "anything"',
    ],
)
async def test_a_read_the_shortcut_must_not_answer_goes_to_the_app(env: Env, extra: str) -> None:
    paths = await warm(env)
    raw = request(paths["file"], "GET", extra)
    protocol, wire = connect(env.app)
    protocol.data_received(raw)
    assert wire.written == b""  # the app's task answers, once the loop runs it
    await settle(protocol)
    assert comparable(bytes(wire.written)) == comparable(await through_app(env, raw))


async def test_a_percent_encoded_path_and_an_upgrade_go_to_the_app(env: Env) -> None:
    paths = await warm(env)
    encoded = paths["file"].replace("/file", "/fil%65")  # uvicorn decodes it: the app's to route
    upgrade = request(paths["file"], "GET", "Connection: Upgrade", "Upgrade: h2c")
    for raw in (request(encoded), upgrade):
        protocol, wire = connect(env.app)
        protocol.data_received(raw)
        assert wire.written == b""
        await settle(protocol)
        assert wire.written.startswith(b"HTTP/1.1 200 OK\r\n")
        assert comparable(bytes(wire.written)) == comparable(await through_app(env, raw))


async def test_the_scope_is_the_one_uvicorn_builds(env: Env) -> None:
    paths = await warm(env)
    seen: list[dict[str, Any]] = []
    protocol, wire = connect(env.app)
    answer_now = protocol._now
    assert answer_now is not None

    def spy(scope: dict[str, Any]) -> Any:
        seen.append(dict(scope))
        return answer_now(scope)

    protocol._now = spy
    protocol.data_received(request(paths["file"] + "?a=1&b=2"))
    assert wire.written.startswith(b"HTTP/1.1 200 OK\r\n")
    uvicorn_scopes: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        uvicorn_scopes.append(dict(scope))
        await env.app(scope, receive, send)

    other, _ = connect(app)
    other.data_received(request(paths["file"] + "?a=1&b=2"))
    await settle(other)
    ours, theirs = seen[0], uvicorn_scopes[0]
    ours.pop("chitram.route", None)
    theirs.pop("chitram.route", None)
    assert ours == theirs
    assert ours["path"] == paths["file"] and ours["query_string"] == b"a=1&b=2"


async def test_a_deleted_image_is_not_answered_from_what_was_prepared(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, png_bytes(60, 40, "navy"))
    path = f"/api/v1/images/{image['id']}/file"
    for _ in range(3):
        assert (await env.client.get(path)).status_code == 200
    resp = await env.client.delete(
        f"/api/v1/images/{image['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 204
    protocol, wire = connect(env.app)
    protocol.data_received(request(path))
    assert wire.written == b""
    await settle(protocol)
    assert wire.written.startswith(b"HTTP/1.1 404 "), bytes(wire.written[:200])


async def test_requests_on_one_connection_are_answered_in_order(env: Env) -> None:
    paths = await warm(env)
    # A cold request (goes to the app) with two warm ones pipelined behind it: the warm ones
    # must wait for it, not overtake it.
    cold = request("/health/live")
    protocol, wire = connect(env.app)
    protocol.data_received(cold + request(paths["file"]) + request(paths["metadata"]))
    assert wire.written == b""
    await settle(protocol)
    answers = bytes(wire.written).split(b"HTTP/1.1 ")[1:]
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"200 OK"] * 3
    assert b'"status"' in answers[0] and b"image/png" in answers[1]
    assert b"application/json" in answers[2]
    # Then, with nothing in flight, a warm read is written at once again.
    written = len(wire.written)
    protocol.data_received(request(paths["file"]))
    assert wire.written[written:].startswith(b"HTTP/1.1 200 OK\r\n")


async def test_connection_close_is_honoured(env: Env) -> None:
    paths = await warm(env)
    protocol, wire = connect(env.app)
    protocol.data_received(request(paths["file"], "GET", "Connection: close"))
    head = bytes(wire.written).partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close" in head
    assert wire.closed


async def test_the_request_id_and_access_line_are_those_of_any_request(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    paths = await warm(env)
    protocol, wire = connect(env.app)
    with caplog.at_level(logging.INFO, logger="chitram_falcon.access"):
        access.flush()  # the warm-up's lines (when an earlier test left the logger at INFO)
        caplog.clear()
        protocol.data_received(
            request(paths["file"] + "?download=1&token=secret", "GET", "X-Request-ID: abc-123")
        )
        assert b"\r\nx-request-id: abc-123\r\n" in wire.written
        access.flush()
    [record] = [r for r in caplog.records if r.name == "chitram_falcon.access"]
    assert record.getMessage().startswith("GET /api/v1/images/{image_id}/file 200 ")
    fields = vars(record)
    assert fields["status"] == 200
    assert fields["bytes"] == len(bytes(wire.written).partition(b"\r\n\r\n")[2])
    assert fields["query"].startswith("download=1&token=")
    assert "secret" not in fields["query"]
    assert fields["client"] == "127.0.0.1"


async def test_a_host_middleware_turns_the_shortcut_off(env: Env) -> None:
    paths = await warm(env)

    class Seen:
        count = 0

        async def process_request(self, req: Any, resp: Any) -> None:
            Seen.count += 1

    env.app.add_middleware(Seen())
    protocol, wire = connect(env.app)
    protocol.data_received(request(paths["file"]))
    assert wire.written == b""
    await settle(protocol)
    assert wire.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert Seen.count == 1


async def test_a_failing_shortcut_is_logged_and_the_app_answers(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = await warm(env)

    def broken(scope: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(env.app, "answer_now", broken)
    protocol, wire = connect(env.app)
    with caplog.at_level(logging.ERROR, logger="chitram_falcon.serving"):
        protocol.data_received(request(paths["file"]))
    assert wire.written == b""  # not a 400 from the parser: the app's task answers
    await settle(protocol)
    assert wire.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert "answering a warm read in the protocol failed" in caplog.text


async def test_http_1_0_and_a_get_with_a_body_are_answered_whole(env: Env) -> None:
    paths = await warm(env)
    protocol, wire = connect(env.app)
    protocol.data_received(f"GET {paths['file']} HTTP/1.0\r\nHost: testserver\r\n\r\n".encode())
    head = bytes(wire.written).partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nconnection: close" in head
    assert wire.closed

    protocol, wire = connect(env.app)
    with_body = request(paths["file"], "GET", "Content-Length: 5")[:-2] + b"\r\nhello"
    protocol.data_received(with_body + request(paths["metadata"]))
    answers = bytes(wire.written).split(b"HTTP/1.1 200 OK\r\n")
    assert len(answers) == 3 and b"application/json" in answers[2]
    assert not wire.closed
