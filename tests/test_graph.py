"""RiskGraph construction against a dictionary-based oracle on random small inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


@st.composite
def device_inputs(draw: st.DrawFn) -> dict[str, pl.DataFrame]:
    """Customers, their credit lines (one line's customer unknown), device links with and
    without ``first_seen``, and drawdowns with, without or with a repeated device."""
    n_cust = draw(st.integers(1, 6))
    customers = [f"c{i}" for i in range(n_cust)]
    n_lines = draw(st.integers(1, 6))
    line_owner = [draw(st.sampled_from([*customers, "ghost"])) for _ in range(n_lines)]
    devices = [f"d{i}" for i in range(draw(st.integers(1, 6)))]
    day = st.integers(1, 9).map(lambda d: f"2025-01-0{d}T00:00:00")
    links = draw(
        st.lists(
            st.tuples(st.sampled_from(customers), st.sampled_from(devices), st.none() | day),
            max_size=10,
        )
    )
    draws = draw(
        st.lists(
            st.tuples(st.integers(0, n_lines - 1), st.none() | st.sampled_from(devices), day),
            max_size=12,
        )
    )
    return make_tables(
        customers={"customer_id": customers, "kind": ["person"] * n_cust},
        credit_lines={
            "line_id": [f"l{i}" for i in range(n_lines)],
            "customer_id": line_owner,
            "limit": [1.0] * n_lines,
        },
        accounts={"account_id": ["x"], "owner_id": [customers[0]]},
        device_links={
            "customer_id": [c for c, _, _ in links],
            "device_id": [d for _, d, _ in links],
            "first_seen": [t for _, _, t in links],
        },
        drawdowns={
            "drawdown_id": [f"w{i}" for i in range(len(draws))],
            "line_id": [f"l{line}" for line, _, _ in draws],
            "account_id": ["x"] * len(draws),
            "amount": [1.0] * len(draws),
            "ts": [t for _, _, t in draws],
            "device_id": [d for _, d, _ in draws],
        },
    )


@settings(max_examples=200)
@given(device_inputs(), st.integers(0, 10))
def test_drawdown_devices_and_device_uses_match_dict_oracle(
    tables: dict[str, pl.DataFrame], cutoff_day: int
) -> None:
    graph = RiskGraph.from_tables(tables)
    device_id = {key: i for i, key in enumerate(graph.keys("Device").to_list())}
    customer_id = {key: i for i, key in enumerate(tables["customers"]["customer_id"].to_list())}
    line_customer = dict(
        zip(tables["credit_lines"]["line_id"], tables["credit_lines"]["customer_id"], strict=True)
    )
    drawdowns = {row["drawdown_id"]: row for row in tables["drawdowns"].iter_rows(named=True)}

    # The cached per-drawdown ids are aligned with the drawdown edge rows.
    edge_rows = graph.edges["drawdown"]["drawdown_id"].to_list()
    expected = [device_id.get(drawdowns[d]["device_id"], -1) for d in edge_rows]
    assert graph.drawdown_devices().tolist() == expected
    assert graph.drawdown_devices() is graph.drawdown_devices()

    def oracle(until: datetime | None) -> list[tuple[int, int]]:
        uses = {
            (customer_id[row["customer_id"]], device_id[row["device_id"]])
            for row in tables["device_links"].iter_rows(named=True)
            if until is None or row["first_seen"] is None or row["first_seen"] <= until
        }
        for d in edge_rows:
            row = drawdowns[d]
            owner = customer_id.get(line_customer[row["line_id"]])
            drawn = until is None or row["ts"] <= until
            if row["device_id"] is not None and owner is not None and drawn:
                uses.add((owner, device_id[row["device_id"]]))
        return sorted(uses)

    uses = graph.device_uses()
    assert uses.schema == pl.Schema({"customer": pl.Int32, "device": pl.Int32})
    assert list(uses.iter_rows()) == oracle(None)
    assert graph.device_uses() is uses
    until = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=cutoff_day)
    assert list(graph.device_uses(until).iter_rows()) == oracle(until)
