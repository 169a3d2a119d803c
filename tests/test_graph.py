"""RiskGraph construction against a dictionary-based oracle on random small inputs."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.graph import RiskGraph
from graphkit.schema import RELATIONSHIPS
from loaders.frames import make_tables


@st.composite
def small_inputs(draw: st.DrawFn) -> dict[str, pl.DataFrame]:
    n_cust = draw(st.integers(1, 8))
    n_merch = draw(st.integers(0, 4))
    customers = [f"c{i}" for i in range(n_cust)]
    merchants = [f"m{i}" for i in range(n_merch)]
    sectors = ["ok", "bad"]
    owners = customers + merchants
    n_acc = draw(st.integers(1, 10))
    accounts = [f"a{i}" for i in range(n_acc)]
    acc_owner = [draw(st.sampled_from(owners)) for _ in accounts]
    n_tr = draw(st.integers(0, 15))
    src = [draw(st.sampled_from(accounts)) for _ in range(n_tr)]
    dst = [draw(st.sampled_from(accounts)) for _ in range(n_tr)]
    amounts = [draw(st.floats(0.01, 1e6)) for _ in range(n_tr)]
    pairs = [
        (g, b)
        for g in customers
        for b in customers
        if g != b and draw(st.booleans()) and draw(st.booleans())
    ]
    return make_tables(
        customers={"customer_id": customers, "kind": ["enterprise"] * n_cust},
        sectors={"sector": sectors, "banned": [False, True]},
        merchants={
            "merchant_id": merchants,
            "sector": [draw(st.sampled_from(sectors)) for _ in merchants],
        },
        accounts={"account_id": accounts, "owner_id": acc_owner},
        transfers={
            "transfer_id": [f"t{i}" for i in range(n_tr)],
            "src_account": src,
            "dst_account": dst,
            "amount": amounts,
            "ts": ["2025-01-01T00:00:00"] * n_tr,
        },
        guarantees={
            "guarantor_id": [g for g, _ in pairs],
            "borrower_id": [b for _, b in pairs],
            "amount": [1.0] * len(pairs),
        },
    )


@settings(max_examples=200)
@given(small_inputs())
def test_edges_map_back_to_input_keys(tables: dict[str, pl.DataFrame]) -> None:
    graph = RiskGraph.from_tables(tables)
    for name, spec in RELATIONSHIPS.items():
        src_keys = graph.keys(spec.src).to_list()
        dst_keys = graph.keys(spec.dst).to_list()
        src, dst = graph.endpoints(name)
        got = sorted(zip((src_keys[i] for i in src), (dst_keys[j] for j in dst), strict=True))
        table = tables[spec.table]
        source_keys = set(graph.keys(spec.src).to_list())
        want = sorted(
            (s, d)
            for s, d in zip(
                table[spec.src_col].to_list(), table[spec.dst_col].to_list(), strict=True
            )
            if s in source_keys
        )
        assert got == want, name


@settings(max_examples=200)
@given(small_inputs())
def test_banned_sinks_and_owners_match_oracle(tables: dict[str, pl.DataFrame]) -> None:
    graph = RiskGraph.from_tables(tables)
    sector_banned = dict(zip(tables["sectors"]["sector"], tables["sectors"]["banned"], strict=True))
    merchant_sector = dict(
        zip(tables["merchants"]["merchant_id"], tables["merchants"]["sector"], strict=True)
    )
    owner = dict(zip(tables["accounts"]["account_id"], tables["accounts"]["owner_id"], strict=True))
    expected = [
        owner[a] in merchant_sector and sector_banned[merchant_sector[owner[a]]]
        for a in graph.keys("Account")
    ]
    assert graph.banned_sink_accounts().tolist() == expected
    customers = graph.keys("Customer").to_list()
    owner_ids = graph.account_owner_customer()
    for account, cid in zip(graph.keys("Account"), owner_ids, strict=True):
        assert (customers[cid] if cid >= 0 else None) == (
            owner[account] if owner[account] in customers else None
        )


@settings(max_examples=100)
@given(small_inputs())
def test_csr_sums_transfer_amounts(tables: dict[str, pl.DataFrame]) -> None:
    graph = RiskGraph.from_tables(tables)
    dense = graph.csr("transfer", "amount").toarray()
    accounts = graph.keys("Account").to_list()
    expected = np.zeros((len(accounts), len(accounts)))
    for s, d, m in tables["transfers"].select("src_account", "dst_account", "amount").iter_rows():
        expected[accounts.index(s), accounts.index(d)] += m
    np.testing.assert_allclose(dense, expected)


def test_devices_come_from_links_and_drawdowns_and_labels_join() -> None:
    tables = make_tables(
        customers={"customer_id": ["a", "b"], "kind": ["person", "person"]},
        credit_lines={"line_id": ["l1"], "customer_id": ["a"], "limit": [10.0]},
        accounts={"account_id": ["x"], "owner_id": ["a"]},
        drawdowns={
            "drawdown_id": ["d1", "d2"],
            "line_id": ["l1", "l1"],
            "account_id": ["x", "x"],
            "amount": [1.0, 2.0],
            "ts": ["2025-01-01T00:00:00", "2025-01-02T00:00:00"],
            "device_id": ["dev2", None],
        },
        device_links={"customer_id": ["a", "b"], "device_id": ["dev1", "dev1"]},
        labels={"customer_id": ["b"], "defaulted": [True]},
    )
    graph = RiskGraph.from_tables(tables)
    assert graph.keys("Device").to_list() == ["dev1", "dev2"]
    assert graph.defaulted().tolist() == [-1, 1]
    assert graph.line_customer().tolist() == [0]
    assert graph.ids("Customer", ["b", "zz"]).tolist() == [1, -1]
    assert graph.edges["has_line"].columns == ["src", "dst"]
    assert graph.edges["drawdown"]["drawdown_id"].to_list() == ["d1", "d2"]
