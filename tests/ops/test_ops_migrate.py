"""``chitram storage migrate``: every object copied and verified, resumable, and the app serves
everything byte for byte from the new store once the old one is gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from opskit import Serve, bearer, chitram, clean_env, jpeg_bytes, make_settings, png_bytes, register

from chitram_core import Chitram
from chitram_core.storage import blob_key


def migrate(cwd: Path, env: dict[str, str], dest: str, *extra: str) -> dict[str, int]:
    result = chitram(["storage", "migrate", dest, *extra], cwd, env)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = {
        part.split(": ")[0]: int(part.split(": ")[1])
        for part in summary.split(", ")
        if ": " in part
    }
    counts["returncode"] = result.returncode
    counts["stderr"] = result.stderr  # type: ignore[assignment]
    return counts


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-")
    }


@pytest.mark.slow
def test_migrate_to_a_new_folder_then_serve_everything_from_it(tmp_path: Path) -> None:
    env = clean_env()
    images = {"a.jpg": jpeg_bytes(), "b.png": png_bytes(), "c.jpg": jpeg_bytes()}  # c dups a
    served: dict[str, tuple[bytes, bytes]] = {}
    server = Serve(tmp_path, env).wait_ready()
    try:
        auth = bearer(register(server.url, "mover@example.com"))
        for name, data in images.items():
            up = httpx.post(
                f"{server.url}/api/v1/images/upload",
                files={"file": (name, data, "application/octet-stream")},
                headers=auth,
                timeout=30,
            )
            assert up.status_code == 201, up.text
            image_id = up.json()["id"]
            thumb = httpx.get(f"{server.url}/api/v1/images/{image_id}/thumbnail", timeout=30)
            assert thumb.status_code == 200
            served[image_id] = (data, thumb.content)
    finally:
        server.stop()

    old = tmp_path / "chitram-data" / "images"
    new = tmp_path / "moved"
    first = migrate(tmp_path, env, new.as_uri())
    assert first["returncode"] == 0, first
    # two distinct blobs and their two thumbnails
    assert (first["objects"], first["copied"], first["skipped"]) == (4, 4, 0)
    assert files_under(new) == {k: v for k, v in files_under(old).items() if "/" in k}
    second = migrate(tmp_path, env, new.as_uri())
    assert (second["returncode"], second["copied"], second["skipped"]) == (0, 0, 4)
    assert second["bytes copied"] == 0

    shutil.rmtree(old)
    server = Serve(tmp_path, clean_env(CHITRAM_STORAGE_URL=new.as_uri())).wait_ready()
    try:
        for image_id, (data, thumb) in served.items():
            got = httpx.get(f"{server.url}/api/v1/images/{image_id}/file", timeout=30)
            assert got.status_code == 200 and got.content == data
            got = httpx.get(f"{server.url}/api/v1/images/{image_id}/thumbnail", timeout=30)
            assert got.status_code == 200 and got.content == thumb
    finally:
        server.stop()


async def _populate(settings: Any, count: int = 3) -> dict[str, tuple[bytes, str]]:
    """Uploads through the SDK; image id → (bytes, sha256). Thumbnails made too."""
    made: dict[str, tuple[bytes, str]] = {}
    async with Chitram(settings, background=False) as c:
        for n in range(count):
            data = jpeg_bytes(40 + n, 30, ("red", "green", "blue", "gray")[n % 4])
            image = await c.images.upload(data, filename=f"{n}.jpg")
            await c.images.thumbnail(image.id)
            made[image.id] = (data, image.sha256)
    return made


async def _read_all(settings: Any, made: dict[str, tuple[bytes, str]]) -> None:
    async with Chitram(settings, background=False) as c:
        for image_id, (data, _) in made.items():
            got = b"".join([chunk async for chunk in c.images.read(image_id)])
            assert got == data
            thumb = await c.images.thumbnail(image_id)
            body = b"".join([chunk async for chunk in c.images.stream_thumbnail(thumb)])
            assert len(body) == thumb.size and body[:2] == b"\xff\xd8"


def test_a_second_run_resumes_only_what_is_missing_or_wrong(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "chitram-data")
    made = anyio.run(_populate, settings)
    env = clean_env()
    new = tmp_path / "new"
    assert migrate(tmp_path, env, new.as_uri())["copied"] == 6
    blobs = sorted(new.glob("blobs/*/*/*"))
    blobs[0].unlink()  # an interrupted run never wrote this one
    blobs[1].write_bytes(b"not the image")  # and this one is wrong
    again = migrate(tmp_path, env, new.as_uri())
    assert (again["returncode"], again["copied"], again["skipped"]) == (0, 2, 4)
    old = tmp_path / "chitram-data" / "images"
    assert files_under(new) == {k: v for k, v in files_under(old).items() if "/" in k}
    shutil.rmtree(old)
    anyio.run(_read_all, make_settings(tmp_path / "chitram-data", storage_url=new.as_uri()), made)


def test_a_corrupt_source_blob_is_reported_and_not_copied(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "chitram-data")
    made = anyio.run(_populate, settings, 2)
    sha = next(iter(made.values()))[1]
    source_blob = tmp_path / "chitram-data" / "images" / blob_key(sha)
    source_blob.write_bytes(source_blob.read_bytes()[:-10] + b"0123456789")
    new = tmp_path / "new"
    result = migrate(tmp_path, clean_env(), new.as_uri())
    assert result["returncode"] == 1
    assert result["failed"] == 1 and result["copied"] == 3
    assert blob_key(sha) in str(result["stderr"])
    assert not (new / blob_key(sha)).exists()


def test_bad_destinations_are_refused_before_anything_is_copied(tmp_path: Path) -> None:
    env = clean_env()
    same = (tmp_path / "chitram-data" / "images").resolve().as_uri()
    for args in (
        [same],
        [(tmp_path / "x").as_uri(), "--options", "{not json"],
        [(tmp_path / "x").as_uri(), "--options", "[1, 2]"],
        ["nosuchscheme://bucket/x"],
    ):
        result = chitram(["storage", "migrate", *args], tmp_path, env)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "x").exists()


def _s3_env(moto_server: str, bucket: str, prefix: str) -> tuple[str, dict[str, Any]]:
    options = {"endpoint_url": moto_server, "key": "testing", "secret": "testing"}
    return f"s3://{bucket}/{prefix}", options


@pytest.mark.s3
def test_s3_to_local(tmp_path: Path, moto_server: str, s3_bucket: str) -> None:
    url, options = _s3_env(moto_server, s3_bucket, f"migrate-{tmp_path.name}")
    settings = make_settings(tmp_path / "chitram-data", storage_url=url, storage_options=options)
    made = anyio.run(_populate, settings)
    env = clean_env(CHITRAM_STORAGE_URL=url, CHITRAM_STORAGE_OPTIONS=json.dumps(options))
    dest = (tmp_path / "local").as_uri()
    first = migrate(tmp_path, env, dest)
    assert (first["returncode"], first["copied"], first["skipped"]) == (0, 6, 0), first
    second = migrate(tmp_path, env, dest)
    assert (second["returncode"], second["copied"], second["skipped"]) == (0, 0, 6), second
    import s3fs

    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": moto_server}, key="testing", secret="testing"
    )
    fs.rm(url.removeprefix("s3://"), recursive=True)
    anyio.run(_read_all, make_settings(tmp_path / "chitram-data", storage_url=dest), made)


@pytest.mark.s3
def test_local_to_s3(tmp_path: Path, moto_server: str, s3_bucket: str) -> None:
    settings = make_settings(tmp_path / "chitram-data")
    made = anyio.run(_populate, settings)
    url, options = _s3_env(moto_server, s3_bucket, f"migrate-up-{tmp_path.name}")
    env = clean_env()
    first = migrate(tmp_path, env, url, "--options", json.dumps(options))
    assert (first["returncode"], first["copied"], first["skipped"]) == (0, 6, 0), first
    second = migrate(tmp_path, env, url, "--options", json.dumps(options), "--trust-existing")
    assert (second["returncode"], second["copied"], second["skipped"]) == (0, 0, 6), second
    third = migrate(tmp_path, env, url, "--options", json.dumps(options))
    assert (third["copied"], third["skipped"]) == (0, 6)
    shutil.rmtree(tmp_path / "chitram-data" / "images")
    moved = make_settings(tmp_path / "chitram-data", storage_url=url, storage_options=options)
    anyio.run(_read_all, moved, made)
