"""One logging setup for every Chitram process: text or JSON lines, with request and job ids.

The ids live in context variables, so a log call anywhere under a request (the SDK, a worker
thread started with ``anyio.to_thread``, a background job spawned from it) carries them without
being passed along. The formatters read them when they format, on the emitting thread.

stdlib ``logging`` only: no dependency, and the ~30 existing ``log.*`` calls need no change.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import logging.config
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

request_id: ContextVar[str | None] = ContextVar("chitram_request_id", default=None)
"""The id of the HTTP request being served (``X-Request-ID``), or None outside a request."""

job_id: ContextVar[str | None] = ContextVar("chitram_job_id", default=None)
"""The id of the background job running (e.g. ``thumbnail:<key>``), or None."""

FORMATS = ("text", "json")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is output.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)


def valid_request_id(value: str) -> bool:
    """An incoming ``X-Request-ID`` is kept only if it is 1..64 of ``[A-Za-z0-9._-]``."""
    return _REQUEST_ID.fullmatch(value) is not None


_ids: list[Any] = []  # [per-process random prefix, counter]


def _reset_ids() -> None:
    _ids[:] = [os.urandom(8).hex(), itertools.count()]


_reset_ids()
os.register_at_fork(after_in_child=_reset_ids)


def new_request_id() -> str:
    """32 hex digits, unique: a random per-process prefix (new after a fork) and a counter.

    Request ids correlate lines, they are not secrets; a counter spares a ``getrandom`` system
    call on every request of the hot path."""
    return f"{_ids[0]}{next(_ids[1]):016x}"


@contextlib.contextmanager
def job_context(kind: str, key: str) -> Iterator[str]:
    """Run a block as job ``<kind>:<key>``: its log lines carry ``job_id``."""
    ident = f"{kind}:{key}"
    token = job_id.set(ident)
    try:
        yield ident
    finally:
        job_id.reset(token)


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def second_of(created: float) -> str:
    """The timestamp's part up to its whole second (ISO 8601, UTC), formatted once per second."""
    seconds = int(created)
    if _second[0] != seconds:
        _second[0], _second[1] = seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    text: str = _second[1]
    return text


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC with milliseconds."""
    return f"{second_of(record.created)}.{int(record.msecs):03d}Z"


def timestamp(created: float) -> str:
    """The timestamp both formats write for a record made at ``created`` (``time.time()``)."""
    return f"{second_of(created)}.{int((created - int(created)) * 1000):03d}Z"


_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
"""One encoder for every line (``json.dumps`` with options builds a new one per call)."""

encode_json = _ENCODER.encode
"""A JSON log line's text from its dict, as :class:`JsonFormatter` encodes it."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, request_id, and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        job = job_id.get()
        if job is not None:
            entry["job_id"] = job
        fields = record.__dict__
        for key in fields.keys() - _RESERVED:  # what ``extra=`` added (a set difference, in C)
            if key not in entry:
                entry[key] = fields[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """``<time> LEVEL logger [request_id job_id]: message`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ids = [i for i in (request_id.get(), job_id.get()) if i]
        tag = f" [{' '.join(ids)}]" if ids else ""
        line = f"{_timestamp(record)} {record.levelname} {record.name}{tag}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that writes lines in batches instead of one ``write`` per record.

    A busy server logs one access line per request; writing each costs a system call (~2 µs of
    a ~35 µs request on one core). Lines are kept and written together when:

    - the batch would pass ``chunk`` bytes (4096 = ``PIPE_BUF``: one write of whole lines, so
      lines of several worker processes sharing one pipe never interleave mid-line, as with one
      write per line);
    - a record of level WARNING or above arrives (problems are never held back);
    - ``interval`` seconds passed (a daemon thread, started at the first held line and again
      after a fork), or on ``flush()`` / ``close()`` (``logging.shutdown`` at exit).

    What a ``kill -9`` can lose: the last ``interval`` seconds of INFO lines.
    """

    def __init__(
        self, stream: TextIO | None = None, *, interval: float = 0.2, chunk: int = 4096
    ) -> None:
        super().__init__(stream)
        self.interval = interval
        self.chunk = chunk
        self._lines: list[str] = []
        self._size = 0
        self._owner = 0  # the pid whose thread flushes (0: none started)
        self._closed = False

    def emit(self, record: logging.LogRecord) -> None:  # called with ``self.lock`` held
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if self._size + len(line) > self.chunk:
            self._write()
        self._lines.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.chunk:
            self._write()
        elif self._owner != os.getpid():
            self._start()

    def _write(self) -> None:
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: as logging.raiseExceptions=False
            pass

    def _start(self) -> None:
        self._owner = os.getpid()
        threading.Thread(target=self._run, name="chitram-log-flush", daemon=True).start()

    def _run(self) -> None:
        owner = self._owner
        while not self._closed and self._owner == owner:
            time.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        self._closed = True
        super().close()


def logging_config(
    fmt: str = "text", level: str | int = "INFO", *, access_log: bool = True
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: our format on stderr for the root logger, uvicorn's
    loggers and Alembic (quietened to warnings: its start-up chatter says nothing useful)."""
    if fmt not in FORMATS:
        raise ValueError(f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    formatter = (
        "chitram_core.logs.JsonFormatter" if fmt == "json" else "chitram_core.logs.TextFormatter"
    )
    level_name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"chitram": {"()": formatter}},
        "handlers": {
            "stderr": {
                # Write-through: a line is in the log when its request has answered (operators
                # tailing the log and tests reading it rely on that). BufferedStreamHandler
                # (below) is the opt-in for hosts that prefer batched writes.
                "class": "logging.StreamHandler",
                "formatter": "chitram",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level_name},
        "loggers": {
            # uvicorn's loggers have their own handlers by default; here they propagate to ours.
            "uvicorn": {"handlers": [], "level": level_name, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level_name, "propagate": True},
            # Our access line replaces uvicorn's (``access_log=False``); silence it regardless.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "alembic": {"handlers": [], "level": "WARNING", "propagate": True},
            "chitram_falcon.access": {
                "handlers": [],
                "level": "NOTSET" if access_log else "WARNING",
                "propagate": True,
            },
        },
    }


def configure(fmt: str = "text", level: str | int = "INFO", *, access_log: bool = True) -> None:
    """Install the setup in this process; warnings and uncaught exceptions go through it too."""
    logging.config.dictConfig(logging_config(fmt, level, access_log=access_log))
    logging.captureWarnings(True)
    # Neither format shows the caller's file and line, the thread or the process: do not
    # collect them for every record (the caller lookup walks the stack; a cost per access line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type: Any, exc: BaseException, tb: Any) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("chitram").critical("uncaught exception", exc_info=(exc_type, exc, tb))
