"""Device-sharing rings: customers joined through devices they share.

A customer *uses* a device when ``device_links`` links them, or when a drawdown on one of the
customer's credit lines was made from that device (``drawdowns.device_id``): drawing money from
a phone is using it, whether or not the device was ever registered.

The hub rule. A device used by ``n`` distinct customers is

* *private* when ``n < k`` (``rings.min_customers_per_device``, default 3): it joins nobody;
* *shared* when ``k <= n <= m`` (``rings.max_customers_per_device``, default 50): it joins all
  its customers;
* a *hub* when ``n > m``: a shop's payment terminal or a branch kiosk. A hub is reported in
  ``ring_hubs.parquet`` but joins nobody, because a single terminal used by hundreds of honest
  customers would otherwise glue them into one meaningless ring.

A ring is a connected component of the graph whose vertices are customers and shared devices
(so two customers are in one ring when a chain of shared devices links them). Every ring has at
least ``k`` members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

RING_COLUMNS = {
    "ring_id": pl.Int64,
    "customer_id": pl.String,
    "ring_size": pl.Int64,
    "shared_devices": pl.Int64,
}
HUB_COLUMNS = {"device_id": pl.String, "customers": pl.Int64}


@dataclass(frozen=True)
class RingResult:
    """Rings and hub devices.

    Attributes:
        membership: ring_id, customer_id, ring_size, shared_devices (shared devices of this
            customer); ordered by ring_id then customer_id.
        hubs: device_id, customers: devices used by more than ``max_customers_per_device``,
            busiest first.
    """

    membership: pl.DataFrame
    hubs: pl.DataFrame


def device_customer_pairs(graph: RiskGraph, include_drawdowns: bool = True) -> pl.DataFrame:
    """Distinct (customer, device) use pairs as int32 dense ids: columns ``customer``, ``device``.

    From ``uses_device`` edges and, with ``include_drawdowns``, from (line's customer, drawdown
    device) pairs. With drawdowns this is the graph's cached :meth:`RiskGraph.device_uses`
    (shared with the clusters' device layer and the GNN features), sorted by customer then
    device. Complexity: O(links + drawdowns) on the first call, O(1) after.
    """
    if include_drawdowns:
        return graph.device_uses()
    links = graph.edges["uses_device"].select(
        pl.col("src").alias("customer"), pl.col("dst").alias("device")
    )
    return links.unique().sort("customer", "device")


def classify_devices(
    pairs: pl.DataFrame, min_customers: int, max_customers: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split distinct use pairs by the hub rule.

    Returns ``(shared_pairs, hub_counts)``: the (customer, device) pairs of devices with
    ``min_customers <= n <= max_customers`` customers, in the order of ``pairs``, and
    (device, customers) for hubs (``n > max_customers``), by device id.

    Complexity: O(P + max device id): one ``bincount`` and one gather, no hashing.
    """
    device = pairs.get_column("device").to_numpy()
    users = np.bincount(device)
    per_pair = users[device]
    shared = pairs.filter(pl.Series((per_pair >= min_customers) & (per_pair <= max_customers)))
    hub = np.flatnonzero(users > max_customers)
    hubs = pl.DataFrame(
        {"device": hub, "customers": users[hub]},
        schema={"device": pl.Int32, "customers": pl.Int64},
    )
    return shared.select("customer", "device"), hubs


def device_rings(
    graph: RiskGraph,
    min_customers_per_device: int = 3,
    max_customers_per_device: int = 50,
    include_drawdown_devices: bool = True,
    progress: Progress = SILENT,
) -> RingResult:
    """Device-sharing rings: connected components of customers joined through shared devices.

    Parameters:
        graph: the risk graph.
        min_customers_per_device: k; a device with at least k distinct customers is shared.
        max_customers_per_device: m; a device with more than m customers is a hub and joins
            nobody (see the module docstring).
        include_drawdown_devices: count the device of each drawdown as used by the line's
            customer.

    Returns a :class:`RingResult`. Ring ids start at 1, ordered by size (largest first), then by
    the smallest member ``customer_id``.

    Complexity: O(P + C) for P use pairs and C customers (counts by ``bincount``; one sparse
    connected-components pass, scipy csgraph, over the shared pairs' customers and devices).
    Reference: union of bipartite projection components (Newman, *Networks*, 2nd ed., 6.6).
    """
    pairs = device_customer_pairs(graph, include_drawdown_devices)
    shared, hubs = classify_devices(pairs, min_customers_per_device, max_customers_per_device)
    customer = shared.get_column("customer").to_numpy()
    device = shared.get_column("device").to_numpy()
    shared_devices = np.flatnonzero(np.bincount(device))
    progress.log(f"rings: {len(shared_devices)} shared devices, {hubs.height} hubs")
    hub_frame = pl.DataFrame(
        {
            "device_id": graph.keys("Device").gather(hubs.get_column("device")),
            "customers": hubs.get_column("customers"),
        },
        schema=HUB_COLUMNS,
    ).sort(["customers", "device_id"], descending=[True, False])
    if shared.height == 0:
        return RingResult(pl.DataFrame(schema=RING_COLUMNS), hub_frame)

    # Components over the shared pairs only: vertices are the R customers with a shared device
    # (0..R-1) and the shared devices (R..), so the pass is O(shared pairs), not O(all nodes).
    devices_per_customer = np.bincount(customer, minlength=graph.n("Customer"))
    in_ring = np.flatnonzero(devices_per_customer)
    rows = np.searchsorted(in_ring, customer)
    cols = np.searchsorted(shared_devices, device) + len(in_ring)
    size = len(in_ring) + len(shared_devices)
    adjacency = sp.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _, labels = connected_components(adjacency, directed=False)
    members = pl.DataFrame(
        {
            "component": labels[: len(in_ring)],
            "customer_id": graph.keys("Customer").gather(in_ring),
            "shared_devices": devices_per_customer[in_ring].astype(np.int64),
        }
    )
    membership = _number_groups(members, "component", "ring_id").select(
        "ring_id",
        "customer_id",
        pl.len().over("ring_id").cast(pl.Int64).alias("ring_size"),
        "shared_devices",
    )
    return RingResult(membership.sort("ring_id", "customer_id"), hub_frame)


def _number_groups(members: pl.DataFrame, group: str, id_name: str) -> pl.DataFrame:
    """Replace ``group`` labels with ids 1.. ordered by size desc, then smallest customer_id."""
    order = (
        members.group_by(group)
        .agg(pl.len().alias("_size"), pl.col("customer_id").min().alias("_first"))
        .sort(["_size", "_first"], descending=[True, False])
        .with_row_index(id_name, offset=1)
        .select(pl.col(id_name).cast(pl.Int64), group)
    )
    return members.join(order, on=group, how="left").drop(group)


def ring_devices(
    graph: RiskGraph,
    ring_membership: pl.DataFrame,
    min_customers_per_device: int = 3,
    max_customers_per_device: int = 50,
    include_drawdown_devices: bool = True,
) -> pl.DataFrame:
    """The shared devices that tie each ring together: the evidence of a ``ring`` alert.

    Parameters: the graph and settings :func:`device_rings` was run with, and its
    ``membership`` (ring_id, customer_id). Returns (ring_id, device_id, customers: how many of the
    ring's members used the device), ordered by ring_id then device_id.

    Complexity: O(P) for P use pairs (the classification of :func:`device_rings`, one join).
    """
    pairs = device_customer_pairs(graph, include_drawdown_devices)
    shared, _ = classify_devices(pairs, min_customers_per_device, max_customers_per_device)
    uses = pl.DataFrame(
        {
            "customer_id": graph.keys("Customer").gather(shared.get_column("customer")),
            "device_id": graph.keys("Device").gather(shared.get_column("device")),
        }
    )
    members = ring_membership.select(
        pl.col("ring_id").cast(pl.Int64), pl.col("customer_id").cast(pl.String)
    )
    return (
        uses.with_columns(pl.col("customer_id").cast(pl.String))
        .join(members, on="customer_id")
        .group_by("ring_id", "device_id")
        .agg(pl.len().cast(pl.Int64).alias("customers"))
        .sort("ring_id", "device_id")
    )
