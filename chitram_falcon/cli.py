"""``chitram``: serve the reference app, manage the database, sweep, move storage.

Configuration comes from ``CHITRAM_*`` variables; a bad value is one line on stderr and exit
status 2, before anything binds or touches data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chitram_core import Chitram, Settings, logs
from chitram_core.errors import ConfigurationError
from chitram_falcon.progress import ProgressReporter

if TYPE_CHECKING:
    from chitram_falcon.asgi import ChitramApp

EXIT_CONFIG = 2
EXIT_FAILED = 1

log = logging.getLogger("chitram")


class UsageError(Exception):
    """A command given something it cannot act on (an unknown revision...): one line, exit 2."""


@contextlib.contextmanager
def _alembic_errors() -> Iterator[None]:
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise UsageError(str(exc)) from exc


def _settings() -> Settings:
    settings = Settings.from_env()
    settings.check_production()
    return settings


def server_stack() -> tuple[str, str]:
    """The event loop and HTTP parser ``chitram serve`` runs on.

    uvloop and httptools (what the ``server`` extra installs, through ``uvicorn[standard]``)
    when they import; otherwise, e.g. where uvloop has no wheel, asyncio and h11.
    """
    return (
        "uvloop" if _importable("uvloop") else "asyncio",
        "httptools" if _importable("httptools") else "h11",
    )


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()  # fail here, in the parent, with one line, not in each worker
    level = "WARNING" if args.quiet else settings.log_level
    if args.quiet:
        os.environ["CHITRAM_LOG_LEVEL"] = level  # the workers read it too
    loop, http = server_stack()
    if args.workers > 1 and settings.cache_url.startswith("memory"):
        # Per-process caches cannot see each other's invalidations: a deleted image could be
        # served from another worker's cache. Without a shared cache, cache nothing.
        log.warning(
            "several workers with the in-process cache: image metadata caching is off "
            "and rate limits count per worker; set CHITRAM_CACHE_URL=redis://... to share them"
        )
        os.environ["CHITRAM_CACHE_URL"] = "off"
    if args.workers > 1 and settings.should_auto_migrate:
        # Here, once: workers migrating a new SQLite file at the same time race to create the
        # same tables, and the loser fails to start. Each then finds the schema at its head.
        asyncio.run(_upgrade(settings, "head"))
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": level.lower(),
        "log_config": logs.logging_config(
            settings.log_format, level, access_log=settings.access_log
        ),
        "access_log": False,  # ours (chitram_falcon.access) replaces uvicorn's
        "lifespan": "on",
        "proxy_headers": False,
        # No "server: uvicorn": it names our stack to every client and costs a header per answer.
        "server_header": False,
        "loop": loop,
        "http": http,
    }
    with _metrics_listener(settings):
        if args.workers > 1:
            uvicorn.run(
                "chitram_falcon.cli:app_factory", factory=True, workers=args.workers, **common
            )
        else:
            uvicorn.run(app_factory(), **common)
    return 0


@contextlib.contextmanager
def _metrics_listener(settings: Settings) -> Iterator[None]:
    """With ``CHITRAM_METRICS_ADDRESS``: a fresh multiprocess directory every worker writes to,
    and the ``/metrics`` listener in this (the parent) process, which adds them up."""
    if not settings.metrics_address:
        yield
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of an earlier run must not be added in
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="chitram-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    try:
        from chitram_core import metrics  # after the variable is set: it is read at import
    except ImportError as exc:
        raise ConfigurationError(
            "CHITRAM_METRICS_ADDRESS is set but prometheus-client is not installed "
            "(pip install 'chitram[metrics]')"
        ) from exc
    try:
        server, _thread = metrics.serve_metrics(settings.metrics_address)
    except OSError as exc:
        raise ConfigurationError(
            f"CHITRAM_METRICS_ADDRESS: cannot listen on {settings.metrics_address}: {exc}"
        ) from exc
    log.info("metrics on http://%s/metrics", settings.metrics_address)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        if not given:
            shutil.rmtree(path, ignore_errors=True)


def app_factory() -> ChitramApp:
    """What each uvicorn worker imports: the app opening its own Chitram in the lifespan."""
    from chitram_falcon.app import create_app

    settings = _settings()
    logging.captureWarnings(True)
    if settings.metrics_address:
        from chitram_core import metrics

        metrics.install()
    _tracing(settings)
    return create_app(settings=settings)


def _tracing(settings: Settings) -> None:
    """OpenTelemetry, when the ``otel`` extra is installed and the OTEL_* variables ask."""
    try:
        from chitram_core import tracing
    except ImportError:
        return
    tracing.setup_from_env()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("chitram")
    except Exception:  # run from a source tree without being installed
        return "0.0.0"


def _database(settings: Settings) -> Any:
    from chitram_core.db import Database

    if settings.is_sqlite:
        from chitram_core.datadir import private_dir, private_sqlite

        private_dir(settings.data_dir)
        private_sqlite(settings.resolved_database_url)
    return Database(settings.resolved_database_url)


async def _upgrade(settings: Settings, revision: str) -> None:
    database = _database(settings)
    try:
        await database.upgrade(revision)
    finally:
        await database.dispose()


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings()
    with _alembic_errors():
        asyncio.run(_upgrade(settings, args.revision))
    print(f"database upgraded to {args.revision}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from alembic import command

    from chitram_core.db.database import alembic_config

    settings = _settings()
    _database(settings)  # makes the SQLite folder, as upgrade does
    with _alembic_errors():
        command.downgrade(alembic_config(settings.resolved_database_url), args.revision)
    print(f"database downgraded to {args.revision}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from chitram_core.db.database import alembic_config

    settings = _settings()
    url = settings.resolved_database_url

    async def run() -> tuple[str, ...]:
        database = _database(settings)
        try:
            async with database.engine.connect() as conn:
                return tuple(
                    await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
                )
        finally:
            await database.dispose()

    current = asyncio.run(run())
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if not current:
        print(f"none (head: {', '.join(sorted(heads))}; run 'chitram db upgrade')")
    for revision in current:
        print(f"{revision} (head)" if revision in heads else f"{revision} (behind the head)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    settings = _settings()

    async def run() -> None:
        with ProgressReporter("sweep", interval=args.progress_interval) as progress:
            async with Chitram(settings, background=False) as chitram:
                report = await chitram.sweep(older_than=args.older_than, progress=progress)
        print(
            f"orphans queued: {report.orphans_removed}, removed: {report.pending_removed}, "
            f"still queued: {report.pending_left}, thumbnails made: {report.thumbnails_made}, "
            f"placeholders made: {report.placeholders_made}"
        )

    asyncio.run(run())
    return 0


def _storage_migrate(args: argparse.Namespace) -> int:
    from chitram_core.db import deletions
    from chitram_core.storage import StorageError, open_storage
    from chitram_core.storage.migrate import describe, migrate_storage

    settings = _settings()
    try:
        options = json.loads(args.options) if args.options else {}
    except ValueError as exc:
        raise ConfigurationError(f"--options: not JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ConfigurationError("--options: expected a JSON object")
    if args.dest_url.rstrip("/") == settings.resolved_storage_url.rstrip("/"):
        raise ConfigurationError("the destination is the store CHITRAM_STORAGE_URL already names")

    async def run() -> int:
        try:
            source = open_storage(settings.resolved_storage_url, dict(settings.storage_options))
        except StorageError as exc:
            raise ConfigurationError(f"CHITRAM_STORAGE_URL: {exc}") from exc
        try:
            dest = open_storage(args.dest_url, options)
        except StorageError as exc:
            raise ConfigurationError(f"DEST_URL: {exc}") from exc
        database = _database(settings)
        try:
            async with database.connect() as conn:
                referenced = await deletions.migration_keys(conn)
            with ProgressReporter("migrate", interval=args.progress_interval) as progress:
                report = await migrate_storage(
                    source,
                    dest,
                    referenced=referenced,
                    concurrency=args.jobs,
                    trust_existing=args.trust_existing,
                    progress=progress,
                )
        finally:
            await database.dispose()
            await source.close()
            await dest.close()
        summary = describe(report)
        print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items()))
        for key, reason in report.failed:
            print(f"failed: {key}: {reason}", file=sys.stderr)
        for key in report.missing:
            print(f"missing from the source: {key}", file=sys.stderr)
        return 0 if report.ok else EXIT_FAILED

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chitram", description="Chitram image hosting")
    parser.add_argument("--version", action="version", version=f"chitram {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=_db_upgrade)
    downgrade = db_sub.add_parser("downgrade", help="revert migrations down to REVISION")
    downgrade.add_argument("revision", help="a revision id, 'base', or a relative step like -1")
    downgrade.set_defaults(func=_db_downgrade)
    current = db_sub.add_parser("current", help="print the database's revision")
    current.set_defaults(func=_db_current)

    progress_help = "seconds between progress log lines when not on a terminal (default 10)"
    sweep = sub.add_parser(
        "sweep", help="remove bytes no image uses, retry queued removals, make missing thumbnails"
    )
    sweep.add_argument(
        "--older-than",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="leave objects younger than this alone (uploads in flight); default 3600",
    )
    sweep.add_argument("--progress-interval", type=float, default=10.0, help=progress_help)
    sweep.set_defaults(func=_sweep)

    storage = sub.add_parser("storage", help="storage maintenance")
    storage_sub = storage.add_subparsers(dest="storage_command", required=True)
    migrate = storage_sub.add_parser(
        "migrate",
        help="copy every stored object to another store, verified; run again to resume",
    )
    migrate.add_argument("dest_url", metavar="DEST_URL", help="e.g. file:///srv/new or s3://b/p")
    migrate.add_argument(
        "--options",
        default="",
        help="the destination's options as JSON (as CHITRAM_STORAGE_OPTIONS)",
    )
    migrate.add_argument("--jobs", type=int, default=4, help="objects copied at once (default 4)")
    migrate.add_argument(
        "--trust-existing",
        action="store_true",
        help="skip destination objects of the right size without reading them back",
    )
    migrate.add_argument("--progress-interval", type=float, default=10.0, help=progress_help)
    migrate.set_defaults(func=_storage_migrate)
    return parser


def _log_format() -> str:
    """The format for this run, read early (before Settings) so every line uses it."""
    fmt = os.environ.get("CHITRAM_LOG_FORMAT", "text").strip().lower()
    return fmt if fmt in logs.FORMATS else "text"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("chitram: --workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    fmt = _log_format()
    level = os.environ.get("CHITRAM_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    try:
        logs.configure(fmt, level)
    except ValueError:
        logs.configure(fmt, "INFO")
    try:
        code: int = args.func(args)
    except (ConfigurationError, UsageError) as exc:
        text = (
            f"configuration error: {exc.message}"
            if isinstance(exc, ConfigurationError)
            else str(exc)
        )
        if fmt == "json":
            log.error("%s", text)
        else:
            print(f"chitram: {text}", file=sys.stderr)
        return EXIT_CONFIG
    return code


if __name__ == "__main__":
    sys.exit(main())
