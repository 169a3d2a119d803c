"""Drawdowns and where their money goes: regular, burst, chain, noise and laundered drawdowns,
the diverters who launder, background spending, planted fund chains, noise paths and laundering
chains, and the transfers table with the chains' truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from loaders.synthetic.truth import TRUTH_SCHEMAS
from loaders.synthetic.world import (
    CHANNELS,
    DAY,
    HOUR,
    MAX_CHAIN_HOPS,
    NOISE_KINDS,
    SECTOR_CODES,
    WINDOW_DAYS,
    _Chunk,
    _ids,
    _lognormal,
    _money,
    _pairs,
    _positions_in_groups,
    _sigmoid,
    _timestamps,
)


def _pick_device(
    rng: np.random.Generator, dev: dict[str, np.ndarray], cust: np.ndarray
) -> np.ndarray:
    pick = dev["device_start"][cust] + (rng.random(len(cust)) * dev["device_count"][cust]).astype(
        np.int64
    )
    return dev["device_of"][pick]


def _drawdowns(
    c: _Chunk, roles: dict[str, Any], acc: dict[str, np.ndarray], dev: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Regular, burst, chain, noise and laundered drawdowns, numbered in time order."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    local = np.arange(k)
    util = _sigmoid(-0.3 + 0.8 * roles["risk"] + 0.6 * rng.standard_normal(k))

    rate = rng.gamma(3.0, r.drawdowns_per_year / 3.0, k) * roles["active"]
    counts = rng.poisson(rate * w.days / 365.0)
    cust = np.repeat(local, counts)
    n = len(cust)
    hour_weights = np.array(
        [1, 1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 8, 8, 8, 8, 8, 8, 7, 7, 6, 5, 3, 2], float
    )
    hours = rng.choice(24, n, p=hour_weights / hour_weights.sum())
    ts = w.start_s + rng.integers(0, w.days, n) * DAY + hours * HOUR + rng.integers(0, HOUR, n)
    share = np.clip(rng.beta(2.0, 7.0, n) * (0.5 + util[cust]), 0.002, 0.95)
    channel = rng.choice(len(CHANNELS), n, p=[0.6, 0.2, 0.1, 0.1])
    tag = np.zeros(n, np.int64)

    bursters = local[roles["burst"]]
    burst_days = 1 + (rng.random(len(bursters)) < 0.25)
    day_customer = np.repeat(bursters, burst_days)
    per_day = rng.integers(5, 13, len(day_customer))
    night = rng.random(len(day_customer)) < 0.6
    day_start = (
        w.start_s
        + rng.integers(0, w.days, len(day_customer)) * DAY
        + np.where(
            night,
            rng.integers(0, 4 * HOUR, len(day_customer)),
            rng.integers(8 * HOUR, 17 * HOUR, len(day_customer)),
        )
    )
    span = rng.integers(HOUR // 2, 6 * HOUR, len(day_customer))
    b_cust = np.repeat(day_customer, per_day)
    b_ts = np.repeat(day_start, per_day) + (
        rng.random(len(b_cust)) * np.repeat(span, per_day)
    ).astype(np.int64)
    b_share = np.clip(rng.beta(2.0, 12.0, len(b_cust)), 0.002, 0.5)
    b_channel = np.where(rng.random(len(b_cust)) < 0.7, 0, 3)

    chain_c, noise_c = roles["chain_customers"], roles["noise_customers"]
    ch_ts = rng.integers(w.start_s, w.end_s - (WINDOW_DAYS + 1) * DAY, len(chain_c))
    no_ts = rng.integers(w.start_s + 6 * DAY, w.end_s - 50 * DAY, len(noise_c))
    special_share = rng.uniform(0.3, 0.9, len(chain_c) + len(noise_c))

    laundering = _diverters(c, roles, acc, cust, len(b_cust) + len(chain_c) + len(noise_c))
    ordinary = ~laundering["diverter"][cust]
    cust, ts, share, channel, tag = (x[ordinary] for x in (cust, ts, share, channel, tag))
    n = len(cust)
    l_cust, l_ts = laundering["cust"], laundering["ts"]
    # Riskier diverters draw more of their limit, as ordinary borrowers do: utilisation keeps
    # telling risk for them too.
    lo, hi = r.launder_draw
    l_share = lo + (hi - lo) * np.clip(util[l_cust] + 0.1 * rng.standard_normal(len(l_cust)), 0, 1)
    l_channel = rng.choice(len(CHANNELS), len(l_cust), p=[0.45, 0.1, 0.05, 0.4])

    all_cust = np.concatenate([cust, b_cust, chain_c, noise_c, l_cust])
    all_ts = np.concatenate([ts, b_ts, ch_ts, no_ts, l_ts])
    all_share = np.concatenate([share, b_share, special_share, l_share])
    all_channel = np.concatenate(
        [channel, b_channel, np.zeros(len(chain_c) + len(noise_c), int), l_channel]
    )
    all_tag = np.concatenate(
        [
            tag,
            np.ones(len(b_cust), np.int64),
            np.full(len(chain_c), 2),
            np.full(len(noise_c), 3),
            np.full(len(l_cust), 4),
        ]
    )
    special_index = np.concatenate(
        [
            np.full(n + len(b_cust), -1),
            np.arange(len(chain_c)),
            np.arange(len(noise_c)),
            np.arange(len(l_cust)),
        ]
    )
    m = len(all_cust)
    has_two = acc["n_lines"][all_cust] > 1
    line_local = acc["first_line"][all_cust] + (has_two & (rng.random(m) < 0.4) & (all_tag < 2))
    # A diverter's second account, if any, is its laundering account: nothing else goes there.
    use_second = (
        (acc["second"][all_cust] >= 0) & (rng.random(m) < 0.25) & ~laundering["diverter"][all_cust]
    )
    account = np.where(use_second, acc["second"][all_cust], acc["primary"][all_cust])
    account = np.where((all_tag == 2) | (all_tag == 3), acc["dedicated"][all_cust], account)
    account = np.where(all_tag == 4, laundering["account"][all_cust], account)
    amount = _money(acc["line_limit"][line_local] * all_share)
    device = _pick_device(rng, dev, all_cust)
    device = np.where(CHANNELS.index("branch") == all_channel, -1, device)

    order = np.lexsort((np.arange(m), all_ts))
    numbers = c.number("drawdown", m)
    ids = _ids("D", numbers, w.width)
    device_ids = _ids("V", np.maximum(device[order], 0), w.width)
    c.tables["drawdowns"] = pl.DataFrame(
        {
            "drawdown_id": ids,
            "line_id": _ids("L", acc["line_numbers"][line_local[order]], w.width),
            "account_id": _ids("A", account[order], w.width),
            "amount": pl.Series(amount[order]),
            "ts": _timestamps(all_ts[order]),
            "channel": pl.Series(np.array(CHANNELS)[all_channel[order]]),
            "device_id": device_ids.set(pl.Series(device[order] < 0), None),
        }
    )
    tag_sorted = all_tag[order]
    special_sorted = special_index[order]
    chain_pos = np.empty(len(chain_c), np.int64)
    chain_pos[special_sorted[tag_sorted == 2]] = np.flatnonzero(tag_sorted == 2)
    noise_pos = np.empty(len(noise_c), np.int64)
    noise_pos[special_sorted[tag_sorted == 3]] = np.flatnonzero(tag_sorted == 3)
    launder_pos = np.empty(len(l_cust), np.int64)
    launder_pos[special_sorted[tag_sorted == 4]] = np.flatnonzero(tag_sorted == 4)
    return {
        "cust": all_cust[order],
        "ts": all_ts[order],
        "amount": amount[order],
        "account": account[order],
        "line_local": line_local[order],
        "tag": tag_sorted,
        "ids": ids,
        "chain_pos": chain_pos,
        "noise_pos": noise_pos,
        "launder_pos": launder_pos,
        "util": util,
    }


def _diverters(
    c: _Chunk,
    roles: dict[str, Any],
    acc: dict[str, np.ndarray],
    regular_cust: np.ndarray,
    n_other: int,
) -> dict[str, np.ndarray]:
    """Pick the diverters and schedule their laundered drawdowns.

    Diverters are active customers (not chain or noise customers) picked with probability
    growing with their credit limit. A diverter stops drawing down ordinarily: every
    ``launder_gap_days`` it draws a large share of its limit into its laundering account (its
    second account, else a new one) and passes it on (:func:`_planted_paths`). The gap exceeds
    the 30-day window and a chain ends within 29 days, so no other laundered drawdown's transfers
    fall in a laundered drawdown's window: each has exactly one time-respecting path to a banned
    sink, its own chain. Diverters are taken, in a limit-weighted random order, until laundered
    drawdowns make up ``launder_share`` of all the chunk's drawdowns.

    Returns per customer ``diverter`` (bool) and ``account`` (laundering account number or -1),
    and per laundered drawdown ``cust`` and ``ts``.
    """
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    eligible = roles["active"].copy()
    eligible[roles["chain_customers"]] = False
    eligible[roles["noise_customers"]] = False
    pool = np.flatnonzero(eligible)
    weight = acc["line_limit"][acc["first_line"][pool]] ** r.launder_limit_power
    order = pool[np.argsort(rng.exponential(1.0, len(pool)) / weight, kind="stable")]
    lo, hi = r.launder_gap_days
    gaps = rng.uniform(lo, hi, (len(order), int(w.days // lo) + 1))
    gaps[:, 0] = rng.uniform(0.0, hi, len(order))
    times = w.start_s + (np.cumsum(gaps, axis=1) * DAY).astype(np.int64)
    valid = times <= w.end_s - DAY  # leaves at least a day for the chain
    laundered = np.cumsum(valid.sum(axis=1))
    removed = np.cumsum(np.bincount(regular_cust, minlength=k)[order])
    share = laundered / np.maximum(len(regular_cust) + n_other - removed + laundered, 1)
    # share never decreases along the order, so the first prefix reaching the target is found
    # by bisection
    n_div = 0 if r.launder_share <= 0 else int(np.searchsorted(share, r.launder_share)) + 1
    chosen = order[: min(n_div, len(order))]
    account = acc["second"][chosen]
    fresh = account < 0
    account[fresh] = c.number("account", int(fresh.sum()))
    c.tables["accounts"] = pl.concat(
        [
            c.tables["accounts"],
            pl.DataFrame(
                {
                    "account_id": _ids("A", account[fresh], w.width),
                    "owner_id": c.customer_ids(chosen[fresh]),
                }
            ),
        ]
    )
    diverter = np.zeros(k, bool)
    diverter[chosen] = True
    launder_account = np.full(k, -1, np.int64)
    launder_account[chosen] = account
    chosen_valid = valid[: len(chosen)]
    return {
        "diverter": diverter,
        "account": launder_account,
        "cust": np.repeat(chosen, chosen_valid.sum(axis=1)),
        "ts": times[: len(chosen)][chosen_valid],
    }


def _conduit_accounts(c: _Chunk, n: int) -> np.ndarray:
    """``n`` fresh accounts owned by conduit merchants (one transfer in, one out)."""
    numbers = c.number("account", n)
    owners = c.world.conduit_merchants[c.rng.integers(0, len(c.world.conduit_merchants), n)]
    c.conduits.append((numbers, owners))
    return numbers


def _hop_paths(
    c: _Chunk, hops: np.ndarray, sources: np.ndarray, sinks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paths source -> fresh conduits -> sink, one row per hop: (path, hop, src, dst).

    Rows come path by path, hops ascending.
    """
    path = np.repeat(np.arange(len(hops)), hops)
    hop = _positions_in_groups(hops) + 1
    inner = _conduit_accounts(c, int((hops - 1).sum()))
    # The conduit reached by hop j of path p is inner[inner_start[p] + j - 1].
    inner_start = (np.cumsum(hops - 1) - (hops - 1))[path]
    padded = np.append(inner, -1)
    src = np.where(hop == 1, sources[path], padded[np.maximum(inner_start + hop - 2, 0)])
    dst = np.where(hop == hops[path], sinks[path], padded[inner_start + hop - 1])
    return path, hop, src, dst


def _hop_offsets(c: _Chunk, hops: np.ndarray, horizon: int) -> np.ndarray:
    """Strictly increasing offsets (seconds) of each path's hops; a path's last <= ``horizon``.

    Gaps are exponential with a per-path scale between an hour and two days, at least a minute.
    """
    rng = c.rng
    n_paths = len(hops)
    path = np.repeat(np.arange(n_paths), hops)
    scale = np.exp(rng.uniform(np.log(HOUR), np.log(2 * DAY), n_paths))
    gaps = rng.exponential(1.0, len(path)) * scale[path]
    totals = np.bincount(path, weights=gaps, minlength=n_paths)
    shrink = np.minimum(1.0, (horizon - 60.0 * hops) / np.maximum(totals, 1.0))
    gaps = 60 + np.floor(gaps * shrink[path]).astype(np.int64)
    cum = np.cumsum(gaps)
    path_first = np.cumsum(hops) - hops
    return cum - (cum[path_first] - gaps[path_first])[path]


class _Transfers:
    """Accumulates transfer parts: (src, dst, amount, ts, tag, path, hop)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, src, dst, amount, ts, tag: int = 0, path=None, hop=None) -> None:
        n = len(src)
        self.parts.append(
            (
                np.asarray(src, np.int64),
                np.asarray(dst, np.int64),
                _money(np.asarray(amount, float)),
                np.asarray(ts, np.int64),
                np.full(n, tag, np.int64),
                np.full(n, -1, np.int64) if path is None else path,
                np.zeros(n, np.int64) if hop is None else hop,
            )
        )

    def columns(self) -> list[np.ndarray]:
        return [np.concatenate([p[i] for p in self.parts]) for i in range(7)]


def _background_transfers(
    c: _Chunk,
    roles: dict[str, Any],
    acc: dict[str, np.ndarray],
    dd: dict[str, np.ndarray],
    out: _Transfers,
) -> None:
    """Spending after drawdowns, group payments, person-to-person payments and refunds.

    None of them touches a dedicated, laundering, conduit or banned-sector account.
    """
    rng, k, w, r = c.rng, c.k, c.world, c.rates

    def shops(n: int) -> np.ndarray:
        return w.shop_merchants[rng.choice(len(w.shop_merchants), n, p=w.shop_weights)]

    group_of = roles["group_of"]
    outside = np.flatnonzero(group_of < 0)
    groups = roles["groups"]
    group_sizes = np.array([len(g) for g in groups], np.int64)
    group_start = np.cumsum(group_sizes) - group_sizes
    group_members = np.concatenate(groups) if groups else np.empty(0, np.int64)

    def contacts(cust: np.ndarray) -> np.ndarray:
        """A counterparty: a fellow group member, else anyone outside the groups; -1 if self."""
        u = rng.random(len(cust))
        picked = outside[(u * len(outside)).astype(np.int64)] if len(outside) else cust.copy()
        g = group_of[cust]
        in_group = g >= 0
        gi = g[in_group]
        picked[in_group] = group_members[
            group_start[gi] + (u[in_group] * group_sizes[gi]).astype(np.int64)
        ]
        return np.where(picked == cust, -1, picked)

    regular = np.flatnonzero(dd["tag"] < 2)
    spent = regular[rng.random(len(regular)) < r.spend_prob]
    twice = spent[rng.random(len(spent)) < r.second_spend_prob]
    src_dd = np.concatenate([spent, twice])
    n = len(src_dd)
    first = np.arange(n) < len(spent)
    share = np.where(first, rng.uniform(0.3, 0.7, n), rng.uniform(0.05, 0.3, n))
    ts = dd["ts"][src_dd] + 60 + rng.exponential(6 * HOUR, n).astype(np.int64)
    peer = contacts(dd["cust"][src_dd])
    to_peer = (rng.random(n) < 0.15) & (peer >= 0)
    dst = np.where(to_peer, acc["primary"][np.maximum(peer, 0)], shops(n))
    keep = ts < w.end_s
    out.add(
        dd["account"][src_dd][keep],
        dst[keep],
        (dd["amount"][src_dd] * share)[keep],
        ts[keep],
    )

    for members in groups:
        a, b = _pairs(rng, members, 3 * len(members))
        out.add(
            acc["primary"][a],
            acc["primary"][b],
            _lognormal(rng, 5e4, 1.0, len(a)),
            rng.integers(w.start_s, w.end_s, len(a)),
        )

    a, b = _pairs(rng, outside, round(r.p2p_pairs_per_customer * k))
    repeat = 1 + rng.poisson(1.0, len(a))
    a, b = np.repeat(a, repeat), np.repeat(b, repeat)
    out.add(
        acc["primary"][a],
        acc["primary"][b],
        _lognormal(rng, 2e3, 1.0, len(a)),
        rng.integers(w.start_s, w.end_s, len(a)),
    )

    n = round(r.refunds_per_customer * k)
    out.add(
        shops(n),
        acc["primary"][rng.integers(0, k, n)],
        _lognormal(rng, 300.0, 1.0, n),
        rng.integers(w.start_s, w.end_s, n),
    )


def _planted_paths(c: _Chunk, dd: dict[str, np.ndarray], out: _Transfers) -> dict[str, np.ndarray]:
    """Fund chains into banned sectors and the noise paths no 30-day trace may follow."""
    rng, w, r = c.rng, c.world, c.rates

    def shops(n: int) -> np.ndarray:
        return w.shop_merchants[rng.choice(len(w.shop_merchants), n, p=w.shop_weights)]

    chain_dd = dd["chain_pos"]
    n_chain = len(chain_dd)
    hops = 1 + rng.choice(MAX_CHAIN_HOPS, n_chain, p=r.chain_hop_probs)
    chain_sinks = w.banned_merchants[rng.integers(0, len(w.banned_merchants), n_chain)]
    path, hop, src, dst = _hop_paths(c, hops, dd["account"][chain_dd], chain_sinks)
    t0 = dd["ts"][chain_dd]
    hop_ts = t0[path] + _hop_offsets(c, hops, (WINDOW_DAYS - 1) * DAY)
    first_share = rng.uniform(0.4, 0.9, n_chain)
    # Each hop passes on most of what it received (fees and skimming take the rest).
    log_keep = np.log(rng.uniform(0.92, 0.995, len(path)))
    log_keep[hop == 1] = 0.0
    kept = np.exp(
        np.cumsum(log_keep) - np.repeat(np.cumsum(log_keep)[np.cumsum(hops) - hops], hops)
    )
    out.add(src, dst, dd["amount"][chain_dd][path] * first_share[path] * kept, hop_ts, 1, path, hop)
    # Part of the drawdown is spent normally, before or after the chain leaves.
    leak = np.flatnonzero(rng.random(n_chain) < 0.6)
    out.add(
        dd["account"][chain_dd][leak],
        shops(len(leak)),
        dd["amount"][chain_dd][leak] * rng.uniform(0.05, 1.0 - first_share[leak]),
        t0[leak] + rng.integers(60, 2 * DAY, len(leak)),
    )

    noise_dd = dd["noise_pos"]
    n_noise = len(noise_dd)
    kind = rng.integers(0, len(NOISE_KINDS), n_noise)
    noise_hops = np.where(kind == 0, rng.integers(2, 5, n_noise), rng.integers(1, 5, n_noise))
    sinks = w.banned_merchants[rng.integers(0, len(w.banned_merchants), n_noise)]
    npath, nhop, nsrc, ndst = _hop_paths(c, noise_hops, dd["account"][noise_dd], sinks)
    t0 = dd["ts"][noise_dd]
    offsets = _hop_offsets(c, noise_hops, (WINDOW_DAYS - 1) * DAY)
    pk = kind[npath]
    # before_drawdown: the first hop leaves an hour to five days before the money arrives.
    early = t0 - rng.integers(HOUR, 5 * DAY, n_noise)
    first_offset = offsets[np.cumsum(noise_hops) - noise_hops]
    ts = np.where(pk == 1, early[npath] + offsets - first_offset[npath], t0[npath] + offsets)
    # time_violation: one hop after the first goes back before the hop preceding it.
    back_hop = 2 + (rng.random(n_noise) * (noise_hops - 1)).astype(np.int64)
    back = (pk == 0) & (nhop == back_hop[npath])
    previous = np.concatenate([[0], ts[:-1]])
    ts = np.where(back, previous - rng.integers(HOUR, 2 * DAY, len(ts)), ts)
    # outside_window: time-respecting, but the last hop lands after the window has closed.
    late = (pk == 2) & (nhop == noise_hops[npath])
    ts = np.where(
        late, t0[npath] + (WINDOW_DAYS + 1) * DAY + rng.integers(0, 14 * DAY, len(ts)), ts
    )
    amount = dd["amount"][noise_dd][npath] * rng.uniform(0.3, 0.9, len(npath))
    out.add(nsrc, ndst, amount, ts, 2, npath, nhop)
    launder_hops, launder_sinks = _laundering_chains(c, dd, out)
    return {
        "hops": hops,
        "sinks": chain_sinks,
        "kind": kind,
        "noise_hops": noise_hops,
        "launder_hops": launder_hops,
        "launder_sinks": launder_sinks,
    }


def _laundering_chains(
    c: _Chunk, dd: dict[str, np.ndarray], out: _Transfers
) -> tuple[np.ndarray, np.ndarray]:
    """Each laundered drawdown's money leaves its laundering account through mule accounts into
    a banned sink; returns the hops and sink of each chain.

    A diverter reuses its own mules (owned by conduit merchants): a chain of ``h`` hops runs
    account -> mule 1 -> ... -> mule h-1 -> sink. The first hop moves ``launder_first_hop`` of the
    drawdown, each later one passes on ``launder_keep`` of what it received (fees); hours to days
    between hops, the last within 29 days and before the observation window closes.
    """
    rng, w, r = c.rng, c.world, c.rates
    pos = dd["launder_pos"]
    n = len(pos)
    hops = 1 + rng.choice(MAX_CHAIN_HOPS, n, p=r.launder_hop_probs)
    sinks = w.banned_merchants[rng.integers(0, len(w.banned_merchants), n)]
    diverters, of_chain = np.unique(dd["cust"][pos], return_inverse=True)
    need = np.zeros(len(diverters), np.int64)
    np.maximum.at(need, of_chain, hops - 1)
    mules = np.append(_conduit_accounts(c, int(need.sum())), -1)
    first_mule = (np.cumsum(need) - need)[of_chain]
    path = np.repeat(np.arange(n), hops)
    hop = _positions_in_groups(hops) + 1
    before = mules[np.where(hop > 1, first_mule[path] + hop - 2, len(mules) - 1)]
    after = mules[np.where(hop < hops[path], first_mule[path] + hop - 1, len(mules) - 1)]
    src = np.where(hop == 1, dd["account"][pos][path], before)
    dst = np.where(hop == hops[path], sinks[path], after)
    t0 = dd["ts"][pos]
    horizon = np.minimum((WINDOW_DAYS - 1) * DAY, w.end_s - 1 - t0)
    hop_ts = t0[path] + _hop_offsets(c, hops, horizon)
    log_keep = np.log(rng.uniform(*r.launder_keep, len(path)))
    log_keep[hop == 1] = np.log(rng.uniform(*r.launder_first_hop, n))
    cum = np.cumsum(log_keep)
    kept = np.exp(cum - np.repeat(cum[np.cumsum(hops) - hops] - log_keep[hop == 1], hops))
    out.add(src, dst, dd["amount"][pos][path] * kept, hop_ts, 3, path, hop)
    return hops, sinks


def _write_transfers(
    c: _Chunk, dd: dict[str, np.ndarray], planted: dict[str, np.ndarray], out: _Transfers
) -> None:
    w = c.world
    src, dst, amount, ts, tag, path, hop = out.columns()
    order = np.lexsort((np.arange(len(ts)), ts))
    ids = _ids("T", c.number("transfer", len(ts)), w.width)
    c.tables["transfers"] = pl.DataFrame(
        {
            "transfer_id": ids,
            "src_account": _ids("A", src[order], w.width),
            "dst_account": _ids("A", dst[order], w.width),
            "amount": pl.Series(amount[order]),
            "ts": _timestamps(ts[order]),
        }
    )
    tag, path, hop = tag[order], path[order], hop[order]

    amount = amount[order]

    def paths(t: int) -> pl.DataFrame:
        """Per path of tag ``t``: its transfer ids in hop order and its smallest amount."""
        rows = np.flatnonzero(tag == t)
        rows = rows[np.lexsort((hop[rows], path[rows]))]
        return (
            pl.DataFrame(
                {"path": path[rows], "transfer_id": ids.gather(rows), "amount": amount[rows]}
            )
            .group_by("path", maintain_order=True)
            .agg(pl.col("transfer_id"), pl.col("amount").min())
            .with_columns(pl.col("transfer_id").cast(pl.List(pl.String)))
        )

    def chains(kind: str, t: int, pos: np.ndarray, hops: np.ndarray, sinks: np.ndarray):
        planted_paths = paths(t)
        return pl.DataFrame(
            {
                "drawdown_id": dd["ids"].gather(pos),
                "hops": pl.Series(hops, dtype=pl.Int64),
                "transfer_ids": planted_paths.get_column("transfer_id"),
                "customer_id": c.customer_ids(dd["cust"][pos]),
                "account_id": _ids("A", dd["account"][pos], w.width),
                "sink_account": _ids("A", sinks, w.width),
                "sink_sector": pl.Series(
                    np.array(SECTOR_CODES)[w.merchant_sector[sinks]], dtype=pl.String
                ),
                "kind": pl.Series([kind] * len(pos), dtype=pl.String),
                # Taint moves min(transfer, taint held) along the only path: the smallest
                # transfer is what lands in the sink (a chain's other outflows leave room).
                "banned_amount": planted_paths.get_column("amount"),
            },
            schema=TRUTH_SCHEMAS["chains"],
        )

    c.truth["chains"] = pl.concat(
        [
            chains("chain", 1, dd["chain_pos"], planted["hops"], planted["sinks"]),
            chains(
                "laundering",
                3,
                dd["launder_pos"],
                planted["launder_hops"],
                planted["launder_sinks"],
            ),
        ]
    ).sort("drawdown_id")
    noise_dd = dd["noise_pos"]
    c.truth["noise_paths"] = pl.DataFrame(
        {
            "drawdown_id": dd["ids"].gather(noise_dd),
            "kind": pl.Series(np.array(NOISE_KINDS)[planted["kind"]], dtype=pl.String),
            "hops": pl.Series(planted["noise_hops"], dtype=pl.Int64),
            "transfer_ids": paths(2).get_column("transfer_id"),
        },
        schema=TRUTH_SCHEMAS["noise_paths"],
    )
