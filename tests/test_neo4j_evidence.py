"""The alerts' evidence written back to the real Neo4j server, drawn as paths.

After a run's write-back, ``fund_flow_trace`` of each banned-share alert's drawdown returns the
run's evidence paths, and their transfers are ``flow_paths.parquet``'s exactly (ids in order);
``alert_evidence`` draws the flow paths, the guarantee cycles and the shared devices; customers
carry their tier as a label; re-writing a run changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import neo4j
import polars as pl
import pytest

import cypher
from graphkit.alerts import parse_policy
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.pipeline import (
    RunContext,
    alerts_stage,
    circles_stage,
    flows_stage,
    rings_stage,
    write_back,
)
from graphkit.schema import TIERS, tier_label
from graphkit.store.neo4j import Neo4jTarget
from tests.test_cypher_library import random_tables, scores_for

pytestmark = pytest.mark.neo4j


def evidence_run(graph: RiskGraph, out_dir: Path, scores_seed: int) -> RunContext:
    config = Config()
    # Low thresholds, so that the small random graph fires every rule that has evidence.
    config.alerts.banned_share = 0.01
    policy = parse_policy({"budget": {"mode": "absolute"}})
    ctx = RunContext(graph=graph, config=config, out_dir=out_dir, policy=policy)
    for stage in (circles_stage, rings_stage, flows_stage):
        stage(ctx)
    ctx.results.scores = scores_for(graph, scores_seed)
    alerts_stage(ctx)
    return ctx


def snapshot(driver: neo4j.Driver) -> dict[str, object]:
    """Every Alert and Evidence node's properties and every edge around them."""
    nodes, _, _ = driver.execute_query(
        "MATCH (n) WHERE n:Alert OR n:Evidence "
        "RETURN labels(n) AS labels, properties(n) AS props ORDER BY n.customer_id, n.evidence_id"
    )
    edges, _, _ = driver.execute_query(
        "MATCH (a)-[r:ALERTED|EVIDENCE|ON_PATH]->(b) "
        "RETURN type(r) AS type, properties(r) AS props, elementId(a) AS a, elementId(b) AS b "
        "ORDER BY type, a, b, props.step"
    )
    return {
        "nodes": [(sorted(r["labels"]), r["props"]) for r in nodes],
        "edges": [(r["type"], r["props"], r["a"], r["b"]) for r in edges],
    }


def transfers(path: neo4j.graph.Path) -> list[str]:
    return [r["transfer_id"] for r in path.relationships if r.type == "TRANSFER"]


def test_fund_flow_trace_returns_the_runs_evidence_paths(neo4j_driver, neo4j_server, tmp_path):
    graph = RiskGraph.from_tables(random_tables())
    user, password = neo4j_server.auth or (None, None)
    target = Neo4jTarget(neo4j_server.uri, user=user, password=password, batch_size=50)
    target.load_graph(graph)
    ctx = evidence_run(graph, tmp_path, scores_seed=1)
    counts = write_back(target, ctx, run_id="r1")

    rows = ctx.results.alert_rows
    flow_alerts = rows.filter(pl.col("evidence_drawdown").is_not_null())
    drawdowns = flow_alerts.get_column("evidence_drawdown").unique().sort().to_list()
    assert len(drawdowns) >= 3, "the random graph must route some alerted money into banned sinks"
    paths = ctx.outputs["flow_paths.parquet"]
    flows = ctx.config.flows
    trace = cypher.load_query("fund_flow_trace")
    compared = 0
    for drawdown_id in drawdowns:
        records, _, _ = neo4j_driver.execute_query(
            trace.text,
            drawdown_id=drawdown_id,
            window_days=flows.window_days,
            max_hops=flows.max_hops,
            as_of=None,
        )
        assert records, drawdown_id
        drawn: list[tuple[str, int, list[str]]] = []
        for record in records:
            # `path` draws shortest_path: the drawdown's line, its transfers, the sink's sector.
            path = record["path"]
            assert isinstance(path, neo4j.graph.Path)
            assert transfers(path) == record["shortest_path"]
            assert path.relationships[0].type == "DRAWDOWN"
            assert path.relationships[0]["drawdown_id"] == drawdown_id
            assert path.end_node["sector"] == record["sector"] and path.end_node["banned"]
            for evidence in record["evidence"]:
                assert isinstance(evidence, neo4j.graph.Path)
                assert evidence.nodes[-3]["account_id"] == record["account_id"]
                drawn.append((record["account_id"], transfers(evidence)))
        expected = (
            paths.filter(pl.col("drawdown_id") == drawdown_id)
            .sort("sink_account", "path_rank")
            .select("sink_account", "transfer_ids")
        )
        assert expected.height >= 1
        # Every evidence path of the drawdown, with its transfers in order, and nothing else.
        assert sorted(drawn, key=lambda d: d[0]) == [
            (sink, list(ids)) for sink, ids in expected.iter_rows()
        ]
        compared += len(drawn)
    assert compared == counts.evidence - count_kinds(neo4j_driver, exclude="flow_path")

    # The alert's own view draws the same flow paths, and the cycles and devices of the others.
    customer = flow_alerts.get_column("customer_id")[0]
    drawdown_id = flow_alerts.get_column("evidence_drawdown")[0]
    records = alert_evidence(neo4j_driver, customer)
    flow = [r for r in records if r["kind"] == "flow_path"]
    mine = paths.filter(pl.col("drawdown_id") == drawdown_id).sort("path_rank")
    assert [transfers(r["path"]) for r in flow] == [list(ids) for ids in mine["transfer_ids"]]
    assert all(r["path"].start_node["customer_id"] == customer for r in flow)
    check_cycles(neo4j_driver, ctx)
    check_rings(neo4j_driver, ctx)
    check_tier_labels(neo4j_driver, ctx.results.scores)

    # Writing the same run again changes nothing; a later run replaces the evidence and labels.
    before = snapshot(neo4j_driver)
    assert write_back(target, ctx, run_id="r1") == counts
    assert snapshot(neo4j_driver) == before
    later = evidence_run(graph, tmp_path, scores_seed=2)
    write_back(target, later, run_id="r2")
    check_tier_labels(neo4j_driver, later.results.scores)
    stale, _, _ = neo4j_driver.execute_query(
        "MATCH (n) WHERE (n:Alert OR n:Evidence) AND n.run_id <> 'r2' RETURN count(n) AS n"
    )
    assert stale[0]["n"] == 0


def count_kinds(driver: neo4j.Driver, exclude: str) -> int:
    records, _, _ = driver.execute_query(
        "MATCH (e:Evidence) WHERE e.kind <> $kind RETURN count(e) AS n", kind=exclude
    )
    return records[0]["n"]


def alert_evidence(driver: neo4j.Driver, customer_id: str) -> list[neo4j.Record]:
    query = cypher.load_query("alert_evidence")
    records, _, _ = driver.execute_query(query.text, customer_id=customer_id, as_of=None)
    assert all(tuple(r.keys()) == query.columns for r in records)
    return records


def check_cycles(driver: neo4j.Driver, ctx: RunContext) -> None:
    """Each circle-default alert draws up to three listed cycles through its customer."""
    rows = ctx.results.alert_rows.filter(pl.col("rules").str.contains("circle_default"))
    customers = rows.get_column("customer_id").unique().sort().to_list()
    assert customers, "the random graph must have a circle with a defaulted member"
    membership = ctx.results.circle_membership
    summary = ctx.results.circle_summary
    for customer in customers:
        circle = membership.filter(pl.col("customer_id") == customer)["circle_id"][0]
        listed = summary.filter(pl.col("circle_id") == circle)["cycles"][0].to_list()
        expected = [cycle for cycle in listed if customer in cycle][:3]
        drawn = [r for r in alert_evidence(driver, customer) if r["kind"] == "guarantee_cycle"]
        got = []
        for record in drawn:
            path = record["path"]
            assert {r.type for r in path.relationships} == {"GUARANTEES"}
            assert path.start_node == path.end_node
            got.append([n["customer_id"] for n in path.nodes[:-1]])
        assert got == expected, customer


def check_rings(driver: neo4j.Driver, ctx: RunContext) -> None:
    """A ring alert draws each shared device of its ring with the ring members using it."""
    from graphkit.analytics.rings import ring_devices

    rows = ctx.results.alert_rows.filter(pl.col("rules").str.contains(r"(^|,)ring(,|$)"))
    customer = rows.get_column("customer_id").sort()[0]
    ring = ctx.results.ring_membership.filter(pl.col("customer_id") == customer)["ring_id"][0]
    devices = ring_devices(ctx.graph, ctx.results.ring_membership).filter(pl.col("ring_id") == ring)
    drawn = [r for r in alert_evidence(driver, customer) if r["kind"] == "shared_devices"]
    assert {r["path"].start_node["device_id"] for r in drawn} <= set(devices["device_id"])
    members = set(
        ctx.results.ring_membership.filter(pl.col("ring_id") == ring)["customer_id"].to_list()
    )
    assert drawn and {r["path"].end_node["customer_id"] for r in drawn} <= members


def check_tier_labels(driver: neo4j.Driver, scores: pl.DataFrame) -> None:
    """Every customer carries exactly its tier's label."""
    records, _, _ = driver.execute_query(
        "MATCH (c:Customer) RETURN c.customer_id AS id, "
        "[l IN labels(c) WHERE l STARTS WITH 'Tier'] AS tiers"
    )
    labels = {r["id"]: r["tiers"] for r in records}
    expected = {c: [tier_label(t)] for c, t in scores.select("customer_id", "tier").iter_rows()}
    assert labels == expected
    assert {t for ts in labels.values() for t in ts} <= {tier_label(t) for t in TIERS}
