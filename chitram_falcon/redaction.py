"""Secrets never reach a log line: delete tokens (and any token) in query strings are redacted.

Access logs print the request target with its query string, so ``?delete_token=...`` would sit
in every log store. The filter rewrites the arguments of records on the server's access logger
(uvicorn's, and any logger the host names) before any handler formats them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"

SECRET_PARAMS = frozenset(
    {
        "delete_token",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "password",
        "api_key",
        "apikey",
    }
)
"""Query parameters whose values never reach a log line (compared lower-cased, decoded). Our
access line (``observed.redact_query``) parses the query; other servers' lines are free text,
matched by the pattern below, which is built from the same names."""


def _name_pattern(name: str) -> str:
    return "".join("(?:_|%5f)" if c == "_" else re.escape(c) for c in name)


_SECRET_PARAM = re.compile(
    r"(?i)((?:^|[?&;])(?:"
    + "|".join(_name_pattern(n) for n in sorted(SECRET_PARAMS, key=len, reverse=True))
    + r")=)[^&;\s#\"]*"
)

ACCESS_LOGGERS = ("uvicorn.access", "hypercorn.access", "gunicorn.access")


def redact(text: str) -> str:
    """``text`` with the value of every secret-bearing query parameter replaced."""
    return _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(arg) if isinstance(arg, str) and "=" in arg else arg for arg in record.args
            )
        return True


def install(loggers: Iterable[str] = ACCESS_LOGGERS) -> None:
    """Add the filter to each named logger once (idempotent)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
