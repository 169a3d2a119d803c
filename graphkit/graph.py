"""RiskGraph: one in-memory, columnar graph built once from the validated input tables.

Every node label of :data:`graphkit.schema.NODES` (except the derived ones) is a polars frame
whose row position is the node's dense ``int32`` id; its key column comes first. Every
relationship of :data:`graphkit.schema.RELATIONSHIPS` is a frame with ``src`` and ``dst``
(``int32`` ids into the endpoint labels) followed by the relationship's properties and any extra
columns the input carried. Repayments stay a table keyed by the credit line's id. Derived
views (CSR matrices, owners, drawdown devices, device uses) are built on first use and cached.

Building is joins only: no Python loop touches a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from graphkit.schema import NODES, RELATIONSHIPS, TABLES

ID = pl.Int32


def _with_ids(frame: pl.DataFrame, key: str, id_name: str) -> pl.DataFrame:
    return frame.select(pl.col(key)).with_row_index(id_name).with_columns(pl.col(id_name).cast(ID))


def _node_frames(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    nodes: dict[str, pl.DataFrame] = {}
    for label, spec in NODES.items():
        if spec.derived:
            continue
        if spec.table is not None:
            nodes[label] = tables[spec.table]
            continue
        parts = [
            tables[t].select(pl.col(c).alias(spec.key)).drop_nulls()
            for t, c in spec.extra_sources
            if c in tables[t].columns
        ]
        keys = pl.concat(parts) if parts else pl.DataFrame({spec.key: []}, {spec.key: pl.String})
        nodes[label] = keys.unique(maintain_order=True)
    labels = tables["labels"].select("customer_id", "defaulted", "default_date")
    nodes["Customer"] = nodes["Customer"].join(
        labels, on="customer_id", how="left", maintain_order="left"
    )
    return nodes


def _edge_frames(
    tables: dict[str, pl.DataFrame], nodes: dict[str, pl.DataFrame]
) -> dict[str, pl.DataFrame]:
    edges: dict[str, pl.DataFrame] = {}
    for name, spec in RELATIONSHIPS.items():
        table = tables[spec.table]
        src_ids = _with_ids(nodes[spec.src], NODES[spec.src].key, "src").rename(
            {NODES[spec.src].key: spec.src_col}
        )
        dst_ids = _with_ids(nodes[spec.dst], NODES[spec.dst].key, "dst").rename(
            {NODES[spec.dst].key: spec.dst_col}
        )
        if spec.src_col == spec.dst_col:
            raise ValueError(f"relationship {name} uses one column for both ends")
        # A relationship drawn from a node's own table (credit_lines, accounts, merchants)
        # carries only its declared properties; the other columns belong to the node. A pure
        # relationship table keeps every non-endpoint column, extras included.
        if any(n.table == spec.table for n in NODES.values()):
            rest = list(spec.props)
        else:
            rest = [c for c in table.columns if c not in (spec.src_col, spec.dst_col)]
        frame = (
            table.lazy()
            .join(src_ids.lazy(), on=spec.src_col, how="inner", maintain_order="left")
            .join(dst_ids.lazy(), on=spec.dst_col, how="inner", maintain_order="left")
            .select("src", "dst", *rest)
            .collect()
        )
        edges[name] = frame
    return edges


@dataclass(eq=False)
class RiskGraph:
    """The risk network: node frames, edge frames and repayments.

    Attributes:
        nodes: label -> frame; row ``i`` is the node with id ``i``; key column first.
        edges: relationship name -> frame with ``src``, ``dst`` (int32) and properties.
        repayments: the repayments table (``line_id`` keyed) used by features.
    """

    nodes: dict[str, pl.DataFrame]
    edges: dict[str, pl.DataFrame]
    repayments: pl.DataFrame
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_tables(cls, tables: dict[str, pl.DataFrame]) -> RiskGraph:
        """Build from validated tables (every table of the schema present, possibly empty).

        Complexity: O(V + E) hash joins.
        """
        missing = [t for t in TABLES if t not in tables]
        if missing:
            raise ValueError(f"missing tables: {', '.join(missing)}")
        nodes = _node_frames(tables)
        return cls(nodes=nodes, edges=_edge_frames(tables, nodes), repayments=tables["repayments"])

    def equals(self, other: RiskGraph) -> bool:
        """Exact equality of every frame (values, dtypes, order)."""
        return (
            self.nodes.keys() == other.nodes.keys()
            and self.edges.keys() == other.edges.keys()
            and all(self.nodes[k].equals(other.nodes[k]) for k in self.nodes)
            and all(self.edges[k].equals(other.edges[k]) for k in self.edges)
            and self.repayments.equals(other.repayments)
            and all(self.nodes[k].schema == other.nodes[k].schema for k in self.nodes)
            and all(self.edges[k].schema == other.edges[k].schema for k in self.edges)
        )

    def n(self, label: str) -> int:
        """Number of nodes of ``label``."""
        return self.nodes[label].height

    def keys(self, label: str) -> pl.Series:
        """The key of every node of ``label``, in id order."""
        return self.nodes[label].get_column(NODES[label].key)

    def ids(self, label: str, keys: pl.Series | list[str]) -> np.ndarray:
        """Dense ids of ``keys`` in ``label`` (``-1`` where a key is unknown)."""
        spec_key = NODES[label].key
        wanted = pl.DataFrame({spec_key: pl.Series(keys, dtype=pl.String)})
        joined = wanted.join(
            _with_ids(self.nodes[label], spec_key, "id"),
            on=spec_key,
            how="left",
            maintain_order="left",
        )
        return joined.get_column("id").fill_null(-1).to_numpy().astype(np.int32)

    def endpoints(self, rel: str) -> tuple[np.ndarray, np.ndarray]:
        """``(src, dst)`` int32 arrays of relationship ``rel``."""
        frame = self.edges[rel]
        return (
            frame.get_column("src").to_numpy().astype(np.int32, copy=False),
            frame.get_column("dst").to_numpy().astype(np.int32, copy=False),
        )

    def csr(self, rel: str, weight: str | None = None) -> sp.csr_array:
        """Adjacency of ``rel`` as a CSR array (duplicate edges summed); cached.

        Shape is (n(src label), n(dst label)); values are ``weight`` or 1.
        """
        cache_key = ("csr", rel, weight)
        if cache_key not in self._cache:
            spec = RELATIONSHIPS[rel]
            src, dst = self.endpoints(rel)
            values = (
                self.edges[rel].get_column(weight).fill_null(0).to_numpy().astype(np.float64)
                if weight
                else np.ones(len(src))
            )
            self._cache[cache_key] = sp.csr_array(
                (values, (src, dst)), shape=(self.n(spec.src), self.n(spec.dst))
            )
        return self._cache[cache_key]

    def account_owner_customer(self) -> np.ndarray:
        """For each account id, the id of the customer owning it, or ``-1``."""
        return self._owner_array("owns_customer")

    def account_owner_merchant(self) -> np.ndarray:
        """For each account id, the id of the merchant owning it, or ``-1``."""
        return self._owner_array("owns_merchant")

    def _owner_array(self, rel: str) -> np.ndarray:
        cache_key = ("owner", rel)
        if cache_key not in self._cache:
            owner = np.full(self.n("Account"), -1, dtype=np.int32)
            src, dst = self.endpoints(rel)
            owner[dst] = src
            self._cache[cache_key] = owner
        return self._cache[cache_key]

    def banned_sink_accounts(self) -> np.ndarray:
        """Boolean per account: owned by a merchant in a banned sector (a fund-flow sink)."""
        cache_key = ("banned_sinks",)
        if cache_key not in self._cache:
            sectors = self.nodes["Sector"]
            banned_sector = np.zeros(self.n("Sector"), dtype=bool)
            if sectors.height:
                banned_sector = sectors.get_column("banned").fill_null(False).to_numpy()
            merchant_banned = np.zeros(self.n("Merchant"), dtype=bool)
            m_src, m_dst = self.endpoints("in_sector")
            merchant_banned[m_src] = banned_sector[m_dst]
            owner = self.account_owner_merchant()
            sinks = np.zeros(self.n("Account"), dtype=bool)
            owned = owner >= 0
            sinks[owned] = merchant_banned[owner[owned]]
            self._cache[cache_key] = sinks
        return self._cache[cache_key]

    def line_customer(self) -> np.ndarray:
        """For each credit line id, the id of its customer."""
        cache_key = ("line_customer",)
        if cache_key not in self._cache:
            owner = np.full(self.n("CreditLine"), -1, dtype=np.int32)
            src, dst = self.endpoints("has_line")
            owner[dst] = src
            self._cache[cache_key] = owner
        return self._cache[cache_key]

    def drawdown_devices(self) -> np.ndarray:
        """Dense ``Device`` id of each ``drawdown`` edge row, in row order; cached.

        ``-1`` where the drawdown has no ``device_id`` (or one that is not a Device node). This
        is the one place the drawdowns' device strings are resolved to ids: the rings, the
        clusters' device layer and the GNN features all read this array.

        Complexity: one string hash join over the D drawdowns, O(D).
        """
        cache_key = ("drawdown_devices",)
        if cache_key not in self._cache:
            devices = self.edges["drawdown"].get_column("device_id")
            self._cache[cache_key] = self.ids("Device", devices)
        return self._cache[cache_key]

    def device_uses(self, until: datetime | None = None) -> pl.DataFrame:
        """Distinct (customer, device) use pairs as int32 dense ids, sorted by customer, device.

        A customer *uses* a device it is linked to (``uses_device``) or drew money from (a
        ``drawdown`` carrying that ``device_id`` on one of the customer's credit lines); see
        :mod:`graphkit.analytics.rings`.

        Parameters:
            until: keep only links first seen at or before ``until`` (or with no
                ``first_seen``) and drawdowns made at or before it; ``None`` keeps every use.

        Returns a frame with int32 columns ``customer`` and ``device``. The all-time frame is
        cached; a dated call that drops nothing returns it too.

        Complexity: O(L + D) for L links and D drawdowns, plus a sort of the L + D pair keys;
        the drawdown device strings are resolved once (:meth:`drawdown_devices`).
        """
        links = self.edges["uses_device"]
        draws = self.edges["drawdown"]
        if until is None:
            cache_key = ("device_uses",)
            if cache_key not in self._cache:
                self._cache[cache_key] = self._use_pairs(None, None)
            return self._cache[cache_key]
        link_mask = links.select(
            pl.col("first_seen").is_null() | (pl.col("first_seen") <= until)
        ).to_series()
        draw_mask = draws.select((pl.col("ts") <= until).fill_null(False)).to_series()
        if link_mask.all() and draw_mask.all():
            return self.device_uses()
        return self._use_pairs(link_mask.to_numpy(), draw_mask.to_numpy())

    def _use_pairs(
        self, link_mask: np.ndarray | None, draw_mask: np.ndarray | None
    ) -> pl.DataFrame:
        """Distinct (customer, device) pairs of the masked links and drawdowns (``None``: all)."""
        link_customer, link_device = self.endpoints("uses_device")
        draw_customer = self.line_customer()[self.endpoints("drawdown")[0]]
        draw_device = self.drawdown_devices()
        if link_mask is not None:
            link_customer, link_device = link_customer[link_mask], link_device[link_mask]
        if draw_mask is not None:
            draw_customer, draw_device = draw_customer[draw_mask], draw_device[draw_mask]
        used = (draw_customer >= 0) & (draw_device >= 0)
        # One int64 key per pair, customer-major: a sort and a neighbour comparison give the
        # distinct pairs already ordered by (customer, device), several times faster than a
        # two-column hash unique followed by a sort.
        n_devices = np.int64(max(self.n("Device"), 1))
        keys = np.sort(
            np.concatenate(
                [
                    link_customer.astype(np.int64) * n_devices + link_device,
                    draw_customer[used].astype(np.int64) * n_devices + draw_device[used],
                ]
            )
        )
        if len(keys):
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        customer, device = np.divmod(keys, n_devices)
        return pl.DataFrame(
            {"customer": customer.astype(np.int32), "device": device.astype(np.int32)},
            schema={"customer": pl.Int32, "device": pl.Int32},
        )

    def defaulted(self) -> np.ndarray:
        """Per customer: 1 defaulted, 0 labelled not defaulted, -1 unlabelled (int8)."""
        flag = self.nodes["Customer"].get_column("defaulted")
        return flag.cast(pl.Int8).fill_null(-1).to_numpy().astype(np.int8)

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts of nodes per label and edges per relationship."""
        return {
            "nodes": {label: frame.height for label, frame in self.nodes.items()},
            "edges": {name: frame.height for name, frame in self.edges.items()},
        }
