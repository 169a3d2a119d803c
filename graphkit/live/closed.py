"""Fund-flow results of drawdowns whose window has closed, kept as columns.

A closed window never changes again, so its result is a row of numbers: it is appended to flat
arrays (one entry per drawdown per column, the banned amounts per hop in one array of
``rows x (H + 1)``) instead of a dict per drawdown. Memory is then O(drawdowns) numbers with no
Python container per drawdown, which the cyclic garbage collector would otherwise walk at every
full collection (the state grows with history, the pauses grew with it), and the flows table is
built from the columns at once (:meth:`ClosedFlows.frame`).

Rows closed before the batch run keep that run's evidence paths as its ``flow_paths`` frame
(:attr:`ClosedFlows.batch_paths`); rows closed live have theirs searched when written.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import polars as pl

from graphkit.live.load import interned


class ClosedFlows:
    """Closed drawdowns' results by row: ``index`` (drawdown id -> row), ``ids``,
    ``line_ids``, ``customer_ids``, and the arrays ``amount``, ``banned`` (H + 1 per row),
    ``min_hops`` (-1: none), ``capped`` and ``from_batch`` (1: closed before the run, its
    paths in :attr:`batch_paths`). Cost: O(H) to append a row, O(1) to find one."""

    def __init__(self, max_hops: int) -> None:
        self.layers = max_hops + 1
        self.index: dict[str, int] = {}
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
        return len(self.ids)

    def __contains__(self, drawdown_id: object) -> bool:
        return drawdown_id in self.index

    def add(self, trace: Any) -> None:
        """Append a :class:`~graphkit.live.flows.Trace` whose window closed. O(H)."""
        self.index[trace.drawdown_id] = len(self.ids)
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
        start = len(self.ids)
        ids = frame.get_column("drawdown_id").to_list()
        self.index.update(zip(ids, range(start, start + len(ids)), strict=True))
        self.ids.extend(ids)
        self.line_ids.extend(interned(frame.get_column("line_id")))
        self.customer_ids.extend(interned(frame.get_column("customer_id")))
        self.amount.extend(frame.get_column("amount").cast(pl.Float64).to_numpy())
        hops = [
            frame.get_column(f"banned_hop_{h}").cast(pl.Float64).fill_null(0.0).to_numpy()
            if f"banned_hop_{h}" in frame.columns
            else np.zeros(frame.height)
            for h in range(self.layers)
        ]
        self.banned.frombytes(np.ascontiguousarray(np.column_stack(hops)).tobytes())
        self.min_hops.frombytes(
            frame.get_column("min_hops_to_banned").fill_null(-1).cast(pl.Int8).to_numpy().tobytes()
        )
        capped = (
            frame.get_column("capped").fill_null(False).cast(pl.Int8).to_numpy()
            if "capped" in frame.columns
            else np.zeros(frame.height, dtype=np.int8)
        )
        self.capped.frombytes(capped.tobytes())
        self.from_batch.frombytes(np.ones(frame.height, dtype=np.int8).tobytes())
        if paths is not None:
            self.batch_paths = (
                paths if self.batch_paths is None else pl.concat([self.batch_paths, paths])
            )

    def summary(self, drawdown_id: str) -> dict[str, Any] | None:
        """The result of one closed drawdown as :meth:`Trace.summary` gives it. O(H)."""
        i = self.index.get(drawdown_id)
        if i is None:
            return None
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
        return [self.summary(did) for did in self.ids]  # type: ignore[misc]

    def frame(self) -> pl.DataFrame:
        """The rows as a frame: drawdown_id, amount, banned_hop_0..H, min_hops_to_banned
        (null: none), capped, line_id, customer_id, from_batch. O(rows), columnar."""
        n = len(self.ids)
        banned = np.array(self.banned, dtype=np.float64).reshape(n, self.layers)
        return pl.DataFrame(
            {
                "drawdown_id": pl.Series(self.ids, dtype=pl.String),
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
