"""Fund-flow results of drawdowns whose window has closed, kept as columns.

A closed window never changes again, so its result is a row of numbers: it is appended to flat
arrays (one entry per drawdown per column, the banned amounts per hop in one array of
``rows x (H + 1)``) instead of a dict per drawdown. Memory is then O(drawdowns) numbers with no
Python container per drawdown, which the cyclic garbage collector would otherwise walk at every
full collection (the state grows with history, the pauses grew with it), and the flows table is
built from the columns at once (:meth:`ClosedFlows.frame`).

Rows closed before the batch run keep that run's evidence paths as its ``flow_paths`` frame
(:attr:`ClosedFlows.batch_paths`); rows closed live have theirs searched when written. Their
drawdown ids stay a polars column (about 25 bytes a row) instead of a string object each plus a
dict entry id -> row (about 140 bytes a row: 180 MB of the 1M-node state): nothing on an
event's path looks a closed drawdown up by id, and the flows table is built from the columns.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import polars as pl

from graphkit.live.load import interned


class ClosedFlows:
    """Closed drawdowns' results by row: the drawdown ids (``batch_ids``, a polars column, for
    the rows added by :meth:`add_batch` before any other, then ``ids``, a list), ``line_ids``,
    ``customer_ids``, and the arrays ``amount``, ``banned`` (H + 1 per row), ``min_hops``
    (-1: none), ``capped`` and ``from_batch`` (1: closed before the run, its paths in
    :attr:`batch_paths`). Cost: O(H) to append a row, O(rows) to find one by id."""

    def __init__(self, max_hops: int) -> None:
        self.layers = max_hops + 1
        self.batch_ids = pl.Series("drawdown_id", [], dtype=pl.String)
        self.ids: list[str] = []
        self.line_ids: list[str] = []
        self.customer_ids: list[str | None] = []
        self.amount = array("d")
        self.banned = array("d")
        self.min_hops = array("b")
        self.capped = array("b")
        self.from_batch = array("b")
        self.batch_paths: pl.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.batch_ids) + len(self.ids)

    def __contains__(self, drawdown_id: object) -> bool:
        return self._row(drawdown_id) is not None

    def _row(self, drawdown_id: object) -> int | None:
        """The row of ``drawdown_id``, else None. O(rows)."""
        if drawdown_id in self.ids:
            return len(self.batch_ids) + self.ids.index(drawdown_id)  # type: ignore[arg-type]
        if not isinstance(drawdown_id, str) or not len(self.batch_ids):
            return None
        found = (self.batch_ids == drawdown_id).arg_true()
        return int(found[0]) if len(found) else None

    def all_ids(self) -> list[str]:
        """Every row's drawdown id, in row order. O(rows)."""
        return [*self.batch_ids.to_list(), *self.ids]

    def add(self, trace: Any) -> None:
        """Append a :class:`~graphkit.live.flows.Trace` whose window closed. O(H)."""
        self.ids.append(trace.drawdown_id)
        self.line_ids.append(trace.line_id)
        self.customer_ids.append(trace.customer_id)
        self.amount.append(trace.amount)
        self.banned.extend(trace.banned)
        self.min_hops.append(-1 if trace.min_hops is None else trace.min_hops)
        self.capped.append(bool(trace.capped))
        self.from_batch.append(0)

    def add_batch(self, frame: pl.DataFrame, paths: pl.DataFrame | None) -> None:
        """Append the rows of a batch ``flows.parquet`` frame (with ``line_id`` and
        ``customer_id``) and keep their evidence ``paths``. O(rows), columnar."""
        ids = frame.get_column("drawdown_id").cast(pl.String)
        if self.ids:  # rows closed live came first: keep the row order in the list
            self.ids.extend(ids.to_list())
        else:
            self.batch_ids = pl.concat([self.batch_ids, ids.rename("drawdown_id")])
        self.line_ids.extend(interned(frame.get_column("line_id")))
        self.customer_ids.extend(interned(frame.get_column("customer_id")))
        self.amount.extend(frame.get_column("amount").cast(pl.Float64).to_numpy())
        # one (rows, layers) array filled a column at a time and handed to the array by its
        # buffer: a column_stack of the layers and its bytes were two more copies of it
        # (380 MB each at 5M nodes) at the build's peak
        hops = np.zeros((frame.height, self.layers))
        for h in range(self.layers):
            if f"banned_hop_{h}" in frame.columns:
                column = frame.get_column(f"banned_hop_{h}").cast(pl.Float64).fill_null(0.0)
                hops[:, h] = column.to_numpy()
        self.banned.frombytes(_raw(hops))
        del hops
        self.min_hops.frombytes(
            _raw(frame.get_column("min_hops_to_banned").fill_null(-1).cast(pl.Int8).to_numpy())
        )
        capped = (
            frame.get_column("capped").fill_null(False).cast(pl.Int8).to_numpy()
            if "capped" in frame.columns
            else np.zeros(frame.height, dtype=np.int8)
        )
        self.capped.frombytes(_raw(capped))
        self.from_batch.frombytes(_raw(np.ones(frame.height, dtype=np.int8)))
        if paths is not None:
            self.batch_paths = (
                paths if self.batch_paths is None else pl.concat([self.batch_paths, paths])
            )

    def summary(self, drawdown_id: str) -> dict[str, Any] | None:
        """The result of one closed drawdown as :meth:`Trace.summary` gives it. O(rows)."""
        i = self._row(drawdown_id)
        return None if i is None else self._summary(i, drawdown_id)

    def _summary(self, i: int, drawdown_id: str) -> dict[str, Any]:
        banned = list(self.banned[i * self.layers : (i + 1) * self.layers])
        total = sum(banned)
        hops = self.min_hops[i]
        return {
            "drawdown_id": drawdown_id,
            "amount": self.amount[i],
            "banned_amount": total,
            "banned_amount_3plus": sum(banned[3:]),
            "banned_share": total / self.amount[i],
            "min_hops_to_banned": None if hops < 0 else hops,
            "banned_hops": banned,
            "capped": bool(self.capped[i]),
            "line_id": self.line_ids[i],
            "customer_id": self.customer_ids[i],
        }

    def summaries(self) -> list[dict[str, Any]]:
        return [self._summary(i, did) for i, did in enumerate(self.all_ids())]

    def frame(self) -> pl.DataFrame:
        """The rows as a frame: drawdown_id, amount, banned_hop_0..H, min_hops_to_banned
        (null: none), capped, line_id, customer_id, from_batch. O(rows), columnar."""
        n = len(self)
        banned = np.array(self.banned, dtype=np.float64).reshape(n, self.layers)
        return pl.DataFrame(
            {
                "drawdown_id": pl.concat(
                    [self.batch_ids, pl.Series("drawdown_id", self.ids, dtype=pl.String)]
                ),
                "amount": pl.Series(np.array(self.amount, dtype=np.float64)),
                **{f"banned_hop_{h}": pl.Series(banned[:, h]) for h in range(self.layers)},
                "min_hops_to_banned": pl.Series(np.array(self.min_hops, dtype=np.int32)),
                "capped": pl.Series(np.array(self.capped, dtype=np.int8) != 0, dtype=pl.Boolean),
                "line_id": pl.Series(self.line_ids, dtype=pl.String),
                "customer_id": pl.Series(self.customer_ids, dtype=pl.String),
                "from_batch": pl.Series(
                    np.array(self.from_batch, dtype=np.int8) != 0, dtype=pl.Boolean
                ),
            }
        ).with_columns(
            pl.when(pl.col("min_hops_to_banned") >= 0).then(pl.col("min_hops_to_banned"))
        )


def _raw(values: np.ndarray) -> np.ndarray:
    """The bytes of an array as a byte array over the same memory, without a copy when it is
    contiguous (``array.frombytes`` takes bytes, not a typed buffer)."""
    return np.ascontiguousarray(values).reshape(-1).view(np.uint8)
