"""Neo4j Browser on the launcher's HTTP port, with graphkit's guide, style sheet and deep links.

A real server (auth on, as investigators run it) serves the Browser and the guide; headless
Chromium opens a ``customer_360`` deep link, logs in, runs it and must show the customer's row.
The screenshots are kept as test artifacts in ``test-artifacts/`` at the repository root (or
``$GRAPHKIT_TEST_ARTIFACTS``): ``browser-customer_360.png``, ``browser-alert-customer_360.png``.
"""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from urllib.parse import unquote

import neo4j
import polars as pl
import pytest

import cypher
from graphkit.browser import (
    STYLE_FILE,
    customer_link,
    graph_style,
    guide_url,
    prefilled,
    tier_label,
    write_guides,
)
from graphkit.config import Config
from graphkit.schema import TIERS
from graphkit.store.neo4j_server import Neo4jServer
from tests.chromium_cdp import Chromium

pytestmark = pytest.mark.neo4j

PASSWORD = "browser-Pa55"
CUSTOMER = {"customer_id": "C0000367", "name": "Acme Trading Ltd", "kind": "enterprise"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jServer]:
    guides = write_guides(tmp_path_factory.mktemp("guides"), Config().to_dict())
    with Neo4jServer().start(
        password=PASSWORD,
        http_port=0,
        guides_dir=guides,
        heap="768m",
        pagecache="64m",
        timeout=600,
    ) as running:
        with neo4j.GraphDatabase.driver(running.uri, auth=running.auth) as driver:
            driver.execute_query(
                "CREATE (c:Customer:Enterprise) SET c = $props, c.tier = 'red', "
                "c.risk_score = 0.91",
                props=CUSTOMER,
            )
        yield running


def get(url: str, password: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if password is not None:
        token = base64.b64encode(f"neo4j:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_browser_page_and_guides_are_served_with_bolt_auth(server: Neo4jServer) -> None:
    assert server.http_url is not None and server.http_url.startswith("http://127.0.0.1:")
    status, page = get(f"{server.http_url}/browser/")
    assert status == 200 and "<title>Neo4j Browser</title>" in page
    # Discovery tells the Browser where Bolt is.
    status, discovery = get(f"{server.http_url}/")
    assert status == 200 and server.uri in discovery
    # The HTTP API is behind the same password as Bolt.
    assert get(f"{server.http_url}/db/neo4j/tx")[0] == 401
    assert get(f"{server.http_url}/db/neo4j/tx", "wrong")[0] == 401
    assert get(f"{server.http_url}/dbms/", PASSWORD)[0] != 401
    status, style = get(f"{server.http_url}/graphkit/{STYLE_FILE}")
    assert status == 200 and style == graph_style()
    # Only plain file names of the guides directory are served.
    # (Jetty itself refuses an encoded slash; the resource refuses any other name.)
    for name in ("..%2F..%2Fetc%2Fpasswd", "missing.html", "..grass", "library.html.bak"):
        status, body = get(f"{server.http_url}/graphkit/{name}")
        assert status in (400, 404) and "root:" not in body, name


def test_guide_lists_every_query_file(server: Neo4jServer) -> None:
    status, guide = get(guide_url(server.http_url or ""))
    assert status == 200
    files_on_disk = sorted(
        entry.name.removesuffix(".cypher")
        for entry in (files("cypher") / "investigate").iterdir()
        if entry.name.endswith(".cypher")
    )
    assert len(files_on_disk) >= 10
    slides = re.findall(r'<slide class="row-fluid" data-query="(\w+)">', guide)
    assert slides == files_on_disk
    runnable_block = re.compile(r'<pre class="pre-scrollable code runnable">(.*?)</pre>', re.S)
    with neo4j.GraphDatabase.driver(server.uri, auth=server.auth) as driver:
        for name in files_on_disk:
            query = cypher.load_query(name)
            start = guide.index(f'data-query="{name}"')
            slide = guide[start : guide.index("</slide>", start)]
            assert html.escape(query.purpose) in slide
            blocks = runnable_block.findall(slide)
            drawing = cypher.load_drawing(name)
            assert len(blocks) == 1 + (drawing is not None), name
            for block, shown in zip(blocks, [query, drawing], strict=False):
                runnable = html.unescape(block)
                # Prefilled: no parameter is left for the Browser to ask for ...
                assert runnable.split("\n", 1)[0] == f"// graphkit {name}"
                assert not re.search(r"\$\w", runnable), name
                # ... and runnable as it is: the server accepts it (read-only).
                records, _, _ = driver.execute_query(runnable, routing_="r")
                assert all(tuple(r.keys()) == shown.columns for r in records), name


def test_deep_link_literals_cannot_change_the_query(server: Neo4jServer) -> None:
    hostile = '"}) DETACH DELETE n // \\" \' \n\r&#;中😀 $customer_id \\u0022 \u2028 \\\\u000a'
    with neo4j.GraphDatabase.driver(server.uri, auth=server.auth) as driver:
        driver.execute_query("CREATE (:Customer {customer_id: $id, name: 'hostile'})", id=hostile)
        query = cypher.load_query("customer_360")
        text = prefilled(query, {"customer_id": hostile})
        records, _, _ = driver.execute_query(text, routing_="r")
        assert [r["customer_id"] for r in records] == [hostile]
        count, _, _ = driver.execute_query("MATCH (c:Customer) RETURN count(c) AS n")
        assert count[0]["n"] == 2
        driver.execute_query("MATCH (c:Customer {customer_id: $id}) DELETE c", id=hostile)
    # The link carries no character the Browser's URL parsing would cut the argument at.
    link = customer_link(hostile, "http://127.0.0.1:7474", "bolt://127.0.0.1:7687")
    arg = unquote(link.split("&arg=", 1)[1])
    assert "&" not in arg and "#" not in arg and hostile not in arg


def test_style_sheet_colours_tiers_and_captions_names() -> None:
    style = graph_style()
    for tier in TIERS:
        assert f"node.{tier_label(tier)} {{" in style
    assert "node.Customer {" in style and "caption: '{name}';" in style
    # Tier rules come after the Customer rule: a customer's tier label decides its colour.
    assert style.index("node.Customer {") < style.index(f"node.{tier_label('red')} {{")
    assert "relationship.GUARANTEES {\n  shaft-width: 4px;\n  caption: '{amount}';" in style


def open_logged_in(page: Chromium, server: Neo4jServer, link: str, customer_id: str) -> None:
    """Open ``link``, check the editor holds the query for ``customer_id``, log in and wait for
    the library guide the server plays after connecting."""
    page.navigate(link)
    # The connection frame, pre-filled with the Bolt address from the link.
    page.wait_for("!!document.querySelector('[data-testid=\"connect\"]')", what="login")
    address = page.evaluate("document.querySelector('[data-testid=\"boltaddress\"]').value")
    assert address == server.uri.removeprefix("bolt://")
    editor = page.evaluate("document.querySelector('[data-testid=\"activeEditor\"]').innerText")
    assert "customer_id" in editor and customer_id in editor
    for field, value in (("username", "neo4j"), ("password", PASSWORD)):
        page.evaluate(f"document.querySelector('[data-testid=\"{field}\"]').focus()")
        page.send("Input.insertText", text=value)
    # Connected: the server's post-connect commands play graphkit's guide. (A click that
    # lands while a busy machine still lays the page out is lost: click again.)
    guide_shown = 'document.body.innerText.includes("the investigators\' Cypher library")'
    for _ in range(3):
        if page.evaluate("!!document.querySelector('[data-testid=\"connect\"]')"):
            page.click('[data-testid="connect"]')
        if page.wait_for(guide_shown, timeout=30, what="login", fail=False):
            break
    page.wait_for(guide_shown, what="the library guide played after connecting")


def run_and_find(page: Chromium, text: str, what: str) -> list[str]:
    """Run the editor's query; the result frame's cells once one of them holds ``text``."""
    page.click('[data-testid="editor-Run"]')
    return page.wait_for(
        "(() => { const cells = Array.from(document.querySelectorAll("
        '\'[data-testid="frameContents"] td, [data-testid="frameContents"] pre\'))'
        ".map(e => e.innerText); "
        f"return cells.some(t => t.includes({json.dumps(text)})) ? cells : null; }})()",
        what=what,
    )


@pytest.mark.browser
def test_headless_chromium_runs_customer_360_from_a_deep_link(
    server: Neo4jServer, tmp_path: Path, artifacts_dir: Path
) -> None:
    assert server.http_url is not None
    link = customer_link(CUSTOMER["customer_id"], server.http_url, server.uri)
    with Chromium(tmp_path / "chromium") as page:
        open_logged_in(page, server, link, CUSTOMER["customer_id"])
        shown = run_and_find(page, "Acme Trading Ltd", "the customer_360 row in a result frame")
        assert any("C0000367" in cell for cell in shown)
        shot = page.screenshot(artifacts_dir / "browser-customer_360.png")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_links_are_built_from_a_configurable_host() -> None:
    from typer.testing import CliRunner

    from cli import app
    from graphkit.browser import drawdown_link, guide_link

    host, bolt = "http://risk-neo4j.example:7474", "bolt://risk-neo4j.example:7687"
    link = drawdown_link("D000003", 7.5, 3, host, bolt)
    base, query = link.split("?", 1)
    assert base == f"{host}/browser/"
    fields = dict(part.split("=", 1) for part in query.split("&"))
    assert fields["connectURL"] == bolt and fields["cmd"] == "edit"
    text = unquote(fields["arg"])
    trace = cypher.load_query("fund_flow_trace")
    assert text == prefilled(trace, {"drawdown_id": "D000003", "window_days": 7.5, "max_hops": 3})
    assert '{drawdown_id: "D000003"}' in text and "duration({days: 7.5})" in text
    shown = CliRunner().invoke(app, ["cypher", "browser", "--http", host, "--neo4j", bolt])
    # The Browser connecting to the server (which plays the guide after login), then the guide.
    assert shown.exit_code == 0
    assert shown.stdout.splitlines() == [f"{host}/browser/?connectURL={bolt}", guide_url(host)]
    assert guide_link(host, bolt).endswith(f"cmd=play&arg={host}/graphkit/library.html")


@pytest.mark.browser
def test_the_link_in_alerts_csv_opens_customer_360_of_that_customer(
    server: Neo4jServer, tmp_path: Path, artifacts_dir: Path
) -> None:
    """A run with write-back into the Browser's server, configured with its addresses: the
    customer_360 link of a banned-share alert in alerts.csv, opened in headless Chromium, shows
    that customer's row; its fund_flow_trace link holds the drawdown the alert names."""
    from graphkit.alerts import read_alerts
    from graphkit.pipeline import run_pipeline
    from graphkit.store.neo4j import Neo4jTarget
    from tests.test_cypher_library import random_tables
    from tests.test_neo4j_store import write_input

    assert server.http_url is not None
    config = Config()
    config.neo4j.browser_url, config.neo4j.bolt_uri = server.http_url, server.uri
    config.alerts.banned_share = 0.01
    source = write_input(random_tables(), tmp_path / "in")
    user, password = server.auth or (None, None)
    target = Neo4jTarget(server.uri, user=user, password=password)
    stages = ["circles", "rings", "flows", "alerts"]
    run_pipeline(source, tmp_path / "run", config, neo4j=target, stages=stages)
    alerts = read_alerts(tmp_path / "run").filter(pl.col("fund_flow_trace_link").is_not_null())
    row = alerts.sort("customer_id").row(0, named=True)
    link = customer_link(row["customer_id"], server.http_url, server.uri)
    assert row["customer_360_link"] == link
    assert f'{{drawdown_id: "{row["evidence_drawdown"]}"}}' in unquote(row["fund_flow_trace_link"])
    name = f"name {row['customer_id']}"
    with Chromium(tmp_path / "chromium") as page:
        open_logged_in(page, server, row["customer_360_link"], row["customer_id"])
        shown = run_and_find(page, name, "the alerted customer's customer_360 row")
        assert any(row["customer_id"] in cell for cell in shown)
        shot = page.screenshot(artifacts_dir / "browser-alert-customer_360.png")
    assert shot.read_bytes().startswith(b"\x89PNG")
