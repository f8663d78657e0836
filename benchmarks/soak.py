"""A fleet soak under faults: 2 API processes and 2 workers on PostgreSQL + S3 (moto) + Redis.

``python benchmarks/soak.py [--seconds 300]`` starts, on 127.0.0.1 and for this run only: a
fresh PostgreSQL database (created on the server at ``--postgres``, dropped at the end), a moto
S3 server and a redis-server of its own (so it may stop them), two ``chitram serve`` processes
that only record jobs (``CHITRAM_RUN_JOBS=false``, thumbnails as jobs, the palette tagger) and
two ``chitram worker`` processes. Clients run mixed traffic (uploads, reads of the original,
metadata, thumbnails and variants, tags, deletes) for the whole run while faults are injected
on a schedule (at fractions of the run):

- 10 %: a worker is SIGKILLed while it runs a job (restarted 5 s later);
- 25 %: an API process gets SIGTERM (it must exit 0 within its grace; restarted 3 s later);
- 40 %: Redis is stopped for 10 s (the process is killed and started again, empty);
- 60 %: every PostgreSQL connection of the fleet is terminated (``pg_terminate_backend``);
- 75 %: S3 is frozen for 5 s (moto gets SIGSTOP, then SIGCONT).

What must hold: every 5xx answer is a 503 with ``Retry-After``, and comes (like a refused or
broken connection) only while a fault is in force (or within ``--settle`` seconds after it ends,
default 5) or from a process being stopped (a thumbnail not rendered yet is a 503 at any time);
after the run, with the fleet idle: every job done (none running, none pending), every
image row with its blob row and the right refcount, every blob and ready thumbnail in S3, no S3
object without its row (unless queued for removal), nothing under ``tmp/``, every image still
served whole through both API processes. It prints the tally per operation and status, each
fault with what the fleet did and its recovery time (seconds from the fault's end until the
first successful request of each kind sent after it; for the killed worker, seconds from the
kill until every job it was running had been finished by another), the first traceback of each
process's log, and exits 1 if anything above did not hold. ``--json FILE`` writes the report.

``tests/scaleout/test_fleet_soak.py`` runs it shortened (``--seconds 30``) in the test suite.
Needs: ``redis-server`` on PATH, ``moto[server]``, boto3 and asyncpg (the dev extra), and a
PostgreSQL that ``--postgres`` (default ``CHITRAM_TEST_POSTGRES_URL`` or
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) may create databases on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import boto3
import httpx
from anyio.abc import TaskGroup
from PIL import Image as PILImage

PASSWORD = "correct horse battery staple"
EXPECTED = {
    "upload": {201},
    "file": {200},
    "meta": {200},
    "thumbnail": {200},
    "variant": {200},
    "tag": {201, 400},  # 400: the tag is already on the image
    "delete": {204},
}
OPS = ["upload", "file", "meta", "thumbnail", "variant", "tag", "delete"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jpeg(width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    image = PILImage.new("RGB", (width, height), (rng.randrange(256), 90, rng.randrange(256)))
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        image.paste((rng.randrange(256), rng.randrange(256), 40), (x, y, x + 9, y + 9))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Child:
    """One child process of the run, logging to its own file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []

    def start(self) -> Child:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int | None:
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exits.append(code)
        return code

    def kill(self) -> None:
        if self.alive:
            self.signal(signal.SIGKILL)
            self.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Api(Child):
    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(self.port)]
        super().__init__(name, argv, env, logs)
        self.up = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited before it was ready\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/ready", timeout=2.0).status_code == 200:
                    self.up = True
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s\n{self.tail()}")


class Report:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.problems: list[str] = []
        self.faults: list[dict[str, Any]] = []
        self.windows: list[tuple[str, float, float]] = []  # (fault, start, end), monotonic
        self.open_window: dict[str, float] = {}
        self.successes: list[tuple[float, float, str]] = []  # (sent, answered, op)
        self.stop_at: float | None = None  # when traffic ends; None: until the faults are over

    def over(self) -> bool:
        return self.stop_at is not None and time.monotonic() >= self.stop_at

    def fault_on(self, name: str) -> None:
        self.open_window[name] = time.monotonic()

    def fault_off(self, name: str) -> float:
        """Close the fault's window; its end (monotonic)."""
        end = time.monotonic()
        self.windows.append((name, self.open_window.pop(name), end))
        return end

    def excused(self, at: float, settle: float) -> bool:
        if self.open_window:
            return True
        return any(start <= at <= end + settle for _, start, end in self.windows)

    def recovery(self, end: float) -> dict[str, Any]:
        """Seconds from ``end`` until the first success of each kind of request sent after it
        (None where none succeeded before the traffic ended), and the longest of them."""
        first: dict[str, float] = {}
        for sent, answered, op in sorted(self.successes, key=lambda s: s[1]):
            if sent >= end and op not in first:
                first[op] = round(answered - end, 2)
        per_kind = {op: first.get(op) for op in OPS}
        known = [v for v in per_kind.values() if v is not None]
        return {
            "recovery_s": max(known) if known else None,
            "recovery_by_kind_s": per_kind,
        }

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


class Fleet:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run = uuid.uuid4().hex[:10]
        self.db_name = f"chitram_soak_{self.run}"
        admin = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
        self.pg_admin = admin
        self.pg_url = args.postgres.rsplit("/", 1)[0] + "/" + self.db_name
        self.pg_plain = self.pg_url.replace("postgresql+asyncpg://", "postgresql://")
        self.moto_port = free_port()
        self.redis_port = free_port()
        self.bucket = f"soak-{self.run}"
        self.moto: Child | None = None
        self.redis: Child | None = None
        self.apis: list[Api] = []
        self.workers: list[Child] = []

    # services -----------------------------------------------------------------------------

    def start_moto(self) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.moto_port)]
        self.moto = Child("moto", argv, dict(os.environ), self.logs).start()
        wait_port(self.moto_port)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.moto_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=self.bucket)

    def start_redis(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.redis = Child("redis", argv, dict(os.environ), self.logs).start()
        wait_port(self.redis_port)

    async def create_database(self) -> None:
        conn = await asyncpg.connect(self.pg_admin)
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await conn.close()

    async def drop_database(self) -> None:
        conn = await asyncpg.connect(self.pg_admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg_plain)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
        env.update(
            {
                "CHITRAM_ENV": "test",
                "CHITRAM_DATA_DIR": str(self.workdir / "data"),
                "CHITRAM_DATABASE_URL": self.pg_url,
                "CHITRAM_STORAGE_URL": f"s3://{self.bucket}/fleet",
                "CHITRAM_STORAGE_OPTIONS": json.dumps(
                    {
                        "endpoint_url": f"http://127.0.0.1:{self.moto_port}",
                        "key": "testing",
                        "secret": "testing",
                    }
                ),
                "CHITRAM_CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "CHITRAM_UPLOAD_RATE_LIMIT": "off",
                "CHITRAM_AUTH_RATE_LIMIT": "off",
                "CHITRAM_JWT_SECRET": "soak-" + "x" * 60,
                "CHITRAM_TAGGERS": "palette",
                "CHITRAM_THUMBNAIL_AT_UPLOAD": "false",
                "CHITRAM_JOBS_POLL_INTERVAL": "0.5",
                "CHITRAM_SHUTDOWN_GRACE": "10",
                "CHITRAM_WEB_UI": "false",
                "CHITRAM_LOG_LEVEL": "INFO",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        env.update(extra)
        return env

    def upgrade(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "chitram_falcon", "db", "upgrade"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"chitram db upgrade failed:\n{done.stderr}")

    def start_fleet(self) -> None:
        for n in range(2):
            api = Api(f"api{n}", self.env(CHITRAM_RUN_JOBS="false"), self.logs)
            self.apis.append(api)
            api.start()
        for n in range(2):
            argv = [sys.executable, "-m", "chitram_falcon", "worker"]
            self.workers.append(Child(f"worker{n}", argv, self.env(), self.logs).start())
        for api in self.apis:
            api.wait_ready()

    def stop_all(self) -> None:
        for child in [*self.apis, *self.workers]:
            child.signal(signal.SIGTERM)
        for child in [*self.apis, *self.workers]:
            if child.process is not None and child.wait(20) is None:
                child.kill()
        for child in (self.moto, self.redis):
            if child is not None:
                child.signal(signal.SIGCONT)
                child.kill()


# traffic ----------------------------------------------------------------------------------


async def client_loop(n: int, fleet: Fleet, report: Report, settle: float) -> dict[str, str]:
    """One user's session against whichever API process is up; its live images at the end."""
    rng = random.Random(n)
    live: dict[str, str] = {}
    shared = [jpeg(48, 48, 1000 + i) for i in range(3)]
    async with httpx.AsyncClient(timeout=60.0) as client:
        token = ""
        while not token and not report.over():
            api = fleet.apis[n % 2] if fleet.apis[n % 2].up else fleet.apis[(n + 1) % 2]
            with contextlib.suppress(httpx.HTTPError):
                resp = await client.post(
                    f"{api.url}/api/v1/auth/register",
                    json={"email": f"soak{n}@example.com", "password": PASSWORD},
                )
                if resp.status_code in (200, 201):
                    token = resp.json()["access_token"]
                elif resp.status_code == 409:
                    resp = await client.post(
                        f"{api.url}/api/v1/auth/login",
                        json={"email": f"soak{n}@example.com", "password": PASSWORD},
                    )
                    if resp.status_code == 200:
                        token = resp.json()["access_token"]
            if not token:
                await anyio.sleep(0.2)
        auth = {"Authorization": f"Bearer {token}"}
        serial = 0
        while not report.over():
            up = [api for api in fleet.apis if api.up]
            if not up:
                await anyio.sleep(0.1)
                continue
            api = rng.choice(up)
            op = rng.choices(
                ["upload", "file", "meta", "thumbnail", "variant", "tag", "delete"],
                [30, 20, 12, 12, 8, 8, 10],
            )[0]
            if op != "upload" and not live:
                op = "upload"
            image_id = rng.choice(sorted(live)) if live and op != "upload" else ""
            base = f"{api.url}/api/v1/images/{image_id}"
            sent = time.monotonic()
            try:
                if op == "upload":
                    serial += 1
                    data = (
                        rng.choice(shared)
                        if rng.random() < 0.3
                        else jpeg(rng.randint(64, 400), rng.randint(64, 400), n * 100000 + serial)
                    )
                    resp = await client.post(
                        f"{api.url}/api/v1/images/upload",
                        files={"file": (f"s{n}-{serial}.jpg", data, "image/jpeg")},
                        headers=auth,
                    )
                    if resp.status_code == 201:
                        live[resp.json()["id"]] = resp.json()["sha256"]
                elif op == "file":
                    resp = await client.get(base + "/file")
                    if resp.status_code == 200 and resp.headers.get("etag", "").strip(
                        '"'
                    ) != live.get(image_id):
                        report.problem(f"file {image_id}: wrong bytes via {api.name}")
                elif op == "meta":
                    resp = await client.get(base)
                elif op == "thumbnail":
                    resp = await client.get(base + "/thumbnail")
                elif op == "variant":
                    resp = await client.get(base + "/variants/w320")
                elif op == "tag":
                    resp = await client.post(
                        base + "/tags", json={"tag": f"t{rng.randrange(20)}"}, headers=auth
                    )
                else:
                    resp = await client.delete(base, headers=auth)
                    if resp.status_code == 204:
                        del live[image_id]
            except httpx.HTTPError as exc:
                report.counts[(op, type(exc).__name__)] += 1
                if not (report.excused(sent, settle) or not api.up):
                    report.problem(f"{op} via {api.name}: {type(exc).__name__}: {exc}")
                continue
            status = resp.status_code
            report.counts[(op, str(status))] += 1
            if status in EXPECTED[op]:
                report.successes.append((sent, time.monotonic(), op))
                continue
            if status >= 500:
                if status != 503 or not resp.headers.get("retry-after"):
                    report.problem(
                        f"{op} via {api.name}: {status} without being a 503 with Retry-After "
                        f"{resp.text[:200]}"
                    )
                elif report.excused(sent, settle) or not api.up:
                    pass
                elif op in ("thumbnail", "variant") and any(
                    why in resp.text for why in ("not ready yet", "being remade")
                ):
                    pass  # "not rendered yet, retry": a render racing its pending job
                else:
                    report.problem(f"{op} via {api.name}: 503 outside a fault {resp.text[:200]}")
                continue
            report.problem(f"{op} via {api.name}: {status} {resp.text[:200]}")
    return live


# faults -----------------------------------------------------------------------------------


async def kill_a_worker_mid_job(fleet: Fleet, report: Report, tg: TaskGroup) -> None:
    worker = fleet.workers[0]
    running = 0
    with anyio.move_on_after(10):
        while not running:
            rows = await fleet.sql("SELECT count(*) AS n FROM jobs WHERE state = 'running'")
            running = rows[0]["n"]
            if not running:
                await anyio.sleep(0.02)
    held = await fleet.sql("SELECT kind, key FROM jobs WHERE state = 'running'")
    report.fault_on("worker-kill")
    worker.signal(signal.SIGKILL)
    await anyio.to_thread.run_sync(worker.wait, 10)
    killed_at = time.monotonic()
    fault: dict[str, Any] = {
        "fault": "SIGKILL of a worker mid-job, restarted after 5 s",
        "jobs_running_at_kill": running,
    }
    report.faults.append(fault)
    tg.start_soon(taken_over, fleet, {(r["kind"], r["key"]) for r in held}, killed_at, fault)
    await anyio.sleep(5)
    worker.start()
    fault["restarted_after_s"] = round(time.monotonic() - killed_at, 1)
    fault["end"] = report.fault_off("worker-kill")


async def taken_over(
    fleet: Fleet, jobs: set[tuple[str, str]], killed_at: float, fault: dict[str, Any]
) -> None:
    """Seconds from the kill until every job running then is finished (its row gone): the
    killed worker's jobs taken over once their lease ran out, the survivor's done."""
    deadline = killed_at + 180
    while jobs and time.monotonic() < deadline:
        try:
            rows = await fleet.sql("SELECT kind, key FROM jobs")
        except (asyncpg.PostgresError, OSError):  # our own connection, terminated by a fault
            await anyio.sleep(0.2)
            continue
        if not jobs & {(r["kind"], r["key"]) for r in rows}:
            fault["jobs_finished_after_kill_s"] = round(time.monotonic() - killed_at, 2)
            return
        await anyio.sleep(0.2)
    fault["jobs_finished_after_kill_s"] = 0.0 if not jobs else None


async def terminate_an_api(fleet: Fleet, report: Report, tg: TaskGroup) -> None:
    api = fleet.apis[1]
    # Until the restarted process is ready (and --settle after): a client's pooled keep-alive
    # connection to the old process may fail on its next use, as with any restart.
    report.fault_on("api-restart")
    api.up = False  # clients stop choosing it; requests in flight must still finish
    await anyio.sleep(0.2)
    started = time.monotonic()
    api.signal(signal.SIGTERM)
    code = await anyio.to_thread.run_sync(api.wait, 30)
    stopped_in = time.monotonic() - started
    # uvicorn re-raises the signal once it has shut down: -15 after "Finished server process".
    finished = "Finished server process" in api.tail(20)
    if code not in (0, -signal.SIGTERM) or not finished:
        report.problem(f"{api.name} did not shut down cleanly on SIGTERM: exit {code}")
    await anyio.sleep(3)
    api.start()
    await anyio.to_thread.run_sync(api.wait_ready)
    report.faults.append(
        {
            "fault": "SIGTERM of an API process, restarted after 3 s",
            "exit_code": code,
            "stopped_in_s": round(stopped_in, 2),
            "end": report.fault_off("api-restart"),
        }
    )


async def stop_redis(fleet: Fleet, report: Report, tg: TaskGroup) -> None:
    assert fleet.redis is not None
    report.fault_on("redis")
    fleet.redis.kill()
    await anyio.sleep(10)
    fleet.redis.start()
    await anyio.to_thread.run_sync(wait_port, fleet.redis_port)
    end = report.fault_off("redis")
    report.faults.append({"fault": "Redis stopped for 10 s (restarted empty)", "end": end})


async def terminate_postgres_connections(fleet: Fleet, report: Report, tg: TaskGroup) -> None:
    report.fault_on("postgres")
    rows = await fleet.sql(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        fleet.db_name,
    )
    await anyio.sleep(0.5)
    end = report.fault_off("postgres")
    report.faults.append(
        {"fault": "every PostgreSQL connection terminated", "connections": rows[0]["n"], "end": end}
    )


async def freeze_s3(fleet: Fleet, report: Report, tg: TaskGroup) -> None:
    assert fleet.moto is not None
    report.fault_on("s3")
    fleet.moto.signal(signal.SIGSTOP)
    await anyio.sleep(5)
    fleet.moto.signal(signal.SIGCONT)
    end = report.fault_off("s3")
    report.faults.append({"fault": "S3 frozen for 5 s (SIGSTOP/SIGCONT of moto)", "end": end})


SCHEDULE = [
    (0.10, kill_a_worker_mid_job),
    (0.25, terminate_an_api),
    (0.40, stop_redis),
    (0.60, terminate_postgres_connections),
    (0.75, freeze_s3),
]


async def faults(fleet: Fleet, report: Report, started: float, args: argparse.Namespace) -> None:
    """The faults on their schedule; then traffic goes on until ``--seconds`` and at least
    ``--tail`` seconds after the last fault's end (so each fault's recovery is seen)."""
    async with anyio.create_task_group() as tg:  # and the watchers the faults start
        for at, fault in SCHEDULE:
            await anyio.sleep(max(started + at * args.seconds - time.monotonic(), 0))
            await fault(fleet, report, tg)
        report.stop_at = max(started + args.seconds, time.monotonic() + args.tail)


def recoveries(report: Report) -> None:
    """Each fault's recovery times, from its end (dropped from the report: a monotonic time)."""
    for fault in report.faults:
        end = fault.pop("end", None)
        if end is not None:
            fault.update(report.recovery(end))


def first_traceback(text: str) -> str | None:
    """The first traceback in a log, through its exception line (at most 60 lines)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            out = [line]
            for follow in lines[i + 1 : i + 60]:
                out.append(follow)
                if (
                    follow
                    and not follow[0].isspace()
                    and not follow.startswith(("Traceback", "During handling", "The above"))
                ):
                    break
            return "\n".join(out)
    return None


# checks -----------------------------------------------------------------------------------


def s3_keys(fleet: Fleet, under: str) -> set[str]:
    keys: set[str] = set()
    for page in fleet.s3.get_paginator("list_objects_v2").paginate(
        Bucket=fleet.bucket, Prefix=f"fleet/{under}"
    ):
        keys.update(item["Key"].removeprefix("fleet/") for item in page.get("Contents", []))
    return keys


async def drained(fleet: Fleet, within: float) -> dict[str, int]:
    deadline = time.monotonic() + within
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        rows = await fleet.sql("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        states = {r["state"]: r["n"] for r in rows}
        if not states.get("pending") and not states.get("running"):
            return states
        await anyio.sleep(0.5)
    return states


async def check(fleet: Fleet, report: Report, survivors: dict[str, str]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    states = await drained(fleet, within=120)
    facts["jobs_after"] = states
    if states.get("pending") or states.get("running"):
        report.problem(f"jobs not drained after 120 s: {states}")
    if states.get("failed"):
        failed = await fleet.sql("SELECT kind, key, error FROM jobs WHERE state = 'failed'")
        report.problem(f"failed jobs: {[dict(r) for r in failed[:5]]}")
    thumbs = await fleet.sql("SELECT status, count(*) AS n FROM thumbnails GROUP BY status")
    facts["thumbnails"] = {r["status"]: r["n"] for r in thumbs}
    images = {
        r["id"]: r["sha256"] for r in await fleet.sql("SELECT id::text AS id, sha256 FROM images")
    }
    facts["images"] = len(images)
    if images != survivors:
        report.problem(
            f"image rows differ from what clients kept: {len(images)} rows, "
            f"{len(survivors)} kept, {len(set(images) ^ set(survivors))} differ"
        )
    miscounted = await fleet.sql(
        "SELECT b.sha256 FROM blobs b LEFT JOIN images i ON i.sha256 = b.sha256"
        " GROUP BY b.sha256, b.refcount HAVING b.refcount <> count(i.id)"
    )
    if miscounted:
        report.problem(f"{len(miscounted)} blobs with a wrong refcount")
    dangling = await fleet.sql(
        "SELECT i.id FROM images i LEFT JOIN blobs b ON b.sha256 = i.sha256 WHERE b.sha256 IS NULL"
    )
    if dangling:
        report.problem(f"{len(dangling)} images without a blob row")
    # A process killed between moving new bytes onto their key and its commit leaves bytes
    # without a row; the sweep is what collects them. Counted before it runs, then none may be
    # left after it.
    blob_rows = {r["storage_key"] for r in await fleet.sql("SELECT storage_key FROM blobs")}
    facts["blob_objects_without_row_before_sweep"] = len(s3_keys(fleet, "blobs/") - blob_rows)
    swept = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "chitram_falcon", "sweep", "--older-than", "0"],
            env=fleet.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    )
    facts["sweep"] = swept.stdout.strip()
    if swept.returncode != 0:
        report.problem(f"chitram sweep failed: {swept.stderr[-500:]}")
    ready = {r["key"] for r in await fleet.sql("SELECT key FROM thumbnails WHERE status = 'ready'")}
    thumb_rows = {r["key"] for r in await fleet.sql("SELECT key FROM thumbnails")}
    queued = {
        r["storage_key"] for r in await fleet.sql("SELECT storage_key FROM pending_deletions")
    }
    blobs, thumbnails = s3_keys(fleet, "blobs/"), s3_keys(fleet, "thumbnails/")
    if blob_rows - blobs:
        report.problem(f"{len(blob_rows - blobs)} blob rows without bytes in S3")
    if ready - thumbnails:
        report.problem(f"{len(ready - thumbnails)} ready thumbnails without bytes in S3")
    if (blobs - blob_rows) - queued:
        report.problem(f"{len((blobs - blob_rows) - queued)} blob objects without a row")
    if (thumbnails - thumb_rows) - queued:
        report.problem(f"{len((thumbnails - thumb_rows) - queued)} thumbnails without a row")
    leftovers = s3_keys(fleet, "tmp/")
    if leftovers:
        report.problem(f"{len(leftovers)} temporary objects left under tmp/")
    async with httpx.AsyncClient(timeout=60.0) as client:
        for image_id, sha256 in sorted(survivors.items()):
            for api in fleet.apis:
                resp = await client.get(f"{api.url}/api/v1/images/{image_id}/file")
                if resp.status_code != 200 or resp.headers.get("etag", "").strip('"') != sha256:
                    report.problem(f"survivor {image_id} via {api.name}: {resp.status_code}")
    for child in [*fleet.apis, *fleet.workers]:
        text = child.log_path.read_text(errors="replace") if child.log_path.exists() else ""
        tracebacks = text.count("Traceback (most recent call last)")
        facts[f"tracebacks_{child.name}"] = tracebacks
        if tracebacks:
            facts.setdefault("first_tracebacks", {})[child.name] = first_traceback(text)
    return facts


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    fleet = Fleet(args, workdir)
    report = Report()
    await fleet.create_database()
    try:
        fleet.start_moto()
        fleet.start_redis()
        fleet.upgrade()
        fleet.start_fleet()
        started = time.monotonic()
        report.stop_at = None if not args.no_faults else started + args.seconds
        survivors: dict[str, str] = {}

        async def client(n: int) -> None:
            survivors.update(await client_loop(n, fleet, report, args.settle))

        async with anyio.create_task_group() as tg:
            for n in range(args.clients):
                tg.start_soon(client, n)
            if not args.no_faults:
                tg.start_soon(faults, fleet, report, started, args)
        elapsed = time.monotonic() - started
        recoveries(report)
        facts = await check(fleet, report, survivors)
        total = sum(report.counts.values())
        return {
            "seconds": round(elapsed, 1),
            "requests": total,
            "requests_per_s": round(total / elapsed, 1),
            "counts": {f"{op} {status}": n for (op, status), n in sorted(report.counts.items())},
            "server_errors_500": sum(n for (_, s), n in report.counts.items() if s == "500"),
            "server_errors_5xx": sum(
                n for (_, s), n in report.counts.items() if s.isdigit() and int(s) >= 500
            ),
            "faults": report.faults,
            "facts": facts,
            "problems": report.problems,
            "ok": not report.problems,
            "logs": str(fleet.logs),
        }
    finally:
        fleet.stop_all()
        await fleet.drop_database()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="traffic time (300)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent users (6)")
    parser.add_argument("--settle", type=float, default=5.0, help="s after a fault still excused")
    parser.add_argument("--no-faults", action="store_true", help="traffic only")
    parser.add_argument(
        "--tail", type=float, default=10.0, help="s of traffic at least after the last fault"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CHITRAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    with _workdir(args.workdir) as workdir:
        result = anyio.run(soak, args, workdir)
        print(json.dumps(result, indent=2))
        for fault in result["faults"]:
            taken = fault.get("jobs_finished_after_kill_s")
            extra = f"; the jobs running at the kill finished after {taken} s" if taken else ""
            print(f"recovery: {fault['fault']}: {fault.get('recovery_s')} s{extra}")
        for name, text in result["facts"].get("first_tracebacks", {}).items():
            print(f"--- first traceback in {name}.log\n{text}")
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=2))
        if not result["ok"]:
            for child in sorted((workdir / "logs").glob("*.log")):
                print(f"--- tail of {child.name}", file=sys.stderr)
                print(
                    "\n".join(child.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr
                )
    return 0 if result["ok"] else 1


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="chitram-soak-") as tmp:
        yield Path(tmp)


if __name__ == "__main__":
    sys.exit(main())
