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
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

if TYPE_CHECKING:
    from graphkit.pipeline import RunContext

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
    """Distinct (customer, device) use pairs as dense ids: columns ``customer``, ``device``.

    From ``uses_device`` edges and, with ``include_drawdowns``, from (line's customer, drawdown
    device) pairs. Complexity: O(links + drawdowns) hash operations.
    """
    links = graph.edges["uses_device"].select(
        pl.col("src").alias("customer"), pl.col("dst").alias("device")
    )
    parts = [links]
    drawdowns = graph.edges["drawdown"]
    if include_drawdowns and drawdowns.height:
        with_device = drawdowns.filter(pl.col("device_id").is_not_null())
        lines = with_device.get_column("src").to_numpy()
        customers = graph.line_customer()[lines]
        devices = graph.ids("Device", with_device.get_column("device_id"))
        keep = (customers >= 0) & (devices >= 0)
        parts.append(
            pl.DataFrame(
                {"customer": customers[keep], "device": devices[keep]},
                schema={"customer": pl.Int32, "device": pl.Int32},
            )
        )
    return pl.concat(parts).unique().sort("device", "customer")


def classify_devices(
    pairs: pl.DataFrame, min_customers: int, max_customers: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split use pairs by the hub rule.

    Returns ``(shared_pairs, hub_counts)``: the (customer, device) pairs of devices with
    ``min_customers <= n <= max_customers`` customers, and (device, customers) for hubs
    (``n > max_customers``).
    """
    counted = pairs.with_columns(pl.len().over("device").alias("customers"))
    shared = counted.filter(pl.col("customers").is_between(min_customers, max_customers))
    hubs = (
        counted.filter(pl.col("customers") > max_customers)
        .group_by("device")
        .agg(pl.col("customers").first())
        .sort("device")
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

    Complexity: O(P) for P use pairs (one sparse connected-components pass, scipy csgraph).
    Reference: union of bipartite projection components (Newman, *Networks*, 2nd ed., 6.6).
    """
    pairs = device_customer_pairs(graph, include_drawdown_devices)
    shared, hubs = classify_devices(pairs, min_customers_per_device, max_customers_per_device)
    progress.log(
        f"rings: {shared.get_column('device').n_unique()} shared devices, {hubs.height} hubs"
    )
    hub_frame = pl.DataFrame(
        {
            "device_id": graph.keys("Device").gather(hubs.get_column("device")),
            "customers": hubs.get_column("customers").cast(pl.Int64),
        },
        schema=HUB_COLUMNS,
    ).sort(["customers", "device_id"], descending=[True, False])
    if shared.height == 0:
        return RingResult(pl.DataFrame(schema=RING_COLUMNS), hub_frame)

    n_customers = graph.n("Customer")
    customer = shared.get_column("customer").to_numpy()
    device = shared.get_column("device").to_numpy()
    size = n_customers + graph.n("Device")
    adjacency = sp.csr_array(
        (np.ones(len(customer), dtype=np.int8), (customer, device + n_customers)),
        shape=(size, size),
    )
    _, labels = connected_components(adjacency, directed=False)
    devices_per_customer = np.bincount(customer, minlength=n_customers)
    in_ring = np.flatnonzero(devices_per_customer > 0)
    members = pl.DataFrame(
        {
            "component": labels[in_ring],
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


def rings_stage(ctx: RunContext) -> None:
    """Pipeline stage ``rings``: ``rings.parquet``, ``ring_hubs.parquet``, ring_membership."""
    cfg = ctx.config.rings
    result = device_rings(
        ctx.graph,
        cfg.min_customers_per_device,
        cfg.max_customers_per_device,
        progress=ctx.progress,
    )
    ctx.outputs["rings.parquet"] = result.membership
    ctx.outputs["ring_hubs.parquet"] = result.hubs
    ctx.results["ring_membership"] = result.membership.select("customer_id", "ring_id")
    ctx.counts["rings"] = result.membership.get_column("ring_id").n_unique()
    ctx.counts["ring_hub_devices"] = result.hubs.height
