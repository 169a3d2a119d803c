"""Progress reporting from library code without printing.

Library functions take a :class:`Progress` and call it; the CLI passes one that renders rich
progress bars, tests and schedulers pass :data:`SILENT`.
"""

from __future__ import annotations

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
