"""Injection and secrets.

* Ids and names holding Cypher syntax, quotes, backticks, braces, ``$param``, backslashes,
  newlines and Chinese round-trip verbatim through the loaders, the embedded snapshot, the run
  outputs and Neo4j (loaded, then read back with the library's ``customer_360`` query, in
  process and through ``graphkit cypher run``); the injected ``DETACH DELETE`` never runs.
* No Cypher query text is built by string formatting from data or user input: a scan of every
  ``.py`` under graphkit/, loaders/, gnn/ and cli.py (:mod:`tests.cypher_scan`), itself tested on
  planted violations and on a mutated copy of the real store; every ``.cypher`` file uses
  ``$params`` exactly as its header declares and holds no template placeholder.
* The Neo4j password never appears in stdout, stderr, log lines, the run directory (manifest,
  outputs, snapshot), exceptions or reprs: with the right password, a wrong one, a password flag
  and credentials inside the URI.

The module runs its own password-protected server.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import neo4j
import polars as pl
import pytest
from typer.testing import CliRunner

import cli
import cypher
from graphkit.graph import RiskGraph
from graphkit.store.embedded import load_snapshot, save_snapshot
from graphkit.store.neo4j import Neo4jStoreError, Neo4jTarget
from graphkit.store.neo4j_server import Neo4jServer
from loaders.sources import read_input
from tests.cypher_scan import scan_source, scan_tree
from tests.neo4j_fixture import wipe_database

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SECRET = "Gk-s3cret-Pa55word-7Q"
WRONG = "Wr0ng-Pa55word-Zx"
SCANNED = ("graphkit", "loaders", "gnn", "cli.py")

HOSTILE_IDS = [
    "x'}) DETACH DELETE n //",
    '"',
    'quote"inside',
    "line\nbreak",
    "`",
    "``x`) MATCH (m) DETACH DELETE m //",
    "$param",
    "{braces}",
    "张三实业有限公司",
    "back\\slash",
    "MATCH (n) DETACH DELETE n",
    " leading space",
    "';-- drop",
]
DEVICE = "dev'}) MERGE (x:Pwned) //"


def _name(customer_id: str) -> str:
    return f"名称 {customer_id} \"'`{{}}$x"


def _write_csv(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Customers with hostile ids in one guarantee circle, with accounts, lines and a device
    ring (three customers on one hostile device id); guarantees as Parquet, the rest CSV."""
    directory = tmp_path_factory.mktemp("hostile") / "in"
    directory.mkdir()
    ids = HOSTILE_IDS
    _write_csv(
        directory / "customers.csv",
        [["customer_id", "kind", "name"], *[[c, "enterprise", _name(c)] for c in ids]],
    )
    _write_csv(
        directory / "accounts.csv", [["account_id", "owner_id"], *[[f"acct {c}", c] for c in ids]]
    )
    _write_csv(
        directory / "credit_lines.csv",
        [
            ["line_id", "customer_id", "limit"],
            *[[f"L {c}", c, 1000 + i] for i, c in enumerate(ids)],
        ],
    )
    _write_csv(
        directory / "device_links.csv",
        [["customer_id", "device_id"], *[[c, DEVICE] for c in ids[:3]]],
    )
    pl.DataFrame(
        {
            "guarantor_id": ids,
            "borrower_id": ids[1:] + ids[:1],
            "amount": [100.0 + i for i in range(len(ids))],
        }
    ).write_parquet(directory / "guarantees.parquet")
    return directory


def test_hostile_ids_round_trip_through_loaders_and_snapshot(
    hostile_dir: Path, tmp_path: Path
) -> None:
    tables = read_input(hostile_dir).tables
    assert tables["customers"].get_column("customer_id").to_list() == HOSTILE_IDS
    assert tables["customers"].get_column("name").to_list() == [_name(c) for c in HOSTILE_IDS]
    assert tables["device_links"].get_column("device_id").to_list() == [DEVICE] * 3
    graph = RiskGraph.from_tables(tables)
    save_snapshot(graph, tmp_path / "snapshot")
    again = load_snapshot(tmp_path / "snapshot")
    for label, frame in graph.nodes.items():
        assert again.nodes[label].equals(frame), label
    assert again.keys("Customer").to_list() == HOSTILE_IDS
    assert again.keys("Device").to_list() == [DEVICE]


def test_hostile_ids_round_trip_through_run_outputs(hostile_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli.app,
        ["run", str(hostile_dir), "--out", str(out), "--stage", "circles", "--stage", "rings"],
    )
    assert result.exit_code == 0, result.output
    circles = pl.read_parquet(out / "circles.parquet")
    assert sorted(circles.get_column("customer_id").to_list()) == sorted(HOSTILE_IDS)
    assert circles.get_column("circle_id").n_unique() == 1
    rings = pl.read_parquet(out / "rings.parquet")
    assert sorted(rings.get_column("customer_id").to_list()) == sorted(HOSTILE_IDS[:3])
    customers = pl.read_parquet(out / "snapshot" / "nodes" / "Customer.parquet")
    assert customers.get_column("customer_id").to_list() == HOSTILE_IDS
    json.loads((out / "manifest.json").read_text())


# --- the server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("neo4j-auth") / "home"


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Neo4jServer]:
    """A password-protected server of this module's own."""
    server = Neo4jServer().start(data_dir=home, password=SECRET, heap="512m", pagecache="64m")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def empty(server: Neo4jServer) -> Neo4jServer:
    with neo4j.GraphDatabase.driver(server.uri, auth=server.auth) as driver:
        wipe_database(driver)
    return server


@pytest.mark.neo4j
def test_hostile_ids_round_trip_through_neo4j(hostile_dir: Path, empty: Neo4jServer) -> None:
    graph = RiskGraph.from_tables(read_input(hostile_dir).tables)
    target = Neo4jTarget(empty.uri, password=SECRET, batch_size=4)
    target.load_graph(graph)
    counts = target.read_graph_counts()
    assert counts["nodes"]["Customer"] == len(HOSTILE_IDS)
    assert counts["nodes"]["Device"] == 1
    assert "Pwned" not in counts["nodes"]
    assert counts["relationships"]["GUARANTEES"] == len(HOSTILE_IDS)

    query = cypher.load_query("customer_360")
    for i, customer in enumerate(HOSTILE_IDS):
        rows = target.run_query(query.text, {"customer_id": customer, "as_of": None})
        assert rows.height == 1, customer
        row = rows.row(0, named=True)
        assert row["customer_id"] == customer
        assert row["name"] == _name(customer)
        assert row["accounts"] == [f"acct {customer}"]
        assert row["devices"] == ([DEVICE] if i < 3 else [])
        assert [g["borrower_id"] for g in row["guarantees_given"]] == [
            HOSTILE_IDS[(i + 1) % len(HOSTILE_IDS)]
        ]
        assert [line["line_id"] for line in row["lines"]] == [f"L {customer}"]
    assert target.read_graph_counts() == counts  # the reads changed nothing

    for customer in (HOSTILE_IDS[0], HOSTILE_IDS[5]):
        result = CliRunner().invoke(
            cli.app,
            [
                "cypher",
                "run",
                "customer_360",
                "--param",
                f"customer_id={customer}",
                "--format",
                "json",
                "--neo4j",
                empty.uri,
            ],
            env={"NEO4J_PASSWORD": SECRET},
        )
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        assert [r["customer_id"] for r in rows] == [customer]
        assert SECRET not in result.output


# --- the code scan -------------------------------------------------------------------------

PLANTED = {
    "f-string from a parameter": """
def find(session, customer_id):
    return session.run(f"MATCH (c:Customer {{customer_id: '{customer_id}'}}) RETURN c")
""",
    "percent formatting": """
def find(session, name):
    return session.run("MATCH (n) WHERE n.name = '%s' RETURN n" % name)
""",
    "str.format from argv": """
import sys
def find(session):
    label = sys.argv[1]
    return session.run("MATCH (n:{}) RETURN n".format(label))
""",
    "concatenation": """
def find(session, user_id):
    return session.run("MATCH (n) WHERE n.id = '" + user_id + "' RETURN n")
""",
    "a local once safe, once data": """
def find(session, rows):
    label = "Customer"
    if rows:
        label = rows[0]["label"]
    return session.run(f"MATCH (n:{label}) RETURN count(n)")
""",
    "a helper called with data": """
def _count(session, label):
    return session.run(f"MATCH (n:{label}) RETURN count(n)")
def outer(session, frame):
    for value in frame.get_column("kind").to_list():
        _count(session, value)
""",
    "half quoted": """
def q(label, value):
    return f"MATCH (n:{_q(label)}) WHERE n.x = '{value}' RETURN n"
""",
    "a fragment helper called with data": """
def props(var):
    return f" SET {var} += row.p"
def use(frame):
    return props(frame.columns[0])
""",
}

CLEAN = """
NODES = {}
def _q(name):
    return "`" + name.replace("`", "``") + "`"
def props(var):
    return f" SET {var} += row.p"
def use():
    return props("n")
def count(session, labels):
    for (label,) in labels:
        session.run(f"MATCH (n:{_q(label)}) RETURN count(n)")
    for name, spec in NODES.items():
        keys = ", ".join(f"n.{_q(k)}" for k in spec.keys)
        session.run(f"MATCH (n:{_q(name)}) WHERE n.{_q(spec.key)} IN $keys RETURN {keys}")
"""


@pytest.mark.parametrize("snippet", list(PLANTED.values()), ids=list(PLANTED))
def test_scanner_catches_planted_violations(snippet: str) -> None:
    violations = scan_source(snippet, "graphkit/store/neo4j.py")
    assert violations, "the scanner missed a query built from data"
    assert all("not quoted with _q" in v.reason for v in violations)


def test_scanner_accepts_quoted_schema_identifiers_only_in_the_store() -> None:
    assert scan_source(CLEAN, "graphkit/store/neo4j.py") == []
    elsewhere = scan_source(CLEAN, "graphkit/analytics/circles.py")
    assert len(elsewhere) == 3
    assert {v.reason for v in elsewhere} == {"Cypher built outside the store"}


def test_scanner_catches_an_unquoted_label_in_the_real_store() -> None:
    """The store reads labels from the database and quotes them; unquoting one is caught."""
    source = (REPO / "graphkit" / "store" / "neo4j.py").read_text(encoding="utf-8")
    assert scan_source(source, "graphkit/store/neo4j.py") == []
    quoted = 'f"MATCH (n:{_q(label)}) WHERE n.{VALID_TO} IS NULL RETURN count(n)"'
    assert source.count(quoted) == 1
    mutated = source.replace(
        quoted, 'f"MATCH (n:{label}) WHERE n.{VALID_TO} IS NULL RETURN count(n)"'
    )
    violations = scan_source(mutated, "graphkit/store/neo4j.py")
    assert [v.reason for v in violations] == [
        "interpolates 'label', not quoted with _q or a constant"
    ]


def test_no_query_is_built_from_data_or_user_input() -> None:
    violations, files, builders = scan_tree(REPO, SCANNED)
    assert violations == [], "\n".join(map(str, violations))
    assert files >= 30
    assert builders >= 10  # the store's queries were found and checked


# Python format fields ({name}, {{ name }}), printf (%s, %(name)s), shell/JS (${...}), Jinja.
_TEMPLATE = re.compile(r"\{\s*[A-Za-z_]\w*\s*\}|%s|%\(\w+\)s|\$\{|<%|\{%")
_PARAM_USE = re.compile(r"\$(\w+)")


def test_cypher_files_use_declared_params_and_no_templates() -> None:
    queries = cypher.list_queries()
    assert len(queries) >= 10
    for query in queries:
        body = "\n".join(
            line for line in query.text.splitlines() if not line.lstrip().startswith("//")
        )
        assert not _TEMPLATE.search(body), (query.name, _TEMPLATE.search(body))
        assert set(_PARAM_USE.findall(body)) == {p.name for p in query.params}, query.name
    schema = cypher.schema_text()
    assert not _TEMPLATE.search(schema)


# --- secrets -------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    return {**env, "PYTHONPATH": str(REPO), "COLUMNS": "200", **extra}


def _graphkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = REPO / ".venv" / "bin" / "graphkit"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "import cli; cli.main()"]
    return subprocess.run(
        [*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


def _files_holding(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    ]


@pytest.mark.neo4j
def test_password_never_appears_in_a_run_with_neo4j(
    empty: Neo4jServer, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = _graphkit(
        "run",
        str(SAMPLE),
        "--out",
        str(out),
        "--neo4j",
        empty.uri,
        "--set",
        "gnn.enabled=false",
        env=_env(NEO4J_PASSWORD=SECRET),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["neo4j"]["auth"] is True
    assert manifest["neo4j_write_back"]["customers"] == 2000
    assert _files_holding(out, SECRET) == []
    logs = home / "logs"
    if logs.is_dir():
        assert _files_holding(logs, SECRET) == []


@pytest.mark.neo4j
def test_password_never_appears_when_it_is_wrong(
    server: Neo4jServer, hostile_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    attempts = [
        _graphkit(
            "run",
            str(hostile_dir),
            "--out",
            str(out),
            "--neo4j",
            server.uri,
            env=_env(NEO4J_PASSWORD=WRONG),
        ),
        _graphkit("load", str(hostile_dir), "--neo4j", server.uri, "--password", WRONG, env=_env()),
    ]
    for done in attempts:
        output = done.stdout + done.stderr
        assert done.returncode in (1, 2, 3), output
        assert "Traceback" not in output
        assert WRONG not in output and SECRET not in output
    flat = " ".join((attempts[0].stdout + attempts[0].stderr).split())
    assert "rejected the credentials" in flat
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.neo4j
def test_password_never_appears_in_exceptions_or_reprs(
    server: Neo4jServer, hostile_dir: Path
) -> None:
    graph = RiskGraph.from_tables(read_input(hostile_dir).tables)
    target = Neo4jTarget(server.uri, password=WRONG, max_retries=0)
    assert WRONG not in repr(target) and WRONG not in json.dumps(target.describe())
    with pytest.raises(Neo4jStoreError) as info:
        target.load_graph(graph)
    text = "".join(traceback.format_exception(info.value))
    assert WRONG not in text and WRONG not in repr(info.value)
    assert SECRET not in repr(server)


@pytest.mark.neo4j
def test_password_inside_the_uri_never_appears(server: Neo4jServer, hostile_dir: Path) -> None:
    with_credentials = server.uri.replace("bolt://", f"bolt://neo4j:{WRONG}@")
    embedded = Neo4jTarget(with_credentials, max_retries=0)
    assert WRONG not in json.dumps(embedded.describe()) and WRONG not in repr(embedded)
    done = _graphkit("load", str(hostile_dir), "--neo4j", with_credentials, env=_env())
    output = done.stdout + done.stderr
    assert done.returncode in (1, 2, 3) and "Traceback" not in output
    assert WRONG not in output
    graph = RiskGraph.from_tables(read_input(hostile_dir).tables)
    with pytest.raises(Neo4jStoreError) as info:
        embedded.load_graph(graph)
    assert WRONG not in "".join(traceback.format_exception(info.value))
