"""Neo4j mirrors the input with history, on the real server (issue 17, item 4).

Input A, then input B in which guarantees changed amount, device links ended, customers left
(with everything that referenced them), a customer was renamed, a credit limit changed and a
customer joined. After loading B the current graph equals B exactly (counts and every property,
against the frames); the graph as of a date before B equals A exactly (nodes with A's
properties); the library queries read the current graph by default and A's facts with ``as_of``;
a second load of B changes nothing by the server's own counters; and going back to A reopens
what had left while B stays readable as of its dates.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import neo4j
import polars as pl
import pytest

import cypher
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.store.neo4j import Neo4jStoreError, Neo4jTarget, keyed_frames
from tests.test_cypher_library import random_tables
from tests.test_neo4j_store import expected_counts, target_for

pytestmark = pytest.mark.neo4j

T_A = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
T_B = datetime(2026, 2, 3, 14, 0, tzinfo=UTC)
T_C = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BEFORE_B = date(2026, 1, 20)
LEFT = ("C010", "C011", "C012")
RENAMED = "C001"
CHANGED_LINE = "L000"
JOINED = "C900"


def _without_customers(tables: dict[str, pl.DataFrame], gone: tuple[str, ...]) -> dict:
    """``tables`` without the customers ``gone`` and every row that refers to them."""
    t = dict(tables)
    out = pl.col("customer_id").is_in(gone)
    lines = t["credit_lines"].filter(out)["line_id"].to_list()
    accounts = t["accounts"].filter(pl.col("owner_id").is_in(gone))["account_id"].to_list()
    t["customers"] = t["customers"].filter(~out)
    t["labels"] = t["labels"].filter(~out)
    t["device_links"] = t["device_links"].filter(~out)
    t["credit_lines"] = t["credit_lines"].filter(~out)
    t["accounts"] = t["accounts"].filter(~pl.col("owner_id").is_in(gone))
    t["drawdowns"] = t["drawdowns"].filter(
        ~pl.col("line_id").is_in(lines) & ~pl.col("account_id").is_in(accounts)
    )
    t["repayments"] = t["repayments"].filter(~pl.col("line_id").is_in(lines))
    t["transfers"] = t["transfers"].filter(
        ~pl.col("src_account").is_in(accounts) & ~pl.col("dst_account").is_in(accounts)
    )
    t["guarantees"] = t["guarantees"].filter(
        ~pl.col("guarantor_id").is_in(gone) & ~pl.col("borrower_id").is_in(gone)
    )
    t["shareholdings"] = t["shareholdings"].filter(
        ~pl.col("holder_id").is_in(gone) & ~pl.col("company_id").is_in(gone)
    )
    return t


def history_inputs() -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """Input A (the cypher library's random network) and input B, A evolved."""
    a = random_tables()
    b = _without_customers(a, LEFT)
    guarantees = b["guarantees"].with_row_index("i")
    b["guarantees"] = guarantees.with_columns(
        amount=pl.when(pl.col("i") < 6).then(pl.col("amount") * 2).otherwise(pl.col("amount"))
    ).drop("i")
    b["device_links"] = b["device_links"].slice(5)
    b["customers"] = pl.concat(
        [
            b["customers"].with_columns(
                name=pl.when(pl.col("customer_id") == RENAMED)
                .then(pl.lit("renamed Ltd."))
                .otherwise(pl.col("name"))
            ),
            b["customers"].head(1).with_columns(customer_id=pl.lit(JOINED), name=pl.lit("new")),
        ]
    )
    b["credit_lines"] = b["credit_lines"].with_columns(
        limit=pl.when(pl.col("line_id") == CHANGED_LINE)
        .then(pl.col("limit") + 1.0)
        .otherwise(pl.col("limit"))
    )
    return a, b


@pytest.fixture(scope="module")
def graphs() -> tuple[RiskGraph, RiskGraph]:
    a, b = history_inputs()
    return RiskGraph.from_tables(a), RiskGraph.from_tables(b)


def _totals(driver: neo4j.Driver) -> tuple[int, int]:
    records, _, _ = driver.execute_query(
        "MATCH (n) WITH count(n) AS n MATCH ()-[r]->() RETURN n, count(r) AS r"
    )
    return records[0]["n"], records[0]["r"]


def run(target: Neo4jTarget, name: str, **raw: str) -> pl.DataFrame:
    query = cypher.load_query(name)
    values = cypher.convert_params(query, cypher.default_values(query, Config().to_dict()) | raw)
    return target.run_query(query.text, values)


def test_load_mirrors_b_keeps_a_as_history_and_reloads_nothing(
    neo4j_driver, neo4j_server, graphs
) -> None:
    a, b = graphs
    target = target_for(neo4j_server, batch_size=50)
    first = target.load_graph(a, as_of=T_A)
    assert first.nodes_closed == first.relationships_closed == first.node_versions == 0

    second = target.load_graph(b, as_of=T_B)
    # What changed: customers left (and their lines and accounts), renamed / re-limited nodes.
    assert second.nodes_closed >= len(LEFT)
    assert second.node_versions == 2  # RENAMED's name, CHANGED_LINE's limit
    assert second.relationships_closed > 0 and second.relationships_created > 0

    # The current graph is B exactly: counts per label and type, every node and relationship
    # with every property, against the frames.
    assert target.read_graph_counts() == expected_counts(b)
    assert target.read_graph(b).equals(keyed_frames(b))
    # As of a date before B (and B's own date, end of day), the graph is A (resp. B) exactly.
    assert target.read_graph(a, as_of=BEFORE_B).equals(keyed_frames(a))
    assert target.read_graph(a, as_of=date(2026, 2, 2)).equals(keyed_frames(a))
    assert target.read_graph(b, as_of=T_B.date()).equals(keyed_frames(b))
    before_a = target.read_graph(a, as_of=date(2026, 1, 4))
    assert all(f.height == 0 for f in [*before_a.nodes.values(), *before_a.edges.values()])

    # The history itself: closed, never deleted.
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (c:Customer) WHERE c.customer_id IN $left RETURN c.valid_to AS t",
        left=list(LEFT),
    )
    assert [r["t"].to_native() for r in records] == [T_B] * len(LEFT)
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (:Customer {customer_id: $c})-[g:GUARANTEES]->() "
        "RETURN g.amount AS amount, g.valid_from AS since, g.valid_to AS until",
        c=a.keys("Customer")[
            a.edges["guarantees"].get_column("src")[0]
        ],  # the guarantor of the first (changed) guarantee
    )
    by_interval = {(r["since"].to_native(), r["until"] and r["until"].to_native()) for r in records}
    assert (T_A, T_B) in by_interval and (T_B, None) in by_interval

    # A second load of B changes nothing: the server's counters over every statement are zero,
    # and so are the database's totals (history included).
    totals = _totals(neo4j_driver)
    again = target.load_graph(b, as_of=datetime(2026, 2, 10, tzinfo=UTC))
    assert (again.nodes_created, again.relationships_created) == (0, 0)
    assert (again.properties_set, again.labels_added, again.node_versions) == (0, 0, 0)
    assert (again.nodes_closed, again.relationships_closed, again.changes) == (0, 0, 0)
    assert _totals(neo4j_driver) == totals

    # Loads only go forward.
    with pytest.raises(Neo4jStoreError, match="older than the latest load"):
        target.load_graph(a, as_of=T_A)

    # Going back to A reopens what had left (a new interval, the gap kept) and B stays readable.
    back = target.load_graph(a, as_of=T_C)
    assert back.node_versions >= len(LEFT) + 2
    assert target.read_graph(a).equals(keyed_frames(a))
    assert target.read_graph(b, as_of=date(2026, 2, 20)).equals(keyed_frames(b))
    assert target.read_graph(a, as_of=BEFORE_B).equals(keyed_frames(a))


def test_library_reads_current_by_default_and_a_with_as_of(
    neo4j_driver, neo4j_server, graphs
) -> None:
    a_graph, b_graph = graphs
    a, b = history_inputs()
    target = target_for(neo4j_server, batch_size=200)
    target.load_graph(a_graph, as_of=T_A)
    target.load_graph(b_graph, as_of=T_B)
    before = BEFORE_B.isoformat()

    # A customer that left: nothing now, A's facts as of before B.
    gone = LEFT[0]
    assert run(target, "customer_360", customer_id=gone).height == 0
    row = run(target, "customer_360", customer_id=gone, as_of=before).row(0, named=True)
    links = a["device_links"].filter(pl.col("customer_id") == gone)
    assert row["devices"] == sorted(links["device_id"])
    given = a["guarantees"].filter(pl.col("guarantor_id") == gone)
    assert sorted((g["borrower_id"], g["amount"]) for g in row["guarantees_given"]) == sorted(
        zip(given["borrower_id"], given["amount"], strict=True)
    )

    # Guarantees whose amount changed, links that ended, a renamed customer, a changed limit.
    for customer in a["customers"]["customer_id"]:
        if customer in LEFT:
            continue
        for tables, as_of in ((b, None), (a, before)):
            params = {"customer_id": customer} | ({"as_of": as_of} if as_of else {})
            row = run(target, "customer_360", **params).row(0, named=True)
            given = tables["guarantees"].filter(pl.col("guarantor_id") == customer)
            assert sorted(
                (g["borrower_id"], g["amount"]) for g in row["guarantees_given"]
            ) == sorted(zip(given["borrower_id"], given["amount"], strict=True)), customer
            links = tables["device_links"].filter(pl.col("customer_id") == customer)
            assert row["devices"] == sorted(links["device_id"]), customer
            name = tables["customers"].filter(pl.col("customer_id") == customer)["name"][0]
            assert row["name"] == name
            lines = tables["credit_lines"].filter(pl.col("customer_id") == customer)
            assert row["total_limit"] == pytest.approx(lines["limit"].sum())
    assert run(target, "customer_360", customer_id=JOINED, as_of=before).height == 0
    assert run(target, "customer_360", customer_id=JOINED).height == 1

    # Every library query accepts as_of (header-declared, optional, default null).
    for query in cypher.list_queries():
        declared = {p.name: p for p in query.params}
        assert declared["as_of"].optional and declared["as_of"].default == "null", query.name
        required = {
            p.name: p.example
            for p in query.params
            if not p.optional and p.default is None and p.name != "as_of"
        }
        current = run(target, query.name, **required)
        past = run(target, query.name, **required, as_of=before)
        assert tuple(current.columns) == tuple(past.columns) == query.columns


def test_cli_load_as_of_and_cypher_run_as_of(neo4j_driver, neo4j_server, tmp_path) -> None:
    from typer.testing import CliRunner

    import cli
    from tests.test_neo4j_store import write_input

    a, b = history_inputs()
    runner = CliRunner()
    env = {"NEO4J_URI": neo4j_server.uri}
    for tables, as_of in ((a, "2026-01-05"), (b, "2026-02-03T14:00:00+08:00")):
        source = write_input(tables, tmp_path / as_of[:10])
        loaded = runner.invoke(cli.app, ["load", str(source), "--as-of", as_of], env=env)
        assert loaded.exit_code == 0, loaded.output
    assert "closed" in loaded.output and "load time" in loaded.output
    older = runner.invoke(cli.app, ["load", str(source), "--as-of", "2026-01-31", "-q"], env=env)
    assert older.exit_code == 1 and "older than the latest load" in older.output
    malformed = runner.invoke(cli.app, ["load", str(source), "--as-of", "last week"], env=env)
    assert malformed.exit_code == 2 and "--as-of" in malformed.output

    def devices(*extra: str) -> list[str]:
        args = ["cypher", "run", "customer_360", "-p", f"customer_id={LEFT[0]}", *extra]
        shown = runner.invoke(cli.app, [*args, "--format", "json"], env=env)
        assert shown.exit_code == 0, shown.output
        rows = json.loads(shown.stdout)
        return [row["devices"] for row in rows]

    expected = sorted(a["device_links"].filter(pl.col("customer_id") == LEFT[0])["device_id"])
    assert devices() == []
    assert devices("-p", "as_of=2026-02-02") == [expected]
    bad = runner.invoke(
        cli.app, ["cypher", "run", "customer_360", "-p", "customer_id=C000", "-p", "as_of=x"]
    )
    assert bad.exit_code == 2 and "expected date" in bad.output
