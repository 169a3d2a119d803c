"""The investigators' Cypher library on the real Neo4j server.

A random risk graph (guarantee circles, shared devices, time-stamped transfers into banned
sectors) is loaded once and a run's results are written back twice (two runs, for the tier
history); every query of ``cypher/investigate`` then runs with parameters and its answer is
compared with graphkit's Python analytics or with a brute-force oracle written here.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

import cypher
from graphkit.analytics.circles import circle_membership
from graphkit.analytics.cluster_risk import customer_exposure
from graphkit.analytics.flows import FlowIndex, min_hops_to_banned, round_trips
from graphkit.analytics.rings import device_rings
from graphkit.config import Config, FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.pipeline import (
    RunContext,
    circles_stage,
    cluster_risk_stage,
    clusters_stage,
    rings_stage,
    write_back,
)
from graphkit.schema import TIERS
from graphkit.store.neo4j import Neo4jTarget
from loaders.frames import make_tables
from tests.neo4j_fixture import wipe_database

pytestmark = pytest.mark.neo4j

START = datetime(2025, 3, 1, tzinfo=UTC)
WINDOW_DAYS = 30.0
MAX_HOPS = 6
FLOWS = FlowsConfig()


def random_tables(seed: int = 7) -> dict[str, pl.DataFrame]:
    """A small risk network with every relationship type and enough structure to query."""
    rng = np.random.default_rng(seed)
    n_cust, n_merch, n_dev = 60, 14, 12
    customers = [f"C{i:03d}" for i in range(n_cust)]
    merchants = [f"M{i:02d}" for i in range(n_merch)]
    devices = [f"dev-{i:02d}" for i in range(n_dev)]
    sectors = {"sector": ["S0", "S1", "S2", "S3"], "banned": [True, False, True, False]}
    sectors["category"] = ["securities", "retail", "gambling", "food"]
    accounts = [f"A-{c}" for c in customers] + [f"A-{m}" for m in merchants]
    owners = customers + merchants
    lines = [(f"L{i:03d}", customers[i % n_cust]) for i in range(0, 2 * n_cust, 2)]
    lines += [(f"L{i:03d}", customers[(i * 7) % n_cust]) for i in range(1, 40, 2)]

    def ts(days: float) -> datetime:
        return START + timedelta(days=float(days))

    drawdowns = {"drawdown_id": [], "line_id": [], "account_id": [], "amount": [], "ts": []}
    drawdowns["device_id"] = []
    for i in range(70):
        line, owner = lines[int(rng.integers(len(lines)))]
        drawdowns["drawdown_id"].append(f"D{i:03d}")
        drawdowns["line_id"].append(line)
        # A few drawdowns pay a merchant directly (some of them banned: 0 hops).
        direct = i % 23 == 0
        drawdowns["account_id"].append(f"A-{merchants[i % n_merch]}" if direct else f"A-{owner}")
        drawdowns["amount"].append(float(rng.integers(1, 100)) * 1000.0)
        drawdowns["ts"].append(ts(rng.uniform(0, 40)))
        drawdowns["device_id"].append(devices[int(rng.integers(n_dev))] if i % 3 else None)

    transfers = {"transfer_id": [], "src_account": [], "dst_account": [], "amount": [], "ts": []}
    for i in range(420):
        src = accounts[int(rng.integers(n_cust))]
        to_merchant = rng.random() < 0.2
        dst = (
            accounts[n_cust + int(rng.integers(n_merch))]
            if to_merchant
            else accounts[int(rng.integers(n_cust))]
        )
        if dst == src:
            continue
        transfers["transfer_id"].append(f"T{i:04d}")
        transfers["src_account"].append(src)
        transfers["dst_account"].append(dst)
        transfers["amount"].append(float(rng.integers(1, 50)) * 500.0)
        # Coarse timestamps make ties, which the time-respecting rule must accept.
        transfers["ts"].append(ts(float(rng.integers(0, 80)) / 2))
    # Merchants forward money too, so paths can pass a non-banned merchant and continue.
    for i in range(30):
        transfers["transfer_id"].append(f"TM{i:03d}")
        transfers["src_account"].append(accounts[n_cust + int(rng.integers(n_merch))])
        transfers["dst_account"].append(accounts[int(rng.integers(n_cust))])
        transfers["amount"].append(700.0)
        transfers["ts"].append(ts(float(rng.integers(0, 80)) / 2))

    guarantees = {"guarantor_id": [], "borrower_id": [], "amount": [], "start": [], "end": []}
    for _ in range(75):
        a, b = rng.choice(n_cust, 2, replace=False)
        start = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 900)))
        guarantees["guarantor_id"].append(customers[a])
        guarantees["borrower_id"].append(customers[b])
        guarantees["amount"].append(float(rng.integers(1, 20)) * 10_000.0)
        guarantees["start"].append(start)
        guarantees["end"].append(start + timedelta(days=365))
    # A repeated guarantee between one pair (two rows, same content) must stay two relationships.
    for key in guarantees:
        guarantees[key].append(guarantees[key][0])

    # Only enterprises have shareholders (kind: every third customer is a person).
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n_cust, (30, 2)) if a != b and b % 3}
    holdings = {
        "holder_id": [customers[a] for a, _ in sorted(pairs)],
        "company_id": [customers[b] for _, b in sorted(pairs)],
        "share": [round(float(rng.uniform(0.05, 1.0)), 3) for _ in pairs],
    }
    links = sorted({(int(rng.integers(n_cust)), int(rng.integers(n_dev))) for _ in range(45)})
    labelled = rng.choice(n_cust, 25, replace=False)
    return make_tables(
        customers={
            "customer_id": customers,
            "kind": ["enterprise" if i % 3 else "person" for i in range(n_cust)],
            "name": [f"name {c}" for c in customers],
            "sector": ["S1"] * n_cust,
            "region": ["north", "south"] * (n_cust // 2),
        },
        sectors=sectors,
        merchants={"merchant_id": merchants, "sector": [f"S{i % 4}" for i in range(n_merch)]},
        accounts={"account_id": accounts, "owner_id": owners},
        credit_lines={
            "line_id": [line for line, _ in lines],
            "customer_id": [owner for _, owner in lines],
            "limit": [100_000.0 + 1000 * i for i in range(len(lines))],
            "status": ["open"] * len(lines),
        },
        drawdowns=drawdowns,
        transfers=transfers,
        guarantees=guarantees,
        shareholdings=holdings,
        device_links={
            "customer_id": [customers[c] for c, _ in links],
            "device_id": [devices[d] for _, d in links],
        },
        labels={
            "customer_id": [customers[i] for i in labelled],
            "defaulted": [bool(i % 2) for i in labelled],
        },
    )


def scores_for(graph: RiskGraph, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = graph.n("Customer")
    risk = rng.uniform(0, 1, n)
    return pl.DataFrame(
        {
            "customer_id": graph.keys("Customer"),
            "contagion_score": rng.uniform(0, 1, n),
            "gnn_score": rng.uniform(0, 1, n),
            "risk_score": risk,
            "tier": [TIERS[min(3, int(r * 4))] for r in risk],
        }
    )


class Library:
    """The loaded graph, its run context and a target to query."""

    def __init__(self, graph: RiskGraph, ctx: RunContext, target: Neo4jTarget, runs: tuple):
        self.graph = graph
        self.ctx = ctx
        self.target = target
        self.runs = runs

    def run(self, name: str, **params: object) -> pl.DataFrame:
        query = cypher.load_query(name)
        declared = {p.name for p in query.params}
        assert set(params) <= declared, f"{name}: undeclared {set(params) - declared}"
        values = {p: params.get(p) for p in declared}
        frame = self.target.run_query(query.text, values)
        assert tuple(frame.columns) == query.columns, name
        return frame


@pytest.fixture(scope="module")
def library(neo4j_server, tmp_path_factory) -> Library:
    import neo4j

    with neo4j.GraphDatabase.driver(neo4j_server.uri, auth=neo4j_server.auth) as driver:
        wipe_database(driver)
    graph = RiskGraph.from_tables(random_tables())
    user, password = neo4j_server.auth or (None, None)
    target = Neo4jTarget(neo4j_server.uri, user=user, password=password, batch_size=97)
    target.load_graph(graph)
    ctx = RunContext(graph=graph, config=Config(), out_dir=Path(tmp_path_factory.mktemp("run")))
    for stage in (circles_stage, rings_stage, clusters_stage):
        stage(ctx)
    ctx.results.scores = scores_for(graph, 1)
    cluster_risk_stage(ctx)
    write_back(target, ctx, run_id="run-a")
    ctx.results.scores = scores_for(graph, 2)
    cluster_risk_stage(ctx)
    write_back(target, ctx, run_id="run-b")
    return Library(graph, ctx, target, ("run-a", "run-b"))


def test_library_has_the_required_queries() -> None:
    names = {q.name for q in cypher.list_queries()}
    required = {
        "customer_360",
        "guarantee_circle",
        "guarantee_chain",
        "cluster_members",
        "top_clusters",
        "device_ring",
        "fund_flow_trace",
        "banned_inflows_by_hop",
        "transfer_cycles",
        "tier_worsened",
    }
    assert required <= names and len(names) >= 10
    for query in cypher.list_queries():
        assert query.purpose and query.columns and query.example.startswith("graphkit cypher run")
        for param in query.params:
            assert f"${param.name}" in query.text, (query.name, param.name)
            # The example in the header must convert with the declared type.
            cypher.convert_params(
                query, {param.name: param.example} | {p.name: p.example for p in query.params}
            )


def test_schema_cypher_is_generated_from_the_schema() -> None:
    from graphkit.store.neo4j import schema_cypher

    assert cypher.schema_text() == schema_cypher()


def test_convert_params_types_and_errors() -> None:
    query = cypher.load_query("guarantee_chain")
    values = cypher.convert_params(query, {"customer_id": "C1", "max_hops": "3"})
    assert values == {
        "customer_id": "C1",
        "max_hops": 3,
        "start_from": None,
        "start_to": None,
        "as_of": None,
    }
    assert cypher.convert_params(
        query, {"customer_id": "x", "max_hops": "1", "start_to": "2024-02-29"}
    )["start_to"] == date(2024, 2, 29)
    with pytest.raises(cypher.QueryError, match="max_hops"):
        cypher.convert_params(query, {"customer_id": "C1"})
    with pytest.raises(cypher.QueryError, match="expected int"):
        cypher.convert_params(query, {"customer_id": "C1", "max_hops": "three"})
    with pytest.raises(cypher.QueryError, match="no parameter"):
        cypher.convert_params(query, {"customer_id": "C1", "max_hops": "1", "bogus": "1"})
    with pytest.raises(cypher.QueryError, match="no query named"):
        cypher.load_query("../schema")


def test_customer_360(library: Library) -> None:
    graph = library.graph
    tables = random_tables()
    exposure = customer_exposure(graph)
    scores = library.ctx.results.scores
    for customer in ("C000", "C007", "C033", "C059"):
        row = library.run("customer_360", customer_id=customer).row(0, named=True)
        lines = tables["credit_lines"].filter(pl.col("customer_id") == customer)
        assert [item["line_id"] for item in row["lines"]] == sorted(lines["line_id"])
        expected = exposure.filter(pl.col("customer_id") == customer)
        total_limit = expected["total_limit"][0] if expected.height else 0.0
        drawn = expected["drawn_amount"][0] if expected.height else 0.0
        assert math.isclose(row["total_limit"], total_limit)
        assert math.isclose(row["drawn_amount"], drawn, abs_tol=1e-6)
        accounts = tables["accounts"].filter(pl.col("owner_id") == customer)["account_id"]
        assert row["accounts"] == sorted(accounts)
        devices = tables["device_links"].filter(pl.col("customer_id") == customer)["device_id"]
        assert row["devices"] == sorted(devices)
        given = tables["guarantees"].filter(pl.col("guarantor_id") == customer)
        assert sorted((g["borrower_id"], g["amount"]) for g in row["guarantees_given"]) == sorted(
            zip(given["borrower_id"], given["amount"], strict=True)
        )
        received = tables["guarantees"].filter(pl.col("borrower_id") == customer)
        assert sorted(
            (g["guarantor_id"], g["amount"]) for g in row["guarantees_received"]
        ) == sorted(zip(received["guarantor_id"], received["amount"], strict=True))
        held = tables["shareholdings"].filter(pl.col("holder_id") == customer)
        assert {h["company_id"]: h["share"] for h in row["holdings"]} == dict(
            zip(held["company_id"], held["share"], strict=True)
        )
        score = scores.filter(pl.col("customer_id") == customer).row(0, named=True)
        assert row["tier"] == score["tier"] and row["run_id"] == "run-b"
        assert math.isclose(row["risk_score"], score["risk_score"])
    assert library.run("customer_360", customer_id="nobody").height == 0


def test_guarantee_circle_equals_graphkit_circles(library: Library) -> None:
    membership = circle_membership(library.graph)
    assert membership.height > 0, "the random graph must hold circles"
    graph = nx.DiGraph()
    src, dst = library.graph.endpoints("guarantees")
    keys = library.graph.keys("Customer").to_list()
    graph.add_nodes_from(keys)
    graph.add_edges_from((keys[s], keys[d]) for s, d in zip(src, dst, strict=True))
    in_circle = set(membership["customer_id"])
    for customer in keys[:30]:
        frame = library.run("guarantee_circle", customer_id=customer)
        if customer not in in_circle:
            assert frame.height == 0
            continue
        circle_id = membership.filter(pl.col("customer_id") == customer)["circle_id"][0]
        expected = membership.filter(pl.col("circle_id") == circle_id)["customer_id"]
        assert frame["customer_id"].to_list() == sorted(expected)
        assert set(frame["circle_id"]) == {circle_id}
        scc = next(c for c in nx.strongly_connected_components(graph) if customer in c)
        assert set(frame["customer_id"]) == scc
        internal = {
            m: sum(data["amount"] for _, other, data in multi_out(library, m) if other in scc)
            for m in scc
        }
        for member, amount in zip(frame["customer_id"], frame["internal_given"], strict=True):
            assert math.isclose(amount, internal[member])


def test_guarantee_circle_drawing_returns_the_guarantees_inside_the_circle(
    library: Library, neo4j_server
) -> None:
    import neo4j

    drawing = cypher.load_drawing("guarantee_circle")
    assert drawing is not None and drawing.columns == ("path",)
    membership = circle_membership(library.graph)
    guarantees = random_tables()["guarantees"]
    with neo4j.GraphDatabase.driver(neo4j_server.uri, auth=neo4j_server.auth) as driver:
        for customer in ("C000", *membership["customer_id"].head(8).to_list()):
            records, _, _ = driver.execute_query(
                drawing.text, customer_id=customer, as_of=None, routing_="r"
            )
            drawn = sorted(
                (rel.start_node["customer_id"], rel.end_node["customer_id"], rel["amount"])
                for record in records
                for rel in record["path"].relationships
            )
            mine = membership.filter(pl.col("customer_id") == customer)
            members = (
                set(membership.filter(pl.col("circle_id") == mine["circle_id"][0])["customer_id"])
                if mine.height
                else set()
            )
            inside = guarantees.filter(
                pl.col("guarantor_id").is_in(members) & pl.col("borrower_id").is_in(members)
            )
            assert drawn == sorted(inside.select("guarantor_id", "borrower_id", "amount").rows())


def multi_out(library: Library, customer: str) -> list[tuple[str, str, dict]]:
    guarantees = random_tables()["guarantees"].filter(pl.col("guarantor_id") == customer)
    return [(customer, row["borrower_id"], row) for row in guarantees.iter_rows(named=True)]


@pytest.mark.parametrize(
    ("max_hops", "start_from", "start_to"),
    [(1, None, None), (3, None, None), (6, date(2023, 6, 1), date(2024, 12, 31))],
)
def test_guarantee_chain_equals_bfs(library: Library, max_hops, start_from, start_to) -> None:
    guarantees = random_tables()["guarantees"]
    if start_from is not None:
        guarantees = guarantees.filter(pl.col("start").is_between(start_from, start_to))
    graph = nx.DiGraph()
    graph.add_edges_from(zip(guarantees["guarantor_id"], guarantees["borrower_id"], strict=True))
    exposure = customer_exposure(library.graph)
    limits = dict(zip(exposure["customer_id"], exposure["total_limit"], strict=True))
    for customer in ("C001", "C010", "C020", "C045", "C052"):
        frame = library.run(
            "guarantee_chain",
            customer_id=customer,
            max_hops=max_hops,
            start_from=start_from,
            start_to=start_to,
        )
        expected = (
            nx.single_source_shortest_path_length(graph, customer, cutoff=max_hops)
            if customer in graph
            else {}
        )
        expected.pop(customer, None)
        assert dict(zip(frame["customer_id"], frame["hops"], strict=True)) == expected
        for member, limit in zip(frame["customer_id"], frame["total_limit"], strict=True):
            assert math.isclose(limit, limits.get(member, 0.0))


def test_cluster_members_and_top_clusters_equal_cluster_risk(library: Library) -> None:
    risk = library.ctx.outputs["cluster_risk.parquet"]
    membership = library.ctx.results.cluster_membership
    assert risk.height > 0
    exposure = customer_exposure(library.graph)
    for cluster_id in risk["cluster_id"].to_list()[:5]:
        frame = library.run("cluster_members", cluster_id=cluster_id)
        expected = membership.filter(pl.col("cluster_id") == cluster_id)["customer_id"]
        assert sorted(frame["customer_id"]) == sorted(expected)
        joined = frame.join(exposure, on="customer_id", how="left", suffix="_py")
        for got, want in zip(joined["drawn_amount"], joined["drawn_amount_py"], strict=True):
            assert math.isclose(got, want or 0.0, abs_tol=1e-6)
        summary = risk.filter(pl.col("cluster_id") == cluster_id).row(0, named=True)
        assert math.isclose(frame["total_limit"].sum(), summary["total_limit"])
        assert math.isclose(frame["drawn_amount"].sum(), summary["drawn_amount"], abs_tol=1e-6)

    top = library.run("top_clusters", limit=3)
    expected = risk.sort(["risk_score", "cluster_id"], descending=[True, False]).head(3)
    assert top["cluster_id"].to_list() == expected["cluster_id"].to_list()
    assert top["members"].to_list() == expected["size"].to_list()
    assert top["tier"].to_list() == expected["tier"].to_list()


def test_device_ring_equals_graphkit_rings(library: Library) -> None:
    rings = device_rings(library.graph).membership
    assert rings.height > 0, "the random graph must hold device rings"
    keys = library.graph.keys("Customer").to_list()
    for customer in keys[:40]:
        frame = library.run("device_ring", customer_id=customer, min_customers=3, max_customers=50)
        mine = rings.filter(pl.col("customer_id") == customer)
        if mine.height == 0:
            assert frame.height == 0
            continue
        ring = rings.filter(pl.col("ring_id") == mine["ring_id"][0]).sort("customer_id")
        assert frame["customer_id"].to_list() == ring["customer_id"].to_list()
        assert frame["shared_device_count"].to_list() == ring["shared_devices"].to_list()


def banned_sinks(tables: dict[str, pl.DataFrame]) -> set[str]:
    banned = set(tables["sectors"].filter(pl.col("banned"))["sector"])
    merchants = set(tables["merchants"].filter(pl.col("sector").is_in(banned))["merchant_id"])
    return set(tables["accounts"].filter(pl.col("owner_id").is_in(merchants))["account_id"])


def brute_force_reach(
    tables: dict[str, pl.DataFrame], drawdown_id: str, window_days: float, max_hops: int
) -> dict[str, int]:
    """Exhaustive DFS over time-respecting simple paths; sinks absorb. Sink -> min hops."""
    sinks = banned_sinks(tables)
    dd = tables["drawdowns"].filter(pl.col("drawdown_id") == drawdown_id).row(0, named=True)
    t0, t_end = dd["ts"], dd["ts"] + timedelta(days=window_days)
    out = defaultdict(list)
    for t in tables["transfers"].iter_rows(named=True):
        if t0 <= t["ts"] <= t_end:
            out[t["src_account"]].append(t)
    best: dict[str, int] = {}

    def walk(account: str, last: datetime, hops: int, seen: set[str]) -> None:
        if account in sinks:
            best[account] = min(best.get(account, hops), hops)
            return
        if hops == max_hops:
            return
        for t in out[account]:
            if t["ts"] >= last and t["dst_account"] not in seen:
                walk(t["dst_account"], t["ts"], hops + 1, seen | {t["dst_account"]})

    walk(dd["account_id"], t0, 0, {dd["account_id"]})
    return best


def check_evidence(tables, drawdown_id: str, window_days: float, row: dict) -> None:
    """The returned path is a time-respecting, simple transfer path from the disbursement
    account to the sink, inside the window, with ``min_hops`` transfers arriving at
    ``arrived_at``."""
    dd = tables["drawdowns"].filter(pl.col("drawdown_id") == drawdown_id).row(0, named=True)
    by_id = {t["transfer_id"]: t for t in tables["transfers"].iter_rows(named=True)}
    path = [by_id[t] for t in row["shortest_path"]]
    assert len(path) == row["min_hops"]
    at, last = dd["account_id"], dd["ts"]
    visited = [at]
    for transfer in path:
        assert transfer["src_account"] == at and transfer["ts"] >= last
        assert transfer["ts"] <= dd["ts"] + timedelta(days=window_days)
        at, last = transfer["dst_account"], transfer["ts"]
        visited.append(at)
    assert at == row["account_id"] and len(set(visited)) == len(visited)
    assert row["arrived_at"] == last


@pytest.mark.parametrize(("window_days", "max_hops"), [(WINDOW_DAYS, MAX_HOPS), (7.5, 3)])
def test_fund_flow_trace_equals_exhaustive_search(library, window_days, max_hops) -> None:
    tables = random_tables()
    ids = tables["drawdowns"]["drawdown_id"]
    graphkit = min_hops_to_banned(library.graph, ids, window_days=window_days, max_hops=max_hops)
    graphkit_hops = dict(graphkit.iter_rows())
    reached_any = 0
    for drawdown_id in ids.to_list():
        frame = library.run(
            "fund_flow_trace", drawdown_id=drawdown_id, window_days=window_days, max_hops=max_hops
        )
        expected = brute_force_reach(tables, drawdown_id, window_days, max_hops)
        assert dict(zip(frame["account_id"], frame["min_hops"], strict=True)) == expected
        assert frame["min_hops"].min() == graphkit_hops[drawdown_id]
        for row in frame.iter_rows(named=True):
            check_evidence(tables, drawdown_id, window_days, row)
        reached_any += bool(expected)
    assert reached_any >= 5


def test_banned_inflows_by_hop_groups_min_hops(library: Library) -> None:
    tables = random_tables()
    owner = dict(
        zip(tables["credit_lines"]["line_id"], tables["credit_lines"]["customer_id"], strict=True)
    )
    rows = []
    for dd in tables["drawdowns"].iter_rows(named=True):
        reach = brute_force_reach(tables, dd["drawdown_id"], WINDOW_DAYS, MAX_HOPS)
        if reach:
            rows.append((owner[dd["line_id"]], min(reach.values()), dd["amount"]))
    expected = (
        pl.DataFrame(rows, schema=["customer", "hops", "amount"], orient="row")
        .group_by("hops")
        .agg(pl.len().alias("drawdowns"), pl.col("amount").sum(), pl.col("customer").n_unique())
        .sort("hops")
    )
    frame = library.run("banned_inflows_by_hop", window_days=WINDOW_DAYS, max_hops=MAX_HOPS)
    graphkit = (
        min_hops_to_banned(
            library.graph,
            tables["drawdowns"]["drawdown_id"],
            window_days=WINDOW_DAYS,
            max_hops=MAX_HOPS,
        )
        .drop_nulls()
        .group_by("min_hops_to_banned")
        .len()
        .sort("min_hops_to_banned")
    )
    assert frame["hops"].to_list() == graphkit["min_hops_to_banned"].to_list()
    assert frame["drawdowns"].to_list() == graphkit["len"].to_list()
    assert frame["hops"].to_list() == expected["hops"].to_list()
    assert frame["drawdowns"].to_list() == expected["drawdowns"].to_list()
    assert frame["customers"].to_list() == expected["customer"].to_list()
    assert np.allclose(frame["drawn_amount"].to_numpy(), expected["amount"].to_numpy())
    one = rows[0][0]
    mine = library.run(
        "banned_inflows_by_hop", customer_id=one, window_days=WINDOW_DAYS, max_hops=MAX_HOPS
    )
    assert mine["drawdowns"].sum() == sum(1 for r in rows if r[0] == one)


def brute_force_cycles(
    tables: dict[str, pl.DataFrame], account: str, window_days: float, max_length: int
) -> set[tuple[str, ...]]:
    """Every strictly time-ordered transfer cycle from ``account`` back to it (2..max_length
    transfers, customer accounts only, no account twice), by exhaustive DFS."""
    customers = set(tables["customers"]["customer_id"])
    owned = set(tables["accounts"].filter(pl.col("owner_id").is_in(customers))["account_id"])
    out = defaultdict(list)
    for t in tables["transfers"].iter_rows(named=True):
        out[t["src_account"]].append(t)
    found: set[tuple[str, ...]] = set()
    if account not in owned:
        return found

    def walk(at: str, path: list[dict], seen: set[str]) -> None:
        for t in out[at]:
            if path and t["ts"] <= path[-1]["ts"]:
                continue
            first = path[0]["ts"] if path else t["ts"]
            if t["ts"] > first + timedelta(days=window_days):
                continue
            if t["dst_account"] == account:
                if path:
                    found.add(tuple(x["transfer_id"] for x in [*path, t]))
            elif (
                t["dst_account"] not in seen
                and t["dst_account"] in owned
                and len(path) + 1 < max_length
            ):
                walk(t["dst_account"], [*path, t], seen | {t["dst_account"]})

    walk(account, [], {account})
    return found


@pytest.mark.parametrize(("window_days", "max_length"), [(30.0, 6), (3.0, 4)])
def test_transfer_cycles_equal_exhaustive_search(library, window_days, max_length) -> None:
    tables = random_tables()
    cycles, capped = round_trips(
        FlowIndex.build(library.graph),
        window_days=window_days,
        max_length=max_length,
        max_cycles=FLOWS.max_cycles,
        max_expand_per_hop=FLOWS.max_expand_per_hop,
    )
    assert not capped
    total = 0
    for account in tables["accounts"]["account_id"].to_list()[:40]:
        frame = library.run(
            "transfer_cycles", account_id=account, window_days=window_days, max_length=max_length
        )
        got = {tuple(ids) for ids in frame["transfer_ids"]}
        assert len(got) == frame.height
        assert got == brute_force_cycles(tables, account, window_days, max_length)
        graphkit = cycles.filter(pl.col("start_account") == account)["transfer_ids"]
        assert got == {tuple(ids) for ids in graphkit}
        total += frame.height
    assert total > 0


def test_tier_worsened_and_history(library: Library) -> None:
    rank = {tier: i for i, tier in enumerate(TIERS)}
    a = scores_for(library.graph, 1)
    b = scores_for(library.graph, 2)
    both = a.join(b, on="customer_id", suffix="_b")
    expected = {
        row["customer_id"]: rank[row["tier_b"]] - rank[row["tier"]]
        for row in both.iter_rows(named=True)
        if rank[row["tier_b"]] > rank[row["tier"]]
    }
    frame = library.run("tier_worsened", run_a="run-a", run_b="run-b")
    assert dict(zip(frame["customer_id"], frame["steps"], strict=True)) == expected
    assert frame["steps"].to_list() == sorted(frame["steps"].to_list(), reverse=True)
    assert library.run("tier_worsened", run_a="run-b", run_b="run-a").height == sum(
        1 for row in both.iter_rows(named=True) if rank[row["tier_b"]] < rank[row["tier"]]
    )
    history = library.run("tier_history", customer_id="C005")
    assert history["run_id"].to_list() == ["run-a", "run-b"]
    assert history["tier"].to_list() == [
        a.filter(pl.col("customer_id") == "C005")["tier"][0],
        b.filter(pl.col("customer_id") == "C005")["tier"][0],
    ]


# -- defaults from the header and the run's configuration; the CLI -----------------------------


def key_values_for(library: Library) -> dict[str, str]:
    """A value of each key parameter the library's queries require, present in the graph."""
    risk = library.ctx.outputs["cluster_risk.parquet"]
    return {
        "customer_id": "C001",
        "drawdown_id": "D003",
        "account_id": "A-C001",
        "cluster_id": str(risk["cluster_id"][0]),
    }


def test_every_query_runs_with_only_its_required_key_parameter(library: Library) -> None:
    config = Config().to_dict()
    keys = key_values_for(library)
    for query in cypher.list_queries():
        required = [p.name for p in query.params if not p.optional and p.default is None]
        assert set(required) <= set(keys), (query.name, required)
        values = cypher.convert_params(
            query, cypher.default_values(query, config) | {k: keys[k] for k in required}
        )
        frame = library.target.run_query(query.text, values)
        assert tuple(frame.columns) == query.columns, query.name
    # Defaults are the analysis's: the same answer as the configuration's values given explicitly.
    trace = cypher.load_query("fund_flow_trace")
    by_default = cypher.convert_params(
        trace, cypher.default_values(trace, config) | {"drawdown_id": keys["drawdown_id"]}
    )
    assert by_default["window_days"] == Config().flows.window_days
    assert by_default["max_hops"] == Config().flows.max_hops
    # Without run ids, tier_worsened compares the latest run with the one before it.
    latest = library.run("tier_worsened")
    assert latest.equals(library.run("tier_worsened", run_a="run-a", run_b="run-b"))
    assert latest.height > 0
    assert library.run("tier_worsened", run_b="run-a").height == 0  # nothing before run-a


def test_defaults_follow_the_given_configuration() -> None:
    trace = cypher.load_query("fund_flow_trace")
    config = Config()
    config.flows.window_days, config.flows.max_hops = 7.5, 3
    assert cypher.default_values(trace, config.to_dict()) == {"window_days": "7.5", "max_hops": "3"}
    ring = cypher.load_query("device_ring")
    assert cypher.default_values(ring, Config().to_dict()) == {
        "min_customers": str(Config().rings.min_customers_per_device),
        "max_customers": str(Config().rings.max_customers_per_device),
    }
    assert cypher.default_values(cypher.load_query("top_clusters"), {}) == {"limit": "10"}
    with pytest.raises(cypher.QueryError, match=r"flows\.window_days"):
        cypher.default_values(trace, {"rings": {}})


def test_cli_run_takes_defaults_and_prints_wide_rows_vertically(
    library: Library, neo4j_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from cli import app

    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.setenv("COLUMNS", "80")
    if neo4j_server.auth:
        monkeypatch.setenv("NEO4J_USER", neo4j_server.auth[0])
        monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server.auth[1])
    runner = CliRunner()
    # customer_360 has 23 columns: in 80 columns each row prints one field a line.
    shown = runner.invoke(app, ["cypher", "run", "customer_360", "-p", "customer_id=C001"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    for column in cypher.load_query("customer_360").columns:
        assert any(re.match(rf"^│ {column}\s+│", line) for line in lines), column
    assert any(re.match(r"^│ customer_id\s+│ C001\s+│$", line) for line in lines)
    # A narrow result stays a table.
    history = runner.invoke(app, ["cypher", "run", "tier_history", "-p", "customer_id=C005"])
    assert history.exit_code == 0 and "row 1" not in history.stdout
    assert re.search(r"run_id\s+┃\s+created_at\s+┃\s+tier", history.stdout)

    # A drawdown whose answer differs between the default window and a short one.
    tables = random_tables()
    drawdown = next(
        d
        for d in tables["drawdowns"]["drawdown_id"]
        if brute_force_reach(tables, d, WINDOW_DAYS, MAX_HOPS)
        != brute_force_reach(tables, d, 7.5, 3)
    )

    def trace(*extra: str) -> list[dict]:
        args = ["cypher", "run", "fund_flow_trace", "-p", f"drawdown_id={drawdown}"]
        args += ["--format", "json"]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    explicit = trace("-p", f"window_days={WINDOW_DAYS}", "-p", f"max_hops={MAX_HOPS}")
    assert trace() == explicit and explicit, "the header's defaults are the config's"
    # A run's configuration (its manifest's parameters) gives the defaults instead.
    run = tmp_path / "run"
    run.mkdir()
    parameters = Config()
    parameters.flows.window_days, parameters.flows.max_hops = 7.5, 3
    (run / "manifest.json").write_text(json.dumps({"parameters": parameters.to_dict()}))
    short = trace("--run", str(run))
    assert short == trace("-p", "window_days=7.5", "-p", "max_hops=3") and short != explicit
    # Flags still win over any default.
    assert trace("--run", str(run), "-p", "window_days=30", "-p", "max_hops=6") == explicit
    missing = runner.invoke(app, ["cypher", "run", "fund_flow_trace", "--run", str(tmp_path)])
    assert missing.exit_code == 2 and "manifest.json" in missing.output
