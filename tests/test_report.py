"""The run report: self-contained, escaped, every section present; renders in headless Chromium
with no console errors and no network request."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.pipeline import RunContext, alerts_stage, report_stage, run_pipeline
from graphkit.report import (
    TIER_COLOURS,
    ReportInputs,
    _member_edges,
    build_report,
    cluster_drawing,
)
from loaders.frames import make_tables

HOSTILE_NAME = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"


def sample_tables() -> dict[str, pl.DataFrame]:
    ids = [f"c{i}" for i in range(8)]
    return make_tables(
        customers={
            "customer_id": ids,
            "kind": ["enterprise"] * 8,
            "name": [HOSTILE_NAME, *[f"Firm {i} & Sons" for i in range(1, 8)]],
        },
        credit_lines={
            "line_id": [f"{c}-L" for c in ids],
            "customer_id": ids,
            "limit": [100_000.0] * 8,
        },
        accounts={"account_id": ["a0", "a1", "a2", "a4"], "owner_id": ["c0", "c1", "c2", "c4"]},
        transfers={
            "transfer_id": ["t1", "t2", "t3", "t4"],
            "src_account": ["a0", "a1", "a2", "a4"],
            "dst_account": ["a2", "a0", "a0", "a0"],
            "amount": [5.0] * 4,
            "ts": ["2025-03-05T00:00:00"] * 4,
        },
        drawdowns={
            "drawdown_id": [f"d{i}" for i in range(6)],
            "line_id": ["c0-L"] * 6,
            "account_id": ["a0"] * 6,
            "amount": [1000.0] * 6,
            "ts": ["2025-03-04T08:00:00"] * 6,
        },
        guarantees={
            "guarantor_id": ["c0", "c1", "c2", "c5"],
            "borrower_id": ["c1", "c0", "c3", "c6"],
            "amount": [1.0] * 4,
        },
        shareholdings={"holder_id": ["c3"], "company_id": ["c2"], "share": [0.6]},
        device_links={
            "customer_id": ["c0", "c2", "c3", "c4", "c7"],
            "device_id": ["dev", "dev", "dev", "other", "other"],
        },
        labels={"customer_id": ["c1"], "defaulted": [True]},
    )


def full_context(out_dir: Path) -> RunContext:
    graph = RiskGraph.from_tables(sample_tables())
    ctx = RunContext(graph=graph, config=Config(), out_dir=out_dir)
    ids = [f"c{i}" for i in range(8)]
    ctx.results.scores = pl.DataFrame(
        {
            "customer_id": ids,
            "contagion_score": np.linspace(0, 0.7, 8),
            "gnn_score": np.linspace(0.1, 1.0, 8),
            "risk_score": np.linspace(0.05, 0.95, 8),
            "tier": ["green"] * 8,
        }
    )
    ctx.results.circle_membership = pl.DataFrame({"customer_id": ["c0", "c1"], "circle_id": [1, 1]})
    ctx.results.ring_membership = pl.DataFrame(
        {"customer_id": ["c0", "c2", "c3"], "ring_id": [1, 1, 1]}
    )
    ctx.results.cluster_membership = pl.DataFrame(
        {"customer_id": ids, "cluster_id": [0, 0, 0, 0, 1, 1, 1, 2]}
    )
    ctx.results.cluster_risk = pl.DataFrame(
        {"cluster_id": [0, 1, 2], "size": [4, 3, 1], "risk_score": [0.8, 0.4, 0.1]}
    ).with_columns(tier=pl.Series(["red", "yellow", "green"]))
    ctx.results.flows = pl.DataFrame(
        {
            "drawdown_id": ["d0", "d1", "d2"],
            "amount": [1000.0, 1000.0, 1000.0],
            "banned_amount": [400.0, 200.0, 0.0],
            "banned_amount_3plus": [400.0, 0.0, 0.0],
            "banned_share": [0.4, 0.2, 0.0],
            "min_hops_to_banned": [3, 1, None],
            "banned_hop_0": [0.0, 0.0, 0.0],
            "banned_hop_1": [0.0, 200.0, 0.0],
            "banned_hop_2": [0.0, 0.0, 0.0],
            "banned_hop_3": [400.0, 0.0, 0.0],
        }
    )
    alerts_stage(ctx)
    return ctx


@pytest.fixture
def report(tmp_path: Path) -> Path:
    ctx = full_context(tmp_path)
    report_stage(ctx)
    return tmp_path / "report.html"


class Inventory(HTMLParser):
    """Every element, attribute and text chunk of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def inventory(html_text: str) -> Inventory:
    parser = Inventory()
    parser.feed(html_text)
    return parser


def test_report_is_self_contained(report: Path) -> None:
    doc = inventory(report.read_text())
    assert not {"script", "link", "img", "iframe", "object", "embed", "audio", "video"} & set(
        doc.tags
    )
    # The one kind of link allowed: a Neo4j Browser deep link, followed only when clicked.
    browser = f"{Config().neo4j.browser_url}/browser/?"
    fetching = [
        (t, k, v)
        for t, k, v in doc.attrs
        if k in ("src", "href", "srcset", "xlink:href")
        and not (t == "a" and k == "href" and v.startswith(browser))
    ]
    assert fetching == []
    assert [a for a in doc.attrs if a[1].startswith("on")] == []
    css = "".join(doc.styles)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css


def test_report_escapes_data(report: Path) -> None:
    text = report.read_text()
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in text
    assert "Firm 1 &amp; Sons" in text
    doc = inventory(text)
    assert HOSTILE_NAME in "".join(doc.text)  # the name reads back as text, not markup


def test_report_has_every_section_with_the_run_numbers(report: Path) -> None:
    doc = inventory(report.read_text())
    text = " ".join(doc.text)
    for heading in (
        "Customers by tier",
        "Most severe alerts",
        "Cluster size distribution",
        "Riskiest clusters",
        "Banned share by hop",
        "Score distributions",
        "Calibration of the scores",
        "Run parameters",
    ):
        assert heading in text
    assert "did not run" not in text
    # The fixture records no calibration: the risk score is said to be uncalibrated.
    assert "uncalibrated" in text and "the run recorded no calibration" in text
    # Banned share over the traced drawdowns: 600 of 3000 drawn = 20.0%.
    assert "600 (20.0%)" in text
    assert "66.7%" in text  # 400 of the 600 banned reached at >= 3 hops
    assert [t for t in doc.text if t.startswith("hop ")] == ["hop 0", "hop 1", "hop 2", "hop 3"]
    assert "13.3%" in text and "6.7%" in text  # by hop, as shares of all drawn money
    assert "flows.max_hops" in text and "alert policy.rule_tiers.burst" in text
    # One drawing per cluster (3 clusters), each with one circle per member.
    assert doc.tags.count("circle") == 8


def test_report_says_which_stages_did_not_run(tmp_path: Path) -> None:
    graph = RiskGraph.from_tables(sample_tables())
    text = build_report(ReportInputs(parameters={}, graph=graph))
    assert text.count("did not run") == 7  # six sections, and the scores' calibration
    assert "the clusters stage did not run" in text


def test_member_edges_match_brute_force() -> None:
    tables = sample_tables()
    graph = RiskGraph.from_tables(tables)
    members = ["c0", "c1", "c2", "c3"]
    ids = graph.ids("Customer", members)
    got = {(members[s], members[d], kind) for s, d, kind in _member_edges(graph, ids)}
    expected = {
        (g, b, "guarantees")
        for g, b in zip(
            tables["guarantees"]["guarantor_id"], tables["guarantees"]["borrower_id"], strict=True
        )
        if g in members and b in members
    }
    expected |= {
        (h, c, "holds_shares")
        for h, c in zip(
            tables["shareholdings"]["holder_id"], tables["shareholdings"]["company_id"], strict=True
        )
        if h in members and c in members
    }
    owner = dict(tables["accounts"].select("account_id", "owner_id").iter_rows())
    for src, dst in tables["transfers"].select("src_account", "dst_account").iter_rows():
        if owner[src] in members and owner[dst] in members and owner[src] != owner[dst]:
            a, b = sorted((owner[src], owner[dst]), key=members.index)
            expected.add((a, b, "transfer"))
    by_device: dict[str, list[str]] = {}
    for cust, dev in tables["device_links"].select("customer_id", "device_id").iter_rows():
        if cust in members:
            by_device.setdefault(dev, []).append(cust)
    for custs in by_device.values():
        for a, b in combinations(sorted(custs, key=members.index), 2):
            expected.add((a, b, "device"))
    assert got == expected


def test_cluster_drawing_is_svg_with_one_mark_per_member_and_tie() -> None:
    svg = cluster_drawing(4, [(0, 1, "guarantees"), (1, 2, "device")], ["#000"] * 4)
    doc = inventory(svg)
    assert (doc.tags.count("circle"), doc.tags.count("line")) == (4, 2)
    assert svg == cluster_drawing(4, [(0, 1, "guarantees"), (1, 2, "device")], ["#000"] * 4)
    single = inventory(cluster_drawing(1, [], ["#000"]))
    assert single.tags.count("circle") == 1


def test_every_run_has_a_report(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name, frame in sample_tables().items():
        if frame.height:
            frame.write_parquet(source / f"{name}.parquet")
    summary = run_pipeline(source, tmp_path / "run", Config(), stages=["alerts", "report"])
    run = summary.run_dir
    assert (run / "report.html").is_file()
    assert summary.manifest["alerts"]["tiers"] == {
        "green": 7,
        "yellow": 0,
        "orange": 1,
        "red": 0,
    }
    page = (run / "report.html").read_text()
    assert "Customers by tier" in page
    # Eight customers leave a 3% orange budget no place: the burst keeps its customer orange,
    # and manifest and report say it overflows the budget by one.
    assert summary.manifest["alerts"]["budget"]["orange"]["over"] == 1
    assert (
        "orange 1 of 0 places (1 kept by demanding rules, <strong>1 over the budget</strong>)"
        in page
    )


# -- headless Chromium ---------------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed: apt-get update && apt-get install -y chromium")
    return path


def render(page: Path, work: Path, *mode: str) -> tuple[str, str, list[str]]:
    """Open ``page`` headless; returns stdout, stderr and the URLs the page itself requested."""
    work.mkdir(parents=True, exist_ok=True)
    profile = work / f"profile-{len(list(work.iterdir()))}"
    net_log = profile.with_suffix(".netlog.json")
    done = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={net_log}",
            "--window-size=1280,2000",
            *mode,
            page.absolute().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(net_log.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    # Chromium's own service requests have no initiating origin; the page's (file://) do.
    requested = [
        e["params"]["url"]
        for e in log["events"]
        if names.get(e["type"]) == "URL_REQUEST_START_JOB"
        and "url" in e.get("params", {})
        and e["params"].get("initiator") != "not an origin"
    ]
    return done.stdout, done.stderr, requested


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.browser
def test_checks_catch_console_errors_and_fetches(tmp_path: Path) -> None:
    """The browser checks can fail: a page with a script error and remote assets trips both."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><p>x</p><img src='http://example.invalid/x.png'>"
        "<script>console.error('boom'); missing();</script></body></html>"
    )
    _, stderr, requested = render(bad, tmp_path / "chrome", "--dump-dom")
    assert any("boom" in line for line in console_lines(stderr))
    assert any("Uncaught ReferenceError" in line for line in console_lines(stderr))
    assert requested == ["http://example.invalid/x.png"]


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    dom, stderr, requested = render(report, tmp_path / "chrome", "--dump-dom")
    assert console_lines(stderr) == []
    assert requested == []
    assert "Customers by tier" in dom and "Run parameters" in dom
    assert dom.count("<svg") == report.read_text().count("<svg") > 0

    shot = tmp_path / "report.png"
    _, stderr, requested = render(report, tmp_path / "chrome", f"--screenshot={shot}")
    assert console_lines(stderr) == [] and requested == []
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    colours = {tuple(int(c) for c in px) for px in (pixels.reshape(-1, 3) * 255).round()}
    # The tier bars were painted: the red and orange tier colours appear in the screenshot.
    for tier in ("red", "orange"):
        hex_colour = TIER_COLOURS[tier].lstrip("#")
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))
        assert rgb in colours, tier


def test_each_alert_links_to_the_browser_and_a_flow_alert_to_its_drawdown(tmp_path: Path) -> None:
    from urllib.parse import parse_qs, urlsplit

    from graphkit.browser import customer_link, drawdown_link

    ctx = full_context(tmp_path)
    ctx.config.neo4j.browser_url = "https://neo4j.risk.example:7473"
    ctx.config.neo4j.bolt_uri = "neo4j+s://neo4j.risk.example:7687"
    # c0 drew 3,000 and 1,200 of it reached banned sectors, most through d0.
    ctx.results.flows = ctx.results.flows.with_columns(customer_id=pl.lit("c0"))
    ctx.results.customer_flows = pl.DataFrame(
        {"customer_id": ["c0"], "drawn_amount": [3000.0], "banned_amount": [1200.0]}
    ).with_columns(banned_share=pl.col("banned_amount") / pl.col("drawn_amount"))
    alerts_stage(ctx)
    report_stage(ctx)
    doc = inventory((tmp_path / "report.html").read_text())
    links = [v for t, k, v in doc.attrs if t == "a" and k == "href"]
    shown = ctx.results.alerts.filter(pl.col("tier") != "green").get_column("customer_id")
    host, bolt = ctx.config.neo4j.browser_url, ctx.config.neo4j.bolt_uri
    people = [link for link in links if "customer_360" in parse_qs(urlsplit(link).query)["arg"][0]]
    assert sorted(people) == sorted(customer_link(c, host, bolt) for c in shown)
    flows = ctx.config.flows
    traces = [link for link in links if link not in people]
    assert traces == [drawdown_link("d0", flows.window_days, flows.max_hops, host, bolt)]
    rows = ctx.results.alert_rows.filter(pl.col("customer_id") == "c0").row(0, named=True)
    assert rows["evidence_drawdown"] == "d0" and rows["fund_flow_trace_link"] == traces[0]
