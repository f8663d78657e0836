"""``chitram``: serve the reference app, migrate the database, sweep, move storage, manage users.

Everything but ``serve`` parses its arguments and calls the SDK's admin surface
(:mod:`chitram_core.admin`: ``chitram.admin`` or ``Admin.open``), which opens and closes what it
needs; this module touches no database or store itself. Configuration comes from ``CHITRAM_*``
variables; a bad value, or a mistake the SDK refuses (an unknown revision or user...), is one
line on stderr and exit status 2, before anything binds or touches data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import importlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from chitram_core import Chitram, Settings, User, logs, to_json
from chitram_core.admin import Admin, MigrationReport
from chitram_core.errors import ChitramError, ConfigurationError
from chitram_core.images.codecs import format_names
from chitram_core.observe import Observer, combine
from chitram_core.settings import parse_optional_bytes
from chitram_falcon.progress import ProgressReporter

if TYPE_CHECKING:
    from chitram_falcon.asgi import ChitramApp

EXIT_CONFIG = 2
EXIT_FAILED = 1

log = logging.getLogger("chitram")

T = TypeVar("T")


class UsageError(Exception):
    """A command given something it cannot act on (passwords that differ...): one line, exit 2.
    The SDK's own refusals (an unknown revision or user...) are ChitramErrors, shown the same."""


SERVE_OVERRIDES = "CHITRAM_SERVE_OVERRIDES"
"""How ``chitram serve --workers N`` hands its workers the settings it changed (``--quiet``'s
log level, the cache turned off): a JSON object of ``Settings`` field names to values, set in
the environment uvicorn's workers start with (they import :func:`app_factory` by name, with no
arguments). The variables the operator set are left as they were."""


def _settings(**overrides: Any) -> Settings:
    settings = Settings.from_env(**overrides)
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
    overrides: dict[str, Any] = {}
    if args.quiet:
        overrides["log_level"] = level
    loop, http = server_stack()
    protocol: Any = http
    if http == "httptools":  # header timeout and connection cap (chitram_falcon/serving.py)
        from chitram_falcon import serving

        protocol = serving.configure(settings)
    else:
        log.warning(
            "httptools is not installed: no request-head timeout or connection cap "
            "(pip install 'chitram[server]')"
        )
    _raise_descriptor_limit(settings.max_connections * args.workers + 1024)
    if args.workers > 1 and settings.cache_url.startswith("memory"):
        # Per-process caches cannot see each other's invalidations: a deleted image could be
        # served from another worker's cache. Without a shared cache, cache nothing.
        log.warning(
            "several workers with the in-process cache: image metadata caching is off "
            "and rate limits count per worker; set CHITRAM_CACHE_URL=redis://... to share them"
        )
        overrides["cache_url"] = "off"
    if args.workers > 1 and settings.shutdown_drain > 0:
        log.warning(
            "CHITRAM_SHUTDOWN_DRAIN applies to --workers 1 only; these workers do not drain"
        )
    if args.workers > 1 and settings.should_auto_migrate:
        # Here, once: workers migrating a new SQLite file at the same time race to create the
        # same tables, and the loser fails to start. Each then finds the schema at its head.
        _admin(settings, lambda admin: admin.upgrade("head"))
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
        # SIGTERM: stop accepting, let in-flight requests finish for the grace, then close
        # (the lifespan's shutdown gives running jobs the same grace).
        "timeout_graceful_shutdown": settings.shutdown_grace,
        "loop": loop,
        "http": protocol,
    }
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _metrics_listener(settings):
            if args.workers > 1:
                os.environ[SERVE_OVERRIDES] = json.dumps(overrides)
                try:
                    uvicorn.run(
                        "chitram_falcon.cli:app_factory",
                        factory=True,
                        workers=args.workers,
                        **common,
                    )
                finally:
                    os.environ.pop(SERVE_OVERRIDES, None)
            else:
                _serve_one(app_factory(overrides), common, settings.shutdown_drain)
    except _Stopped as stopped:
        # uvicorn shut down gracefully, then raised the signal again for the handler it found
        # (ours): our clean-up (the metrics directory) has run; now end as the signal says.
        signal.signal(stopped.signum, signal.SIG_DFL)
        signal.raise_signal(stopped.signum)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _serve_one(app: Any, options: dict[str, Any], drain: float) -> None:
    """One process: uvicorn's server with the drain before its shutdown (``--workers N`` runs
    uvicorn's own supervisor, whose processes stop without it)."""
    import uvicorn

    from chitram_falcon.shutdown import DrainingServer

    server = DrainingServer(uvicorn.Config(app, **options), drain_seconds=drain)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's own exit code for a failed startup


def _worker(args: argparse.Namespace) -> int:
    import signal

    import anyio

    from chitram_core.worker import run_worker

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    overrides: dict[str, Any] = {"run_jobs": True}
    if args.jobs is not None:
        overrides["jobs_concurrency"] = args.jobs
    settings = _settings(**overrides)

    async def main(observer: Observer) -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
                    async for signum in received:
                        log.info("%s received", signal.Signals(signum).name)
                        stop.set()
                        return

            tg.start_soon(on_signals)
            await run_worker(settings, stop, observer=observer)
            tg.cancel_scope.cancel()

    with _metrics_listener(settings):
        # Built inside: the listener sets up the multiprocess directory the metrics write to.
        anyio.run(main, build_observer(settings))
    return 0


class _Stopped(BaseException):
    """SIGINT or SIGTERM arrived outside uvicorn's own handling (after its graceful shutdown it
    raises the signal again): unwinds ``_serve`` so every ``finally`` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def _raise_descriptor_limit(wanted: int) -> None:
    """Raise the soft open-files limit towards ``wanted`` (as far as the hard limit allows), so
    that the connection cap, not the descriptor limit, is what bounds connections."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        log.warning(
            "the open-files limit (%d) is below what CHITRAM_MAX_CONNECTIONS needs (%d)",
            hard,
            wanted,
        )


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


def app_factory(overrides: dict[str, Any] | None = None) -> ChitramApp:
    """What each uvicorn worker imports: the app opening its own Chitram in the lifespan.

    ``overrides``: settings that win over the ``CHITRAM_*`` variables; without them (a worker),
    those ``chitram serve`` left in :data:`SERVE_OVERRIDES`."""
    from chitram_falcon.app import create_app

    if overrides is None:
        overrides = _serve_overrides()
    settings = _settings(**overrides)
    logging.captureWarnings(True)
    if _importable("httptools"):  # in each worker: the bounds its HTTP protocol applies
        from chitram_falcon import serving

        serving.configure(settings)
    app = create_app(settings=settings, observer=build_observer(settings))
    app.handle.after_open.append(freeze_heap)
    return app


def freeze_heap() -> None:
    """Once the served instance is open: collect, then move every object left (modules, the
    app, its engines and pools) to the garbage collector's permanent generation, which its
    collections no longer walk.

    A full collection walks every tracked object in the process; a served instance holds a few
    hundred thousand, and each request leaves short-lived containers that bring the next full
    collection closer: measured, `GET /file` had a p99 of 56-66 ms (each full collection
    stalls every request in flight) against 5 ms with the heap frozen, and ~8 % less CPU per
    request. Objects made later are collected as before. For ``chitram serve`` only: a host
    running the app in its own process decides about its own collector.
    """
    gc.collect()
    gc.freeze()


def _serve_overrides() -> dict[str, Any]:
    raw = os.environ.get(SERVE_OVERRIDES, "").strip()
    if not raw:
        return {}
    try:
        overrides = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{SERVE_OVERRIDES}: not JSON: {exc}") from exc
    if not isinstance(overrides, dict):
        raise ConfigurationError(f"{SERVE_OVERRIDES}: expected a JSON object")
    return overrides


def build_observer(settings: Settings) -> Observer:
    """The served instance's observer: Prometheus metrics with ``CHITRAM_METRICS_ADDRESS``,
    OpenTelemetry when the ``otel`` extra is installed and the OTEL_* variables ask, both, or
    one that does nothing."""
    observers: list[Observer] = []
    if settings.metrics_address:
        from chitram_core import metrics

        observers.append(metrics.observer())
    try:
        from chitram_core import tracing
    except ImportError:
        pass
    else:
        traced = tracing.observer_from_env()
        if traced is not None:
            observers.append(traced)
    return combine(observers)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("chitram")
    except Exception:  # run from a source tree without being installed
        return "0.0.0"


def _admin(
    settings: Settings, operation: Callable[[Admin], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Run one admin operation over the database alone (``Admin.open``), then dispose of it.
    ``migrate``: bring the schema to the head first when the settings ask, as ``serve`` would
    (the commands that read or write data; never those that move the schema)."""

    async def run() -> T:
        async with Admin.open(settings, migrate=migrate and settings.should_auto_migrate) as admin:
            return await operation(admin)

    return asyncio.run(run())


def _db_upgrade(args: argparse.Namespace) -> int:
    _admin(_settings(), lambda admin: admin.upgrade(args.revision))
    print(f"database upgraded to {args.revision}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    _admin(_settings(), lambda admin: admin.downgrade(args.revision))
    print(f"database downgraded to {args.revision}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    state = _admin(_settings(), lambda admin: admin.current())
    if not state.current:
        print(f"none (head: {', '.join(state.heads)}; run 'chitram db upgrade')")
    for revision in state.current:
        print(f"{revision} (head)" if revision in state.heads else f"{revision} (behind the head)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    settings = _settings()

    async def run() -> None:
        with ProgressReporter("sweep", interval=args.progress_interval) as progress:
            async with Chitram(settings, background=False) as chitram:
                report = await chitram.admin.sweep(older_than=args.older_than, progress=progress)
        print(
            f"orphans queued: {report.orphans_removed}, removed: {report.pending_removed}, "
            f"still queued: {report.pending_left}, thumbnails made: {report.thumbnails_made}, "
            f"placeholders made: {report.placeholders_made}, "
            f"expired uploads removed: {report.uploads_expired}, "
            f"expired sign-outs forgotten: {report.revocations_expired}"
        )

    asyncio.run(run())
    return 0


def _storage_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        options = json.loads(args.options) if args.options else {}
    except ValueError as exc:
        raise ConfigurationError(f"--options: not JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ConfigurationError("--options: expected a JSON object")

    async def migrate(admin: Admin) -> MigrationReport:
        with ProgressReporter("migrate", interval=args.progress_interval) as progress:
            return await admin.migrate_storage(
                args.dest_url,
                options,
                concurrency=args.jobs,
                trust_existing=args.trust_existing,
                progress=progress,
            )

    report = _admin(settings, migrate, migrate=True)
    print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report.summary().items()))
    for key, reason in report.failed:
        print(f"failed: {key}: {reason}", file=sys.stderr)
    for key in report.missing:
        print(f"missing from the source: {key}", file=sys.stderr)
    return 0 if report.ok else EXIT_FAILED


def _users_list(args: argparse.Namespace) -> int:
    active = {"all": None, "enabled": True, "disabled": False}[args.state]
    users = _admin(
        _settings(),
        lambda admin: admin.list_users(limit=args.limit, offset=args.offset, active=active),
        migrate=True,
    )
    for user in users:
        if args.json:
            print(json.dumps(to_json(user) | {"provider": user.provider}))
        else:
            print("\t".join(_user_columns(user)))
    return 0


def _user_columns(user: User) -> list[str]:
    state = "enabled" if user.is_active else "disabled"
    return [user.id, user.email, state, user.provider, user.created_at.isoformat()]


def _users_create(args: argparse.Namespace) -> int:
    settings = _settings()
    password = _new_password()
    user = _admin(settings, lambda admin: admin.create_user(args.email, password), migrate=True)
    print(f"created user {user.id} ({user.email})")
    return 0


def _new_password() -> str:
    """The new user's password: asked twice on a terminal, else the first line of stdin (never
    an argument, which other local users could read from the process list)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise UsageError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _users_set_active(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.users_command == "disable":
        user = _admin(settings, lambda admin: admin.disable_user(args.user), migrate=True)
    else:
        user = _admin(settings, lambda admin: admin.enable_user(args.user), migrate=True)
    print(f"{args.users_command}d user {user.id} ({user.email})")
    return 0


def _users_quota(args: argparse.Namespace) -> int:
    """Show the user's usage and limits; with ``--bytes``/``--images`` set the user's own quota
    (an option left out, or ``none``: the deployment's default applies), with ``--clear``
    remove it."""
    settings = _settings()
    if args.clear and (args.bytes is not None or args.images is not None):
        raise UsageError("--clear removes the user's own quota: give it alone")
    if args.clear or args.bytes is not None or args.images is not None:
        quota_bytes = _quota_value(args.bytes, parse_optional_bytes, "--bytes")
        quota_images = _quota_value(args.images, _parse_count, "--images")
        usage = _admin(
            settings,
            lambda admin: admin.set_quota(args.user, bytes=quota_bytes, images=quota_images),
            migrate=True,
        )
    else:
        usage = _admin(settings, lambda admin: admin.usage(args.user), migrate=True)
    if args.json:
        print(json.dumps(to_json(usage)))
    else:
        limit_bytes = "none" if usage.quota_bytes is None else str(usage.quota_bytes)
        limit_images = "none" if usage.quota_images is None else str(usage.quota_images)
        print(f"bytes: {usage.bytes} of {limit_bytes}\timages: {usage.images} of {limit_images}")
    return 0


def _parse_count(raw: str) -> int | None:
    return None if raw.strip().lower() in {"", "none"} else int(raw.strip().replace("_", ""))


def _quota_value(raw: str | None, parse: Callable[[str], int | None], flag: str) -> int | None:
    if raw is None:
        return None
    try:
        value = parse(raw)
    except ValueError:
        raise UsageError(f"{flag}: expected a number such as 1000, 1G or 512MiB, or none") from None
    if value is not None and value < 0:
        raise UsageError(f"{flag}: must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chitram", description="Chitram image hosting")
    parser.add_argument(
        "--version",
        action="version",
        version=f"chitram {_version()} (image formats: {', '.join(format_names())})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser(
        "worker",
        help="run the background jobs and the image engine, without HTTP (beside API "
        "processes started with CHITRAM_RUN_JOBS=false)",
    )
    worker.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="tagging jobs at once (default CHITRAM_JOBS_CONCURRENCY, 2); thumbnails: "
        "CHITRAM_THUMBNAIL_WORKERS",
    )
    worker.set_defaults(func=_worker)

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

    users = sub.add_parser("users", help="list, create, disable and enable users; quotas")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    listing = users_sub.add_parser("list", help="print users, oldest first, one a line")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many first")
    listing.add_argument(
        "--state", choices=("all", "enabled", "disabled"), default="all", help="default all"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    listing.set_defaults(func=_users_list)
    create = users_sub.add_parser(
        "create",
        help="create a local user; the password is asked for, or read from stdin's first line",
    )
    create.add_argument("email")
    create.set_defaults(func=_users_create)
    for name, what in (
        ("disable", "refuse the user's logins and tokens, and end their sessions"),
        ("enable", "let a disabled user sign in again"),
    ):
        command = users_sub.add_parser(name, help=what)
        command.add_argument("user", metavar="USER", help="the user's id or email")
        command.set_defaults(func=_users_set_active)
    quota = users_sub.add_parser(
        "quota", help="show a user's usage and quota, or set (--bytes, --images) or --clear it"
    )
    quota.add_argument("user", metavar="USER", help="the user's id or email")
    quota.add_argument("--bytes", help="bytes the user's images may take: 1G, 512MiB, or none")
    quota.add_argument("--images", help="how many images the user may keep, or none")
    quota.add_argument(
        "--clear", action="store_true", help="remove the user's own quota (defaults apply)"
    )
    quota.add_argument("--json", action="store_true", help="print the usage as JSON")
    quota.set_defaults(func=_users_quota)
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
    except (ChitramError, UsageError) as exc:
        # A setting that cannot work, or a mistake in what was asked (an unknown revision or
        # user, a taken email, a bad destination): one line, exit 2, no traceback.
        if isinstance(exc, ConfigurationError):
            text = f"configuration error: {exc.message}"
        else:
            text = exc.message if isinstance(exc, ChitramError) else str(exc)
        if fmt == "json":
            log.error("%s", text)
        else:
            print(f"chitram: {text}", file=sys.stderr)
        return EXIT_CONFIG
    return code


if __name__ == "__main__":
    sys.exit(main())
