"""Round trips: time-ordered transfer cycles through customers' accounts."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from graphkit.analytics.flows._arrays import batches, expand_ranges, hub_cap
from graphkit.analytics.flows.index import US_PER_DAY, FlowIndex

__all__ = ["MAX_CYCLE_FRONTIER", "round_trips"]

# Round-trip enumeration keeps at most this many partial cycles per hop (memory safety valve;
# hitting it is reported like any other cap).
MAX_CYCLE_FRONTIER = 2_000_000


def round_trips(
    index: FlowIndex,
    *,
    window_days: float,
    max_length: int,
    max_cycles: int,
    max_expand_per_hop: int,
) -> tuple[pl.DataFrame, bool]:
    """Time-ordered transfer cycles through customers' accounts (round-tripping).

    Definition: transfers ``e1..ek`` (``2 <= k <= max_length``) with ``src(e1) = dst(ek) = a``,
    ``dst(ei) = src(ei+1)``, every account owned by a customer (merchant accounts are where
    commerce happens and are hubs; money through them is not a round trip), no account twice
    before returning to ``a``, each transfer strictly later than the one before and
    ``ts(ek) - ts(e1) <= window``.
    Each such sequence is reported once (its first transfer fixes its start). Only transfers
    inside one strongly connected component of the customer-to-customer transfer graph can lie
    on a cycle, so the enumeration starts and stays there; with one transfer left, it must go
    straight home. A cycle's amount is its smallest transfer.

    Caps: ``max_expand_per_hop`` transfers per partial cycle per hop, ``max_cycles`` cycles in
    all, and :data:`MAX_CYCLE_FRONTIER` partial cycles per hop; the second value returned says
    whether any cap was hit.

    Parameters: ``window_days`` is the cycle window (``flows.cycle_window_days``),
    ``max_length`` the longest cycle (``flows.cycle_max_length``); the caps as above.

    Returns: (frame cycle_id, start_account, customer_id, length, transfer_ids, amount,
    duration; capped flag).

    Complexity: O(partial cycles * max_length) after an O(V + E) component pass.

    References: R. Kumar, T. Calders, "2SCENT: an efficient algorithm for enumerating all
    simple temporal cycles", PVLDB 11(11), 2018; R. Tarjan, "Depth-first search and linear
    graph algorithms", SIAM J. Computing 1(2), 1972 (strongly connected components).

    Examples:
        >>> import numpy as np
        >>> import polars as pl
        >>> from graphkit.analytics.flows import (
        ...     DrawdownArrays, FlowIndex, TransferArrays, round_trips
        ... )
        >>> index = FlowIndex.from_arrays(
        ...     sinks=np.array([False, False]),
        ...     transfers=TransferArrays(
        ...         src=np.array([0, 1]),
        ...         dst=np.array([1, 0]),
        ...         amount=np.array([80.0, 30.0]),
        ...         ts=np.array([10, 20]),
        ...     ),
        ...     drawdowns=DrawdownArrays(
        ...         account=np.array([0]), amount=np.array([100.0]), ts=np.array([0])
        ...     ),
        ...     owner_customer=np.array([0, 1]),  # both accounts belong to customers
        ...     customer_ids=pl.Series(["alice", "bob"]),
        ... )
        >>> cycles, capped = round_trips(
        ...     index, window_days=1, max_length=6, max_cycles=100, max_expand_per_hop=100
        ... )
        >>> cycles.select("customer_id", "transfer_ids", "amount").rows(), capped
        ([('alice', ['0', '1'], 30.0)], False)
    """
    n_t = len(index.amount)
    if n_t == 0 or index.n_accounts == 0:
        return empty_cycles(), False
    between_customers = (index.owner_customer[index.src] >= 0) & (
        index.owner_customer[index.dst] >= 0
    )
    adjacency = sp.csr_array(
        (
            np.ones(int(between_customers.sum())),
            (index.src[between_customers], index.dst[between_customers]),
        ),
        shape=(index.n_accounts, index.n_accounts),
    )
    _, component = connected_components(adjacency, directed=True, connection="strong")
    customer_owned = index.owner_customer >= 0
    inside = (
        (component[index.src] == component[index.dst])
        & (index.src != index.dst)
        & customer_owned[index.src]
        & customer_owned[index.dst]
    )
    window = round(window_days * US_PER_DAY)
    starts = np.flatnonzero(inside)
    if not len(starts):
        return empty_cycles(), False
    capped = False
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    total = 0
    for part in batches(len(starts), max(MAX_CYCLE_FRONTIER // 20, 1)):
        batch, batch_capped = _cycles_from(
            index, starts[part], inside, window, max_length, max_expand_per_hop
        )
        capped |= batch_capped
        found.append(batch)
        total += len(batch[0])
        if total >= max_cycles:
            capped = capped or total > max_cycles
            break
    first_tr = np.concatenate([f[0] for f in found])
    length = np.concatenate([f[1] for f in found])
    transfers = np.concatenate([f[2] for f in found]) if found else np.zeros((0, max_length))
    if len(first_tr) > max_cycles:
        capped = True
    id_rank = np.append(index.id_order, -1)[transfers]
    columns = [id_rank[:, j] for j in range(transfers.shape[1] - 1, -1, -1)]
    order = np.lexsort((*columns, length, index.rank[first_tr]))[:max_cycles]
    first_tr, length, transfers = first_tr[order], length[order], transfers[order]
    if not len(first_tr):
        return empty_cycles(), capped
    valid = transfers >= 0
    amount = np.append(index.amount, np.inf)[transfers].min(axis=1)
    last_tr = transfers[np.arange(len(transfers)), length - 1]
    path, step = np.nonzero(valid)
    ids = (
        pl.DataFrame(
            {"cycle": path, "transfer_id": index.transfer_ids.gather(transfers[path, step])}
        )
        .group_by("cycle", maintain_order=True)
        .agg(pl.col("transfer_id").alias("transfer_ids"))
    )
    start_account = index.src[first_tr]
    customer_ids = index.customer_ids.gather(index.owner_customer[start_account])
    frame = pl.DataFrame(
        {
            "cycle": np.arange(len(first_tr)),
            "cycle_id": pl.Series(np.arange(1, len(first_tr) + 1), dtype=pl.Int64),
            "start_account": index.account_ids.gather(start_account),
            "customer_id": customer_ids,
            "length": pl.Series(length, dtype=pl.Int32),
            "amount": amount,
            "duration": pl.Series(index.ts[last_tr] - index.ts[first_tr]).cast(pl.Duration("us")),
        }
    ).join(ids, on="cycle", how="left", maintain_order="left")
    return frame.select(
        "cycle_id", "start_account", "customer_id", "length", "transfer_ids", "amount", "duration"
    ), capped


def _has_edge(sorted_pairs: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    at = np.minimum(np.searchsorted(sorted_pairs, wanted), max(len(sorted_pairs) - 1, 0))
    return sorted_pairs[at] == wanted if len(sorted_pairs) else np.zeros(len(wanted), bool)


def empty_cycles() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "cycle_id": pl.Int64,
            "start_account": pl.String,
            "customer_id": pl.String,
            "length": pl.Int32,
            "transfer_ids": pl.List(pl.String),
            "amount": pl.Float64,
            "duration": pl.Duration("us"),
        }
    )


def _cycles_from(
    index: FlowIndex,
    first: np.ndarray,
    inside: np.ndarray,
    window: int,
    max_length: int,
    cap: int,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], bool]:
    capped = False
    pairs = np.unique(index.src[inside] * index.n_accounts + index.dst[inside])
    home = index.src[first]
    acc = np.full((len(first), max_length), -1, dtype=np.int64)
    acc[:, 0], acc[:, 1] = home, index.dst[first]
    trs = np.full((len(first), max_length), -1, dtype=np.int64)
    trs[:, 0] = first
    f_row = np.arange(len(first))
    f_t = index.ts[first]
    deadline = index.ts[first] + window
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for hop in range(2, max_length + 1):
        if not len(f_row):
            break
        cur = acc[f_row, hop - 1]
        start_rank = np.searchsorted(index.event_ts, f_t, side="right").astype(np.int64)
        last = np.searchsorted(index.event_ts, deadline[f_row], side="right").astype(np.int64) - 1
        start, end = index.out_range(cur, start_rank, last)
        end, cut = hub_cap(start, end, cap)
        capped |= bool(cut.any())
        rows, positions = expand_ranges(start, end)
        transfer = index.out_order[positions]
        good = inside[transfer]
        rows, transfer = rows[good], transfer[good]
        origin = f_row[rows]
        nxt = index.dst[transfer]
        closes = nxt == home[origin]
        if closes.any():
            done = trs[origin[closes]].copy()
            done[:, hop - 1] = transfer[closes]
            out.append((first[origin[closes]], np.full(int(closes.sum()), hop), done))
        if hop == max_length:
            break
        fresh = ~closes & (acc[origin, :hop] != nxt[:, None]).all(axis=1)
        if hop + 1 == max_length:
            # one transfer left: it must go straight home
            fresh &= _has_edge(pairs, nxt * index.n_accounts + home[origin])
        origin, transfer, nxt = origin[fresh], transfer[fresh], nxt[fresh]
        if len(origin) > MAX_CYCLE_FRONTIER:
            capped = True
            origin, transfer, nxt = (
                origin[:MAX_CYCLE_FRONTIER],
                transfer[:MAX_CYCLE_FRONTIER],
                nxt[:MAX_CYCLE_FRONTIER],
            )
        new_acc = acc[origin].copy()
        new_acc[:, hop] = nxt
        new_trs = trs[origin].copy()
        new_trs[:, hop - 1] = transfer
        first, home, deadline = first[origin], home[origin], deadline[origin]
        acc, trs = new_acc, new_trs
        f_row, f_t = np.arange(len(origin)), index.ts[transfer]
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty, np.zeros((0, max_length), dtype=np.int64)), capped
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True)), capped  # type: ignore[return-value]
