"""Neo4j Browser for investigators: the Cypher library as a Browser guide, a graph style sheet,
and deep links that open the Browser with a library query filled in.

* :func:`guide_html` renders every query of ``cypher/investigate/`` as a Browser guide
  (``:play URL``): its purpose, parameters and a runnable example with the header's example
  values, so a click fills the editor and Ctrl-Enter answers it.
* :func:`graph_style` is the graph style sheet (GRASS): customers coloured by tier (through the
  tier labels :func:`tier_label` names), captions by name, money-moving relationships drawn wider
  and captioned with their amount.
* :func:`write_guides` writes both where ``graphkit neo4j start`` serves them
  (``http://HOST:PORT/graphkit/``); the Browser loads the style and plays the guide when it
  connects.
* :func:`deep_link`, :func:`customer_link`, :func:`drawdown_link` build Browser URLs
  (``/browser/?connectURL=...&cmd=edit&arg=...``) from a configurable Browser address, so an alert
  can carry a link that opens its customer's ``customer_360`` or its drawdown's
  ``fund_flow_trace``. They are pure functions of their arguments.

Why the examples and links carry their values as literals: a Browser URL pre-fills the editor
with one command only (``cmd=edit&arg=...``), and the Browser shows no result rows for a
multi-statement run (``:params {...}; MATCH ...`` answers "SUCCESS" and nothing else), so a link
cannot set parameters and show the query's answer. :func:`prefilled` therefore puts each
``$parameter`` of a library query in as a literal made by :func:`cypher_literal`. Neo4j replaces
``\\uXXXX`` escapes anywhere in a query before it parses it (``"\\u0022"`` is a quote that ends
the string, ``// \\u000a`` ends a comment), so the literal escapes a backslash as ``\\\\`` (after
which no ``\\u`` is read as an escape), a quote as ``\\"``, line ends as ``\\n`` / ``\\r``, and
writes characters that are harmless inside a string but not on the way there (``&`` and ``#``,
where the Browser's URL parsing cuts; ``;`` and ``$``, which its editor reads; other control
characters) as ``\\uXXXX``, which the server turns back into that character inside the string:
no value can end the literal or add Cypher. The query text is the library's, unchanged; what
runs is what the editor shows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import polars as pl

import cypher
from graphkit.atomic import atomic_write_bytes
from graphkit.report import NEUTRAL, TIER_COLOURS
from graphkit.schema import TIERS, tier_label

__all__ = [
    "GUIDES_MOUNT",
    "GUIDE_FILE",
    "LINK_COLUMNS",
    "STYLE_FILE",
    "browser_url",
    "customer_link",
    "cypher_literal",
    "deep_link",
    "drawdown_link",
    "graph_style",
    "guide_html",
    "guide_link",
    "guide_url",
    "prefilled",
    "query_body",
    "tier_label",
    "with_links",
    "write_guides",
]

GUIDES_MOUNT = "/graphkit"
"""Where the launcher serves the guides directory (``--guides``) on the HTTP port."""
GUIDE_FILE = "library.html"
STYLE_FILE = "graphkit.grass"

# Node labels of the schema with the property that names them in a drawing.
_CAPTIONS: dict[str, str] = {
    "Customer": "name",
    "CreditLine": "line_id",
    "Account": "account_id",
    "Merchant": "merchant_id",
    "Sector": "sector",
    "Device": "device_id",
    "Cluster": "cluster_id",
    "Circle": "circle_id",
    "RiskRun": "run_id",
    "Alert": "tier",
    "Evidence": "evidence_id",
}
_NODE_COLOURS: dict[str, str] = {
    "Customer": NEUTRAL,
    "CreditLine": "#8c6bb1",
    "Account": "#9aa1ac",
    "Merchant": "#b07aa1",
    "Sector": "#d37295",
    "Device": "#59a14f",
    "Cluster": "#76b7b2",
    "Circle": "#f1ce63",
    "RiskRun": "#bab0ac",
    "Alert": "#1d2733",
    "Evidence": "#ff9da7",
}
# Relationship types that move or pledge money: drawn wide and captioned with their amount.
# (GRASS styles a type, not a value: the Browser cannot scale one relationship by its amount.)
_MONEY_TYPES = ("DRAWDOWN", "TRANSFER", "GUARANTEES")


_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_AS_UNICODE_ESCAPE = re.compile(r"[&#;$'`\x00-\x1f\x7f\x85\u2028\u2029]")


def cypher_literal(value: Any) -> str:
    """``value`` as a Cypher literal safe to put in a query, an editor and a Browser URL (see the
    module's notes): strings in double quotes, escaped; dates as ``date("...")``. Raises
    ``TypeError`` for a type the library's parameters do not have."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"no Cypher literal for {value!r}")
        return repr(value)
    if isinstance(value, datetime):
        return f"datetime({cypher_literal(value.isoformat())})"
    if isinstance(value, date):
        return f"date({cypher_literal(value.isoformat())})"
    if isinstance(value, str):
        escaped = [
            _STRING_ESCAPES.get(char)
            or (f"\\u{ord(char):04x}" if _AS_UNICODE_ESCAPE.match(char) else char)
            for char in value
        ]
        return '"' + "".join(escaped) + '"'
    raise TypeError(f"no Cypher literal for {type(value).__name__}")


def query_body(query: cypher.QueryInfo) -> str:
    """The query's Cypher without its header comment block."""
    lines = query.text.splitlines()
    start = next((i for i, line in enumerate(lines) if not line.startswith("//")), len(lines))
    return "\n".join(lines[start:]).strip()


def prefilled(query: cypher.QueryInfo, values: Mapping[str, Any]) -> str:
    """Editor text running ``query`` with ``values`` (typed, e.g. from
    :func:`cypher.convert_params`): a comment naming the query, then the query's body with each
    ``$parameter`` replaced by :func:`cypher_literal` of its value. (The comment holds no value: a
    comment is no place for text the caller controls.)"""
    literals = {p.name: cypher_literal(values.get(p.name)) for p in query.params}
    token = re.compile(r"\$(\w+)\b")

    def literal(match: re.Match[str]) -> str:
        if match.group(1) not in literals:
            raise cypher.QueryError(f"{query.name}: ${match.group(1)} is not in its header")
        return literals[match.group(1)]

    return f"// graphkit {query.name}\n{token.sub(literal, query_body(query))}"


def browser_url(
    http_url: str, bolt_uri: str | None = None, cmd: str | None = None, arg: str | None = None
) -> str:
    """The Browser at ``http_url`` (``http://host:7474``), connecting to ``bolt_uri`` and, with
    ``cmd`` (``edit``, ``play``, ``param``, ``params``), pre-populating the editor with ``arg``."""
    query: dict[str, str] = {}
    if bolt_uri:
        query["connectURL"] = bolt_uri
    if cmd is not None:
        query["cmd"] = cmd
        query["arg"] = arg or ""
    suffix = "?" + urlencode(query, safe=":/", quote_via=quote) if query else ""
    return f"{http_url.rstrip('/')}/browser/{suffix}"


def deep_link(
    name: str, params: Mapping[str, str], http_url: str, bolt_uri: str | None = None
) -> str:
    """A Browser URL whose editor holds library query ``name`` with ``params`` (text values,
    converted and checked by the query's header types) set."""
    query = cypher.load_query(name)
    values = cypher.convert_params(query, dict(params))
    return browser_url(http_url, bolt_uri, "edit", prefilled(query, values))


def customer_link(customer_id: str, http_url: str, bolt_uri: str | None = None) -> str:
    """The Browser with the customer's ``customer_360`` filled in."""
    return deep_link("customer_360", {"customer_id": customer_id}, http_url, bolt_uri)


def drawdown_link(
    drawdown_id: str,
    window_days: float,
    max_hops: int,
    http_url: str,
    bolt_uri: str | None = None,
) -> str:
    """The Browser with the drawdown's ``fund_flow_trace`` filled in, with the run's flow window
    and hop limit (``[flows] window_days`` and ``max_hops``)."""
    params = {
        "drawdown_id": drawdown_id,
        "window_days": repr(float(window_days)),
        "max_hops": str(int(max_hops)),
    }
    return deep_link("fund_flow_trace", params, http_url, bolt_uri)


LINK_COLUMNS = ("evidence_drawdown", "customer_360_link", "fund_flow_trace_link")
"""The columns :func:`with_links` adds to the alert rows (``alerts.csv``)."""


def with_links(
    alerts: pl.DataFrame,
    evidence: pl.DataFrame | None,
    http_url: str,
    bolt_uri: str | None,
    window_days: float,
    max_hops: int,
) -> pl.DataFrame:
    """``alerts`` (rows with customer_id and rules) with :data:`LINK_COLUMNS` appended: the
    drawdown a ``banned_share`` hit names (from ``evidence``, the frame of
    :func:`graphkit.alerts.evidence_drawdowns`; null for other alerts), the Browser link to the
    customer's ``customer_360`` and, where there is such a drawdown, the link to its
    ``fund_flow_trace`` with the run's window and hop limit. One link is built per distinct
    customer or drawdown, not per row."""
    frame = alerts.with_columns(pl.col("customer_id").cast(pl.String))
    flow_alert = pl.col("rules").fill_null("").str.contains(r"(^|,)banned_share(,|$)")
    if evidence is not None and evidence.height:
        frame = frame.join(
            evidence.select("customer_id", "evidence_drawdown"),
            on="customer_id",
            how="left",
            maintain_order="left",
        ).with_columns(
            pl.when(flow_alert).then(pl.col("evidence_drawdown")).alias("evidence_drawdown")
        )
    else:
        frame = frame.with_columns(evidence_drawdown=pl.lit(None, dtype=pl.String))
    person = cypher.load_query("customer_360")
    trace = cypher.load_query("fund_flow_trace")
    limits = {"window_days": float(window_days), "max_hops": int(max_hops)}
    return frame.with_columns(
        _links(
            frame.get_column("customer_id"), person, "customer_id", {}, http_url, bolt_uri
        ).alias("customer_360_link"),
        _links(
            frame.get_column("evidence_drawdown"), trace, "drawdown_id", limits, http_url, bolt_uri
        ).alias("fund_flow_trace_link"),
    )


_PLACEHOLDER = "GRAPHKITLINKVALUE"


def _links(
    values: pl.Series,
    query: cypher.QueryInfo,
    key: str,
    fixed: Mapping[str, Any],
    http_url: str,
    bolt_uri: str | None,
) -> pl.Series:
    """For each value, ``browser_url(http_url, bolt_uri, "edit", prefilled(query, {key: value,
    **fixed}))`` (null for null), built from one template: the URL of a placeholder value, split
    where its literal sits. A literal's text and its URL encoding are character by character,
    so joining the parts with each value's encoded literal gives exactly that value's URL, and a
    long query (``fund_flow_trace``'s URL is ~13 kB) is encoded once, not once per alert."""
    template = browser_url(
        http_url, bolt_uri, "edit", prefilled(query, {key: _PLACEHOLDER, **fixed})
    )
    parts = template.split(_PLACEHOLDER)
    assert len(parts) >= 2, f"{query.name}: ${key} is not in its text"
    distinct = values.cast(pl.String).drop_nulls().unique()
    encoded = pl.Series(
        [quote(cypher_literal(v)[1:-1], safe=":/") for v in distinct.to_list()], dtype=pl.String
    )
    inner = values.cast(pl.String).replace_strict(
        distinct, encoded, default=None, return_dtype=pl.String
    )
    pieces: list[pl.Series | pl.Expr] = []
    for i, part in enumerate(parts):
        if i:
            pieces.append(inner)
        pieces.append(pl.lit(part))
    return pl.select(pl.concat_str(pieces)).to_series().alias(values.name)


def guide_url(http_url: str) -> str:
    """Where the launcher serves the library guide."""
    return f"{http_url.rstrip('/')}{GUIDES_MOUNT}/{GUIDE_FILE}"


def guide_link(http_url: str, bolt_uri: str | None = None) -> str:
    """The Browser opening with ``:play`` of the library guide."""
    return browser_url(http_url, bolt_uri, "play", guide_url(http_url))


def _example_values(query: cypher.QueryInfo, config: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for the guide's example: the header's example for each required parameter,
    the default (from ``config`` where the header says so) for those that have one, and null for
    the optional ones (which widen the question: every customer, no date bound, latest runs)."""
    text = {p.name: p.example for p in query.params if not p.optional and p.default is None}
    return cypher.convert_params(query, text | cypher.default_values(query, config))


def guide_html(queries: Sequence[cypher.QueryInfo], config: Mapping[str, Any]) -> str:
    """The Browser guide (``:play`` format: an ``article.guide`` of carousel slides) listing
    ``queries``: one index slide, then one slide per query with its purpose, its parameters and a
    runnable example (header examples; defaults from ``config``, a :meth:`Config.to_dict`)."""
    esc = html.escape
    index_rows = "".join(
        f"<tr><td><code>{esc(q.name)}</code></td>"
        f"<td>{esc(', '.join(p.name + ('?' if p.optional else '') for p in q.params))}</td>"
        f"<td>{esc(_first_sentence(q.purpose))}</td></tr>"
        for q in queries
    )
    slides = [
        '<slide class="row-fluid">'
        '<div class="col-sm-3"><h3>graphkit: the investigators\' Cypher library</h3>'
        '<p class="lead">One slide per query of <code>cypher/investigate/</code>. Click a grey '
        "block to put it in the editor, then run it (Ctrl-Enter): it sets the example parameters "
        "and runs the query.</p></div>"
        '<div class="col-sm-9"><table class="table table-condensed" id="graphkit-queries">'
        "<thead><tr><th>query</th><th>parameters</th><th>answers</th></tr></thead>"
        f"<tbody>{index_rows}</tbody></table></div></slide>"
    ]
    for query in queries:
        values = _example_values(query, config)
        defaults = cypher.default_values(query, config)
        params = "".join(
            f"<tr><td><code>{esc(p.name)}</code></td><td>{esc(p.type)}"
            f"{' (optional)' if p.optional else ''}</td>"
            f"<td>{esc(defaults.get(p.name, ''))}</td><td>{esc(p.example)}</td></tr>"
            for p in query.params
        )
        slides.append(
            f'<slide class="row-fluid" data-query="{esc(query.name)}">'
            f'<div class="col-sm-3"><h3>{esc(query.name)}</h3>'
            f'<p class="lead">{esc(query.purpose)}</p></div>'
            '<div class="col-sm-9"><table class="table table-condensed">'
            "<thead><tr><th>parameter</th><th>type</th><th>default</th><th>example</th></tr>"
            f"</thead><tbody>{params}</tbody></table>"
            f"<p>Columns: {esc(', '.join(query.columns))}</p>"
            '<figure><pre class="pre-scrollable code runnable">'
            f"{esc(prefilled(query, values))}</pre>"
            f"<figcaption>From the command line: <code>{esc(query.example)}</code>"
            f"</figcaption></figure>{_drawing(query.name, values)}</div></slide>"
        )
    return (
        '<article class="guide" id="graphkit-library">'
        '<carousel class="deck container-fluid">' + "".join(slides) + "</carousel></article>\n"
    )


def _drawing(name: str, values: Mapping[str, Any]) -> str:
    """The guide's "Draw it" block for a query with a drawing companion, else nothing."""
    drawing = cypher.load_drawing(name)
    if drawing is None:
        return ""
    text = prefilled(drawing, {p.name: values.get(p.name) for p in drawing.params})
    return (
        '<figure><pre class="pre-scrollable code runnable">'
        f"{html.escape(text)}</pre><figcaption>Draw it: {html.escape(drawing.purpose)}"
        "</figcaption></figure>"
    )


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].split(": ")[0]


def graph_style() -> str:
    """The graph style sheet (GRASS) for graphkit's schema."""
    rules = [
        "node {\n  diameter: 50px;\n  color: #A5ABB6;\n  border-color: #9AA1AC;\n"
        "  border-width: 2px;\n  text-color-internal: #FFFFFF;\n  font-size: 10px;\n}",
        "relationship {\n  color: #A5ABB6;\n  shaft-width: 1px;\n  font-size: 8px;\n"
        "  padding: 3px;\n  text-color-external: #000000;\n  text-color-internal: #FFFFFF;\n"
        "  caption: '<type>';\n}",
    ]
    for label, prop in _CAPTIONS.items():
        rules.append(
            f"node.{label} {{\n  color: {_NODE_COLOURS[label]};\n"
            f"  border-color: {_NODE_COLOURS[label]};\n  caption: '{{{prop}}}';\n}}"
        )
    # After node.Customer, so a customer's tier label decides its colour.
    for tier in TIERS:
        rules.append(
            f"node.{tier_label(tier)} {{\n  color: {TIER_COLOURS[tier]};\n"
            f"  border-color: {TIER_COLOURS[tier]};\n}}"
        )
    for rel_type in _MONEY_TYPES:
        rules.append(
            f"relationship.{rel_type} {{\n  shaft-width: 4px;\n  caption: '{{amount}}';\n}}"
        )
    return "\n\n".join(rules) + "\n"


def write_guides(directory: Path | str, config: Mapping[str, Any]) -> Path:
    """Write the library guide and the style sheet into ``directory`` (created; each file
    replaced atomically) and return it; ``config`` is a :meth:`Config.to_dict` for defaults."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target / GUIDE_FILE, guide_html(cypher.list_queries(), config).encode())
    atomic_write_bytes(target / STYLE_FILE, graph_style().encode())
    return target
