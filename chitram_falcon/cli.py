"""``chitram``: serve the reference app, upgrade the database, sweep orphaned bytes.

Configuration comes from ``CHITRAM_*`` variables; a bad value is one line on stderr and exit
status 2, before anything binds or touches data.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chitram_core import Chitram, Settings
from chitram_core.errors import ConfigurationError

if TYPE_CHECKING:
    from chitram_falcon.app import ChitramApp

EXIT_CONFIG = 2


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
    log_level = "warning" if args.quiet else "info"
    loop, http = server_stack()
    if args.workers > 1 and settings.cache_url.startswith("memory"):
        # Per-process caches cannot see each other's invalidations: a deleted image could be
        # served from another worker's cache. Without a shared cache, cache nothing.
        print(
            "chitram: several workers with the in-process cache: image metadata caching is off "
            "and rate limits count per worker; set CHITRAM_CACHE_URL=redis://... to share them",
            file=sys.stderr,
        )
        os.environ["CHITRAM_CACHE_URL"] = "off"
    if args.workers > 1:
        uvicorn.run(
            "chitram_falcon.cli:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=log_level,
            lifespan="on",
            proxy_headers=False,
            loop=loop,
            http=http,
        )
    else:
        uvicorn.run(
            app_factory(),
            host=args.host,
            port=args.port,
            log_level=log_level,
            lifespan="on",
            proxy_headers=False,
            loop=loop,
            http=http,
        )
    return 0


def app_factory() -> ChitramApp:
    """What each uvicorn worker imports: the app opening its own Chitram in the lifespan."""
    from chitram_falcon.app import create_app

    return create_app(settings=_settings())


def _db_upgrade(args: argparse.Namespace) -> int:
    from chitram_core.db import Database

    settings = _settings()

    async def run() -> None:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.resolved_database_url)
        try:
            await database.upgrade(args.revision)
        finally:
            await database.dispose()

    asyncio.run(run())
    print(f"database upgraded to {args.revision}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    settings = _settings()

    async def run() -> None:
        async with Chitram(settings, background=False) as chitram:
            report = await chitram.sweep(older_than=args.older_than)
        print(
            f"orphans queued: {report.orphans_removed}, removed: {report.pending_removed}, "
            f"still queued: {report.pending_left}, thumbnails made: {report.thumbnails_made}"
        )

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chitram", description="Chitram image hosting")
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
    sweep.set_defaults(func=_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("chitram: --workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except ConfigurationError as exc:
        print(f"chitram: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    return code


if __name__ == "__main__":
    sys.exit(main())
