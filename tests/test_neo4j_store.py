"""The Neo4j store on the real server: exact counts, idempotent re-loads, a faithful read-back,
hostile ids, write-back (current view replaced, tier history kept), credentials kept secret,
retries, and the FinBench fund-flow cross-check between Cypher and graphkit."""

from __future__ import annotations

import json
from pathlib import Path

import neo4j
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import cli
import cypher
from graphkit.analytics.flows import min_hops_to_banned
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.pipeline import (
    RunContext,
    circles_stage,
    cluster_risk_stage,
    clusters_stage,
    rings_stage,
    run_pipeline,
    write_back,
)
from graphkit.schema import CUSTOMER_SUBLABELS, RELATIONSHIPS, WRITEBACK_PROPERTIES
from graphkit.store.neo4j import (
    LoadCounts,
    Neo4jStoreError,
    Neo4jTarget,
    Neo4jUnavailable,
    keyed_frames,
)
from graphkit.store.neo4j_server import Neo4jServer
from loaders.frames import make_tables
from loaders.sources import read_input
from tests.test_cypher_library import random_tables, scores_for

pytestmark = pytest.mark.neo4j

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FINBENCH = Path("/work/shared/data/finbench-sample")
SECRET = "s3cret-'}) DETACH DELETE n //-pw"


def target_for(server, **options) -> Neo4jTarget:
    user, password = server.auth or (None, None)
    return Neo4jTarget(server.uri, user=user, password=password, **options)


class Recorder:
    """A Progress that keeps every log line and task name."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def start(self, task: str, total: int | None = None) -> None:
        self.lines.append(f"start {task}")

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        self.lines.append(f"finish {task}")

    def log(self, message: str) -> None:
        self.lines.append(message)


def expected_counts(graph: RiskGraph) -> dict[str, dict[str, int]]:
    nodes = {label: graph.n(label) for label in graph.nodes if graph.n(label)}
    kinds = graph.nodes["Customer"].get_column("kind").value_counts()
    for kind, count in kinds.iter_rows():
        if kind in CUSTOMER_SUBLABELS:
            nodes[CUSTOMER_SUBLABELS[kind]] = count
    relationships: dict[str, int] = {}
    for name, spec in RELATIONSHIPS.items():
        if graph.edges[name].height:
            relationships[spec.type] = relationships.get(spec.type, 0) + graph.edges[name].height
    return {"nodes": nodes, "relationships": relationships}


def test_sample_loads_exactly_idempotently_and_reads_back(neo4j_driver, neo4j_server) -> None:
    graph = RiskGraph.from_tables(read_input(SAMPLE).tables)
    target = target_for(neo4j_server, batch_size=5_000)
    first = target.load_graph(graph)
    expected = expected_counts(graph)
    assert target.read_graph_counts() == expected
    assert first.nodes_created == sum(graph.summary()["nodes"].values())
    assert first.relationships_created == sum(graph.summary()["edges"].values())

    again = target.load_graph(graph)
    assert (again.nodes_created, again.relationships_created) == (0, 0)
    assert target.read_graph_counts() == expected
    assert target.read_graph(graph).equals(keyed_frames(graph))


def test_round_trip_keeps_types_extras_and_repeated_guarantees(neo4j_driver, neo4j_server):
    tables = random_tables(11)
    tables["customers"] = tables["customers"].with_columns(
        segment=pl.Series(["a", None] * 30), score_band=pl.Series(list(range(60)))
    )
    tables["transfers"] = tables["transfers"].with_columns(
        memo=pl.lit('line one\nline two, "quoted" {braces}')
    )
    graph = RiskGraph.from_tables(tables)
    target = target_for(neo4j_server, batch_size=64)
    target.load_graph(graph)
    target.load_graph(graph)
    back = target.read_graph(graph)
    reference = keyed_frames(graph)
    for label in reference.nodes:
        assert back.nodes[label].equals(reference.nodes[label]), label
    for name in reference.edges:
        assert back.edges[name].equals(reference.edges[name]), name
    # The two identical guarantee rows stay two relationships through both loads.
    assert (
        graph.edges["guarantees"].height
        == target.read_graph_counts()["relationships"]["GUARANTEES"]
    )


HOSTILE = [
    "plain",
    "it's",
    'dq"uote',
    "'}) DETACH DELETE n //",
    "`) MATCH (m) DETACH DELETE m //",
    "{braces}",
    "line\nbreak",
    "back\\slash",
    "$param",
    "MATCH (n) RETURN n",
    "客户-甲",
]


def test_hostile_ids_load_and_query_back_verbatim(neo4j_driver, neo4j_server) -> None:
    n = len(HOSTILE)
    tables = make_tables(
        customers={"customer_id": HOSTILE, "kind": ["enterprise"] * n, "name": HOSTILE},
        guarantees={
            "guarantor_id": HOSTILE,
            "borrower_id": HOSTILE[1:] + HOSTILE[:1],
            "amount": [1.0] * n,
        },
        device_links={"customer_id": HOSTILE, "device_id": [f"dev {h}" for h in HOSTILE]},
    )
    graph = RiskGraph.from_tables(tables)
    target = target_for(neo4j_server)
    target.load_graph(graph)
    assert target.read_graph_counts()["nodes"]["Customer"] == n
    for customer in HOSTILE:
        row = target.run_query(
            cypher.load_query("customer_360").text, {"customer_id": customer, "as_of": None}
        ).row(0, named=True)
        assert row["customer_id"] == customer and row["name"] == customer
        assert row["devices"] == [f"dev {customer}"]
        circle = target.run_query(
            cypher.load_query("guarantee_circle").text, {"customer_id": customer, "as_of": None}
        )
        assert sorted(circle["customer_id"]) == sorted(HOSTILE)
    assert target.read_graph(graph).equals(keyed_frames(graph))


def run_context(graph: RiskGraph, tmp_path: Path) -> RunContext:
    ctx = RunContext(graph=graph, config=Config(), out_dir=tmp_path)
    for stage in (circles_stage, rings_stage, clusters_stage):
        stage(ctx)
    ctx.results.scores = scores_for(graph, 3)
    share = np.linspace(0, 1, graph.n("Customer"))
    ctx.results.customer_flows = pl.DataFrame(
        {
            "customer_id": graph.keys("Customer"),
            "drawn_amount": np.full(graph.n("Customer"), 100.0),
            "banned_amount": 100.0 * share,
            "banned_share": share,
        }
    )
    cluster_risk_stage(ctx)
    return ctx


def customer_state(driver: neo4j.Driver) -> pl.DataFrame:
    props = ", ".join(f"c.{p} AS {p}" for p in [*WRITEBACK_PROPERTIES, "run_id"])
    records, _, _ = driver.execute_query(f"MATCH (c:Customer) RETURN c.customer_id AS id, {props}")
    return pl.DataFrame([r.data() for r in records], infer_schema_length=None).sort("id")


def count(driver: neo4j.Driver, pattern: str) -> int:
    return driver.execute_query(f"MATCH {pattern} RETURN count(*) AS n")[0][0]["n"]


def test_write_back_replaces_the_current_view_and_keeps_history(
    neo4j_driver, neo4j_server, tmp_path
) -> None:
    graph = RiskGraph.from_tables(random_tables(5))
    target = target_for(neo4j_server, batch_size=50)
    target.load_graph(graph)
    ctx = run_context(graph, tmp_path)
    counts = write_back(target, ctx, run_id="r1")
    assert ctx.manifest_extra["neo4j_write_back"]["run_id"] == "r1"

    state = customer_state(neo4j_driver)
    expected = (
        graph.nodes["Customer"]
        .select(pl.col("customer_id").alias("id"))
        .join(ctx.results.circle_membership.rename({"customer_id": "id"}), on="id", how="left")
        .join(ctx.results.ring_membership.rename({"customer_id": "id"}), on="id", how="left")
        .join(ctx.results.cluster_membership.rename({"customer_id": "id"}), on="id", how="left")
        .join(ctx.results.scores.rename({"customer_id": "id"}), on="id", how="left")
        .sort("id")
    )
    for column in ("circle_id", "ring_id", "cluster_id", "tier"):
        assert state[column].to_list() == expected[column].to_list(), column
    assert np.allclose(state["risk_score"].to_numpy(), expected["risk_score"].to_numpy())
    assert np.allclose(state["banned_share"].to_numpy(), np.linspace(0, 1, graph.n("Customer")))
    assert set(state["run_id"]) == {"r1"}
    risk = ctx.outputs["cluster_risk.parquet"]
    assert count(neo4j_driver, "(:Cluster)") == risk.height == counts.clusters
    assert count(neo4j_driver, "(:Customer)-[:IN_CLUSTER]->(:Cluster)") == counts.in_cluster
    assert counts.in_cluster == ctx.results.cluster_membership.height
    assert count(neo4j_driver, "(:Customer)-[:IN_CIRCLE]->(:Circle)") == counts.in_circle
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (k:Cluster) RETURN k.cluster_id AS id, k.risk_score AS risk ORDER BY id"
    )
    assert [r["id"] for r in records] == sorted(risk["cluster_id"])

    # Writing the same run again changes nothing.
    write_back(target, ctx, run_id="r1")
    assert customer_state(neo4j_driver).equals(state)
    assert count(neo4j_driver, "()-[:SCORED_IN]->()") == graph.n("Customer")

    # A later run without clusters or circles: their nodes, links and properties go away,
    # the first run's tier history stays.
    later = RunContext(graph=graph, config=Config(), out_dir=tmp_path)
    later.results.scores = scores_for(graph, 4)
    later.results.ring_membership = ctx.results.ring_membership.head(3)
    write_back(target, later, run_id="r2")
    state = customer_state(neo4j_driver)
    assert state["cluster_id"].null_count() == state["circle_id"].null_count() == state.height
    assert state["ring_id"].drop_nulls().len() == 3
    assert set(state["run_id"]) == {"r2"}
    assert count(neo4j_driver, "(:Cluster)") == count(neo4j_driver, "(:Circle)") == 0
    assert count(neo4j_driver, "()-[:IN_CLUSTER|IN_CIRCLE]->()") == 0
    assert count(neo4j_driver, "(:RiskRun)") == 2
    assert count(neo4j_driver, "()-[:SCORED_IN]->(:RiskRun {run_id: 'r1'})") == graph.n("Customer")
    # Loading again leaves the write-back alone (it is not part of the input graph).
    target.load_graph(graph)
    assert customer_state(neo4j_driver).equals(state)


def test_dead_server_retries_visibly_then_fails_clearly() -> None:
    recorder = Recorder()
    target = Neo4jTarget("bolt://127.0.0.1:1", password=SECRET, max_retries=2, retry_backoff=0.01)
    graph = RiskGraph.from_tables(random_tables(1))
    with pytest.raises(Neo4jUnavailable, match="after 3 attempts") as failure:
        target.load_graph(graph, progress=recorder)
    assert sum("retry" in line for line in recorder.lines) == 2
    assert SECRET not in str(failure.value) and SECRET not in "\n".join(recorder.lines)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_from_env_and_describe_never_show_the_password() -> None:
    env = {"NEO4J_URI": "bolt://db:7687", "NEO4J_USER": "ana", "NEO4J_PASSWORD": SECRET}
    target = Neo4jTarget.from_env(environ=env)
    assert (target.uri, target.user, target.password) == ("bolt://db:7687", "ana", SECRET)
    assert SECRET not in repr(target) and SECRET not in json.dumps(target.describe())
    assert target.describe() == {
        "uri": "bolt://db:7687",
        "user": "ana",
        "database": None,
        "auth": True,
        "batch_size": 10_000,
    }
    other = Neo4jTarget.from_env(environ={"GK_PW": "x"}, uri="bolt://h:1", password_env="GK_PW")
    assert other.password == "x" and other.user is None
    with pytest.raises(ValueError, match="NEO4J_URI"):
        Neo4jTarget.from_env(environ={})


@pytest.fixture(scope="module")
def secured_server():
    """A second server with auth on (the session server runs without)."""
    with Neo4jServer().start(password=SECRET, heap="512m", pagecache="64m") as server:
        yield server


def test_password_stays_out_of_errors_logs_cli_and_manifest(secured_server, tmp_path) -> None:
    recorder = Recorder()
    target = Neo4jTarget(secured_server.uri, password=SECRET, batch_size=1000)
    source = write_input(random_tables(8), tmp_path / "in")
    summary = run_pipeline(
        source,
        tmp_path / "run",
        Config(),
        progress=recorder,
        neo4j=target,
        stages=["circles", "rings"],
    )
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert SECRET not in manifest and summary.manifest["neo4j"]["auth"] is True
    assert summary.manifest["neo4j_write_back"]["run_id"] == summary.manifest["run_id"]
    assert SECRET not in "\n".join(recorder.lines)
    circles = pl.read_parquet(tmp_path / "run" / "circles.parquet")
    with neo4j.GraphDatabase.driver(secured_server.uri, auth=("neo4j", SECRET)) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (c:Customer) WHERE c.circle_id IS NOT NULL RETURN count(c) AS n"
        )
    assert records[0]["n"] == circles.height

    wrong = Neo4jTarget(secured_server.uri, password=SECRET + "x")
    with pytest.raises(Neo4jStoreError, match="rejected the credentials") as failure:
        wrong.read_graph_counts()
    assert SECRET not in str(failure.value)

    runner = CliRunner()
    customer = circles["customer_id"][0]
    ok = runner.invoke(
        cli.app,
        [
            "cypher",
            "run",
            "guarantee_circle",
            "--param",
            f"customer_id={customer}",
            "--format",
            "json",
            "--neo4j",
            secured_server.uri,
        ],
        env={"NEO4J_PASSWORD": SECRET},
    )
    assert ok.exit_code == 0, ok.output
    members = json.loads(ok.stdout)
    expected = circles.filter(pl.col("circle_id") == circles["circle_id"][0])["customer_id"].sort()
    assert [m["customer_id"] for m in members] == expected.to_list()
    assert SECRET not in ok.output
    denied = runner.invoke(
        cli.app,
        ["cypher", "run", "top_clusters", "-p", "limit=3", "--neo4j", secured_server.uri],
        env={"NEO4J_PASSWORD": SECRET + "x"},
    )
    assert denied.exit_code == 1 and SECRET not in denied.output


def write_input(tables: dict[str, pl.DataFrame], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(directory / f"{name}.parquet")
    return directory


def test_cli_load_and_cypher_commands(neo4j_driver, neo4j_server, tmp_path) -> None:
    runner = CliRunner()
    env = {"NEO4J_URI": neo4j_server.uri}
    tables = random_tables(3)
    source = write_input(tables, tmp_path / "in")
    loaded = runner.invoke(cli.app, ["load", str(source), "--batch-size", "100", "-q"], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert count(neo4j_driver, "(:Customer)") == tables["customers"].height
    listed = runner.invoke(cli.app, ["cypher", "list", "--format", "json"])
    assert {q["name"] for q in json.loads(listed.stdout)} == {q.name for q in cypher.list_queries()}
    shown = runner.invoke(cli.app, ["cypher", "show", "transfer_cycles"])
    assert "// name: transfer_cycles" in shown.stdout
    csv = runner.invoke(
        cli.app,
        ["cypher", "run", "customer_360", "-p", "customer_id=C004", "--format", "csv"],
        env=env,
    )
    assert csv.exit_code == 0, csv.output
    row = pl.read_csv(csv.stdout.encode()).row(0, named=True)
    assert row["customer_id"] == "C004" and json.loads(row["accounts"]) == ["A-C004"]
    bad = runner.invoke(cli.app, ["cypher", "run", "customer_360"], env=env)
    assert bad.exit_code == 2 and "customer_id" in bad.output
    unreachable = runner.invoke(
        cli.app, ["cypher", "run", "top_clusters", "-p", "limit=1", "--neo4j", "bolt://127.0.0.1:1"]
    )
    assert unreachable.exit_code in (1, 3)


@pytest.mark.skipif(not FINBENCH.is_dir(), reason="the shared FinBench sample is not present")
def test_finbench_fund_flow_trace_agrees_with_graphkit(neo4j_driver, neo4j_server, tmp_path):
    from loaders.finbench import import_finbench

    import_finbench(FINBENCH, tmp_path / "fb")
    graph = RiskGraph.from_tables(read_input(tmp_path / "fb").tables)
    target = target_for(neo4j_server)
    counts: LoadCounts = target.load_graph(graph)
    assert counts.relationships["transfer"] == graph.edges["transfer"].height
    ids = graph.edges["drawdown"].get_column("drawdown_id")
    flows = Config().flows
    python = min_hops_to_banned(graph, ids, window_days=flows.window_days, max_hops=flows.max_hops)
    reached = python.filter(pl.col("min_hops_to_banned").is_not_null())
    assert reached.height > 0, "the FinBench sample must route some loans into brokerage"
    sample = pl.concat(
        [
            reached.sample(min(25, reached.height), seed=1),
            python.filter(pl.col("min_hops_to_banned").is_null()).sample(10, seed=2),
        ]
    )
    text = cypher.load_query("fund_flow_trace").text
    for drawdown_id, hops in sample.iter_rows():
        frame = target.run_query(
            text, {"drawdown_id": drawdown_id, "window_days": 30.0, "max_hops": 6, "as_of": None}
        )
        assert (frame["min_hops"].min() if frame.height else None) == hops, drawdown_id
