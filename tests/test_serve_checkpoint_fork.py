"""A checkpoint is written by a forked child: polars objects in the state must not need the
parent's thread pool there (a frame of several chunks used to hang the child forever)."""

from __future__ import annotations

import os
import pickle
import signal
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal, assert_series_equal

from graphkit.serve.service import _write_checkpoint


def _pieces() -> pl.DataFrame:
    part = pl.DataFrame(
        {
            "drawdown_id": ["D1", "D2", None],
            "amount": [1.5, 2.0, 3.25],
            "hops": pl.Series([1, None, 3], dtype=pl.Int8),
            "at": [datetime(2025, 1, 1, tzinfo=UTC)] * 3,
            "kind": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
            "path": [["T1", "T2"], [], None],
        }
    )
    return pl.concat([part, part, part], rechunk=False)  # grown by appends: several chunks


def test_a_forked_child_writes_polars_columns_of_several_chunks(tmp_path: Path) -> None:
    frame = _pieces()
    series = frame.get_column("amount")
    assert frame.n_chunks() > 1 and series.n_chunks() > 1
    # the parent's polars thread pool is running, as in the service after start-up
    frame.group_by("drawdown_id").agg(pl.col("amount").sum())
    state = {"closed": frame, "ids": series, "empty": frame.clear(), "other": [1, "x"]}
    path = tmp_path / "checkpoint.pkl"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child writes, as the service's does, then exits
        # a hang ends the child with SIGALRM instead of the test run (the default action: a
        # Python handler, pytest's say, would never run in a child stuck in native code)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(60)
        code = 0
        try:
            _write_checkpoint(path, {"format": 0, "state": state})
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the checkpoint's child hung or failed"
    with path.open("rb") as fh:
        assert pickle.load(fh) == {"format": 0}
        back = pickle.load(fh)
    assert_frame_equal(back["closed"], frame)
    assert_series_equal(back["ids"], series)
    assert_frame_equal(back["empty"], frame.clear())
    assert back["other"] == [1, "x"]
