"""Graph frames as Neo4j sees them: schema statements, merge keys, Bolt values, key form.

The shared vocabulary of the Bolt loader (:mod:`graphkit.store.neo4j`), the bulk importer
(:mod:`graphkit.store.neo4j_bulk`) and the write-back (:mod:`graphkit.store.neo4j_writeback`):
how a label or key is quoted, which constraints and indexes exist, how a relationship row is
identified (see :mod:`graphkit.store.neo4j` for the load model), and how polars columns become
values the Bolt driver can store and back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import neo4j
import polars as pl

from graphkit.graph import RiskGraph
from graphkit.schema import NODES, RELATIONSHIPS, TABLES, RelSpec

ROW_KEY = "row_key"


RUN_LABEL = "RiskRun"


RUN_KEY = "run_id"


SCORED_IN = "SCORED_IN"

# History (see graphkit.store.neo4j_history): every loaded node and relationship carries
# VALID_FROM, and VALID_TO once the input no longer has it (the current graph is the one without
# VALID_TO); a node's superseded property sets are VERSION_LABEL nodes behind HAS_VERSION; one
# LOAD_LABEL node per load that changed something records its time.
VALID_FROM = "valid_from"
VALID_TO = "valid_to"
VERSION_LABEL = "Version"
HAS_VERSION = "HAS_VERSION"
LOAD_LABEL = "GraphLoad"
LOAD_KEY = "as_of"


# Indexes beyond the unique keys: the relationship keys loads merge on, and what investigators
# filter by.
EXTRA_INDEXES: tuple[tuple[str, str, str], ...] = (
    ("relationship", "GUARANTEES", ROW_KEY),
    ("relationship", "DRAWDOWN", "drawdown_id"),
    ("relationship", "TRANSFER", "transfer_id"),
    ("relationship", "DRAWDOWN", "device_id"),
    ("relationship", "TRANSFER", "ts"),
    ("node", "Customer", "tier"),
    ("node", "Customer", "ring_id"),
)


def _q(name: str) -> str:
    """Quote a label, relationship type or property key as a Cypher identifier."""
    return "`" + name.replace("`", "``") + "`"


def schema_statements() -> list[str]:
    """The constraint and index statements :meth:`Neo4jTarget.ensure_schema` runs, in order.

    One unique constraint per node key of :data:`graphkit.schema.NODES` (derived labels
    included), of :data:`RUN_LABEL` and of :data:`LOAD_LABEL`; then the range indexes of
    :data:`EXTRA_INDEXES`. A relationship's own key (``drawdown_id``, ``transfer_id``) is indexed,
    not unique: a transfer whose amount changed keeps its closed relationship beside the current
    one, and the loader keeps one current relationship per key.
    """
    statements = []
    node_keys = [(label, spec.key) for label, spec in NODES.items()]
    node_keys += [(RUN_LABEL, RUN_KEY), (LOAD_LABEL, LOAD_KEY)]
    for label, key in node_keys:
        statements.append(
            f"CREATE CONSTRAINT {label.lower()}_{key}_unique IF NOT EXISTS "
            f"FOR (n:{_q(label)}) REQUIRE n.{_q(key)} IS UNIQUE"
        )
    for kind, name, prop in EXTRA_INDEXES:
        pattern = f"(n:{_q(name)})" if kind == "node" else f"()-[n:{_q(name)}]-()"
        statements.append(
            f"CREATE INDEX {name.lower()}_{prop}_index IF NOT EXISTS "
            f"FOR {pattern} ON (n.{_q(prop)})"
        )
    return statements


# Constraints of earlier versions that history contradicts; ensure_schema drops them.
LEGACY_CONSTRAINTS: tuple[str, ...] = ("drawdown_drawdown_id_unique", "transfer_transfer_id_unique")


def schema_cypher() -> str:
    """The text of ``cypher/schema.cypher``: :func:`schema_statements` as a Cypher script."""
    header = (
        "// Constraints and indexes graphkit creates before loading (Neo4jTarget.ensure_schema).\n"
        "// Generated from graphkit/schema.py by graphkit.store.neo4j.schema_cypher();\n"
        "// regenerate with `graphkit cypher schema > cypher/schema.cypher`.\n"
    )
    return header + "".join(f"{s};\n" for s in schema_statements())


def relationship_merge_key(spec: RelSpec) -> tuple[str, str | None]:
    """How a relationship row is identified: ``("property", key)``, ``("pair", None)`` or
    ``("row", "row_key")`` (see the module docstring)."""
    table = TABLES[spec.table]
    if len(table.key) == 1 and table.key[0] in spec.props:
        return "property", table.key[0]
    owns_table = any(n.table == spec.table for n in NODES.values())
    if owns_table or (table.key and set(table.key) <= {spec.src_col, spec.dst_col}):
        return "pair", None
    return "row", ROW_KEY


class RowTotals:
    """Totals of the per-label ``nodes`` and per-relationship ``relationships`` row counts of a
    load result (Bolt or bulk)."""

    nodes: dict[str, int]
    relationships: dict[str, int]

    @property
    def node_rows(self) -> int:
        return sum(self.nodes.values())

    @property
    def relationship_rows(self) -> int:
        return sum(self.relationships.values())


@dataclass(frozen=True)
class GraphFrames:
    """A graph in key form: node frames (key column first) and relationship frames whose
    ``src``/``dst`` are endpoint keys; rows sorted, so two equal graphs give equal frames."""

    nodes: dict[str, pl.DataFrame]
    edges: dict[str, pl.DataFrame]

    def equals(self, other: GraphFrames) -> bool:
        return (
            self.nodes.keys() == other.nodes.keys()
            and self.edges.keys() == other.edges.keys()
            and all(self.nodes[k].equals(other.nodes[k]) for k in self.nodes)
            and all(self.edges[k].equals(other.edges[k]) for k in self.edges)
        )


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    sortable = [c for c, t in frame.schema.items() if not isinstance(t, pl.List | pl.Struct)]
    return frame.sort(sortable, nulls_last=True, maintain_order=True) if sortable else frame


def keyed_frames(graph: RiskGraph) -> GraphFrames:
    """``graph`` in key form (see :class:`GraphFrames`), for comparing with a read-back."""
    edges = {}
    for name, spec in RELATIONSHIPS.items():
        frame = graph.edges[name]
        src = graph.keys(spec.src).gather(frame.get_column("src"))
        dst = graph.keys(spec.dst).gather(frame.get_column("dst"))
        edges[name] = _sorted(frame.with_columns(src=src, dst=dst))
    nodes = {label: _sorted(frame) for label, frame in graph.nodes.items()}
    return GraphFrames(nodes=nodes, edges=edges)


def _bolt_column(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """An expression turning column ``name`` into values the Bolt driver can store as a
    property, or None to leave the column out (an all-null column has nothing to store)."""
    col = pl.col(name)
    if isinstance(dtype, pl.Null):
        return None
    if isinstance(dtype, pl.Datetime):
        zoned = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col
        return zoned.dt.convert_time_zone("UTC")
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return col.cast(pl.String)
    if isinstance(dtype, pl.Decimal):
        return col.cast(pl.Float64)
    if isinstance(dtype, pl.UInt64):
        return col.cast(pl.Int64)
    if isinstance(dtype, pl.List) and not dtype.inner.is_nested():
        # Neo4j arrays are homogeneous and hold no nulls.
        return col.list.drop_nulls()
    if dtype.is_nested() or isinstance(dtype, pl.Object):
        return col.map_elements(
            lambda v: json.dumps(v, default=str, ensure_ascii=False), return_dtype=pl.String
        )
    return col


def bolt_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every column converted to a Bolt-storable type (datetimes in UTC,
    nested values as JSON text, lists without nulls; all-null columns dropped)."""
    exprs = []
    for name, dtype in frame.schema.items():
        expr = _bolt_column(name, dtype)
        if expr is not None:
            exprs.append(expr.alias(name))
    return frame.select(exprs)


def _rows(frame: pl.DataFrame, key: str | None, props: list[str], **renames: str) -> pl.DataFrame:
    """Rows as sent to the server: ``k`` (merge key), endpoint columns, and ``p`` (properties,
    only when there are some; :mod:`graphkit.store.neo4j` sets them with ``SET x += row.p``)."""
    cols = [pl.col(src).alias(dst) for dst, src in renames.items()]
    if key is not None:
        cols.append(pl.col(key).alias("k"))
    if props:
        cols.append(pl.struct(props).alias("p"))
    return frame.select(cols)


def _native(value: Any) -> Any:
    """A driver value as a plain Python value (temporal types to datetime/date, nodes and
    relationships to their property maps, paths to their node maps)."""
    if isinstance(value, list):
        return [_native(v) for v in value]
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, neo4j.time.DateTime | neo4j.time.Date | neo4j.time.Time):
        return value.to_native()
    if isinstance(value, neo4j.graph.Path):
        return [dict(_native(dict(n))) for n in value.nodes]
    if isinstance(value, neo4j.graph.Node | neo4j.graph.Relationship):
        return _native(dict(value))
    return value


def _row_key(props: tuple[str, ...]) -> pl.Expr:
    """A stable per-row key: the declared properties as text, plus the occurrence number of
    identical rows between the same endpoints (1 for the first)."""
    content = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("") for c in props] or [pl.lit("")], separator="|"
    )
    occurrence = pl.int_range(1, pl.len() + 1).over("src", "dst", content)
    return pl.concat_str([content, occurrence.cast(pl.String)], separator="|").alias(ROW_KEY)


def _frame_like(records: list[dict[str, Any]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Records as a frame with exactly ``schema``'s columns and dtypes."""
    columns = {name: [r.get(name) for r in records] for name in schema}
    return pl.DataFrame(
        [
            pl.Series(name, values, dtype=dtype, strict=False)
            for (name, dtype), values in zip(schema.items(), columns.values(), strict=True)
        ]
    )
