"""The Neo4j shop's way, measured beside the live engine in the same run (issues 14 and 15).

A bank without graphkit keeps its risk graph in Neo4j and answers from it with the Cypher
library. This bench does exactly that on a fresh Neo4j server started here and times it against
:class:`graphkit.live.LiveState` on the same state and the same requests:

1. **Events** (issue 14's baseline): the sample's rows after the cut, in replay order. For each
   drawdown or transfer event the Neo4j shop MERGEs the row and re-runs the library's
   ``fund_flow_trace`` for the drawdowns the event touches: the new drawdown itself, or, for a
   transfer, every open drawdown whose money has already reached the transfer's source account
   (read from the live engine's own index just before the event, so both sides do the work of
   exactly the same drawdowns; a Neo4j shop would need an extra query to find them, which is
   not charged). Other event types are applied to the live engine only (they carry no trace).
   Both sides are timed per event, wall clock, the live engine's apply in process, Neo4j's over
   Bolt on loopback.
2. **Decisions** (issue 15's baseline): the proposed drawdowns ``bench/serve.py`` sends. The
   Neo4j shop answers each with the library's ``customer_360`` (tier and scores from the
   write-back) plus the line's drawdowns in the trailing 24 hours (the five-a-day rule). The
   live engine answers with :meth:`LiveState.decide` (which also evaluates fund flows and
   recommends a limit), in process, and through the HTTP app's decision route (ASGI, no socket).

Ratios are Neo4j time over live time. Prints a table and writes
``bench/results/neo4j_baseline.json``.

Usage: ``.venv/bin/python bench/neo4j_baseline.py [--flow-events 3000] [--decisions 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cypher  # noqa: E402
from bench.common import print_table, write_result  # noqa: E402
from bench.serve import in_process_call, prepare  # noqa: E402
from graphkit.config import from_mapping  # noqa: E402
from graphkit.pipeline import load_graph  # noqa: E402
from graphkit.store.neo4j import Neo4jTarget  # noqa: E402
from graphkit.store.neo4j_server import Neo4jServer  # noqa: E402
from graphkit.store.neo4j_writeback import WriteBackInputs  # noqa: E402

MERGE_TRANSFER = (
    "MERGE (a:Account {account_id: $src}) MERGE (b:Account {account_id: $dst}) "
    "MERGE (a)-[t:TRANSFER {transfer_id: $id}]->(b) SET t.amount = $amount, t.ts = $ts"
)
MERGE_DRAWDOWN = (
    "MATCH (l:CreditLine {line_id: $line}) MERGE (a:Account {account_id: $account}) "
    "MERGE (l)-[d:DRAWDOWN {drawdown_id: $id}]->(a) SET d.amount = $amount, d.ts = $ts"
)
LINE_VELOCITY = (
    "MATCH (c:Customer)-[:HAS_LINE]->(l:CreditLine {line_id: $line}) "
    "OPTIONAL MATCH (l)-[d:DRAWDOWN]->() WHERE $since <= d.ts <= $ts "
    "RETURN c.customer_id AS customer_id, count(d) AS drawdowns_24h"
)
WARMUP = 50  # decisions answered before timing starts
# Only the live state's drawdowns and transfers are traced; the engine needs no more settings.
LIVE_CONFIG = {"live": {"max_lateness_seconds": 31536000.0}}


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _neo4j_decision_us(session: neo4j.Session, customer_360: str, request: dict[str, Any]) -> float:
    """Microseconds for Neo4j to answer one proposed drawdown as a Neo4j shop would: the line's
    drawdowns of the last 24 hours, then ``customer_360`` of its customer."""
    ts = _ts(request["ts"])
    started = time.perf_counter()
    row = session.run(
        LINE_VELOCITY, line=request["line_id"], since=ts - timedelta(days=1), ts=ts
    ).single()
    if row is not None:
        session.run(customer_360, customer_id=row["customer_id"], as_of=None).data()
    return (time.perf_counter() - started) * 1e6


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "total_s": round(sum(ordered) / 1e6, 3),
        "mean_us": round(statistics.fmean(ordered), 1),
        "p50_us": round(pick(0.5), 1),
        "p99_us": round(pick(0.99), 1),
    }


def load_neo4j(server: Neo4jServer, run_dir: Path, input_dir: Path) -> None:
    """The batch input and the run's results in Neo4j, as ``graphkit neo4j load`` and the
    write-back would put them."""
    graph, _ = load_graph(input_dir)
    target = Neo4jTarget(server.uri)
    target.load_graph(graph)
    alerts = pl.read_parquet(run_dir / "customer_alerts.parquet")
    target.write_back(
        WriteBackInputs(
            graph=graph,
            circle_membership=pl.read_parquet(run_dir / "circles.parquet"),
            ring_membership=pl.read_parquet(run_dir / "rings.parquet"),
            cluster_membership=pl.read_parquet(run_dir / "clusters.parquet"),
            contagion=pl.read_parquet(run_dir / "contagion.parquet"),
            scores=alerts.select("customer_id", "risk_score", "tier"),
        )
    )


def events_side_by_side(
    session: neo4j.Session, state: Any, events: list[dict[str, Any]], flow_events: int
) -> dict[str, Any]:
    """Apply ``events`` in order to both; time the drawdowns and transfers on both sides."""
    trace_query = cypher.load_query("fund_flow_trace").text
    window, hops = state.config.flows.window_days, state.config.flows.max_hops
    live_us: dict[str, list[float]] = {"drawdown": [], "transfer": []}
    neo_us: dict[str, list[float]] = {"drawdown": [], "transfer": []}
    traces_rerun = 0
    timed = 0
    for event in events:
        kind = event["type"]
        if kind not in live_us or timed >= flow_events:
            state.apply(event)
            continue
        timed += 1
        ts = _ts(event["ts"])
        if kind == "transfer":
            # the open drawdowns whose money already reached the source (the engine's index:
            # trace numbers and hop counts by account)
            flows = state.flows
            table = flows.reach.get(event["src_account"])
            reaching = set(table.as_dict()) if table is not None else set()
            at = round(ts.timestamp() * 1e6)  # the engine's clock: microseconds
            touched = [
                trace.drawdown_id
                for uid in reaching & flows.alive
                if (trace := flows.by_uid[uid]).t0 <= at <= trace.end
            ]
        else:
            touched = [event["drawdown_id"]]
        started = time.perf_counter()
        result = state.apply(event)
        live_us[kind].append((time.perf_counter() - started) * 1e6)
        if result.status != "applied":
            touched = []
        started = time.perf_counter()
        if kind == "transfer":
            session.run(
                MERGE_TRANSFER,
                src=event["src_account"],
                dst=event["dst_account"],
                id=event["transfer_id"],
                amount=float(event["amount"]),
                ts=ts,
            ).consume()
        else:
            session.run(
                MERGE_DRAWDOWN,
                line=event["line_id"],
                account=event["account_id"],
                id=event["drawdown_id"],
                amount=float(event["amount"]),
                ts=ts,
            ).consume()
        for drawdown_id in touched:
            session.run(
                trace_query,
                drawdown_id=drawdown_id,
                window_days=window,
                max_hops=hops,
                as_of=None,
            ).data()
        traces_rerun += len(touched)
        neo_us[kind].append((time.perf_counter() - started) * 1e6)
    live_all = live_us["drawdown"] + live_us["transfer"]
    neo_all = neo_us["drawdown"] + neo_us["transfer"]
    return {
        "flow_events": timed,
        "traces_rerun_by_neo4j": traces_rerun,
        "live": {k: _percentiles(v) for k, v in live_us.items()} | {"all": _percentiles(live_all)},
        "neo4j": {k: _percentiles(v) for k, v in neo_us.items()} | {"all": _percentiles(neo_all)},
        "ratio_total_time": round(sum(neo_all) / max(sum(live_all), 1e-9), 1),
    }


async def decisions_side_by_side(
    session: neo4j.Session, service: Any, app: Any, requests: list[bytes], count: int
) -> dict[str, Any]:
    """The same proposed drawdowns answered by Neo4j (Cypher) and by the live engine."""
    customer_360 = cypher.load_query("customer_360").text
    state = service.current()
    decoded = [json.loads(r) for r in requests[: count + WARMUP]]
    neo, live, http = [], [], []
    for index, (body, request) in enumerate(zip(requests, decoded, strict=False)):
        neo.append(_neo4j_decision_us(session, customer_360, request))
        started = time.perf_counter()
        state.decide(request)
        live.append((time.perf_counter() - started) * 1e6)
        started = time.perf_counter()
        status = await in_process_call(app, "/v1/decisions/drawdown", body)
        http.append((time.perf_counter() - started) * 1e6)
        assert status == 200, status
        if index < WARMUP:  # query plans cached, code paths warm, on both sides
            for timings in (neo, live, http):
                timings.clear()
    return {
        "decisions": len(neo),
        "neo4j": _percentiles(neo),
        "live_engine": _percentiles(live),
        "live_http_app": _percentiles(http),
        "ratio_engine": round(sum(neo) / max(sum(live), 1e-9), 1),
        "ratio_http_app": round(sum(neo) / max(sum(http), 1e-9), 1),
    }


def decisions_neo4j_vs_service(
    port: int, run_dir: Path, requests: list[bytes], count: int, heap: str = "1g"
) -> dict[str, Any]:
    """bench/serve.py's baseline: the same decision requests answered one at a time,
    alternately, by the Cypher library on a Neo4j server started here (holding the run's batch
    state) and by the ``graphkit serve`` process listening on ``port`` over HTTP (keep-alive),
    each timed as its client sees it (wall clock, client library included)."""
    import http.client

    customer_360 = cypher.load_query("customer_360").text
    input_dir = run_dir.parent / "prep" / "input"
    with Neo4jServer().start(heap=heap, pagecache="512m") as server:
        started = time.perf_counter()
        load_neo4j(server, run_dir, input_dir)
        load_seconds = time.perf_counter() - started
        quiet = {"notifications_min_severity": "OFF"}
        connection = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Content-Type": "application/json"}
        neo: list[float] = []
        http_us: list[float] = []
        with neo4j.GraphDatabase.driver(server.uri, **quiet) as driver, driver.session() as session:
            for index in range(count + WARMUP):
                body = requests[index % len(requests)]
                neo.append(_neo4j_decision_us(session, customer_360, json.loads(body)))
                started = time.perf_counter()
                connection.request("POST", "/v1/decisions/drawdown", body, headers)
                answer = connection.getresponse()
                answer.read()
                http_us.append((time.perf_counter() - started) * 1e6)
                assert answer.status == 200, answer.status
                if index < WARMUP:
                    neo.clear()
                    http_us.clear()
        connection.close()
    out = {
        "decisions": len(neo),
        "neo4j_load_seconds": round(load_seconds, 1),
        "neo4j": _percentiles(neo),
        "service_http": _percentiles(http_us),
        "ratio_p50": round(statistics.median(neo) / max(statistics.median(http_us), 1e-9), 1),
        "ratio_total_time": round(sum(neo) / max(sum(http_us), 1e-9), 1),
    }
    out["summary"] = (
        f"Neo4j p50 {out['neo4j']['p50_us']} us / p99 {out['neo4j']['p99_us']} us, service "
        f"p50 {out['service_http']['p50_us']} us / p99 {out['service_http']['p99_us']} us: "
        f"{out['ratio_p50']}x at p50, {out['ratio_total_time']}x in total time"
    )
    return out


async def measure(
    uri: str,
    run_dir: Path,
    work: Path,
    events: list[dict[str, Any]],
    requests: list[bytes],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both comparisons on one live service (one event loop, as the server runs it)."""
    from graphkit.serve import Service, create_app

    service = Service(run_dir, work, from_mapping(LIVE_CONFIG))
    app = create_app(service)
    await service.start()
    try:
        # the library's queries name write-back properties a run may not have: no warnings
        quiet = {"notifications_min_severity": "OFF"}
        with neo4j.GraphDatabase.driver(uri, **quiet) as driver, driver.session() as session:
            decisions = await decisions_side_by_side(
                session, service, app, requests, args.decisions
            )
            flows = events_side_by_side(session, service.current(), events, args.flow_events)
    finally:
        await service.stop()
    return decisions, flows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flow-events", type=int, default=3000, help="drawdowns + transfers")
    parser.add_argument("--decisions", type=int, default=1000)
    args = parser.parse_args()
    run_dir, events, requests = prepare("sample")
    input_dir = run_dir.parent / "prep" / "input"
    work = Path(tempfile.mkdtemp(prefix="neo4j-baseline-"))
    with Neo4jServer().start(heap="2g", pagecache="1g") as server:
        load_neo4j(server, run_dir, input_dir)
        decisions, flows = asyncio.run(measure(server.uri, run_dir, work, events, requests, args))
    rows = [
        [
            "decision (HTTP app)",
            decisions["decisions"],
            decisions["neo4j"]["p50_us"],
            decisions["live_http_app"]["p50_us"],
            decisions["neo4j"]["p99_us"],
            decisions["live_http_app"]["p99_us"],
            decisions["ratio_http_app"],
        ],
        [
            "decision (engine)",
            decisions["decisions"],
            decisions["neo4j"]["p50_us"],
            decisions["live_engine"]["p50_us"],
            decisions["neo4j"]["p99_us"],
            decisions["live_engine"]["p99_us"],
            decisions["ratio_engine"],
        ],
        [
            "drawdown + transfer events",
            flows["flow_events"],
            flows["neo4j"]["all"]["p50_us"],
            flows["live"]["all"]["p50_us"],
            flows["neo4j"]["all"]["p99_us"],
            flows["live"]["all"]["p99_us"],
            flows["ratio_total_time"],
        ],
    ]
    print_table(
        "Neo4j + Cypher library vs the live engine, same state, same requests (sample)",
        ["work", "n", "neo4j p50 µs", "live p50 µs", "neo4j p99 µs", "live p99 µs", "ratio"],
        rows,
    )
    path = write_result(
        "neo4j_baseline",
        {"size": "sample", "decisions": decisions, "events": flows, "method": __doc__},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
