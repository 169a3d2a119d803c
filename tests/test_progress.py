"""LoggingProgress: what a service's operator reads while a long start-up runs."""

from __future__ import annotations

import logging

import pytest

from graphkit.progress import LoggingProgress


def test_a_task_logs_its_start_its_finish_and_throttled_advances(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("graphkit.test.progress")
    caplog.set_level(logging.INFO, logger=logger.name)
    quiet = LoggingProgress(logger, every_seconds=3600)
    quiet.start("re-trace", 30)
    for _ in range(3):
        quiet.advance("re-trace", 10)
    quiet.finish("re-trace")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "re-trace: 30 to do ..."
    assert lines[1].startswith("re-trace done in ") and len(lines) == 2  # advances held back

    caplog.clear()
    chatty = LoggingProgress(logger, every_seconds=0)
    chatty.start("log replay")
    chatty.advance("log replay", 5)
    chatty.advance("log replay", 2)
    chatty.advance("never started")
    chatty.finish("log replay")
    chatty.finish("never started")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "log replay ..."
    assert lines[1].startswith("log replay: 5 done (") and lines[2].startswith("log replay: 7 done")
    assert lines[3].startswith("log replay done in ") and len(lines) == 4
