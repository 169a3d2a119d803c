"""The embedded snapshot round-trips a RiskGraph exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphkit.graph import RiskGraph
from graphkit.store.embedded import SnapshotError, load_snapshot, save_snapshot
from loaders.frames import make_tables


def _graph() -> RiskGraph:
    return RiskGraph.from_tables(
        make_tables(
            customers={
                "customer_id": ["甲公司", "b'\"}", "c"],
                "kind": ["enterprise", "person", "enterprise"],
                "income": [1.5, None, 3.0],
            },
            credit_lines={"line_id": ["l1"], "customer_id": ["c"], "limit": [5.0]},
            guarantees={
                "guarantor_id": ["c"],
                "borrower_id": ["甲公司"],
                "amount": [2.0],
                "start": ["2025-01-01"],
            },
            repayments={"line_id": ["l1"], "due_date": ["2025-02-01"], "amount": [1.0]},
            labels={"customer_id": ["c"], "defaulted": [False]},
        )
    )


def test_round_trip_is_exact(tmp_path: Path) -> None:
    graph = _graph()
    loaded = load_snapshot(save_snapshot(graph, tmp_path / "snap"))
    assert loaded.equals(graph)
    assert loaded.nodes["Customer"].schema == graph.nodes["Customer"].schema


def test_round_trip_detects_a_difference(tmp_path: Path) -> None:
    graph = _graph()
    save_snapshot(graph, tmp_path / "snap")
    other = _graph()
    other.edges["guarantees"] = other.edges["guarantees"].with_columns(
        amount=other.edges["guarantees"]["amount"] * 2
    )
    assert not load_snapshot(tmp_path / "snap").equals(other)


def test_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="not a graphkit snapshot"):
        load_snapshot(tmp_path)
