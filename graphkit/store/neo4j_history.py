"""History of the loaded graph: the Cypher that makes the database mirror an input, keeping
what changed.

The model (the rule is written down in ``docs/neo4j.md`` and ``docs/design-notes.md``):

* Every load has one **load time**, ``as_of`` (``graphkit load --as-of``, default now, UTC).
  It is the time the database learned the facts, not the business dates the input carries
  (a guarantee's ``start``/``end``, a device's ``first_seen``/``last_seen`` stay ordinary
  properties). Loads go forward: one older than the latest recorded load is refused.
* Every loaded node and relationship carries ``valid_from`` (the load time it took its present
  form) and, once a later input no longer has it, ``valid_to`` (the load time that closed it).
  Nothing is deleted. **The current graph is every element without** ``valid_to``.
* A relationship is identified as in :func:`graphkit.store.neo4j_frames.relationship_merge_key`.
  When the input's row for a current relationship carries other properties, the relationship is
  closed and a new current one created (a guarantee's ``row_key`` holds its amount, so a changed
  amount is a new key and the old one closes as absent).
* A node keeps its key and its identity. When its input properties change (or it comes back
  after leaving), its previous property set is copied to a ``(:Version)`` node,
  ``(n)-[:HAS_VERSION]->(v)``, with the interval ``[valid_from, valid_to)`` it held (on ``v`` and
  on the relationship), and ``n`` takes the new properties with ``valid_from`` = the load time.
  The state of ``n`` at a time ``t`` is the version whose interval holds ``t``, else ``n`` itself
  when its own interval holds ``t``; no state means the node did not exist at ``t``.
  Properties a run writes back (:data:`graphkit.schema.WRITEBACK_PROPERTIES`, ``run_id``) are not
  input and are neither compared nor versioned.
* One ``(:GraphLoad {as_of})`` node per load that changed anything, with what it changed.

Re-loading the same input changes nothing: every statement writes only where the input differs
from the current graph, so the server's counters (nodes and relationships created, properties
set, labels added) stay at zero.

Reading "as of" a date ``D`` (:data:`VALID_AT`): an element is valid when it took its form on or
before ``D`` and was not closed by the end of ``D`` (UTC dates of the load times); a null ``D``
is the current graph. Elements loaded before history existed (no ``valid_from``) count as valid
since always.
"""

from __future__ import annotations

import polars as pl

from graphkit.schema import NODES, WRITEBACK_PROPERTIES, RelSpec
from graphkit.store.neo4j_frames import (
    HAS_VERSION,
    LOAD_KEY,
    LOAD_LABEL,
    RUN_KEY,
    VALID_FROM,
    VALID_TO,
    VERSION_LABEL,
    _q,
)

__all__ = [
    "NOT_INPUT",
    "VALID_AT",
    "absent",
    "close_nodes_query",
    "close_relationships_query",
    "current_nodes_query",
    "current_relationships_query",
    "load_record_query",
    "node_merge_query",
    "node_state_query",
    "relationship_merge_query",
    "relationship_state_query",
    "valid_at",
]

NOT_INPUT: tuple[str, ...] = (*WRITEBACK_PROPERTIES, RUN_KEY, VALID_FROM, VALID_TO)
"""Node properties that are not the input's: written back by runs, or history bookkeeping."""


def valid_at(var: str, param: str = "as_of") -> str:
    """Cypher: element ``var`` is valid at the end of the date ``$param`` (current when null)."""
    return (
        f"coalesce(date({var}.{VALID_FROM}) <= date(${param}), true) AND "
        f"coalesce(date({var}.{VALID_TO}) > date(${param}), {var}.{VALID_TO} IS NULL)"
    )


VALID_AT = valid_at("x")
"""The validity test every library query applies, spelled for an element ``x``."""


def _differs(var: str) -> str:
    """Cypher: ``var``'s input properties differ from ``row.p`` (the non-null ones of ``given``).

    NaN equals NaN here, so a re-load of a NaN is no change; two datetimes are equal when they
    are the same instant (the bulk importer stores UTC as the offset ``Z``, the Bolt driver as
    the zone ``UTC``, and Cypher's ``=`` tells those apart).
    """
    old, new = f"{var}[x]", "row.p[x]"
    same_instant = (
        f"CASE WHEN {old} IS :: ZONED DATETIME AND {new} IS :: ZONED DATETIME "
        f"THEN {old}.epochSeconds = {new}.epochSeconds AND {old}.nanosecond = {new}.nanosecond "
        "ELSE false END"
    )
    return (
        f"size([x IN keys({var}) WHERE NOT x IN $reserved]) <> size(given) OR any(x IN given "
        f"WHERE NOT (coalesce({old} = {new} OR ({old} <> {old} AND {new} <> {new}), false) "
        f"OR {same_instant}))"
    )


def node_merge_query(label: str, has_props: bool, sublabel: str | None, others: list[str]) -> str:
    """Cypher merging rows ``{k, p}`` into ``label`` nodes with history (parameters ``$rows``,
    ``$as_of``, ``$reserved`` = the key and :data:`NOT_INPUT`).

    A new key creates a node; a node whose input properties differ, or that was closed, gets
    its old state versioned and the new one set; an unchanged node is not written.
    """
    key = NODES[label].key
    props = "row.p" if has_props else "{}"
    labels = f", n:{_q(sublabel)}" if sublabel else ""
    removals = "".join(f" REMOVE n:{_q(o)}" for o in others)
    given = "[x IN keys(row.p) WHERE row.p[x] IS NOT NULL]" if has_props else "[]"
    kept = ", ".join(f".{_q(p)}" for p in (*WRITEBACK_PROPERTIES, RUN_KEY))
    not_input = ", ".join(f"v.{_q(p)}" for p in (*WRITEBACK_PROPERTIES, RUN_KEY))
    return (
        f"UNWIND $rows AS row MERGE (n:{_q(label)} {{{_q(key)}: row.k}}) "
        f"ON CREATE SET n += {props}, n.{VALID_FROM} = $as_of{labels} "
        f"WITH n, row, {given} AS given "
        f"WHERE n.{VALID_TO} IS NOT NULL OR {_differs('n')} "
        f"CREATE (n)-[h:{HAS_VERSION}]->(v:{VERSION_LABEL}) "
        f"SET v = properties(n), v.{VALID_TO} = coalesce(n.{VALID_TO}, $as_of), "
        f"h.{VALID_FROM} = n.{VALID_FROM}, h.{VALID_TO} = coalesce(n.{VALID_TO}, $as_of) "
        f"REMOVE {not_input} "
        f"WITH n, row, n {{{kept}}} AS kept "
        f"SET n = {props}, n += kept, n.{_q(key)} = row.k, n.{VALID_FROM} = $as_of{labels}"
        f"{removals}"
    )


def relationship_merge_query(spec: RelSpec, key: str | None, has_props: bool) -> str:
    """Cypher merging rows ``{s, d, k, p}`` into ``spec`` relationships with history
    (parameters ``$rows``, ``$as_of``, ``$reserved`` = the key, ``valid_from``, ``valid_to``).

    A row with no current relationship of its identity creates one; a current one whose
    properties differ is closed and a new one created; an equal one is left alone.
    """
    props = "row.p" if has_props else "{}"
    given = "[x IN keys(row.p) WHERE row.p[x] IS NOT NULL]" if has_props else "[]"
    identity = f" {{{_q(key)}: row.k}}" if key else ""
    set_key = f", n.{_q(key)} = row.k" if key else ""
    return (
        f"UNWIND $rows AS row "
        f"MATCH (a:{_q(spec.src)} {{{_q(NODES[spec.src].key)}: row.s}}) "
        f"MATCH (b:{_q(spec.dst)} {{{_q(NODES[spec.dst].key)}: row.d}}) "
        f"WITH a, b, row, [(a)-[r:{_q(spec.type)}{identity}]->(b) "
        f"WHERE r.{VALID_TO} IS NULL | r] AS current, "
        f"{given} AS given "
        f"WHERE NOT any(r IN current WHERE NOT ({_differs('r')})) "
        f"FOREACH (r IN current | SET r.{VALID_TO} = $as_of) "
        f"CREATE (a)-[n:{_q(spec.type)}]->(b) "
        f"SET n = {props}{set_key}, n.{VALID_FROM} = $as_of"
    )


def current_nodes_query(label: str) -> str:
    """Cypher: the keys of the current ``label`` nodes."""
    return f"MATCH (n:{_q(label)}) WHERE n.{VALID_TO} IS NULL RETURN n.{_q(NODES[label].key)}"


def current_relationships_query(spec: RelSpec, key: str | None) -> str:
    """Cypher: ``src key, dst key, own key (or null), element id`` of the current ``spec``
    relationships."""
    own = f"r.{_q(key)}" if key else "null"
    return (
        f"MATCH (a:{_q(spec.src)})-[r:{_q(spec.type)}]->(b:{_q(spec.dst)}) "
        f"WHERE r.{VALID_TO} IS NULL "
        f"RETURN a.{_q(NODES[spec.src].key)}, b.{_q(NODES[spec.dst].key)}, {own}, elementId(r)"
    )


def close_nodes_query(label: str) -> str:
    """Cypher closing the current ``label`` nodes whose keys are ``$rows[].k``."""
    return (
        f"UNWIND $rows AS row MATCH (n:{_q(label)} {{{_q(NODES[label].key)}: row.k}}) "
        f"WHERE n.{VALID_TO} IS NULL SET n.{VALID_TO} = $as_of"
    )


def close_relationships_query() -> str:
    """Cypher closing the current relationships whose element ids are ``$rows[].k``."""
    return (
        "UNWIND $rows AS row MATCH ()-[r]->() WHERE elementId(r) = row.k "
        f"AND r.{VALID_TO} IS NULL SET r.{VALID_TO} = $as_of"
    )


def load_record_query() -> str:
    """Cypher recording a load that changed something (``$as_of``, ``$counts``)."""
    return f"MERGE (l:{_q(LOAD_LABEL)} {{{LOAD_KEY}: $as_of}}) SET l += $counts"


def latest_load_query() -> str:
    """Cypher: the latest recorded load time (null when none)."""
    return f"MATCH (l:{_q(LOAD_LABEL)}) RETURN max(l.{LOAD_KEY})"


def node_state_query(label: str) -> str:
    """Cypher: the properties of every ``label`` node as of ``$as_of`` (current when null)."""
    return (
        f"MATCH (n:{_q(label)}) "
        f"WITH n, head([(n)-[:{HAS_VERSION}]->(x:{VERSION_LABEL}) WHERE {VALID_AT} | x]) AS old "
        f"WITH CASE WHEN old IS NOT NULL THEN old WHEN {valid_at('n')} THEN n END AS s "
        "WHERE s IS NOT NULL RETURN properties(s)"
    )


def relationship_state_query(spec: RelSpec) -> str:
    """Cypher: ``src key, dst key, properties`` of every ``spec`` relationship valid at
    ``$as_of`` (current when null)."""
    return (
        f"MATCH (a:{_q(spec.src)})-[r:{_q(spec.type)}]->(b:{_q(spec.dst)}) "
        f"WHERE {valid_at('r')} "
        f"RETURN a.{_q(NODES[spec.src].key)}, b.{_q(NODES[spec.dst].key)}, properties(r)"
    )


def absent(current: pl.DataFrame, wanted: pl.DataFrame, on: list[str]) -> pl.DataFrame:
    """The rows of ``current`` whose ``on`` columns match no row of ``wanted``."""
    if current.height == 0:
        return current
    wanted = wanted.select(pl.col(c).cast(current.schema[c]) for c in on).unique()
    return current.join(wanted, on=on, how="anti", nulls_equal=True)
