"""The access line: one per request, recorded on the request path, written in batches later.

The request path appends a tuple of what it already holds (clock, ids, status, bytes, the
request's path, query and client) to a queue; with the text format, every ``BATCH`` (256)th
request formats what is queued, in one go (about 1.4 µs a line, 1.8 µs a request in all:
``benchmarks/access_line.py``). :class:`AccessWriter`'s daemon thread writes what is formatted,
and formats and writes what is still queued, every ``interval`` seconds (0.05 s), at the app's
shutdown and at interpreter exit, or when :meth:`AccessWriter.flush` is called (tests do, so
nothing depends on the timer). A crash (``kill -9``) loses at most the last interval's lines.

Why the text lines are formatted on the request path and not in the thread: formatted in the
thread, each line cost the event loop's thread ~2 µs more (measured on ``chitram serve``: the
two threads taking the interpreter's lock in turns and finding each other's memory out of their
caches). A JSON line costs several times a text line to format, so the thread formats those.

Two ways out, chosen at each flush:

- the usual set-up (``chitram_core.logs.configure``: one stream handler with our text or JSON
  formatter, no filters): the lines are formatted here, exactly as those formatters would, and
  written with one ``write`` per batch;
- anything else (a host's own handlers, formatters or filters, pytest's ``caplog``): one
  complete ``logging.LogRecord`` per line through ``Logger.handle``, with the request id set as
  it was during the request, so every handler, filter and formatter applies as to any record.

The client address is resolved at format time, from the same trusted-proxy headers as the rate
limits and ``/health`` (:func:`chitram_core.limits.addresses.client_address_from_headers`).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from chitram_core import logs
from chitram_core.limits.addresses import client_address_from_headers
from chitram_falcon.redaction import REDACTED, SECRET_PARAMS

access_log = logging.getLogger("chitram_falcon.access")

ACCESS_FORMAT = "%s %s %d %dB %.1fms"

Entry = tuple[float, str, str, str, int, int, float, str, bytes, Any, Any, tuple[str, ...]]
"""(time, request id, method, route, status, bytes sent, seconds, then what the line needs of
the ASGI scope: path, query string, client, headers when a trusted proxy may name the client
(else None), and the trusted proxies). One flat tuple, not the scope: a queued line would keep
every request's scope alive for the writer's interval, and the collector walking them."""


def entry_of(
    now: float,
    rid: str,
    method: str,
    route: str,
    status: int,
    sent: int,
    seconds: float,
    scope: dict[str, Any],
    proxies: tuple[str, ...],
) -> Entry:
    """The queued :data:`Entry` of one answered request."""
    return (
        now,
        rid,
        method,
        route,
        status,
        sent,
        seconds,
        scope.get("path", ""),
        scope.get("query_string", b""),
        scope.get("client"),
        scope["headers"] if proxies else None,
        proxies,
    )


def redact_query(query: str) -> str:
    """The query string with the values of ``redaction.SECRET_PARAMS`` replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_PARAMS for name, _ in pairs):
        return query
    return urlencode(
        [(n, REDACTED if n.lower() in SECRET_PARAMS else v) for n, v in pairs], safe="[]"
    )


def _fields(entry: Entry) -> dict[str, Any]:
    """The structured fields of an access line (what the JSON format writes after the message)."""
    _now, _rid, method, route, status, sent, seconds, path, query, peer, headers, proxies = entry
    client = peer[0] if peer else None
    if proxies and client is not None:  # only then can headers name someone else
        client = client_address_from_headers(client, headers, proxies)
    return {
        "method": method,
        "route": route,
        "path": path,
        "query": redact_query(query.decode("latin-1")) if query else "",
        "status": status,
        "bytes": sent,
        "duration_ms": round(seconds * 1000, 3),
        "client": client,
    }


def _record_template() -> dict[str, Any]:
    """The attributes every access record shares, as ``LogRecord.__init__`` would set them with
    caller, thread and process collection off (what ``chitram_core.logs.configure`` does)."""
    record = logging.LogRecord(access_log.name, logging.INFO, __file__, 0, ACCESS_FORMAT, (), None)
    fields = vars(record)
    fields.update(funcName="serve", thread=None, threadName=None, process=None, processName=None)
    for name in ("msg", "args", "created", "msecs", "relativeCreated"):
        fields.pop(name)
    return fields


_TEMPLATE = _record_template()


def _logging_start() -> float:
    """When logging started, in seconds (``relativeCreated`` counts from it); read off a record,
    since ``logging._startTime`` is seconds before Python 3.13 and nanoseconds from it."""
    probe = logging.LogRecord("chitram", logging.INFO, "", 0, "", None, None)
    return probe.created - probe.relativeCreated / 1000


_START = _logging_start()


def to_record(entry: Entry) -> logging.LogRecord:
    """A complete ``LogRecord`` for one access line (built directly: ``LogRecord.__init__``
    spends most of its time on lookups an access line does not use)."""
    now, _rid, method, route, status, sent, seconds = entry[:7]
    record = object.__new__(logging.LogRecord)
    record.__dict__ = {
        **_TEMPLATE,
        "msg": ACCESS_FORMAT,
        "args": (method, route, status, sent, seconds * 1000),
        "created": now,
        "msecs": (now - int(now)) * 1000,
        "relativeCreated": (now - _START) * 1000,
        **_fields(entry),
    }
    return record


_TEXT_LINE = "%s.%03dZ INFO " + access_log.name + " [%s]: " + ACCESS_FORMAT + "\n"


def _text_line(entry: Entry) -> str:
    """What ``logs.TextFormatter`` writes for the record of ``entry`` (one ``%``: the writer
    formats every line of a busy server)."""
    now, rid, method, route, status, sent, seconds = entry[:7]
    return _TEXT_LINE % (
        logs.second_of(now),
        (now % 1) * 1000,
        rid,
        method,
        route,
        status,
        sent,
        seconds * 1000,
    )


def _json_line(entry: Entry) -> str:
    """What ``logs.JsonFormatter`` writes for the record of ``entry``."""
    now, rid, method, route, status, sent, seconds = entry[:7]
    line = {
        "timestamp": logs.timestamp(now),
        "level": "INFO",
        "logger": access_log.name,
        "message": ACCESS_FORMAT % (method, route, status, sent, seconds * 1000),
        "request_id": rid,
        **_fields(entry),
    }
    return logs.encode_json(line) + "\n"


_DIRECT = {logs.TextFormatter: _text_line, logs.JsonFormatter: _json_line}


def _direct_sink() -> tuple[logging.StreamHandler[Any], Any] | None:
    """The one stream handler and line function when logging is set up as ``logs.configure``
    does (one handler on the way up, our formatter, no filters); else None."""
    if access_log.filters or access_log.disabled:
        return None
    handlers: list[logging.Handler] = []
    logger: logging.Logger | None = access_log
    while logger is not None:
        handlers.extend(logger.handlers)
        logger = logger.parent if logger.propagate else None
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) not in (logging.StreamHandler, logs.BufferedStreamHandler):
        return None
    formatter = handler.formatter
    line = _DIRECT.get(type(formatter)) if formatter is not None else None
    if line is None or handler.filters or handler.level > logging.INFO:
        return None
    return handler, line  # type: ignore[return-value]


CHUNK_SECONDS = 0.001
"""How long the writer formats before it writes and gives the GIL back (then goes on): a large
batch never holds the event loop's thread up for longer, and a busy server's loop is not
interrupted for every few lines (each hand-over of the GIL costs the loop's thread more than
formatting a line does)."""

STEP = 64
"""Lines formatted between two looks at the clock."""


BATCH = 256
"""Text lines queued between two formattings on the request path (see :meth:`AccessWriter.add`
and, for why there, the module's docstring); a batch of 256 keeps a request's wait for it under
0.5 ms."""


INTERVAL = 0.05
"""Seconds between two flushes. Short, so the lines queued in between stay few: at 30,000
requests a second a 0.2 s queue held ~6,000 lines whose memory the event loop's thread no
longer found in its caches (measured: the same ~1 µs per request less at 0.05 s as at 0.02 s
than at 0.2 s); the thread wakes 20 times a second."""


class AccessWriter:
    """Queues access lines and writes them in batches (see the module's docstring)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._queue: collections.deque[Entry] = collections.deque()
        self._formatted: collections.deque[tuple[logging.StreamHandler[Any], str]] = (
            collections.deque()
        )
        """Batches formatted and not yet written, in order, with the handler they are for."""
        self._taking = threading.Lock()
        """Held while lines move from the queue to :attr:`_formatted` (what keeps them in
        order); the request path only ever tries it."""
        self._flushing = threading.Lock()
        self._thread_pid = 0

    def add(self, entry: Entry) -> None:
        """Queue one line: the only call on the request path (starts no thread: see
        :meth:`start`). Every :data:`BATCH` text lines, what is queued is formatted here, on
        the thread that served it, and left for the writer's thread to write."""
        queue = self._queue
        queue.append(entry)
        if not len(queue) % BATCH and self._taking.acquire(blocking=False):
            try:
                sink = _direct_sink()
                # Only the text line (~1.4 µs): a JSON line costs several times more, so the
                # writer's thread formats those, and hands records to any other set-up.
                if sink is not None and sink[1] is _text_line:
                    pop = queue.popleft
                    batch = [pop() for _ in range(len(queue))]
                    self._formatted.append((sink[0], "".join(map(sink[1], batch))))
            finally:
                self._taking.release()

    def start(self) -> None:
        """Start the flushing thread in this process, once (again after a fork)."""
        pid = os.getpid()
        if self._thread_pid == pid:
            return
        self._thread_pid = pid
        threading.Thread(target=self._run, name="chitram-access-log", daemon=True).start()

    def _run(self) -> None:
        pid = self._thread_pid
        while self._thread_pid == pid:
            time.sleep(self.interval)
            self.flush()

    def pending(self) -> int:
        return len(self._queue) + len(self._formatted)

    def flush(self) -> None:
        """Write every queued line now, in order."""
        with self._flushing:
            with self._taking:
                # What is queued now; lines queued meanwhile wait for the next flush.
                queue = self._queue
                pop = queue.popleft
                batch = [pop() for _ in range(len(queue))]
                formatted = self._formatted
                ready = [formatted.popleft() for _ in range(len(formatted))]
            for handler, text in ready:  # the older lines first
                _write(handler, text)
            if not batch:
                return
            sink = _direct_sink()
            if sink is not None:
                handler, line = sink
                start = 0
                while start < len(batch):
                    if start:
                        time.sleep(0)  # let the event loop's thread run between chunks
                    deadline = time.perf_counter() + CHUNK_SECONDS
                    lines: list[str] = []
                    while start < len(batch) and time.perf_counter() < deadline:
                        lines.append("".join(map(line, batch[start : start + STEP])))
                        start += STEP
                    _write(handler, "".join(lines))
                return
            for entry in batch:
                token = logs.request_id.set(entry[1])
                try:
                    access_log.handle(to_record(entry))
                finally:
                    logs.request_id.reset(token)


def _write(handler: logging.StreamHandler[Any], text: str) -> None:
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.flush()
    except (OSError, ValueError):  # closed: as logging.raiseExceptions=False
        pass
    finally:
        handler.release()


WRITER = AccessWriter()
"""The process's access-line writer (every app in the process shares it)."""

atexit.register(WRITER.flush)  # registered after logging's own: runs before logging.shutdown


def _after_fork_in_child() -> None:
    """A forked child's copies hold the parent's lines (the parent writes those) and maybe
    locks a thread of the parent held (no thread of the child will release them)."""
    WRITER._queue.clear()
    WRITER._formatted.clear()
    WRITER._taking = threading.Lock()
    WRITER._flushing = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def flush() -> None:
    """Write the queued access lines now (tests call this before reading the log)."""
    WRITER.flush()
