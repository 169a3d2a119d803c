"""Guarantee circles (担保圈): strongly connected components of the guarantee graph.

The guarantee graph has an edge guarantor -> borrower for every guarantee. A *circle* is a
strongly connected component with at least two members: every member is, through a chain of
guarantees, a guarantor of every other member (two firms guaranteeing each other is the smallest
circle). For each circle graphkit reports

* its members and the *internal amount*: the sum of the guarantees with both ends inside;
* its elementary cycles of length at most L (``circles.max_cycle_length``), each once, rotated
  to start at its smallest ``customer_id``; at most ``circles.max_cycles_listed`` are listed
  (shortest first) and ``cycles_capped`` says when more exist;
* its defaulted members;
* its *reach*: the number of customers outside the circle whose guarantees lead into it (its
  ancestors in the guarantee graph), i.e. who stand to pay if the circle fails.

Several guarantees between the same two customers are one edge for the components and cycles,
and all of them count in the internal amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import igraph as ig
import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components

from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

MEMBERSHIP_COLUMNS = {"circle_id": pl.Int64, "customer_id": pl.String}
SUMMARY_COLUMNS = {
    "circle_id": pl.Int64,
    "size": pl.Int64,
    "members": pl.List(pl.String),
    "internal_amount": pl.Float64,
    "cycles": pl.List(pl.List(pl.String)),
    "cycles_listed": pl.Int64,
    "cycles_capped": pl.Boolean,
    "defaulted_members": pl.Int64,
    "defaulted_ids": pl.List(pl.String),
    "reach": pl.Int64,
}

# Soft cap on the rows one expansion step of the cycle search may create; larger frontiers are
# split and searched in halves, which bounds memory on dense circles.
FRONTIER_BUDGET = 4_000_000


@dataclass(frozen=True)
class CircleResult:
    """Guarantee circles.

    Attributes:
        membership: circle_id, customer_id (ordered by circle_id, customer_id).
        summary: one row per circle with the columns of :data:`SUMMARY_COLUMNS`.
    """

    membership: pl.DataFrame
    summary: pl.DataFrame


def bounded_simple_cycles(
    indptr: np.ndarray,
    indices: np.ndarray,
    group: np.ndarray,
    max_length: int,
    cap: int | None = None,
    budget: int = FRONTIER_BUDGET,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Every elementary cycle of length <= ``max_length`` of a directed graph, each once.

    The graph is the CSR ``(indptr, indices)`` without duplicate edges; ``group[v]`` is the
    strongly connected component of ``v`` and every edge must join two vertices of one group
    (cycles never leave a component). A cycle is reported once, starting at its smallest vertex
    ``s``: the search extends simple paths from every ``s`` through vertices ``> s`` only, one
    length at a time and vectorised over all paths (a breadth-first form of Johnson's
    restriction to larger vertices, bounded by length as in Gupta & Suzumura 2021), and closes a
    cycle whenever an edge returns to ``s``.

    ``cap``: once a group has more than ``cap`` cycles its paths are dropped, so at least
    ``cap + 1`` (and all of the shortest lengths) are found for a group that has more.

    Returns ``(cycles, counts)``: ``cycles[length]`` is an int array ``(c, length)`` of cycles
    (rows in discovery order), ``counts[g]`` the number found per group.

    Complexity: O(sum over starts of the simple paths of length < max_length through larger
    vertices); memory is bounded by ``budget`` rows per expansion step (larger frontiers are
    split). Reference: D. B. Johnson, *Finding all the elementary circuits of a directed graph*,
    SIAM J. Comput. 4(1), 1975; A. Gupta, T. Suzumura, *Finding All Bounded-Length Simple Cycles
    in a Directed Graph*, arXiv:2105.10094, 2021.
    """
    n_groups = int(group.max()) + 1 if len(group) else 0
    counts = np.zeros(n_groups, dtype=np.int64)
    found: dict[int, list[np.ndarray]] = {}

    def search(paths: np.ndarray) -> None:
        while paths.shape[0]:
            if cap is not None:
                paths = paths[counts[group[paths[:, 0]]] <= cap]
                if not paths.shape[0]:
                    return
            length = paths.shape[1]
            last = paths[:, -1]
            degree = indptr[last + 1] - indptr[last]
            total = int(degree.sum())
            if total > budget and paths.shape[0] > 1:
                half = paths.shape[0] // 2
                search(paths[:half])
                search(paths[half:])
                return
            rows = np.repeat(np.arange(paths.shape[0]), degree)
            offsets = np.repeat(indptr[last] - np.cumsum(degree) + degree, degree)
            neighbour = indices[offsets + np.arange(total)]
            start = paths[rows, 0]
            if length >= 2:
                closing = rows[neighbour == start]
                if len(closing):
                    cycles = paths[closing]
                    found.setdefault(length, []).append(cycles)
                    counts[:] += np.bincount(group[cycles[:, 0]], minlength=n_groups)
            if length == max_length:
                return
            extend = neighbour > start
            for column in range(1, length):
                extend &= paths[rows, column] != neighbour
            paths = np.concatenate([paths[rows[extend]], neighbour[extend, None]], axis=1)

    n = len(indptr) - 1
    if n and max_length >= 2:
        search(np.arange(n, dtype=indices.dtype)[:, None])
    return {length: np.concatenate(parts) for length, parts in sorted(found.items())}, counts


def _circle_members(graph: RiskGraph) -> pl.DataFrame:
    """node, customer_id, circle_id of every circle member, ordered by circle_id, customer_id."""
    n = graph.n("Customer")
    src, dst = graph.endpoints("guarantees")
    if n == 0 or len(src) == 0:
        return pl.DataFrame(
            schema={"node": pl.Int64, "customer_id": pl.String, "circle_id": pl.Int64}
        )
    adjacency = sp.csr_array((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    _, component = connected_components(adjacency, directed=True, connection="strong")
    sizes = np.bincount(component, minlength=1)
    members = np.flatnonzero(sizes[component] >= 2)
    return (
        pl.DataFrame({"node": members, "component": component[members]})
        .with_columns(graph.keys("Customer").gather(members).alias("customer_id"))
        .with_columns(pl.col("customer_id").min().over("component").alias("_first"))
        .sort("_first", "customer_id")
        .select(
            "node",
            "customer_id",
            pl.col("_first").rank("dense").cast(pl.Int64).alias("circle_id"),
        )
    )


def circle_membership(graph: RiskGraph) -> pl.DataFrame:
    """circle_id, customer_id of every guarantee-circle member, without the per-circle summary.

    Same circles and ids as :func:`guarantee_circles`. Complexity: O(V + E).
    """
    return _circle_members(graph).select("circle_id", "customer_id")


def guarantee_circles(
    graph: RiskGraph,
    max_cycle_length: int = 6,
    max_cycles_listed: int = 1000,
    progress: Progress = SILENT,
) -> CircleResult:
    """Guarantee circles: strongly connected components (>= 2 members) of guarantor -> borrower.

    Parameters:
        graph: the risk graph (``edges["guarantees"]``, ``amount``).
        max_cycle_length: L, the longest elementary cycle listed.
        max_cycles_listed: cap on cycles listed per circle; the shortest are kept.

    Returns a :class:`CircleResult`. Circle ids start at 1, ordered by each circle's smallest
    member ``customer_id``.

    Complexity: O(V + E) for the components (scipy csgraph, Pearce's algorithm), the bounded
    cycle search of :func:`bounded_simple_cycles` inside circles, and one reverse breadth-first
    search per circle over the part of the graph upstream of circles for the reach.
    Reference: R. Tarjan, *Depth-first search and linear graph algorithms*, SIAM J. Comput.
    1(2), 1972; D. J. Pearce, *A space-efficient algorithm for finding strongly connected
    components*, IPL 116(1), 2016.
    """
    n = graph.n("Customer")
    edges = graph.edges["guarantees"]
    src, dst = graph.endpoints("guarantees")
    order = _circle_members(graph)
    n_circles = order.get_column("circle_id").max() if order.height else 0
    progress.log(f"circles: {n_circles} circles, {order.height} members")
    if not order.height:
        return CircleResult(
            pl.DataFrame(schema=MEMBERSHIP_COLUMNS), pl.DataFrame(schema=SUMMARY_COLUMNS)
        )
    keys = graph.keys("Customer")
    # Local ids follow (circle, customer_id), so a cycle's smallest local id is its smallest
    # customer_id and the search's rotation is the documented one.
    local_nodes = order.get_column("node").to_numpy()
    circle_index = order.get_column("circle_id").to_numpy() - 1
    local_of = np.full(n, -1, dtype=np.int64)
    local_of[local_nodes] = np.arange(len(local_nodes))
    circle_of = np.full(n, -1, dtype=np.int64)
    circle_of[local_nodes] = circle_index

    inside = (circle_of[src] >= 0) & (circle_of[src] == circle_of[dst])
    amount = edges.get_column("amount").fill_null(0).to_numpy()
    internal_amount = np.bincount(
        circle_of[src[inside]], weights=amount[inside], minlength=n_circles
    )
    local = sp.csr_array(
        (np.ones(int(inside.sum()), dtype=np.int8), (local_of[src[inside]], local_of[dst[inside]])),
        shape=(len(local_nodes), len(local_nodes)),
    )
    local.sum_duplicates()
    local.sort_indices()
    cycles, counts = bounded_simple_cycles(
        local.indptr.astype(np.int64),
        local.indices.astype(np.int64),
        circle_index,
        max_cycle_length,
        cap=max_cycles_listed,
    )
    cycle_frame = _listed_cycles(cycles, circle_index, local_nodes, keys, max_cycles_listed)
    reach = _reach(src, dst, n, local_nodes, circle_index, n_circles)

    defaulted = graph.defaulted()[local_nodes] == 1
    membership = order.select("circle_id", "customer_id")
    summary = (
        order.with_columns(pl.Series("defaulted", defaulted))
        .group_by("circle_id")
        .agg(
            pl.len().cast(pl.Int64).alias("size"),
            pl.col("customer_id").alias("members"),
            pl.col("defaulted").sum().cast(pl.Int64).alias("defaulted_members"),
            pl.col("customer_id").filter(pl.col("defaulted")).alias("defaulted_ids"),
        )
        .sort("circle_id")
        .with_columns(
            pl.Series("internal_amount", internal_amount, dtype=pl.Float64),
            pl.Series("cycles_found", counts, dtype=pl.Int64),
            pl.Series("reach", reach, dtype=pl.Int64),
        )
        .join(cycle_frame, on="circle_id", how="left")
        .with_columns(
            pl.col("cycles").fill_null(pl.lit([], dtype=pl.List(pl.List(pl.String)))),
            (pl.col("cycles_found") > max_cycles_listed).alias("cycles_capped"),
        )
        .with_columns(pl.col("cycles").list.len().cast(pl.Int64).alias("cycles_listed"))
        .select(list(SUMMARY_COLUMNS))
    )
    return CircleResult(membership, summary)


def _listed_cycles(
    cycles: dict[int, np.ndarray],
    circle_index: np.ndarray,
    local_nodes: np.ndarray,
    keys: pl.Series,
    cap: int,
) -> pl.DataFrame:
    """Per circle, its listed cycles as customer_id lists: shortest first, then by members."""
    parts = []
    for length, rows in cycles.items():
        rows = rows[np.lexsort(rows.T[::-1])]
        ids = keys.gather(local_nodes[rows.ravel()]).reshape((rows.shape[0], length))
        parts.append(
            pl.DataFrame(
                {
                    "circle_id": circle_index[rows[:, 0]] + 1,
                    "length": np.full(rows.shape[0], length),
                    "cycle": ids.cast(pl.List(pl.String)),
                }
            ).with_row_index("_order")
        )
    if not parts:
        return pl.DataFrame(schema={"circle_id": pl.Int64, "cycles": pl.List(pl.List(pl.String))})
    return (
        pl.concat(parts)
        .sort("circle_id", "length", "_order")
        .filter(pl.int_range(pl.len()).over("circle_id") < cap)
        .group_by("circle_id", maintain_order=True)
        .agg(pl.col("cycle").alias("cycles"))
        .with_columns(pl.col("circle_id").cast(pl.Int64))
    )


def _reach(
    src: np.ndarray,
    dst: np.ndarray,
    n: int,
    local_nodes: np.ndarray,
    circle_index: np.ndarray,
    n_circles: int,
) -> np.ndarray:
    """Per circle, the number of customers outside it that can reach it along guarantees."""
    # One breadth-first search backwards from a virtual node tied to every circle member finds
    # everything upstream of any circle; per-circle searches then run on that part only.
    reverse = sp.csr_array(
        (
            np.ones(len(src) + len(local_nodes), dtype=np.int8),
            (
                np.concatenate([dst, np.full(len(local_nodes), n)]),
                np.concatenate([src, local_nodes]),
            ),
        ),
        shape=(n + 1, n + 1),
    )
    upstream = np.sort(breadth_first_order(reverse, n, directed=True, return_predecessors=False))
    upstream = upstream[upstream < n]
    position = np.full(n, -1, dtype=np.int64)
    position[upstream] = np.arange(len(upstream))
    keep = (position[src] >= 0) & (position[dst] >= 0)
    # python-igraph converts a list of int tuples about three times faster than a numpy array.
    edges = zip(position[src[keep]].tolist(), position[dst[keep]].tolist(), strict=True)
    sub = ig.Graph(n=len(upstream), edges=list(edges), directed=True)
    # Every member of a strongly connected component has the same ancestors: any one will do.
    representative = np.full(n_circles, -1, dtype=np.int64)
    representative[circle_index] = local_nodes
    sizes = np.bincount(circle_index, minlength=n_circles)
    return np.array(
        [
            len(sub.subcomponent(int(position[v]), mode="in")) - size
            for v, size in zip(representative, sizes, strict=True)
        ],
        dtype=np.int64,
    )
