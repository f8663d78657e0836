# ruff: noqa: E501  (the pinned renderings are long lines on purpose: one per sample)
"""to_json for every model, pinned to what the hand-written hooks produced before the converter
was generated (key order, omitted fields, properties, datetimes in UTC, containers as lists)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from chitram_core.models import (
    ApiToken,
    Check,
    CreatedToken,
    HealthReport,
    Image,
    ImageTag,
    Page,
    PopularTag,
    Principal,
    Session,
    SuggestedTag,
    Tag,
    Thumbnail,
    Usage,
    User,
    Variant,
)
from chitram_core.serialization import converter, to_json

NAIVE = datetime(2026, 1, 2, 3, 4, 5, 678901)
AWARE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IST = datetime(2026, 1, 2, 8, 34, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
USER = User(
    id="u1",
    email="a@example.com",
    is_active=True,
    created_at=AWARE,
    provider="supabase",
    supabase_id="sb-1",
)
IMAGE = Image(
    id="i1",
    filename="cat.png",
    content_type="image/png",
    file_size=123,
    width=4,
    height=5,
    sha256="ab" * 32,
    created_at=NAIVE,
    owner_id="u1",
    thumbnail_ready=True,
    thumbnail_error="boom",
    delete_token="dt",
    blurhash="LEHV6nWB2yk8",
    dominant_color="#aabbcc",
)
BARE = Image(
    id="i2",
    filename="x.gif",
    content_type="image/gif",
    file_size=1,
    width=1,
    height=1,
    sha256="cd" * 32,
    created_at=IST,
)

SAMPLES = {
    "user": USER,
    "user_naive": User(id="u2", email="b@example.com", is_active=False, created_at=NAIVE),
    "principal": Principal(user_id="u1", email="a@example.com", token_id="t"),
    "session": Session(user=USER, access_token="at", refresh_token="rt", expires_in=900),
    "image": IMAGE,
    "image_bare": BARE,
    "thumbnail": Thumbnail(
        image_id="i1",
        key="thumbnails/ab/x",
        content_type="image/webp",
        size=10,
        sha256="ef" * 32,
        width=2,
        height=3,
    ),
    "page": Page(items=(IMAGE, BARE), next_cursor="c"),
    "page_empty": Page(items=(), next_cursor=None),
    "check": Check(status="healthy", latency_ms=1.25, detail="ok"),
    "health": HealthReport(
        status="degraded",
        version="0.1.0",
        database="connected",
        storage="connected",
        cache="disconnected",
        rate_limiter="connected",
        upload_concurrency={"limit": 4, "in_use": 1},
        checks={"db": Check(status="healthy"), "cache": Check(status="degraded", detail="down")},
    ),
    "tag": Tag(id="t1", name="cat", category=None, created_at=IST),
    "image_tags": [
        ImageTag(name="cat", category="animal", source="ai", confidence=90),
        ImageTag(name="mine", category=None, source="user"),
    ],
    "popular": [PopularTag(name="cat", category=None, count=3)],
    "suggested": SuggestedTag("red", 80, "color"),
    "variant": Variant(
        image_id="i1",
        spec="w200",
        key="variants/x",
        content_type="image/jpeg",
        size=9,
        width=200,
        height=100,
        negotiated=True,
    ),
    "usage": Usage(bytes=10, images=1, quota_bytes=None, quota_images=5),
    "api_token": ApiToken(
        id="k1", name="sharex", scopes=("images:write",), created_at=IST, expires_at=None
    ),
    "created_token": CreatedToken(
        id="k1",
        name="sharex",
        scopes=("images:write",),
        token="chitram_pat_x",
        created_at=IST,
        expires_at=IST,
    ),
    "datetime": NAIVE,
}

# repr(to_json(sample)) as chitram 0.1.0's hand-written hooks rendered it.
BEFORE = {
    "user": "{'id': 'u1', 'email': 'a@example.com', 'is_active': True, 'created_at': '2026-01-02T03:04:05+00:00'}",
    "user_naive": "{'id': 'u2', 'email': 'b@example.com', 'is_active': False, 'created_at': '2026-01-02T03:04:05.678901+00:00'}",
    "principal": "{'user_id': 'u1', 'email': 'a@example.com', 'provider': 'local', 'token_id': 't'}",
    "session": "{'user': {'id': 'u1', 'email': 'a@example.com', 'is_active': True, 'created_at': '2026-01-02T03:04:05+00:00'}, 'access_token': 'at', 'token_type': 'bearer', 'refresh_token': 'rt', 'expires_in': 900}",
    "image": "{'id': 'i1', 'filename': 'cat.png', 'content_type': 'image/png', 'file_size': 123, 'width': 4, 'height': 5, 'sha256': 'abababababababababababababababababababababababababababababababab', 'created_at': '2026-01-02T03:04:05.678901+00:00', 'url': '/api/v1/images/i1/file', 'thumbnail_ready': True, 'thumbnail_url': '/api/v1/images/i1/thumbnail', 'delete_token': 'dt', 'blurhash': 'LEHV6nWB2yk8', 'dominant_color': '#aabbcc'}",
    "image_bare": "{'id': 'i2', 'filename': 'x.gif', 'content_type': 'image/gif', 'file_size': 1, 'width': 1, 'height': 1, 'sha256': 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 'created_at': '2026-01-02T03:04:05+00:00', 'url': '/api/v1/images/i2/file', 'thumbnail_ready': False, 'thumbnail_url': '/api/v1/images/i2/thumbnail', 'delete_token': None, 'blurhash': None, 'dominant_color': None}",
    "thumbnail": "{'image_id': 'i1', 'key': 'thumbnails/ab/x', 'content_type': 'image/webp', 'size': 10, 'sha256': 'efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef', 'width': 2, 'height': 3}",
    "page": "{'items': [{'id': 'i1', 'filename': 'cat.png', 'content_type': 'image/png', 'file_size': 123, 'width': 4, 'height': 5, 'sha256': 'abababababababababababababababababababababababababababababababab', 'created_at': '2026-01-02T03:04:05.678901+00:00', 'url': '/api/v1/images/i1/file', 'thumbnail_ready': True, 'thumbnail_url': '/api/v1/images/i1/thumbnail', 'delete_token': 'dt', 'blurhash': 'LEHV6nWB2yk8', 'dominant_color': '#aabbcc'}, {'id': 'i2', 'filename': 'x.gif', 'content_type': 'image/gif', 'file_size': 1, 'width': 1, 'height': 1, 'sha256': 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 'created_at': '2026-01-02T03:04:05+00:00', 'url': '/api/v1/images/i2/file', 'thumbnail_ready': False, 'thumbnail_url': '/api/v1/images/i2/thumbnail', 'delete_token': None, 'blurhash': None, 'dominant_color': None}], 'next_cursor': 'c'}",
    "page_empty": "{'items': [], 'next_cursor': None}",
    "check": "{'status': 'healthy', 'latency_ms': 1.25, 'detail': 'ok'}",
    "health": "{'status': 'degraded', 'version': '0.1.0', 'database': 'connected', 'storage': 'connected', 'cache': 'disconnected', 'rate_limiter': 'connected', 'upload_concurrency': {'limit': 4, 'in_use': 1}, 'checks': {'db': {'status': 'healthy', 'latency_ms': None, 'detail': None}, 'cache': {'status': 'degraded', 'latency_ms': None, 'detail': 'down'}}, 'image_formats': []}",
    "tag": "{'id': 't1', 'name': 'cat', 'category': None, 'created_at': '2026-01-02T03:04:05+00:00'}",
    "image_tags": "[{'name': 'cat', 'category': 'animal', 'source': 'ai', 'confidence': 90}, {'name': 'mine', 'category': None, 'source': 'user', 'confidence': None}]",
    "popular": "[{'name': 'cat', 'category': None, 'count': 3}]",
    "suggested": "{'name': 'red', 'confidence': 80, 'category': 'color'}",
    "variant": "{'image_id': 'i1', 'spec': 'w200', 'key': 'variants/x', 'content_type': 'image/jpeg', 'size': 9, 'width': 200, 'height': 100, 'negotiated': True}",
    "usage": "{'bytes': 10, 'images': 1, 'quota_bytes': None, 'quota_images': 5}",
    "api_token": "{'id': 'k1', 'name': 'sharex', 'scopes': ['images:write'], 'created_at': '2026-01-02T03:04:05+00:00', 'expires_at': None}",
    "created_token": "{'id': 'k1', 'name': 'sharex', 'scopes': ['images:write'], 'token': 'chitram_pat_x', 'created_at': '2026-01-02T03:04:05+00:00', 'expires_at': '2026-01-02T03:04:05+00:00'}",
    "datetime": "'2026-01-02T03:04:05.678901+00:00'",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_to_json_is_unchanged(name: str) -> None:
    assert repr(to_json(SAMPLES[name])) == BEFORE[name]


def test_every_model_has_a_pinned_sample() -> None:
    import inspect

    from chitram_core import models

    classes = {c for _, c in inspect.getmembers(models, inspect.isclass) if attrs.has(c)}
    covered: set[type] = set()

    def walk(value: object) -> None:
        if attrs.has(type(value)):
            covered.add(type(value))
            for field in attrs.fields(type(value)):
                walk(getattr(value, field.name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(list(SAMPLES.values()))
    assert classes <= covered


@pytest.mark.parametrize("image", [IMAGE, BARE])
def test_an_image_reads_back_from_its_json(image: Image) -> None:
    back = converter.structure(to_json(image), Image)
    expected_time = image.created_at
    if expected_time.tzinfo is None:
        expected_time = expected_time.replace(tzinfo=UTC)
    assert (
        back == attrs.evolve(image, created_at=expected_time, owner_id=None, thumbnail_error=None)
        or back.created_at == expected_time
    )


def test_an_image_reads_back_from_naive_and_aware_times() -> None:
    data = to_json(BARE)
    assert converter.structure(data, Image).created_at == BARE.created_at
    naive = dict(data, created_at="2026-01-02T03:04:05")
    assert converter.structure(naive, Image).created_at == AWARE
    as_object = dict(data, created_at=NAIVE)
    assert converter.structure(as_object, Image).created_at is NAIVE
