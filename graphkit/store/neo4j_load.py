"""Loading a RiskGraph over Bolt so that the database mirrors it, with history.

The methods of :class:`Neo4jTarget` (:mod:`graphkit.store.neo4j`) that load: the Cypher they send
and the model it implements are in :mod:`graphkit.store.neo4j_history`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import neo4j
import polars as pl

from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress
from graphkit.schema import CUSTOMER_SUBLABELS, NODES, RELATIONSHIPS, RelSpec
from graphkit.store.neo4j_frames import (
    VALID_TO,
    RowTotals,
    _row_key,
    _rows,
    bolt_frame,
    relationship_merge_key,
)
from graphkit.store.neo4j_history import (
    NOT_INPUT,
    absent,
    close_nodes_query,
    close_relationships_query,
    current_nodes_query,
    current_relationships_query,
    load_record_query,
    node_merge_query,
    relationship_merge_query,
)

__all__ = ["COUNTERS", "LoadCounts", "Loader", "load_time"]

COUNTERS = ("nodes_created", "relationships_created", "properties_set", "labels_added")
"""The server counters a load sums (see :class:`LoadCounts`)."""


@dataclass(frozen=True)
class LoadCounts(RowTotals):
    """What :meth:`Neo4jTarget.load_graph` sent and what the server changed.

    ``nodes`` (per label) and ``relationships`` (per relationship name) count rows sent.
    From the server's counters: ``nodes_created`` (new keys), ``node_versions`` (nodes whose
    input properties changed, or that came back), ``relationships_created`` (new, or replacing
    a current one whose properties changed), ``properties_set`` and ``labels_added`` (every
    write, history included); ``nodes_closed`` and ``relationships_closed`` count current
    elements the input no longer has. All zero when re-loading the same input. ``as_of`` is the
    load time written to ``valid_from`` / ``valid_to``.
    """

    nodes: dict[str, int]
    relationships: dict[str, int]
    node_seconds: float
    relationship_seconds: float
    nodes_created: int
    relationships_created: int
    as_of: datetime | None = None
    node_versions: int = 0
    nodes_closed: int = 0
    relationships_closed: int = 0
    properties_set: int = 0
    labels_added: int = 0

    @property
    def changes(self) -> int:
        """Every change the load made (0: the database already mirrored the input)."""
        return (
            self.nodes_created
            + self.node_versions
            + self.relationships_created
            + self.nodes_closed
            + self.relationships_closed
            + self.properties_set
            + self.labels_added
        )


def load_time(as_of: datetime | None) -> datetime:
    """The load time of a load: ``as_of`` in UTC (naive means UTC), or now; microseconds, as
    the database stores them."""
    if as_of is None:
        return datetime.now(UTC)
    return as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)


class Loader:
    """The load methods of :class:`graphkit.store.neo4j.Neo4jTarget` (a mixin: it relies on
    the target's session, retry and batching helpers)."""

    batch_size: int
    _driver: Any
    _ensure_schema: Any
    _check_forward: Any
    _read: Any
    _write: Any
    _batches: Any

    def load_graph(
        self, graph: RiskGraph, progress: Progress = SILENT, as_of: datetime | None = None
    ) -> LoadCounts:
        """Make the database's current graph equal to ``graph``, keeping what changed as history.

        Constraints first, then nodes label by label, then relationships, then closing the
        current relationships and nodes ``graph`` no longer has; each step in batches of
        ``batch_size`` rows, one transaction per batch, so an interrupted load is finished by
        running it again. ``as_of`` is the load time (default now; see
        :mod:`graphkit.store.neo4j_history`); a load older than the latest recorded one is
        refused. Idempotent: loading the same graph again changes nothing. Complexity:
        O(V + E) index lookups on the server, plus one read of the current keys.

        Raises:
            Neo4jStoreError: ``as_of`` is older than the latest load in the database.
        """
        as_of = load_time(as_of)
        node_rows: dict[str, int] = {}
        rel_rows: dict[str, int] = {}
        totals = dict.fromkeys(COUNTERS, 0)
        versions = 0
        with self._driver() as driver:
            self._ensure_schema(driver, progress)
            self._check_forward(driver, as_of, progress)
            clock = time.perf_counter()
            total = sum(frame.height for frame in graph.nodes.values())
            progress.start("neo4j nodes", total)
            for label, frame in graph.nodes.items():
                node_rows[label] = frame.height
                counters = self._load_nodes(driver, label, frame, as_of, progress)
                # A changed node gets one Version node behind one HAS_VERSION relationship.
                versions += counters["relationships_created"]
                counters["nodes_created"] -= counters["relationships_created"]
                counters["relationships_created"] = 0
                totals = {k: totals[k] + counters[k] for k in totals}
            progress.finish("neo4j nodes")
            node_seconds = time.perf_counter() - clock

            clock = time.perf_counter()
            progress.start("neo4j relationships", sum(f.height for f in graph.edges.values()))
            keyed_rows: dict[str, pl.DataFrame] = {}
            for name, spec in RELATIONSHIPS.items():
                frame = graph.edges[name]
                rel_rows[name] = frame.height
                keyed_rows[name], counters = self._load_relationships(
                    driver, graph, spec, frame, as_of, progress
                )
                totals = {k: totals[k] + counters[k] for k in totals}
            progress.finish("neo4j relationships")
            rel_seconds = time.perf_counter() - clock
            closed_rels, closed_nodes = self._close_absent(
                driver, graph, keyed_rows, as_of, progress
            )
            counts = LoadCounts(
                nodes=node_rows,
                relationships=rel_rows,
                node_seconds=node_seconds,
                relationship_seconds=rel_seconds,
                nodes_created=totals["nodes_created"],
                relationships_created=totals["relationships_created"],
                as_of=as_of,
                node_versions=versions,
                nodes_closed=closed_nodes,
                relationships_closed=closed_rels,
                properties_set=totals["properties_set"],
                labels_added=totals["labels_added"],
            )
            if counts.changes:
                self._record_load(driver, counts, progress)
        progress.log(
            f"neo4j: {sum(node_rows.values())} node rows in {node_seconds:.1f} s, "
            f"{sum(rel_rows.values())} relationship rows in {rel_seconds:.1f} s "
            f"({counts.nodes_created} nodes, {counts.relationships_created} relationships "
            f"created; {versions} nodes changed; {closed_nodes} nodes, {closed_rels} "
            f"relationships closed; load time {as_of:%Y-%m-%dT%H:%M:%SZ})"
        )
        return counts

    def _record_load(self, driver: neo4j.Driver, counts: LoadCounts, progress: Progress) -> None:
        fields = (
            "nodes_created",
            "node_versions",
            "nodes_closed",
            "relationships_created",
            "relationships_closed",
        )
        record = {name: getattr(counts, name) for name in fields}
        self._write(
            driver,
            load_record_query(),
            {"as_of": counts.as_of, "counts": record},
            "neo4j load record",
            progress,
        )

    def _load_nodes(
        self,
        driver: neo4j.Driver,
        label: str,
        frame: pl.DataFrame,
        as_of: datetime,
        progress: Progress,
    ) -> dict[str, int]:
        key = NODES[label].key
        frame = bolt_frame(frame)
        props = [c for c in frame.columns if c != key]
        rows = _rows(frame, key, props)
        extra = {"as_of": as_of, "reserved": [key, *NOT_INPUT]}
        if label != "Customer" or "kind" not in frame.columns:
            query = node_merge_query(label, bool(props), None, [])
            return self._batches(driver, query, rows, "neo4j nodes", progress, extra)
        totals = dict.fromkeys(COUNTERS, 0)
        kinds = frame.get_column("kind")
        parts = [
            (
                rows.filter(kinds == kind),
                node_merge_query(
                    label,
                    True,
                    sublabel,
                    [o for o in CUSTOMER_SUBLABELS.values() if o != sublabel],
                ),
            )
            for kind, sublabel in CUSTOMER_SUBLABELS.items()
        ]
        rest = rows.filter(~kinds.is_in(list(CUSTOMER_SUBLABELS)) | kinds.is_null())
        parts.append((rest, node_merge_query(label, True, None, [])))
        for part, query in parts:
            counters = self._batches(driver, query, part, "neo4j nodes", progress, extra)
            totals = {k: totals[k] + counters[k] for k in totals}
        return totals

    def _load_relationships(
        self,
        driver: neo4j.Driver,
        graph: RiskGraph,
        spec: RelSpec,
        frame: pl.DataFrame,
        as_of: datetime,
        progress: Progress,
    ) -> tuple[pl.DataFrame, dict[str, int]]:
        """Merge ``spec``'s rows; returns their identities (``s``, ``d``, ``k``) and counters."""
        mode, key = relationship_merge_key(spec)
        keyed = frame.with_columns(
            graph.keys(spec.src).gather(frame.get_column("src")).alias("src"),
            graph.keys(spec.dst).gather(frame.get_column("dst")).alias("dst"),
        )
        if mode == "row":
            keyed = keyed.with_columns(_row_key(spec.props))
        keyed = bolt_frame(keyed)
        props = [c for c in keyed.columns if c not in ("src", "dst", key)]
        rows = _rows(keyed, key, props, s="src", d="dst")
        identities = rows.select("s", "d", pl.col("k") if key else pl.lit(None).alias("k"))
        if frame.height == 0:
            return identities, dict.fromkeys(COUNTERS, 0)
        reserved = [k for k in (key, "valid_from", VALID_TO) if k]
        counters = self._batches(
            driver,
            relationship_merge_query(spec, key, bool(props)),
            rows,
            "neo4j relationships",
            progress,
            {"as_of": as_of, "reserved": reserved},
        )
        return identities, counters

    def _close_absent(
        self,
        driver: neo4j.Driver,
        graph: RiskGraph,
        keyed_rows: dict[str, pl.DataFrame],
        as_of: datetime,
        progress: Progress,
    ) -> tuple[int, int]:
        """Close the current relationships, then nodes, the input no longer has; returns how
        many of each."""
        what = "neo4j close"
        closed_rels = 0
        for name, spec in RELATIONSHIPS.items():
            key = relationship_merge_key(spec)[1]
            _, rows = self._read(driver, current_relationships_query(spec, key), {}, what, progress)
            current = pl.DataFrame(
                rows,
                schema={"s": pl.String, "d": pl.String, "k": pl.String, "id": pl.String},
                orient="row",
            )
            on = ["s", "d", "k"] if key else ["s", "d"]
            gone = absent(current, keyed_rows[name], on).select(pl.col("id").alias("k"))
            counters = self._batches(
                driver, close_relationships_query(), gone, what, SILENT, {"as_of": as_of}
            )
            closed_rels += counters["properties_set"]
        closed_nodes = 0
        for label, spec in NODES.items():
            if spec.derived:
                continue
            _, rows = self._read(driver, current_nodes_query(label), {}, what, progress)
            current = pl.DataFrame(rows, schema={"k": pl.String}, orient="row")
            frame = graph.nodes.get(label)
            wanted = (
                frame.select(pl.col(spec.key).cast(pl.String).alias("k"))
                if frame is not None
                else pl.DataFrame(schema={"k": pl.String})
            )
            gone = absent(current, wanted, ["k"])
            counters = self._batches(
                driver, close_nodes_query(label), gone, what, SILENT, {"as_of": as_of}
            )
            closed_nodes += counters["properties_set"]
        return closed_rels, closed_nodes
