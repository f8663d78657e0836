"""Per-request observation over the real app: X-Request-ID, the access line, log context."""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opskit import PASSWORD, jpeg_bytes, make_settings, png_bytes

from chitram_core import Chitram
from chitram_core.logs import JsonFormatter, TextFormatter
from chitram_core.storage import blob_key
from chitram_falcon import access as access_lines
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"[0-9a-f]{32}")
VALID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
VALID_ID = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
    min_size=1,
    max_size=64,
)


@pytest.fixture
def overrides() -> dict[str, object]:
    """Settings for the ``client`` fixture's instance (a test overrides this fixture)."""
    return {}


@pytest.fixture
async def client(tmp_path: Path, overrides: dict[str, object]) -> AsyncIterator[httpx.AsyncClient]:
    async with Chitram(make_settings(tmp_path, **overrides), background=False) as chitram:
        transport = httpx.ASGITransport(app=create_app(chitram))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.chitram = chitram  # type: ignore[attr-defined]
            yield c


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged meanwhile, formatted as the JSON log format would write it."""
    access_lines.flush()  # earlier tests' queued lines are not this test's
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    access_lines.flush()  # the access lines queued so far, written now (no timer involved)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access(stream: io.StringIO) -> list[dict[str, object]]:
    return [r for r in records(stream) if r["logger"] == "chitram_falcon.access"]


async def token(client: httpx.AsyncClient, email: str = "ops@example.com") -> str:
    resp = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    value: str = resp.json()["access_token"]
    return value


def _live_app() -> Any:
    # /health/live needs no open instance: the app over unopened settings answers it.
    return create_app(settings=make_settings(Path(tempfile.gettempdir()) / "chitram-never-opened"))


LIVE_APP = _live_app()


def request_id_answered(header: bytes | None) -> str:
    """The X-Request-ID the real app answers GET /health/live with, given this header."""
    headers = [(b"x-request-id", header)] if header is not None else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health/live",
        "raw_path": b"/health/live",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    answer: dict[str, bytes] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.update({k.decode(): v for k, v in message["headers"]})

    anyio.run(LIVE_APP, scope, receive, send)
    return answer["x-request-id"].decode()


@settings(max_examples=60, deadline=None)
@given(rid=VALID_ID)
def test_a_valid_incoming_request_id_is_kept(rid: str) -> None:
    assert request_id_answered(rid.encode()) == rid


@settings(max_examples=60, deadline=None)
@given(header=st.binary(max_size=80))
def test_any_other_incoming_request_id_is_replaced_by_a_generated_one(header: bytes) -> None:
    answered = request_id_answered(header)
    if VALID.fullmatch(header):
        assert answered == header.decode()
    else:
        assert GENERATED.fullmatch(answered)


def test_without_an_incoming_id_each_request_gets_its_own() -> None:
    ids = {request_id_answered(None) for _ in range(20)}
    assert len(ids) == 20 and all(GENERATED.fullmatch(i) for i in ids)


async def test_every_response_has_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    seen = set()
    for method, path in [
        ("GET", "/health"),
        ("GET", "/nowhere"),
        ("PUT", "/health"),
        ("GET", "/api/v1/images/not-a-uuid"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/login"),
    ]:
        resp = await client.request(method, path)
        rid = resp.headers["x-request-id"]
        assert GENERATED.fullmatch(rid), (method, path, resp.status_code)
        seen.add(rid)
    assert len(seen) == 6


async def test_one_access_line_per_request_with_the_route_template(
    client: httpx.AsyncClient, json_lines: io.StringIO
) -> None:
    bearer = {"Authorization": f"Bearer {await token(client)}"}
    data = jpeg_bytes()
    up = await client.post(
        "/api/v1/images/upload", files={"file": ("a.jpg", data, "image/jpeg")}, headers=bearer
    )
    assert up.status_code == 201
    image_id = up.json()["id"]
    got = await client.get(f"/api/v1/images/{image_id}/file", headers={"X-Request-ID": "dl-1"})
    assert got.content == data
    missing = await client.get("/no/such/route")
    lines = access(json_lines)
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("POST", "/api/v1/auth/register", 201),
        ("POST", "/api/v1/images/upload", 201),
        ("GET", "/api/v1/images/{image_id}/file", 200),
        ("GET", "<unmatched>", 404),
    ]
    download = lines[2]
    assert download["bytes"] == len(data)
    assert download["request_id"] == "dl-1"
    assert download["path"] == f"/api/v1/images/{image_id}/file"
    assert isinstance(download["duration_ms"], float) and download["duration_ms"] >= 0
    assert lines[3]["bytes"] == len(missing.content)
    assert lines[1]["request_id"] == up.headers["x-request-id"]
    assert lines[3]["request_id"] == missing.headers["x-request-id"]
    assert len({line["request_id"] for line in lines}) == 4


async def test_the_access_line_never_holds_a_delete_token_or_a_header(
    tmp_path: Path, json_lines: io.StringIO
) -> None:
    async with Chitram(
        make_settings(tmp_path, allow_anonymous_uploads=True), background=False
    ) as chitram:
        transport = httpx.ASGITransport(app=create_app(chitram))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            up = await client.post(
                "/api/v1/images/upload", files={"file": ("a.png", png_bytes(), "image/png")}
            )
            secret = up.json()["delete_token"]
            resp = await client.delete(
                f"/api/v1/images/{up.json()['id']}",
                params={"delete_token": secret, "other": "kept"},
                headers={"X-Delete-Token": secret, "Cookie": "session=also-secret"},
            )
            assert resp.status_code == 204
    # Everything the server side logged (httpx's own client-side line is the test's, not ours).
    text = "\n".join(json.dumps(r) for r in records(json_lines) if r["logger"] != "httpx")
    assert secret not in text
    assert "also-secret" not in text
    line = access(json_lines)[-1]
    assert line["method"] == "DELETE" and line["route"] == "/api/v1/images/{image_id}"
    assert line["query"] == "delete_token=[redacted]&other=kept"


# The thumbnail left to its own render (not made by the upload's job), so that a request makes
# it, fails and logs under both ids.
@pytest.mark.parametrize("overrides", [{"thumbnail_at_upload": False}])
async def test_sdk_log_lines_under_a_request_carry_its_id_and_jobs_their_job_id(
    client: httpx.AsyncClient, json_lines: io.StringIO
) -> None:
    chitram: Chitram = client.chitram  # type: ignore[attr-defined]
    bearer = {"Authorization": f"Bearer {await token(client)}"}
    big = jpeg_bytes(400, 300)  # above the small-object cache: read from storage each time
    up = await client.post(
        "/api/v1/images/upload", files={"file": ("a.jpg", big, "image/jpeg")}, headers=bearer
    )
    image = up.json()
    await chitram.storage.delete(blob_key(image["sha256"]))
    resp = await client.get(
        f"/api/v1/images/{image['id']}/file", headers={"X-Request-ID": "lost-bytes"}
    )
    assert resp.status_code == 404
    thumb = await client.get(
        f"/api/v1/images/{image['id']}/thumbnail", headers={"X-Request-ID": "thumb-req"}
    )
    assert thumb.status_code == 503
    lines = records(json_lines)
    lost = [r for r in lines if r["logger"] == "chitram_core.reads" and r["level"] == "ERROR"]
    assert lost and all(r["request_id"] == "lost-bytes" for r in lost)
    failed = [r for r in lines if r["logger"] == "chitram_core.thumbnailer"]
    assert failed, lines
    assert all(r["request_id"] == "thumb-req" for r in failed)
    assert all(str(r["job_id"]).startswith("thumbnail:thumbnails/") for r in failed)
    assert all("job_id" not in r for r in lost)


def test_every_json_line_has_the_documented_fields_and_text_lines_carry_the_ids() -> None:
    from chitram_core.logs import job_context, request_id

    record = logging.LogRecord("x.y", logging.WARNING, __file__, 1, "hello %s", ("w",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert {"timestamp", "level", "logger", "message", "request_id"} <= set(entry)
    assert entry["message"] == "hello w" and entry["request_id"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])
    token = request_id.set("r-1")
    try:
        with job_context("thumbnail", "k"):
            entry = json.loads(JsonFormatter().format(record))
            text = TextFormatter().format(record)
    finally:
        request_id.reset(token)
    assert entry["request_id"] == "r-1" and entry["job_id"] == "thumbnail:k"
    assert "[r-1 thumbnail:k]" in text and text.endswith("WARNING x.y [r-1 thumbnail:k]: hello w")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(failing))
    assert "ValueError: boom" in entry["exception"]


class _Writes(io.StringIO):
    """A stream that records each ``write`` call (one system call on a real pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def _info(n: int, size: int = 40) -> logging.LogRecord:
    return logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (str(n).rjust(size, "."),), None)


def test_the_buffered_handler_writes_whole_lines_in_batches_of_at_most_a_pipe_buffer() -> None:
    from chitram_core.logs import BufferedStreamHandler

    stream = _Writes()
    handler = BufferedStreamHandler(stream, interval=60)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for n in range(500):
        handler.handle(_info(n))
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert lines == [str(n).rjust(40, ".") for n in range(500)]  # all, in order
    assert 1 < len(stream.calls) < 500 / 10  # batched, not a write per line
    assert all(len(c) <= 4096 and c.endswith("\n") for c in stream.calls)  # whole lines, atomic
    handler.close()


def test_the_buffered_handler_writes_warnings_at_once_and_info_within_its_interval() -> None:
    from chitram_core.logs import BufferedStreamHandler

    stream = _Writes()
    handler = BufferedStreamHandler(stream, interval=0.05)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.handle(_info(1, 1))
    assert stream.getvalue() == ""  # held back ...
    for _ in range(200):  # ... until the flushing thread's interval passes
        if stream.getvalue():
            break
        anyio.run(anyio.sleep, 0.01)
    assert stream.getvalue() == "INFO 1\n"
    handler.handle(_info(2, 1))
    handler.handle(logging.LogRecord("x", logging.WARNING, __file__, 1, "bad", (), None))
    assert stream.getvalue() == "INFO 1\nINFO 2\nWARNING bad\n"  # a warning flushes what waits
    handler.handle(_info(3, 1))
    handler.close()  # logging.shutdown at exit: nothing held is lost
    assert stream.getvalue().endswith("INFO 3\n")


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_access_lines_are_written_whole_once_and_in_order_across_batches(
    formatter: type[logging.Formatter],
) -> None:
    """Text lines are formatted on the request path a batch at a time, JSON lines by the
    writer; either way a flush writes each line once, in order, as the formatter would."""
    from chitram_core.logs import request_id

    logger = logging.getLogger("chitram_falcon.access")
    access_lines.flush()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter())
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    scope = {"path": "/x/1", "query_string": b"a=1", "client": ("10.0.0.9", 5), "headers": []}
    count = access_lines.BATCH * 2 + 17
    entries = [
        access_lines.entry_of(
            1796650000 + n / 7, f"r{n}", "GET", "/x/{id}", 200, n, n / 1e5, scope, ()
        )
        for n in range(count)
    ]
    writer = access_lines.AccessWriter()
    try:
        for n, entry in enumerate(entries):
            writer.add(entry)
            if n == access_lines.BATCH - 1:
                # text: the batch formatted, nothing queued; JSON: all still queued
                assert writer.pending() == (1 if formatter is TextFormatter else access_lines.BATCH)
        writer.flush()
    finally:
        logger.handlers, logger.propagate, _ = saved
        logger.setLevel(saved[2])
    assert writer.pending() == 0
    expected = []
    for entry in entries:
        token = request_id.set(entry[1])
        try:
            expected.append(formatter().format(access_lines.to_record(entry)))
        finally:
            request_id.reset(token)
    written = stream.getvalue().splitlines()
    if formatter is JsonFormatter:  # the same fields (the order of keys aside)
        assert [json.loads(line) for line in written] == [json.loads(line) for line in expected]
    else:
        assert written == expected


async def test_the_access_record_works_with_any_stdlib_formatter(
    client: httpx.AsyncClient,
) -> None:
    """The access line is built without ``Logger.info``; a host's own handler and formatter
    still see a complete record (every attribute a ``%``-style format can name)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(name)s %(levelname)s %(levelno)d %(pathname)s %(filename)s "
            "%(module)s %(funcName)s %(lineno)d %(created)f %(msecs)d %(relativeCreated)d "
            "%(thread)s %(threadName)s %(process)s %(processName)s %(message)s"
        )
    )
    logger = logging.getLogger("chitram_falcon.access")
    old_level = logger.level
    access_lines.flush()  # earlier tests' queued lines are not this test's
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        resp = await client.get("/health/live?delete_token=s3cret")
        access_lines.flush()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert resp.status_code == 200
    line = stream.getvalue().strip()
    assert " chitram_falcon.access INFO 20 " in line
    assert re.search(
        r" serve \d+ [\d.]+ \d+ \d+ None None None None GET /health/live 200 \d+B [\d.]+ms$", line
    )
    assert "s3cret" not in line
