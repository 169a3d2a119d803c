"""Progress reporting from library code without printing.

Library functions take a :class:`Progress` and call it; the CLI passes one that renders rich
progress bars, services one that logs (:class:`LoggingProgress`), tests and schedulers pass
:data:`SILENT`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    """Receives stage starts, advances and finishes."""

    def start(self, task: str, total: int | None = None) -> None: ...

    def advance(self, task: str, amount: int = 1) -> None: ...

    def finish(self, task: str) -> None: ...

    def log(self, message: str) -> None: ...


class _Silent:
    def start(self, task: str, total: int | None = None) -> None:
        pass

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        pass

    def log(self, message: str) -> None:
        pass


SILENT: Progress = _Silent()


@contextmanager
def task(progress: Progress, name: str, total: int | None = None) -> Iterator[None]:
    """Report ``name`` as started on entry and finished on exit."""
    progress.start(name, total)
    try:
        yield
    finally:
        progress.finish(name)


class LoggingProgress:
    """A :class:`Progress` written to a logger, for services with no terminal: a line when a
    task starts, one when it finishes (with its wall time), and at most one every
    ``every_seconds`` while it advances (count, total, rate), so an operator watching a long
    start-up sees where it is."""

    def __init__(self, logger: logging.Logger, every_seconds: float = 10.0) -> None:
        self._logger = logger
        self._every = every_seconds
        self._tasks: dict[str, list[float]] = {}  # task -> [started, done, total, last logged]

    def start(self, task: str, total: int | None = None) -> None:
        now = time.monotonic()
        self._tasks[task] = [now, 0.0, float(total) if total is not None else -1.0, now]
        if total is None:
            self._logger.info("%s ...", task)
        else:
            self._logger.info("%s: %d to do ...", task, total)

    def advance(self, task: str, amount: int = 1) -> None:
        entry = self._tasks.get(task)
        if entry is None:
            return
        entry[1] += amount
        now = time.monotonic()
        if now - entry[3] >= self._every:
            entry[3] = now
            rate = entry[1] / max(now - entry[0], 1e-9)
            of = f" of {entry[2]:.0f}" if entry[2] >= 0 else ""
            self._logger.info("%s: %.0f%s done (%.3g/s)", task, entry[1], of, rate)

    def finish(self, task: str) -> None:
        entry = self._tasks.pop(task, None)
        if entry is not None:
            self._logger.info("%s done in %.1f s", task, time.monotonic() - entry[0])

    def log(self, message: str) -> None:
        self._logger.info("%s", message)
