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

_SECRET_PARAM = re.compile(
    r"(?i)((?:^|[?&;])(?:delete(?:_|%5f)token|(?:access|refresh|id)(?:_|%5f)token|token|"
    r"password|api(?:_|%5f)?key)=)[^&;\s#\"]*"
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
