"""Offline bulk import into Neo4j, checked on the real server against the RiskGraph it came from.

One import (module fixture) of a random graph plus hand-written awkward records, served by a
real ``Neo4jServer`` on the imported data directory; then exact counts per label and type, typed
property round trips, the constraints, and equivalence with the Bolt loader (merging the same
graph over Bolt must create nothing).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import neo4j
import numpy as np
import polars as pl
import pytest
from neo4j.exceptions import ConstraintError

from graphkit.graph import RiskGraph
from graphkit.schema import NODES, RELATIONSHIPS
from graphkit.store.neo4j import Neo4jTarget, keyed_frames, schema_statements
from graphkit.store.neo4j_bulk import (
    BulkImportError,
    BulkImportResult,
    bulk_import,
    database_dir,
)
from graphkit.store.neo4j_frames import _native
from graphkit.store.neo4j_server import Neo4jServer
from loaders.frames import make_tables

pytestmark = pytest.mark.neo4j

AWKWARD_NAME = 'Zhang "San" 张三, Ltd.\nline two'
CREATED = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
CAPITAL = 1 / 3
TINY = 5e-324
HUGE = 1e300


def _random_tables(customers: int, seed: int) -> dict[str, pl.DataFrame]:
    """A random graph touching every table and relationship, ids prefixed ``R``."""
    rng = np.random.default_rng(seed)
    ids = [f"RC{i:05d}" for i in range(customers)]
    kinds = rng.choice(["person", "enterprise"], customers)
    accounts = customers + 40
    account_owner = ids + [f"RM{i % 20:03d}" for i in range(40)]
    lines = customers
    n_draws, n_transfers, n_guarantees = 4 * customers, 6 * customers, customers
    epoch = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    g_src = rng.integers(0, customers, n_guarantees)
    g_dst = (g_src + rng.integers(1, customers, n_guarantees)) % customers
    holders = rng.choice(customers, 2 * customers // 3, replace=False)
    companies = (holders + 1) % customers
    device_of = rng.integers(0, customers // 3, customers)
    return make_tables(
        customers={
            "customer_id": ids,
            "kind": kinds,
            "name": [f"客户 {i}" for i in range(customers)],
            "registered_capital": rng.lognormal(12, 1, customers),
            "created_at": [
                datetime.fromtimestamp(epoch - s, UTC) for s in rng.integers(0, 10**8, customers)
            ],
        },
        sectors={
            "sector": ["S-OK", "S-BAN"],
            "name": ["retail", "securities"],
            "banned": [False, True],
        },
        merchants={
            "merchant_id": [f"RM{i:03d}" for i in range(20)],
            "sector": ["S-BAN" if i % 5 == 0 else "S-OK" for i in range(20)],
        },
        accounts={"account_id": [f"RA{i:05d}" for i in range(accounts)], "owner_id": account_owner},
        credit_lines={
            "line_id": [f"RL{i:05d}" for i in range(lines)],
            "customer_id": ids,
            "limit": rng.integers(1, 100, lines) * 10_000.0,
        },
        drawdowns={
            "drawdown_id": [f"RD{i:06d}" for i in range(n_draws)],
            "line_id": [f"RL{i:05d}" for i in rng.integers(0, lines, n_draws)],
            "account_id": [f"RA{i:05d}" for i in rng.integers(0, accounts, n_draws)],
            "amount": rng.integers(1, 10**6, n_draws) / 100,
            "ts": [datetime.fromtimestamp(epoch + s, UTC) for s in rng.integers(0, 10**7, n_draws)],
            "channel": rng.choice(["app", "web", "branch"], n_draws),
            "device_id": [f"RV{i:04d}" for i in rng.integers(0, customers // 3, n_draws)],
        },
        transfers={
            "transfer_id": [f"RT{i:06d}" for i in range(n_transfers)],
            "src_account": [f"RA{i:05d}" for i in rng.integers(0, accounts, n_transfers)],
            "dst_account": [f"RA{i:05d}" for i in rng.integers(0, accounts, n_transfers)],
            "amount": rng.integers(1, 10**6, n_transfers) / 100,
            "ts": [
                datetime.fromtimestamp(epoch + s, UTC) for s in rng.integers(0, 10**7, n_transfers)
            ],
        },
        guarantees={
            "guarantor_id": [ids[i] for i in g_src],
            "borrower_id": [ids[i] for i in g_dst],
            "amount": rng.integers(1, 100, n_guarantees) * 1000.0,
        },
        shareholdings={
            "holder_id": [ids[i] for i in holders],
            "company_id": [ids[i] for i in companies],
            "share": rng.uniform(0.01, 1.0, holders.size),
        },
        device_links={"customer_id": ids, "device_id": [f"RV{i:04d}" for i in device_of]},
        labels={
            "customer_id": ids[::2],
            "defaulted": rng.random(len(ids[::2])) < 0.1,
            "default_date": [date(2024, 6, 1)] * len(ids[::2]),
        },
    )


def _awkward_tables() -> dict[str, pl.DataFrame]:
    """Hand-written records with the values a CSV round trip gets wrong, ids prefixed ``X``."""
    return make_tables(
        customers={
            "customer_id": ["X-1", "X-2", "X-3", "X-4", "X-5"],
            "kind": ["enterprise", "person", "person", "enterprise", "enterprise"],
            "name": [AWKWARD_NAME, "", None, "  padded  ", "inf"],
            "registered_capital": [CAPITAL, TINY, None, HUGE, math.inf],
            "created_at": [CREATED, None, CREATED, CREATED, None],
        },
        guarantees={
            # Two identical guarantees between one pair: two relationships, told apart by
            # row_key exactly as the Bolt loader does.
            "guarantor_id": ["X-1", "X-1", "X-2"],
            "borrower_id": ["X-2", "X-2", "X-1"],
            "amount": [250_000.0, 250_000.0, 0.1],
            "start": [date(2024, 1, 1), date(2024, 1, 1), None],
        },
        labels={"customer_id": ["X-1"], "defaulted": [True], "default_date": [date(2025, 3, 1)]},
    )


def _combined_tables() -> dict[str, pl.DataFrame]:
    random, awkward = _random_tables(150, seed=20261129), _awkward_tables()
    return {
        name: pl.concat([random[name], awkward[name]], how="vertical_relaxed") for name in random
    }


@pytest.fixture(scope="module")
def graph() -> RiskGraph:
    return RiskGraph.from_tables(_combined_tables())


@pytest.fixture(scope="module")
def imported(
    graph: RiskGraph, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, BulkImportResult]:
    data_dir = tmp_path_factory.mktemp("bulk") / "home"
    result = bulk_import(graph, data_dir, heap="512m", max_memory="256m", pagecache="64m")
    return data_dir, result


@pytest.fixture(scope="module")
def server(imported: tuple[Path, BulkImportResult]) -> Iterator[Neo4jServer]:
    with Neo4jServer().start(data_dir=imported[0], heap="512m", pagecache="64m") as running:
        yield running


@pytest.fixture
def driver(server: Neo4jServer) -> Iterator[neo4j.Driver]:
    with neo4j.GraphDatabase.driver(server.uri, auth=server.auth) as connection:
        yield connection


def test_result_counts_match_the_graph(
    graph: RiskGraph, imported: tuple[Path, BulkImportResult]
) -> None:
    data_dir, result = imported
    assert result.nodes == {label: graph.n(label) for label in graph.nodes}
    assert result.relationships == {name: graph.edges[name].height for name in RELATIONSHIPS}
    # The nodes of the graph and the one GraphLoad record of the load.
    assert result.imported_nodes == sum(graph.n(label) for label in graph.nodes) + 1
    assert result.imported_relationships == sum(f.height for f in graph.edges.values())
    assert result.schema_statements == len(schema_statements())
    assert database_dir(data_dir).is_dir()
    # The CSV scratch directory is gone.
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".bulk-csv-")]


def test_counts_per_label_and_type(graph: RiskGraph, driver: neo4j.Driver) -> None:
    kinds = graph.nodes["Customer"].get_column("kind")
    expected_labels = {label: graph.n(label) for label in graph.nodes}
    expected_labels["Person"] = int((kinds == "person").sum())
    expected_labels["Enterprise"] = int((kinds == "enterprise").sum())
    expected_labels["GraphLoad"] = 1
    records, _, _ = driver.execute_query(
        "MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n"
    )
    assert {r["label"]: r["n"] for r in records} == {k: v for k, v in expected_labels.items() if v}
    assert not any(spec.derived and spec.label in expected_labels for spec in NODES.values())

    expected_patterns: dict[tuple[str, str, str], int] = {}
    for name, spec in RELATIONSHIPS.items():
        if graph.edges[name].height:
            expected_patterns[(spec.src, spec.type, spec.dst)] = graph.edges[name].height
    # Customer nodes carry a second label; the pattern names the endpoints by their key label.
    records, _, _ = driver.execute_query(
        "MATCH (a)-[r]->(b) "
        "WITH [l IN labels(a) WHERE NOT l IN ['Person', 'Enterprise']][0] AS src, "
        "type(r) AS type, [l IN labels(b) WHERE NOT l IN ['Person', 'Enterprise']][0] AS dst "
        "RETURN src, type, dst, count(*) AS n"
    )
    assert {(r["src"], r["type"], r["dst"]): r["n"] for r in records} == expected_patterns
    assert len(expected_patterns) == len(RELATIONSHIPS)  # the graph exercises every relationship


def test_awkward_values_round_trip_with_their_types(driver: neo4j.Driver) -> None:
    records, _, _ = driver.execute_query(
        "MATCH (c:Customer) WHERE c.customer_id STARTS WITH 'X-' "
        "RETURN c.customer_id AS id, labels(c) AS labels, c AS node ORDER BY id"
    )
    by_id = {r["id"]: r for r in records}
    first = by_id["X-1"]["node"]
    assert first["name"] == AWKWARD_NAME
    assert isinstance(first["registered_capital"], float)
    assert first["registered_capital"] == CAPITAL
    assert isinstance(first["created_at"], neo4j.time.DateTime)
    assert first["created_at"].to_native() == CREATED
    assert first["defaulted"] is True
    assert first["default_date"] == neo4j.time.Date(2025, 3, 1)
    assert sorted(by_id["X-1"]["labels"]) == ["Customer", "Enterprise"]
    assert sorted(by_id["X-2"]["labels"]) == ["Customer", "Person"]

    second = by_id["X-2"]["node"]
    assert second["name"] == ""  # an empty string stays one, unlike a null
    assert second["registered_capital"] == TINY
    assert "created_at" not in second
    third = by_id["X-3"]["node"]
    assert "name" not in third and "registered_capital" not in third
    assert by_id["X-4"]["node"]["name"] == "  padded  "
    assert by_id["X-4"]["node"]["registered_capital"] == HUGE
    assert by_id["X-5"]["node"]["registered_capital"] == math.inf

    records, _, _ = driver.execute_query(
        "MATCH (:Customer {customer_id: 'X-1'})-[g:GUARANTEES]->(:Customer {customer_id: 'X-2'}) "
        "RETURN g.row_key AS key, g.amount AS amount, g.start AS start ORDER BY key"
    )
    assert [r["key"] for r in records] == ["250000.0|2024-01-01||1", "250000.0|2024-01-01||2"]
    assert all(
        r["amount"] == 250_000.0 and r["start"] == neo4j.time.Date(2024, 1, 1) for r in records
    )


def test_whole_graph_reads_back_equal(graph: RiskGraph, server: Neo4jServer) -> None:
    read = Neo4jTarget(uri=server.uri).read_graph(graph)
    expected = keyed_frames(graph)
    for label, frame in expected.nodes.items():
        assert read.nodes[label].equals(frame), label
    for name, frame in expected.edges.items():
        assert read.edges[name].equals(frame), name


def test_constraints_exist_and_hold(driver: neo4j.Driver) -> None:
    wanted = {
        re.match(r"CREATE (?:CONSTRAINT|INDEX) (\S+)", s).group(1) for s in schema_statements()
    }
    records, _, _ = driver.execute_query("SHOW INDEXES YIELD name, state")
    states = {r["name"]: r["state"] for r in records}
    assert wanted <= set(states)
    assert all(states[name] == "ONLINE" for name in wanted)
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name, type")
    assert {r["name"] for r in records} == {n for n in wanted if n.endswith("_unique")}
    with pytest.raises(ConstraintError):
        driver.execute_query("CREATE (:Customer {customer_id: 'X-1'})")


def test_bolt_load_over_bulk_import_creates_nothing(graph: RiskGraph, server: Neo4jServer) -> None:
    # Runs last among the server tests: it rewrites every property (with the same values).
    counts = Neo4jTarget(uri=server.uri, batch_size=5_000).load_graph(graph)
    assert counts.nodes_created == 0
    assert counts.relationships_created == 0
    # Nothing at all: no property written, no label added, nothing closed or versioned.
    assert counts.changes == 0, counts


def test_refuses_an_existing_database(graph: RiskGraph, tmp_path: Path) -> None:
    store = database_dir(tmp_path)
    store.mkdir(parents=True)
    (store / "neostore").write_bytes(b"not ours to delete")
    with pytest.raises(BulkImportError, match="overwrite"):
        bulk_import(graph, tmp_path)
    assert (store / "neostore").read_bytes() == b"not ours to delete"


def test_missing_launcher_tells_how_to_build(graph: RiskGraph, tmp_path: Path) -> None:
    with pytest.raises(BulkImportError, match="make neo4j"):
        bulk_import(graph, tmp_path / "home", home=tmp_path / "nowhere")
    assert not database_dir(tmp_path / "home").exists()


def test_overwrite_replaces_the_database(tmp_path: Path) -> None:
    small = RiskGraph.from_tables(_awkward_tables())
    store = database_dir(tmp_path)
    store.mkdir(parents=True)
    (store / "stale-file").write_bytes(b"old")
    result = bulk_import(small, tmp_path, overwrite=True, create_schema=False, max_memory="128m")
    assert result.imported_nodes == small.n("Customer") + 1  # and the GraphLoad record
    assert result.imported_relationships == small.edges["guarantees"].height
    assert result.schema_statements == 0 and result.schema_seconds == 0
    assert not (store / "stale-file").exists()
    assert (store / "neostore").exists()


def test_cli_load_bulk_needs_data_and_refuses_an_existing_database(
    imported: tuple[Path, BulkImportResult],
) -> None:
    from typer.testing import CliRunner

    import cli

    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    runner = CliRunner()
    missing = runner.invoke(cli.app, ["load", str(sample), "--bulk"])
    assert missing.exit_code == 2 and "--data" in missing.output
    refused = runner.invoke(
        cli.app, ["load", str(sample), "--bulk", "--data", str(imported[0]), "--quiet"]
    )
    assert refused.exit_code == 1
    assert "--overwrite" in refused.output


def _dump(driver: neo4j.Driver) -> tuple[list[str], list[str]]:
    """Every node (labels, properties) and relationship (type, endpoints', own properties) of
    the database as sorted text; a GraphLoad record by its time only."""

    def text(value: object) -> str:
        return json.dumps(_native(value), sort_keys=True, default=str, ensure_ascii=False)

    def node(labels: list[str], props: dict) -> str:
        if "GraphLoad" in labels:
            props = {"as_of": props["as_of"]}
        return text([sorted(labels), props])

    records, _, _ = driver.execute_query("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
    nodes = sorted(node(r["l"], r["p"]) for r in records)
    records, _, _ = driver.execute_query(
        "MATCH (a)-[r]->(b) RETURN type(r) AS t, labels(a) AS la, properties(a) AS a, "
        "labels(b) AS lb, properties(b) AS b, properties(r) AS p"
    )
    relationships = sorted(
        text([r["t"], node(r["la"], r["a"]), node(r["lb"], r["b"]), r["p"]]) for r in records
    )
    return nodes, relationships


def test_bulk_then_bolt_history_agrees_with_bolt_only(tmp_path: Path) -> None:
    """A first load by bulk import then an incremental Bolt load writes the same history as
    two Bolt loads: the same nodes, versions, relationships and intervals, element for element."""
    from tests.neo4j_fixture import wipe_database
    from tests.test_neo4j_history import BEFORE_B, T_A, T_B, history_inputs

    a, b = (RiskGraph.from_tables(t) for t in history_inputs())
    data_dir = tmp_path / "home"
    bulk_import(a, data_dir, as_of=T_A, heap="512m", max_memory="256m", pagecache="64m")
    with (
        Neo4jServer().start(data_dir=data_dir, heap="512m", pagecache="64m") as server,
        neo4j.GraphDatabase.driver(server.uri) as driver,
    ):
        target = Neo4jTarget(uri=server.uri, batch_size=100)
        assert target.read_graph(a).equals(keyed_frames(a))
        counts = target.load_graph(b, as_of=T_B)
        assert counts.nodes_closed and counts.relationships_closed and counts.node_versions
        assert target.read_graph(b).equals(keyed_frames(b))
        assert target.read_graph(a, as_of=BEFORE_B).equals(keyed_frames(a))
        assert target.load_graph(b).changes == 0
        bulk_then_bolt = _dump(driver)

        wipe_database(driver)
        target.load_graph(a, as_of=T_A)
        target.load_graph(b, as_of=T_B)
        assert _dump(driver) == bulk_then_bolt
