"""The synthetic generator: determinism, and planted truth checked against independent oracles.

Oracles: networkx SCCs for circles, an exhaustive time-respecting DFS for fund chains, connected
components over shared devices for rings, a recount of drawdowns per day for bursts, igraph
Leiden plus ARI for related-enterprise groups, and graphkit's own flow tracing for the banned
shares the laundering chains are calibrated to (the seed's 38% after >= 3 hops).
"""

from __future__ import annotations

import importlib.util
import random
from collections import defaultdict
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import igraph as ig
import networkx as nx
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from graphkit.analytics.flows import trace_flows
from graphkit.config import FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.schema import TABLES
from loaders.sources import write_control
from loaders.synthetic import (
    CAUSES,
    CUSTOMER_EXTRAS,
    MAX_CHAIN_HOPS,
    TRUTH_SCHEMAS,
    WINDOW_DAYS,
    GeneratedData,
    Rates,
    generate,
    generate_tables,
)

CUSTOMERS = 2000
SEED = 7
WINDOW_US = WINDOW_DAYS * 86_400 * 1_000_000


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    return generate_tables(CUSTOMERS, SEED)


@pytest.fixture(scope="module")
def chunked() -> GeneratedData:
    """Several chunks: structures must stay intact across chunk boundaries."""
    return generate_tables(1500, SEED + 1, chunk_customers=400)


def _micros(frame: pl.DataFrame, col: str = "ts") -> list[int]:
    return frame.get_column(col).dt.epoch("us").to_list()


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- shape and ids


def test_every_schema_table_with_exact_columns(data: GeneratedData) -> None:
    assert set(data.tables) == set(TABLES)
    for name, table in TABLES.items():
        frame = data.tables[name]
        expected = dict(table.polars_schema)
        if name == "customers":
            expected |= CUSTOMER_EXTRAS
        assert dict(frame.schema) == expected, name
        for col in table.required_columns:
            assert frame.get_column(col).null_count() == 0, (name, col)
        if table.key:
            assert frame.select(table.key).is_duplicated().sum() == 0, name
    assert data.tables["customers"].height == CUSTOMERS
    for name, schema in TRUTH_SCHEMAS.items():
        assert dict(data.truth[name].schema) == schema, name


def test_references_resolve(data: GeneratedData) -> None:
    t = data.tables
    customers = set(t["customers"].get_column("customer_id"))
    merchants = set(t["merchants"].get_column("merchant_id"))
    accounts = set(t["accounts"].get_column("account_id"))
    lines = set(t["credit_lines"].get_column("line_id"))
    assert set(t["accounts"].get_column("owner_id")) <= customers | merchants
    assert set(t["merchants"].get_column("sector")) <= set(t["sectors"].get_column("sector"))
    assert set(t["drawdowns"].get_column("account_id")) <= accounts
    assert set(t["drawdowns"].get_column("line_id")) <= lines
    assert set(t["transfers"].get_column("src_account")) <= accounts
    assert set(t["transfers"].get_column("dst_account")) <= accounts
    assert set(t["repayments"].get_column("line_id")) <= lines
    for table, cols in (
        ("guarantees", ("guarantor_id", "borrower_id")),
        ("shareholdings", ("holder_id", "company_id")),
        ("device_links", ("customer_id",)),
        ("labels", ("customer_id",)),
        ("credit_lines", ("customer_id",)),
    ):
        for col in cols:
            assert set(t[table].get_column(col)) <= customers, (table, col)
    assert (t["guarantees"]["guarantor_id"] != t["guarantees"]["borrower_id"]).all()
    # every customer has one or two accounts
    per_customer = (
        t["accounts"].filter(pl.col("owner_id").is_in(list(customers))).group_by("owner_id").len()
    )
    assert per_customer.height == CUSTOMERS
    assert per_customer.get_column("len").is_between(1, 2).all()
    # a drawdown's device is one of its customer's devices
    used = (
        t["drawdowns"]
        .drop_nulls("device_id")
        .join(t["credit_lines"].select("line_id", "customer_id"), on="line_id")
        .select("customer_id", "device_id")
        .unique()
    )
    assert used.join(t["device_links"], on=["customer_id", "device_id"], how="anti").height == 0


def test_amounts_dates_and_shares(data: GeneratedData) -> None:
    t = data.tables
    for name, col in (
        ("credit_lines", "limit"),
        ("drawdowns", "amount"),
        ("transfers", "amount"),
        ("guarantees", "amount"),
    ):
        assert (t[name].get_column(col) > 0).all(), name
    assert (t["repayments"].get_column("days_past_due") >= 0).all()
    shares = t["shareholdings"]
    assert shares.get_column("share").is_between(0, 1, closed="right").all()
    assert (shares.group_by("company_id").agg(pl.col("share").sum())["share"] <= 1 + 1e-9).all()
    companies = shares.join(
        t["customers"], left_on="company_id", right_on="customer_id"
    ).get_column("kind")
    assert (companies == "enterprise").all()
    ts = t["drawdowns"].get_column("ts")
    assert ts.min().date() >= date(2025, 1, 1) and ts.max().date() < date(2025, 6, 30)


# ----------------------------------------------------------------------------- circles


def _sccs(guarantees: pl.DataFrame) -> set[frozenset[str]]:
    graph = nx.DiGraph(guarantees.select("guarantor_id", "borrower_id").rows())
    return {frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) >= 2}


def _planted(truth: pl.DataFrame, key: str) -> set[frozenset[str]]:
    return {
        frozenset(members)
        for members in truth.group_by(key).agg("customer_id").get_column("customer_id")
    }


@pytest.mark.parametrize("which", ["data", "chunked"])
def test_circles_are_exactly_the_sccs(which: str, request: pytest.FixtureRequest) -> None:
    gen: GeneratedData = request.getfixturevalue(which)
    planted = _planted(gen.truth["circles"], "circle_id")
    assert planted == _sccs(gen.tables["guarantees"])
    sizes = sorted(len(c) for c in planted)
    assert sizes[0] >= 2 and sizes[-1] <= 8 and len(set(sizes)) >= 3


def test_some_circles_sit_inside_groups_and_background_guarantees_lead_into_circles(
    data: GeneratedData,
) -> None:
    circles = data.truth["circles"].rename({"customer_id": "member"})
    in_group = circles.join(
        data.truth["groups"], left_on="member", right_on="customer_id", how="semi"
    )
    assert in_group.get_column("circle_id").n_unique() >= 1
    members = set(circles.get_column("member"))
    into = data.tables["guarantees"].filter(
        pl.col("borrower_id").is_in(list(members)) & ~pl.col("guarantor_id").is_in(list(members))
    )
    assert into.height > 0  # circles have a reach


# ----------------------------------------------------------------------------- fund chains


def _temporal_graph(t: dict[str, pl.DataFrame]):
    transfers = t["transfers"]
    out: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for src, dst, ts, tid in zip(
        transfers["src_account"],
        transfers["dst_account"],
        _micros(transfers),
        transfers["transfer_id"],
        strict=True,
    ):
        out[src].append((dst, ts, tid))
    banned = set(t["sectors"].filter("banned")["sector"])
    banned_merchants = set(
        t["merchants"].filter(pl.col("sector").is_in(list(banned)))["merchant_id"]
    )
    sinks = set(
        t["accounts"].filter(pl.col("owner_id").is_in(list(banned_merchants)))["account_id"]
    )
    return out, sinks


def _min_hops(out, sinks: set[str], start: str, t0: int, max_hops: int) -> int | None:
    """Exhaustive DFS over time-respecting paths (ts non-decreasing, within the window)."""
    best: list[int] = []

    def dfs(account: str, t: int, depth: int, seen: frozenset[str]) -> None:
        if depth == max_hops:
            return
        for dst, ts, _ in out.get(account, ()):
            if ts < t or ts > t0 + WINDOW_US or dst in seen:
                continue
            if dst in sinks:
                best.append(depth + 1)
            else:
                dfs(dst, ts, depth + 1, seen | {dst})

    dfs(start, t0, 0, frozenset([start]))
    return min(best) if best else None


def _reaches_sink_statically(out, sinks: set[str], max_hops: int) -> set[str]:
    into: dict[str, set[str]] = defaultdict(set)
    for src, edges in out.items():
        for dst, _, _ in edges:
            into[dst].add(src)
    frontier, reached = set(sinks), set()
    for _ in range(max_hops):
        frontier = {s for d in frontier for s in into[d]} - reached
        reached |= frontier
    return reached


def test_chains_are_well_formed(data: GeneratedData) -> None:
    t = data.tables
    chains = data.truth["chains"]
    assert chains.height > 0
    assert set(chains["hops"]) == set(range(1, MAX_CHAIN_HOPS + 1))
    transfers = {
        row["transfer_id"]: row
        for row in t["transfers"].with_columns(pl.col("ts").dt.epoch("us")).iter_rows(named=True)
    }
    drawdowns = t["drawdowns"].with_columns(pl.col("ts").dt.epoch("us"))
    by_id = {row["drawdown_id"]: row for row in drawdowns.iter_rows(named=True)}
    _, sinks = _temporal_graph(t)
    for chain in chains.iter_rows(named=True):
        dd = by_id[chain["drawdown_id"]]
        hops = [transfers[tid] for tid in chain["transfer_ids"]]
        assert len(hops) == chain["hops"]
        assert hops[0]["src_account"] == dd["account_id"] == chain["account_id"]
        for before, after in pairwise(hops):
            assert before["dst_account"] == after["src_account"]
            assert after["ts"] > before["ts"]
        assert hops[0]["ts"] > dd["ts"]
        assert hops[-1]["ts"] <= dd["ts"] + WINDOW_US
        assert hops[-1]["dst_account"] in sinks
        assert hops[-1]["dst_account"] == chain["sink_account"]
        assert all(h["dst_account"] not in sinks for h in hops[:-1])


@pytest.mark.parametrize("which", ["data", "chunked"])
def test_planted_hops_are_the_minimum_and_nothing_else_reaches_a_banned_sink(
    which: str, request: pytest.FixtureRequest
) -> None:
    gen: GeneratedData = request.getfixturevalue(which)
    t = gen.tables
    out, sinks = _temporal_graph(t)
    candidates = _reaches_sink_statically(out, sinks, MAX_CHAIN_HOPS)
    drawdowns = t["drawdowns"].filter(pl.col("account_id").is_in(list(candidates)))
    found = {}
    for did, account, t0 in zip(
        drawdowns["drawdown_id"], drawdowns["account_id"], _micros(drawdowns), strict=True
    ):
        hops = _min_hops(out, sinks, account, t0, MAX_CHAIN_HOPS)
        if hops is not None:
            found[did] = hops
    planted = dict(gen.truth["chains"].select("drawdown_id", "hops").iter_rows())
    assert found == planted
    noise = gen.truth["noise_paths"]
    assert set(noise["kind"]) == {"time_violation", "before_drawdown", "outside_window"}
    # Noise drawdowns do reach a banned sink if time is ignored.
    assert set(drawdowns["drawdown_id"]) >= set(noise["drawdown_id"])
    assert not set(noise["drawdown_id"]) & set(found)


def test_planted_banned_amounts_are_each_chains_smallest_transfer(data: GeneratedData) -> None:
    t = data.tables
    amount = dict(t["transfers"].select("transfer_id", "amount").iter_rows())
    chains = data.truth["chains"]
    for ids, banned in chains.select("transfer_ids", "banned_amount").iter_rows():
        assert banned == min(amount[i] for i in ids)
    drawn = t["drawdowns"]["amount"].sum()
    planted = data.params["counts"]["planted"]
    share = chains["banned_amount"].sum() / drawn
    share_3plus = chains.filter(pl.col("hops") >= 3)["banned_amount"].sum() / drawn
    assert planted["banned_share"] == round(share, 4)
    assert planted["banned_share_3plus"] == round(share_3plus, 4)
    assert 0 < share_3plus < share < 0.6


# ----------------------------------------------------------------------------- laundering


def _laundering(data: GeneratedData) -> pl.DataFrame:
    return data.truth["chains"].filter(pl.col("kind") == "laundering")


def test_laundered_drawdowns_make_up_the_rate_and_come_from_diverters(data: GeneratedData) -> None:
    t = data.tables
    rates = Rates()
    laundering = _laundering(data)
    drawdowns = t["drawdowns"].join(
        t["credit_lines"].select("line_id", "customer_id", "limit"), on="line_id"
    )
    share = laundering.height / drawdowns.height
    # diverters are added until the rate is reached; one diverter has at most 6
    assert rates.launder_share <= share <= rates.launder_share + 6 / drawdowns.height
    laundered = drawdowns.join(laundering, on="drawdown_id", how="semi")
    owners = laundered.select("drawdown_id", "customer_id").sort("drawdown_id")
    assert owners.equals(laundering.select("drawdown_id", "customer_id").sort("drawdown_id"))
    lo, hi = rates.launder_draw
    ratio = laundered["amount"] / laundered["limit"]
    assert ratio.min() >= lo - 0.01 and ratio.max() <= hi + 0.01
    # one laundering account per diverter, fed by its laundered drawdowns and nothing else
    diverters = laundering.group_by("customer_id").agg(pl.col("account_id").unique())
    assert (diverters["account_id"].list.len() == 1).all()
    accounts = set(laundering["account_id"])
    into = t["drawdowns"].filter(pl.col("account_id").is_in(list(accounts)))
    assert set(into["drawdown_id"]) == set(laundering["drawdown_id"])
    assert not accounts & set(t["transfers"]["dst_account"])
    # a diverter draws down only to launder (burst days aside)
    burst_customers = set(data.truth["bursts"]["customer_id"])
    ordinary = drawdowns.join(laundering, on="drawdown_id", how="anti").filter(
        pl.col("customer_id").is_in(list(set(diverters["customer_id"]) - burst_customers))
    )
    assert ordinary.height == 0
    # consecutive laundered drawdowns of a diverter are further apart than the window
    gaps = (
        laundered.sort("customer_id", "ts")
        .with_columns(gap=pl.col("ts").diff().over("customer_id"))
        .drop_nulls("gap")
    )
    assert gaps["gap"].min() > timedelta(days=WINDOW_DAYS)
    # most of the money is drawn by big lines: far more than the rate's share of drawn money
    assert laundered["amount"].sum() > 5 * share * drawdowns["amount"].sum()


def test_laundering_chains_move_most_of_the_money_in_hours_to_days(data: GeneratedData) -> None:
    rates = Rates()
    transfers = {
        row["transfer_id"]: row
        for row in data.tables["transfers"]
        .with_columns(pl.col("ts").dt.epoch("s"))
        .iter_rows(named=True)
    }
    drawdowns = dict(
        data.tables["drawdowns"].select("drawdown_id", pl.col("ts").dt.epoch("s")).iter_rows()
    )
    amounts = dict(data.tables["drawdowns"].select("drawdown_id", "amount").iter_rows())
    window_end = (date(2025, 1, 1) - date(1970, 1, 1)).days * 86_400 + 180 * 86_400
    laundering = _laundering(data)
    gaps = []
    for did, ids in laundering.select("drawdown_id", "transfer_ids").iter_rows():
        hops = [transfers[i] for i in ids]
        received = amounts[did]
        lo, hi = rates.launder_first_hop
        for hop in hops:
            assert lo * received - 0.01 <= hop["amount"] <= hi * received + 0.01
            received = hop["amount"]
            lo, hi = rates.launder_keep
        times = [drawdowns[did]] + [h["ts"] for h in hops]
        gaps += list(np.diff(times))
        assert times[-1] - times[0] <= (WINDOW_DAYS - 1) * 86_400 and times[-1] < window_end
    assert min(gaps) >= 60
    assert 3_600 <= np.median(gaps) <= 2 * 86_400
    # hop counts are weighted to 3 or more
    by_hops = laundering.group_by("hops").len()
    assert by_hops.filter(pl.col("hops") >= 3)["len"].sum() > 0.7 * laundering.height
    assert set(by_hops["hops"]) == set(range(1, MAX_CHAIN_HOPS + 1))


def test_launder_share_is_tunable_and_checked() -> None:
    none = generate_tables(600, SEED, rates=Rates(launder_share=0.0))
    assert set(none.truth["chains"]["kind"]) == {"chain"}
    assert none.params["counts"]["planted"]["banned_share"] < 0.05
    assert none.params["rates"]["launder_share"] == 0.0
    more = generate_tables(600, SEED, rates=Rates(launder_share=0.1))
    assert more.params["counts"]["planted"]["laundered_drawdown_share"] >= 0.1
    with pytest.raises(ValueError, match="launder_gap_days"):
        generate_tables(100, SEED, rates=Rates(launder_gap_days=(20.0, 40.0)))


def test_graphkit_flows_find_the_seeds_38_percent_and_every_planted_chain() -> None:
    """Default flows config (W=30, H=6, policy first) on a 5000-customer network."""
    gen = generate_tables(5000, SEED + 2)
    result = trace_flows(RiskGraph.from_tables(gen.tables), FlowsConfig(), cycles=False)
    totals = result.totals
    assert 0.33 <= totals["banned_share_3plus"] <= 0.43, totals
    assert 0.03 <= totals["banned_share"] - totals["banned_share_3plus"] <= 0.15, totals
    chains = gen.truth["chains"]
    flows = chains.join(result.flows, on="drawdown_id", how="left")
    assert flows.height == chains.height
    assert (flows["min_hops_to_banned"] == flows["hops"]).all()
    np.testing.assert_allclose(flows["banned_amount_right"], flows["banned_amount"], rtol=1e-9)
    landed_at_planted_hops = flows.select(
        pl.coalesce(
            pl.when(pl.col("hops") == h).then(pl.col(f"banned_hop_{h}"))
            for h in range(1, MAX_CHAIN_HOPS + 1)
        )
    ).to_series()
    np.testing.assert_allclose(landed_at_planted_hops, flows["banned_amount"], rtol=1e-9)
    reaching = result.flows.filter(pl.col("min_hops_to_banned").is_not_null())
    assert set(reaching["drawdown_id"]) == set(chains["drawdown_id"])
    planted = gen.params["counts"]["planted"]
    assert planted["banned_share_3plus"] == round(totals["banned_share_3plus"], 4)
    assert planted["banned_share"] == round(totals["banned_share"], 4)


# ----------------------------------------------------------------------------- rings, devices


def test_rings_are_the_device_sharing_components(data: GeneratedData) -> None:
    links = data.tables["device_links"]
    users = links.group_by("device_id").agg(pl.col("customer_id").unique())
    hubs = set(data.truth["hub_devices"]["device_id"])
    sizes = dict(zip(users["device_id"], users["customer_id"].list.len(), strict=True))
    assert hubs and all(sizes[h] >= 100 for h in hubs)
    assert all(n <= 2 or d in hubs or n >= 3 for d, n in sizes.items())
    graph = nx.Graph()
    for device, customers in users.iter_rows():
        if device in hubs or len(customers) < 3:
            continue
        nx.add_path(graph, [device, *customers])
    customers = set(data.tables["customers"]["customer_id"])
    components = {frozenset(c & customers) for c in nx.connected_components(graph)}
    planted = _planted(data.truth["rings"], "ring_id")
    assert components == planted
    assert all(3 <= len(r) <= 10 for r in planted)
    # devices shared by >= 3 customers are exactly ring devices and hubs
    ring_members = set().union(*planted)
    for device, customers in users.iter_rows():
        if len(customers) >= 3 and device not in hubs:
            assert set(customers) <= ring_members


# ----------------------------------------------------------------------------- bursts, defaults


def test_bursts_are_the_days_with_five_or_more_drawdowns(data: GeneratedData) -> None:
    t = data.tables
    recount = (
        t["drawdowns"]
        .join(t["credit_lines"].select("line_id", "customer_id"), on="line_id")
        .group_by("customer_id", pl.col("ts").dt.date().alias("day"))
        .agg(pl.len().cast(pl.Int64).alias("drawdowns"))
        .filter(pl.col("drawdowns") >= 5)
        .sort("customer_id", "day")
    )
    assert recount.height >= 10
    assert recount.equals(data.truth["bursts"].sort("customer_id", "day"))


def test_labels_agree_with_defaults(data: GeneratedData) -> None:
    labels = data.tables["labels"]
    defaults = data.truth["defaults"]
    assert set(defaults["cause"]) == set(CAUSES)
    rate = defaults.height / CUSTOMERS
    assert 0.04 <= rate <= 0.10
    assert 0.75 <= labels.height / CUSTOMERS <= 0.85
    labelled_defaults = defaults.filter("labelled")
    joined = labels.join(defaults, on="customer_id", how="left")
    assert (joined["defaulted"] == joined["cause"].is_not_null()).all()
    assert set(labels.filter("defaulted")["customer_id"]) == set(labelled_defaults["customer_id"])
    got = labels.filter("defaulted").select("customer_id", "default_date").sort("customer_id")
    want = labelled_defaults.select("customer_id", "default_date").sort("customer_id")
    assert got.equals(want)
    assert (
        labels.filter(~pl.col("defaulted"))["default_date"].null_count()
        == labels.filter(~pl.col("defaulted")).height
    )


def test_contagion_defaults_have_a_defaulted_neighbour(data: GeneratedData) -> None:
    defaults = data.truth["defaults"]
    defaulted = dict(defaults.select("customer_id", "default_date").iter_rows())
    g = data.tables["guarantees"]
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in g.select("guarantor_id", "borrower_id").iter_rows():
        neighbours[a].add(b)
        neighbours[b].add(a)
    for key in ("rings", "circles"):
        for members in _planted(data.truth[key], f"{key[:-1]}_id"):
            for m in members:
                neighbours[m] |= members - {m}
    for customer, cause, day, _ in defaults.iter_rows():
        if cause in ("guarantee_contagion", "ring_contagion", "circle"):
            earlier = [n for n in neighbours[customer] if n in defaulted and defaulted[n] < day]
            assert earlier, (customer, cause)


def test_ring_and_circle_members_default_more_often(data: GeneratedData) -> None:
    defaulted = set(data.truth["defaults"]["customer_id"])
    exposed = set(data.truth["rings"]["customer_id"]) | set(data.truth["circles"]["customer_id"])
    others = set(data.tables["customers"]["customer_id"]) - exposed
    rate_exposed = len(exposed & defaulted) / len(exposed)
    rate_others = len(others & defaulted) / len(others)
    assert rate_exposed > 2 * rate_others


# ----------------------------------------------------------------------------- groups


def test_leiden_recovers_the_planted_groups(data: GeneratedData) -> None:
    t = data.tables
    customers = t["customers"]["customer_id"].to_list()
    index = {c: i for i, c in enumerate(customers)}
    owner = dict(t["accounts"].iter_rows())
    weight: dict[tuple[int, int], float] = defaultdict(float)

    def tie(a: str, b: str, w: float) -> None:
        if a in index and b in index and a != b:
            i, j = sorted((index[a], index[b]))
            weight[i, j] += w

    for a, b in t["guarantees"].select("guarantor_id", "borrower_id").iter_rows():
        tie(a, b, 1.0)
    for a, b, share in t["shareholdings"].iter_rows():
        if share >= 0.2:
            tie(a, b, 1.0)
    users = t["device_links"].group_by("device_id").agg("customer_id")["customer_id"]
    for members in users:
        if len(members) <= 50:
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    tie(a, b, 0.5)
    for src, dst in t["transfers"].select("src_account", "dst_account").iter_rows():
        tie(owner[src], owner[dst], 0.5)
    graph = ig.Graph(n=len(customers), edges=list(weight))
    random.seed(42)
    parts = graph.community_leiden(
        objective_function="modularity", weights=list(weight.values()), n_iterations=-1
    )
    membership = np.array(parts.membership)
    groups = data.truth["groups"]
    members = np.array([index[c] for c in groups["customer_id"]])
    ari = adjusted_rand_score(groups["group_id"].to_numpy(), membership[members])
    assert ari >= 0.9, ari
    sizes = groups.group_by("group_id").len()["len"]
    assert sizes.min() >= 5 and sizes.max() <= 30


def test_group_ties_are_dense_shareholdings_above_threshold(data: GeneratedData) -> None:
    groups = data.truth["groups"]
    group_of = {c: g for g, c in groups.iter_rows()}
    shares = data.tables["shareholdings"]
    inside = [
        s for h, c, s in shares.iter_rows() if h in group_of and group_of.get(c) == group_of[h]
    ]
    assert inside and min(inside) >= 0.2
    # every enterprise of a group but its root is held by a fellow member
    held = {c for h, c, _ in shares.iter_rows() if h in group_of and group_of.get(c) == group_of[h]}
    kinds = dict(data.tables["customers"].select("customer_id", "kind").iter_rows())
    firms = [c for c in group_of if kinds[c] == "enterprise"]
    assert len(held) == len(firms)


# ----------------------------------------------------------------------------- files


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for fmt in ("parquet", "csv"):
        generate(tmp_path / f"a-{fmt}", 600, SEED, fmt, chunk_customers=250)
        generate(tmp_path / f"b-{fmt}", 600, SEED, fmt, chunk_customers=250)
        generate(tmp_path / f"c-{fmt}", 600, SEED + 1, fmt, chunk_customers=250)
        a, b, c = (_files(tmp_path / f"{x}-{fmt}") for x in "abc")
        assert a == b
        assert a.keys() == c.keys()
        assert a["customers." + fmt] != c["customers." + fmt]
        assert a["_truth/chains.parquet"] != c["_truth/chains.parquet"]
    assert (tmp_path / "a-csv" / "_truth" / "truth.json").exists()


def test_the_committed_sample_is_what_make_sample_generates(tmp_path: Path) -> None:
    """data/sample is ``make sample``'s output: a change that moves one generated value shows
    here, so refactoring the generator cannot silently change the shipped sample."""
    generate(tmp_path / "sample", 2000, 20261129, "csv")
    write_control(tmp_path / "sample")  # `graphkit generate` ends with the control file
    fresh = _files(tmp_path / "sample")
    committed = _files(Path(__file__).resolve().parents[1] / "data" / "sample")
    assert fresh.keys() == committed.keys()
    for name, content in fresh.items():
        if name.endswith(".parquet"):  # the truth frames; parquet metadata names the writer
            assert pl.read_parquet(content).equals(pl.read_parquet(committed[name])), name
        else:  # every CSV table and truth.json, byte for byte
            assert content == committed[name], name


def test_written_files_equal_the_in_memory_tables(tmp_path: Path) -> None:
    summary = generate(tmp_path / "out", 900, SEED, "parquet", chunk_customers=300)
    gen = generate_tables(900, SEED, chunk_customers=300)
    for name in TABLES:
        written = pl.read_parquet(tmp_path / "out" / f"{name}.parquet")
        assert written.equals(gen.tables[name]), name
    for name in TRUTH_SCHEMAS:
        written = pl.read_parquet(tmp_path / "out" / "_truth" / f"{name}.parquet")
        assert written.equals(gen.truth[name]), name
    assert summary["counts"] == gen.params["counts"]
    assert summary["counts"]["tables"]["customers"] == 900


def test_csv_output_round_trips(tmp_path: Path) -> None:
    generate(tmp_path / "out", 300, SEED, "csv")
    gen = generate_tables(300, SEED)
    for name in ("drawdowns", "transfers", "labels", "customers"):
        frame = pl.read_csv(tmp_path / "out" / f"{name}.csv", try_parse_dates=True)
        assert frame.height == gen.tables[name].height
        assert frame.columns == gen.tables[name].columns


@pytest.mark.skipif(
    importlib.util.find_spec("loaders.sources") is None, reason="loaders.sources not there yet"
)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generated_output_validates(tmp_path: Path, fmt: str) -> None:
    from loaders.sources import validate_directory

    generate(tmp_path / "out", 800, SEED, fmt, chunk_customers=300)
    assert validate_directory(tmp_path / "out") == []


def test_failed_generation_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "out", 100, SEED, "xlsx")
    with pytest.raises(ValueError):
        generate(tmp_path / "out", 0, SEED)
    assert not (tmp_path / "out").exists()


def test_cli_generate(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["generate", str(out), "--customers", "300", "--seed", "3", "--format", "csv", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "customers.csv").exists() and (out / "_truth" / "chains.parquet").exists()
    assert pl.read_csv(out / "customers.csv").height == 300
    bad = runner.invoke(app, ["generate", str(tmp_path / "bad"), "--format", "xlsx"])
    assert bad.exit_code == 2
    assert not (tmp_path / "bad").exists()
