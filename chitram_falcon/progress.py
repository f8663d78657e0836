"""Progress of a long command: a bar on a terminal, a log line every few seconds otherwise.

A cron job or a container log gets lines it can keep (through the configured log format, so
JSON when ``CHITRAM_LOG_FORMAT=json``); a person at a terminal gets one line redrawn in place.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import TextIO

log = logging.getLogger("chitram.progress")

BAR_WIDTH = 30
REDRAW_EVERY = 0.1


class ProgressReporter:
    """``progress(phase, done, total)`` for ``Chitram.sweep`` and ``migrate_storage``."""

    def __init__(
        self,
        task: str,
        *,
        interval: float = 10.0,
        stream: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.task = task
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._phase: str | None = None
        self._last = 0.0
        self._drawn = False

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        new_phase = phase != self._phase
        finished = total is not None and done >= total
        if new_phase and self._phase is not None and self.tty and self._drawn:
            self.stream.write("\n")
        self._phase = phase
        if self.tty:
            if new_phase or finished or now - self._last >= REDRAW_EVERY:
                self.stream.write("\r" + self._bar(phase, done, total))
                self.stream.flush()
                self._drawn = True
                self._last = now
        elif new_phase or finished or now - self._last >= self.interval:
            self._last = now
            if total is None:
                log.info("%s: %s: %d so far", self.task, phase, done)
            else:
                log.info("%s: %s: %d/%d", self.task, phase, done, total)

    def _bar(self, phase: str, done: int, total: int | None) -> str:
        if total is None:
            return f"{self.task} {phase}: {done}"
        share = done / total if total else 1.0
        filled = int(BAR_WIDTH * share)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"{self.task} {phase} [{bar}] {done}/{total} {share:4.0%}"

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
