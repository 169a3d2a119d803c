"""Synthetic revolving-credit risk network with planted ground truth.

The generator writes every table of :data:`graphkit.schema.TABLES` (customers carry two extra
numeric features, ``bureau_score`` and ``income``) and, next to them, ``_truth/``: the structures
it planted on purpose, so analytics can be scored against known answers.

What is planted (details and rates in ``docs/generator.md`` and :class:`Rates`):

* **Guarantee circles** (sizes 2-8): a directed cycle plus chords over the members. Every other
  guarantee points from a lower to a higher rank of one random order of "super nodes" (a circle
  counts as one), so the strongly connected components of size >= 2 are exactly the circles.
* **Related-enterprise groups** (sizes 5-30): one or two controlling persons and enterprises tied
  by a shareholding tree (shares >= 0.2), guarantees, devices shared by pairs and transfers;
  ties leaving a group are sparse.
* **Device-sharing rings** (3-10 customers on 1-3 devices). Every other device is used by at
  most two customers, except a few hub devices (shop terminals with 100+ customers).
* **Fund chains**: a drawdown into a dedicated account, then 1-6 strictly later transfers through
  fresh intermediary accounts into a banned-sector merchant, all within 30 days.
* **Laundering** (the seed's "38% of loan money reaches banned sectors after >= 3 transfers"):
  diverters, picked by credit limit until their laundered drawdowns are ``launder_share`` of all
  drawdowns, draw most of their limit every 31-40 days into a laundering account and pass it on
  through their own mule accounts into a banned sink, 1-6 hops weighted to >= 3, 85-100% of the
  money a hop.
  Nothing else can reach a banned sink on a time-respecting path and no two chains of an account
  share a 30-day window, so each planted chain is its drawdown's only path there and its hop
  count the minimum. Noise paths reach banned sinks only by going back in time or leaving the
  30-day window.
* **Drawdown bursts** (>= 5 drawdowns a day) and **defaults**: independent ones driven by a
  latent risk the features reveal noisily (members of one group, circle or ring share
  ``shared_risk`` of it: related firms rise and fall together), burst-driven ones, and
  contagion along guarantee, circle and ring ties. Default dates fall in the 90 days after the
  observation window.

Customers are generated in chunks of independent communities (no tie crosses a chunk; only the
shared merchants and sectors do), so memory is bounded by the chunk size and the time is linear
in the number of customers. Output is a deterministic function of (customers, seed, start, days,
chunk_customers): same arguments, byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from graphkit.atomic import atomic_directory
from graphkit.progress import SILENT, Progress
from graphkit.schema import TABLES
from loaders.frames import empty_table

DAY = 86_400
HOUR = 3_600
WINDOW_DAYS = 30  # the flow-tracing window the chains are planted for
MAX_CHAIN_HOPS = 6
PERFORMANCE_DAYS = 90  # defaults happen in this many days after the observation window
CSV_DATETIME = "%Y-%m-%dT%H:%M:%SZ"
TRUTH_DIR = "_truth"
FORMATS = ("parquet", "csv")

# Extra numeric customer features (banks bring their own; scoring uses any numeric extra).
CUSTOMER_EXTRAS: dict[str, pl.DataType] = {"bureau_score": pl.Int64(), "income": pl.Float64()}

BANNED_SECTORS = (
    ("securities", "Securities brokerage", "securities"),
    ("crypto", "Crypto-asset exchanges", "crypto"),
    ("real_estate", "Real-estate development and sales", "real_estate"),
    ("gambling", "Gambling and lotteries", "gambling"),
)
NORMAL_SECTORS = (
    ("retail", "Retail", "consumer"),
    ("catering", "Catering", "consumer"),
    ("travel", "Travel and hotels", "consumer"),
    ("education", "Education and training", "services"),
    ("healthcare", "Healthcare", "services"),
    ("logistics", "Logistics", "services"),
    ("manufacturing", "Manufacturing", "industry"),
    ("agriculture", "Agriculture", "industry"),
    ("utilities", "Utilities", "industry"),
    ("wholesale", "Wholesale trade", "trading"),
)
# Conduit merchants (wholesale traders) own the fresh intermediary accounts of fund chains.
CONDUIT_SECTOR = "wholesale"
REGIONS = (
    "Zhejiang",
    "Jiangsu",
    "Guangdong",
    "Shandong",
    "Fujian",
    "Sichuan",
    "Hubei",
    "Henan",
    "Hebei",
    "Shanghai",
    "Beijing",
    "Chongqing",
)
CHANNELS = ("app", "web", "branch", "api")
CAUSES = ("independent", "burst", "guarantee_contagion", "ring_contagion", "circle")
NOISE_KINDS = ("time_violation", "before_drawdown", "outside_window")


@dataclass(frozen=True)
class Rates:
    """Every rate the generator uses; recorded in ``truth.json``.

    Shares are of the customers of a chunk unless said otherwise; ``*_per_customer`` are
    expected counts per customer over the observation window.
    """

    enterprise_share: float = 0.2  # among background customers
    group_share: float = 0.08
    group_size: tuple[int, int] = (5, 30)
    group_circle_prob: float = 0.4  # a group of >= 4 members holds a circle
    group_leak: float = 0.05  # share of background guarantees kept when they touch a group
    circle_share: float = 0.015  # customers in standalone circles
    circle_size_probs: tuple[float, ...] = (0.35, 0.25, 0.15, 0.1, 0.07, 0.05, 0.03)  # 2..8
    ring_share: float = 0.03
    ring_size: tuple[int, int] = (3, 10)
    customers_per_hub: int = 10_000  # one hub device per this many customers (at least one)
    hub_size: tuple[int, int] = (100, 160)
    active_share: float = 0.75
    drawdowns_per_year: float = 23.0  # mean over active customers (the seed's figure)
    burst_logit: float = -4.4  # P(burst customer) = sigmoid(burst_logit + risk)
    chain_share: float = 0.04
    chain_hop_probs: tuple[float, ...] = (0.1, 0.2, 0.25, 0.2, 0.15, 0.1)  # 1..6 hops
    # Laundering: share of all drawdowns whose money diverters pass on into banned sectors.
    launder_share: float = 0.068
    launder_hop_probs: tuple[float, ...] = (0.06, 0.1, 0.26, 0.25, 0.18, 0.15)  # 1..6 hops
    launder_gap_days: tuple[float, float] = (31.0, 40.0)  # between one diverter's laundered ones
    launder_draw: tuple[float, float] = (0.55, 0.95)  # laundered drawdown / limit, by utilisation
    launder_first_hop: tuple[float, float] = (0.9, 1.0)  # share of the drawdown hop 1 moves
    launder_keep: tuple[float, float] = (0.85, 0.995)  # share each later hop passes on
    launder_limit_power: float = 1.0  # P(diverter) grows as limit ** power
    noise_share: float = 0.01
    spend_prob: float = 0.45  # a drawdown is spent by transfers
    second_spend_prob: float = 0.3
    p2p_pairs_per_customer: float = 0.35
    refunds_per_customer: float = 0.25
    second_account_share: float = 0.3
    second_line_share: float = 0.08
    personal_device_extra: float = 0.35  # share with a second own device
    shared_pair_share: float = 0.02  # background customers sharing a device pair-wise
    guarantees_per_customer: float = 0.12  # background guarantees
    owner_stakes_share: float = 0.04  # background enterprises with a controlling person
    minority_stakes_share: float = 0.02  # enterprise stakes below 0.2, across the chunk
    default_logit: float = -3.5  # independent default: sigmoid(default_logit + 1.1 * risk)
    burst_default_prob: float = 0.4
    guarantee_contagion: float = 0.4  # borrower defaulted -> guarantor
    guarantee_contagion_back: float = 0.12  # guarantor defaulted -> borrower
    circle_contagion: float = 0.5
    ring_contagion: float = 0.45
    contagion_waves: int = 3
    # Share of the latent risk that members of one related-enterprise group, circle or ring
    # have in common (a shared sector or owner shock); 0 makes every customer's risk its own.
    shared_risk: float = 0.5
    label_share: float = 0.8


@dataclass
class GeneratedData:
    """Generated input tables, the planted truth and the parameters that produced them."""

    tables: dict[str, pl.DataFrame]
    truth: dict[str, pl.DataFrame]
    params: dict[str, Any] = field(default_factory=dict)


TRUTH_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "circles": {"circle_id": pl.Int64(), "customer_id": pl.String()},
    "groups": {"group_id": pl.Int64(), "customer_id": pl.String()},
    "rings": {"ring_id": pl.Int64(), "customer_id": pl.String()},
    "hub_devices": {"device_id": pl.String(), "customers": pl.Int64()},
    "chains": {
        "drawdown_id": pl.String(),
        "hops": pl.Int64(),
        "transfer_ids": pl.List(pl.String()),
        "customer_id": pl.String(),
        "account_id": pl.String(),
        "sink_account": pl.String(),
        "sink_sector": pl.String(),
        "kind": pl.String(),
        "banned_amount": pl.Float64(),
    },
    "noise_paths": {
        "drawdown_id": pl.String(),
        "kind": pl.String(),
        "hops": pl.Int64(),
        "transfer_ids": pl.List(pl.String()),
    },
    "bursts": {"customer_id": pl.String(), "day": pl.Date(), "drawdowns": pl.Int64()},
    "defaults": {
        "customer_id": pl.String(),
        "cause": pl.String(),
        "default_date": pl.Date(),
        "labelled": pl.Boolean(),
    },
}


# ----------------------------------------------------------------------------- small helpers


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    digits = pl.Series(numbers.astype(np.int64)).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), digits)).to_series()


def _timestamps(seconds: np.ndarray) -> pl.Series:
    return (
        pl.Series(seconds.astype(np.int64) * 1_000_000)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )


def _dates(days: np.ndarray) -> pl.Series:
    return pl.Series(days.astype(np.int32)).cast(pl.Date)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int
) -> np.ndarray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(n))


def _money(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(values, 2), 0.01)


def _sizes(draws: np.ndarray, target: int) -> np.ndarray:
    """The longest prefix of ``draws`` whose sum stays within ``target``."""
    cum = np.cumsum(draws)
    return draws[: int(np.searchsorted(cum, target, side="right"))]


def _split(values: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(sizes)[:-1]) if len(sizes) else []


def _positions_in_groups(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., s-1 for each size s, concatenated."""
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(int(sizes.sum())) - starts


def _pairs(rng: np.random.Generator, pool: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random ordered pairs of distinct elements of ``pool`` (fewer when they collide)."""
    if len(pool) < 2 or n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a = pool[rng.integers(0, len(pool), n)]
    b = pool[rng.integers(0, len(pool), n)]
    keep = a != b
    return a[keep], b[keep]


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


# ----------------------------------------------------------------------------- the shared world


@dataclass
class _World:
    """What every chunk shares: dates, id widths, sectors and merchants."""

    customers: int
    seed: int
    start_day: int
    days: int
    rates: Rates
    width: int
    customer_width: int
    n_merchants: int
    merchant_sector: np.ndarray  # index into SECTOR_CODES
    banned_merchants: np.ndarray
    conduit_merchants: np.ndarray
    shop_merchants: np.ndarray
    shop_weights: np.ndarray

    @property
    def start_s(self) -> int:
        return self.start_day * DAY

    @property
    def end_s(self) -> int:
        return (self.start_day + self.days) * DAY


SECTOR_CODES = tuple(code for code, _, _ in BANNED_SECTORS + NORMAL_SECTORS)
CUSTOMER_SECTORS = tuple(code for code, _, _ in NORMAL_SECTORS)


def _sectors_frame() -> pl.DataFrame:
    rows = [(c, n, True, cat) for c, n, cat in BANNED_SECTORS]
    rows += [(c, n, False, cat) for c, n, cat in NORMAL_SECTORS]
    return pl.DataFrame(rows, schema=TABLES["sectors"].polars_schema, orient="row")


def _world(customers: int, seed: int, start: date, days: int, rates: Rates) -> _World:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0])))
    n_merchants = max(40, customers // 25)
    n_banned = max(len(BANNED_SECTORS), n_merchants // 8)
    n_conduit = max(2, n_merchants // 20)
    sector = np.empty(n_merchants, np.int64)
    sector[:n_banned] = np.arange(n_banned) % len(BANNED_SECTORS)
    conduit_code = SECTOR_CODES.index(CONDUIT_SECTOR)
    sector[n_banned : n_banned + n_conduit] = conduit_code
    shop_codes = np.array([i for i, c in enumerate(SECTOR_CODES) if i >= len(BANNED_SECTORS)])
    n_shops = n_merchants - n_banned - n_conduit
    sector[n_banned + n_conduit :] = shop_codes[rng.integers(0, len(shop_codes), n_shops)]
    order = rng.permutation(n_merchants)  # merchant ids do not reveal their role
    merchant_sector = np.empty(n_merchants, np.int64)
    merchant_sector[order] = sector
    banned = order[:n_banned]
    conduit = order[n_banned : n_banned + n_conduit]
    shops = order[n_banned + n_conduit :]
    weights = rng.pareto(1.2, n_shops) + 1.0
    return _World(
        customers=customers,
        seed=seed,
        start_day=_epoch_day(start),
        days=days,
        rates=rates,
        width=max(6, len(str(50 * customers))),
        customer_width=max(7, len(str(customers))),
        n_merchants=n_merchants,
        merchant_sector=merchant_sector,
        banned_merchants=np.sort(banned),
        conduit_merchants=np.sort(conduit),
        shop_merchants=shops,
        shop_weights=weights / weights.sum(),
    )


def _shared_tables(world: _World) -> dict[str, pl.DataFrame]:
    """Sectors, merchants and the merchants' main accounts (account number = merchant number)."""
    numbers = np.arange(world.n_merchants)
    merchant_ids = _ids("M", numbers, world.width)
    codes = np.array(SECTOR_CODES)[world.merchant_sector]
    return {
        "sectors": _sectors_frame(),
        "merchants": pl.DataFrame({"merchant_id": merchant_ids, "sector": pl.Series(codes)}),
        "accounts": pl.DataFrame(
            {"account_id": _ids("A", numbers, world.width), "owner_id": merchant_ids}
        ),
    }


# ----------------------------------------------------------------------------- one chunk


@dataclass
class _Chunk:
    """State of one chunk while it is generated (local customer indices 0..k-1)."""

    world: _World
    rng: np.random.Generator
    first: int  # global number of the first customer
    k: int
    offsets: dict[str, int]
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    truth: dict[str, pl.DataFrame] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    conduits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def rates(self) -> Rates:
        return self.world.rates

    def customer_ids(self, local: np.ndarray) -> pl.Series:
        return _ids("C", self.first + local, self.world.customer_width)

    def number(self, kind: str, count: int) -> np.ndarray:
        """Allocate ``count`` consecutive global numbers of ``kind`` (accounts, devices...)."""
        start = self.offsets.get(kind, 0) + self.used.get(kind, 0)
        self.used[kind] = self.used.get(kind, 0) + count
        return np.arange(start, start + count, dtype=np.int64)


def _shared_risk(
    c: _Chunk, groups: list[np.ndarray], circles: list[np.ndarray], rings: list[np.ndarray]
) -> np.ndarray:
    """Latent risk ~ N(0, 1): members of one group, circle or ring share ``shared_risk`` of it."""
    own = c.rng.standard_normal(c.k)
    share = c.rates.shared_risk
    units = groups + circles + rings
    if share <= 0 or not units:
        return own
    unit_of = np.full(c.k, -1, np.int64)
    for u, members in enumerate(units):
        unit_of[members] = u
    # A child stream: the shocks leave every other draw of the chunk where it was.
    shocks = c.rng.spawn(1)[0].standard_normal(len(units))
    member = unit_of >= 0
    risk = own.copy()
    risk[member] = np.sqrt(1 - share) * own[member] + np.sqrt(share) * shocks[unit_of[member]]
    return risk


def _roles(c: _Chunk) -> dict[str, Any]:
    """Assign customers to groups, circles and rings; decide kinds and latent risk."""
    rng, k, r = c.rng, c.k, c.rates
    order = rng.permutation(k)
    lo, hi = r.group_size
    group_sizes = _sizes(
        np.clip(lo + rng.poisson(7, k // lo + 1), lo, hi), round(r.group_share * k)
    )
    circle_draws = 2 + rng.choice(len(r.circle_size_probs), k // 2 + 1, p=r.circle_size_probs)
    circle_sizes = _sizes(circle_draws, round(r.circle_share * k))
    rlo, rhi = r.ring_size
    ring_sizes = _sizes(
        np.clip(rlo + rng.poisson(2.5, k // rlo + 1), rlo, rhi), round(r.ring_share * k)
    )
    n_group = int(group_sizes.sum())
    n_circle = int(circle_sizes.sum())
    n_ring = int(ring_sizes.sum())
    groups = _split(order[:n_group], group_sizes)
    standalone = _split(order[n_group : n_group + n_circle], circle_sizes)
    rings = _split(order[n_group + n_circle : n_group + n_circle + n_ring], ring_sizes)
    background = np.sort(order[n_group + n_circle + n_ring :])

    enterprise = rng.random(k) < r.enterprise_share
    controllers = 1 + (rng.random(len(groups)) < 0.4).astype(np.int64)
    if groups:
        members = np.concatenate(groups)
        enterprise[members] = _positions_in_groups(group_sizes) >= np.repeat(
            controllers, group_sizes
        )
    if standalone:
        members = np.concatenate(standalone)
        enterprise[members] = rng.random(len(members)) < 0.85
    if rings:
        enterprise[np.concatenate(rings)] = False

    circles: list[np.ndarray] = []
    group_of = np.full(k, -1, np.int64)
    for g, members in enumerate(groups):
        group_of[members] = g
        companies = members[controllers[g] :]
        size = 2 + rng.choice(len(r.circle_size_probs), p=r.circle_size_probs)
        if len(members) >= 4 and rng.random() < r.group_circle_prob:
            size = min(size, len(companies))
            circles.append(rng.permutation(companies)[:size])
    circles.extend(standalone)
    ring_of = np.full(k, -1, np.int64)
    for i, members in enumerate(rings):
        ring_of[members] = i

    risk = _shared_risk(c, groups, standalone, rings) + 0.6 * (ring_of >= 0)
    burst = rng.random(k) < _sigmoid(r.burst_logit + risk)
    active = (rng.random(k) < r.active_share) | burst | (ring_of >= 0)
    # Fund-chain and noise customers each get one dedicated disbursement account.
    special = rng.permutation(k)
    n_chain = round(r.chain_share * k)
    n_noise = round(r.noise_share * k)
    chain_customers = np.sort(special[:n_chain])
    noise_customers = np.sort(special[n_chain : n_chain + n_noise])
    active[chain_customers] = True
    active[noise_customers] = True
    return {
        "groups": groups,
        "controllers": controllers,
        "circles": circles,
        "rings": rings,
        "background": background,
        "enterprise": enterprise,
        "group_of": group_of,
        "ring_of": ring_of,
        "risk": risk,
        "burst": burst,
        "active": active,
        "chain_customers": chain_customers,
        "noise_customers": noise_customers,
    }


def _customers(c: _Chunk, roles: dict[str, Any]) -> None:
    rng, k, w = c.rng, c.k, c.world
    local = np.arange(k)
    enterprise = roles["enterprise"]
    region = rng.integers(0, len(REGIONS), k)
    group_region = rng.integers(0, len(REGIONS), len(roles["groups"]))
    in_group = roles["group_of"] >= 0
    region[in_group] = group_region[roles["group_of"][in_group]]
    sector = np.array(CUSTOMER_SECTORS)[rng.integers(0, len(CUSTOMER_SECTORS), k)]
    capital = np.round(_lognormal(rng, 5e6, 1.0, k), -3)
    created = w.start_s - rng.integers(30 * DAY, 3650 * DAY, k)
    noise = rng.standard_normal(k)
    score = np.clip(np.round(650 - 55 * (0.7 * roles["risk"] + 0.7 * noise)), 300, 900)
    income_median = np.where(enterprise, 1.2e7, 1.2e5) * np.exp(-0.15 * roles["risk"])
    income = np.round(_lognormal(rng, income_median, 0.6, k), -2)
    ids = c.customer_ids(local)
    kind = np.where(enterprise, "enterprise", "person")
    c.tables["customers"] = pl.DataFrame(
        {
            "customer_id": ids,
            "kind": pl.Series(kind),
            "name": pl.select(
                pl.concat_str(
                    pl.lit(pl.Series(np.where(enterprise, "Enterprise ", "Person "))), pl.lit(ids)
                )
            ).to_series(),
            "sector": pl.Series(sector).set(pl.Series(~enterprise), None),
            "region": pl.Series(np.array(REGIONS)[region]),
            "registered_capital": pl.Series(np.where(enterprise, capital, np.nan)).fill_nan(None),
            "created_at": _timestamps(created),
            "bureau_score": pl.Series(score.astype(np.int64)),
            "income": pl.Series(income),
        }
    )


def _lines_and_accounts(c: _Chunk, roles: dict[str, Any]) -> dict[str, np.ndarray]:
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    local = np.arange(k)
    enterprise = roles["enterprise"]
    n_lines = 1 + (rng.random(k) < r.second_line_share)
    line_customer = np.repeat(local, n_lines)
    line_numbers = c.number("line", len(line_customer))
    first_line = np.cumsum(n_lines) - n_lines  # local line index of each customer's first line
    median = np.where(enterprise[line_customer], 8e5, 5e4)
    limit = np.maximum(np.round(_lognormal(rng, median, 0.8, len(line_customer)), -3), 1000.0)
    opened = w.start_s - rng.integers(30 * DAY, 1100 * DAY, len(line_customer))
    frozen = (~roles["active"][line_customer]) & (rng.random(len(line_customer)) < 0.1)
    c.tables["credit_lines"] = pl.DataFrame(
        {
            "line_id": _ids("L", line_numbers, w.width),
            "customer_id": c.customer_ids(line_customer),
            "limit": pl.Series(limit),
            "opened_at": _timestamps(opened),
            "status": pl.Series(np.where(frozen, "frozen", "active")),
        }
    )

    special = np.zeros(k, bool)
    special[roles["chain_customers"]] = True
    special[roles["noise_customers"]] = True
    second = (~special) & (rng.random(k) < r.second_account_share)
    primary = c.number("account", k)
    second_owner = local[second]
    second_numbers = c.number("account", len(second_owner))
    dedicated_owner = np.concatenate([roles["chain_customers"], roles["noise_customers"]])
    dedicated_numbers = c.number("account", len(dedicated_owner))
    second_account = np.full(k, -1, np.int64)
    second_account[second_owner] = second_numbers
    dedicated = np.full(k, -1, np.int64)
    dedicated[dedicated_owner] = dedicated_numbers
    owners = np.concatenate([local, second_owner, dedicated_owner])
    c.tables["accounts"] = pl.DataFrame(
        {
            "account_id": _ids(
                "A", np.concatenate([primary, second_numbers, dedicated_numbers]), w.width
            ),
            "owner_id": c.customer_ids(owners),
        }
    )
    return {
        "line_numbers": line_numbers,
        "line_limit": limit,
        "first_line": first_line,
        "n_lines": n_lines,
        "primary": primary,
        "second": second_account,
        "dedicated": dedicated,
    }


def _devices(c: _Chunk, roles: dict[str, Any]) -> dict[str, np.ndarray]:
    """Device links: own devices, pair-shared devices, ring devices and hub terminals."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    local = np.arange(k)
    own_count = 1 + (rng.random(k) < r.personal_device_extra)
    link_customer = [np.repeat(local, own_count)]
    link_device = [c.number("device", int(own_count.sum()))]

    pair_a: list[np.ndarray] = []
    pair_b: list[np.ndarray] = []
    for members in roles["groups"]:
        a, b = _pairs(rng, members, max(1, len(members) // 3))
        pair_a.append(a)
        pair_b.append(b)
    pool = roles["background"]
    a, b = _pairs(rng, pool, round(r.shared_pair_share * len(pool) / 2))
    pair_a.append(a)
    pair_b.append(b)
    pa, pb = np.concatenate(pair_a), np.concatenate(pair_b)
    pair_devices = c.number("device", len(pa))
    link_customer += [pa, pb]
    link_device += [pair_devices, pair_devices]

    for members in roles["rings"]:
        n_dev = int(rng.integers(1, min(3, len(members) // 3) + 1))
        devices = c.number("device", n_dev)
        blocks = np.array_split(members, n_dev)
        for j, block in enumerate(blocks):
            bridge = blocks[j + 1][:1] if j + 1 < n_dev else block[:0]
            users = np.concatenate([block, bridge])
            link_customer.append(users)
            link_device.append(np.full(len(users), devices[j]))

    personal_customer = np.concatenate(link_customer)
    personal_device = np.concatenate(link_device)

    hub_customer: list[np.ndarray] = []
    hub_device: list[np.ndarray] = []
    n_hubs = max(1, round(k / r.customers_per_hub))
    for _ in range(n_hubs):
        size = min(len(pool), int(rng.integers(r.hub_size[0], r.hub_size[1] + 1)))
        if size < 3:
            break
        users = np.sort(rng.choice(pool, size, replace=False))
        hub_customer.append(users)
        hub_device.append(np.full(size, c.number("device", 1)[0]))
    hubs_c = np.concatenate(hub_customer) if hub_customer else np.empty(0, np.int64)
    hubs_d = np.concatenate(hub_device) if hub_device else np.empty(0, np.int64)

    customers = np.concatenate([personal_customer, hubs_c])
    devices = np.concatenate([personal_device, hubs_d])
    n = len(customers)
    first_seen = w.start_s - rng.integers(0, 700 * DAY, n)
    last_seen = rng.integers(w.start_s, w.end_s, n)  # every device is seen in the window
    order = np.lexsort((devices, customers))
    c.tables["device_links"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(customers[order]),
            "device_id": _ids("V", devices[order], w.width),
            "first_seen": _timestamps(first_seen[order]),
            "last_seen": _timestamps(last_seen[order]),
        }
    )
    hub_numbers = np.unique(hubs_d)
    c.truth["hub_devices"] = pl.DataFrame(
        {
            "device_id": _ids("V", hub_numbers, w.width),
            "customers": pl.Series(np.bincount(np.searchsorted(hub_numbers, hubs_d))).cast(
                pl.Int64
            ),
        },
        schema=TRUTH_SCHEMAS["hub_devices"],
    )
    # Devices a customer may draw down from (not the hub terminals), grouped by customer.
    by_customer = np.lexsort((personal_device, personal_customer))
    return {
        "device_of": personal_device[by_customer],
        "device_start": np.cumsum(np.bincount(personal_customer, minlength=k))
        - np.bincount(personal_customer, minlength=k),
        "device_count": np.bincount(personal_customer, minlength=k),
    }


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


def _dedupe_pairs(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Row indices keeping the first occurrence of each (a, b), ordered by (a, b)."""
    _, first = np.unique(a * k + b, return_index=True)
    return first


def _guarantees(c: _Chunk, roles: dict[str, Any], acc: dict[str, np.ndarray]) -> None:
    """Circle cycles and chords, plus acyclic group and background guarantees."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    circles = roles["circles"]
    # Circles are contracted to one super node; every other guarantee goes up one random order
    # of super nodes, so no cycle appears outside a circle and no two circles merge.
    super_of = np.arange(k)
    for i, members in enumerate(circles):
        super_of[members] = k + i
    rank = rng.permutation(k + len(circles))[super_of]

    circle_a: list[np.ndarray] = [np.empty(0, np.int64)]
    circle_b: list[np.ndarray] = [np.empty(0, np.int64)]
    for members in circles:
        cycle = rng.permutation(members)
        circle_a += [cycle]
        circle_b += [np.roll(cycle, -1)]
        if len(members) >= 4:
            a, b = _pairs(rng, cycle, len(members) // 3)
            circle_a += [a]
            circle_b += [b]
    free_a: list[np.ndarray] = [np.empty(0, np.int64)]
    free_b: list[np.ndarray] = [np.empty(0, np.int64)]
    for members in roles["groups"]:
        a, b = _pairs(rng, members, len(members) // 2 + 1)
        free_a += [a]
        free_b += [b]
    a, b = _pairs(rng, np.arange(k), round(r.guarantees_per_customer * k))
    # Few background guarantees touch a group and none joins two: a group tied into the
    # background's giant component is merged with its neighbours by modularity (its
    # resolution limit grows with the graph), and the groups must stay recoverable.
    touches = (roles["group_of"][a] >= 0) | (roles["group_of"][b] >= 0)
    joins = (roles["group_of"][a] >= 0) & (roles["group_of"][b] >= 0)
    apart = ~joins & (~touches | (rng.random(len(a)) < r.group_leak))
    free_a += [a[apart]]
    free_b += [b[apart]]
    fa, fb = np.concatenate(free_a), np.concatenate(free_b)
    up = rank[fa] < rank[fb]
    fa, fb = np.where(up, fa, fb), np.where(up, fb, fa)
    differ = rank[fa] != rank[fb]
    guarantor = np.concatenate([*circle_a, fa[differ]])
    borrower = np.concatenate([*circle_b, fb[differ]])
    keep = _dedupe_pairs(guarantor, borrower, k)
    guarantor, borrower = guarantor[keep], borrower[keep]
    n = len(guarantor)
    limit = acc["line_limit"][acc["first_line"][borrower]]
    start = w.start_day - rng.integers(0, 700, n)
    c.tables["guarantees"] = pl.DataFrame(
        {
            "guarantor_id": c.customer_ids(guarantor),
            "borrower_id": c.customer_ids(borrower),
            "amount": pl.Series(_money(limit * rng.uniform(0.3, 1.0, n))),
            "start": _dates(start),
            "end": _dates(start + rng.integers(365, 1096, n)),
        }
    )
    c.truth["guarantee_edges"] = pl.DataFrame({"a": guarantor, "b": borrower})


def _shareholdings(c: _Chunk, roles: dict[str, Any]) -> None:
    """Group holding trees (shares >= 0.2), owners of small firms, and minority stakes < 0.2.

    A company's holders never own more than 100% in total.
    """
    rng, k, r = c.rng, c.k, c.rates
    holders: list[np.ndarray] = [np.empty(0, np.int64)]
    companies: list[np.ndarray] = [np.empty(0, np.int64)]
    shares: list[np.ndarray] = [np.empty(0)]
    for g, members in enumerate(roles["groups"]):
        pos = np.arange(roles["controllers"][g], len(members))
        parent = (rng.random(len(pos)) * pos).astype(np.int64)
        holders += [members[parent]]
        companies += [members[pos]]
        shares += [rng.uniform(0.3, 0.6, len(pos))]
        second = (rng.random(len(pos)) * (pos - 1)).astype(np.int64)
        second += second >= parent
        has_second = (pos >= 2) & (rng.random(len(pos)) < 0.5)
        holders += [members[second[has_second]]]
        companies += [members[pos[has_second]]]
        shares += [rng.uniform(0.2, 0.25, int(has_second.sum()))]
    enterprise = roles["enterprise"]
    background = roles["background"]
    bg_firms = background[enterprise[background]]
    bg_people = background[~enterprise[background]]
    if len(bg_people):
        owned = rng.permutation(bg_firms)[: round(r.owner_stakes_share * len(bg_firms))]
        holders += [bg_people[rng.integers(0, len(bg_people), len(owned))]]
        companies += [owned]
        shares += [rng.uniform(0.2, 0.85, len(owned))]
    firms = np.flatnonzero(enterprise)
    stakes = rng.permutation(firms)[: round(r.minority_stakes_share * len(firms))]
    holders += [rng.integers(0, k, len(stakes))]
    companies += [stakes]
    shares += [rng.uniform(0.01, 0.15, len(stakes))]
    holder, company, share = (np.concatenate(x) for x in (holders, companies, shares))
    distinct = holder != company
    holder, company, share = holder[distinct], company[distinct], share[distinct]
    keep = _dedupe_pairs(holder, company, k)
    c.tables["shareholdings"] = pl.DataFrame(
        {
            "holder_id": c.customer_ids(holder[keep]),
            "company_id": c.customer_ids(company[keep]),
            "share": pl.Series(np.round(share[keep], 4)),
        }
    )


def _repayments(
    c: _Chunk, roles: dict[str, Any], acc: dict[str, np.ndarray], dd: dict[str, np.ndarray]
) -> None:
    """Monthly statements per line; riskier customers pay later (days_past_due)."""
    rng, w = c.rng, c.world
    cycle = (dd["ts"] - w.start_s) // (30 * DAY)
    statements = (
        pl.DataFrame({"line": dd["line_local"], "cycle": cycle, "amount": dd["amount"]})
        .group_by("line", "cycle")
        .agg(pl.col("amount").sum())
        .sort("line", "cycle")
    )
    line = statements.get_column("line").to_numpy()
    due_day = w.start_day + 30 * (statements.get_column("cycle").to_numpy() + 1)
    keep = due_day <= w.start_day + w.days
    line, due_day = line[keep], due_day[keep]
    drawn = statements.get_column("amount").to_numpy()[keep]
    n = len(line)
    customer = np.repeat(np.arange(c.k), acc["n_lines"])[line]
    late = rng.random(n) < _sigmoid(
        -2.8 + 1.3 * roles["risk"][customer] + 0.5 * rng.standard_normal(n)
    )
    dpd = np.where(late, 1 + rng.geometric(0.12, n), 0)
    paid = due_day * DAY + dpd * DAY + rng.integers(8 * HOUR, 20 * HOUR, n)
    unpaid = paid >= w.end_s
    dpd = np.where(unpaid, np.maximum(w.start_day + w.days - due_day, 0), dpd)
    paid_at = _timestamps(paid).set(pl.Series(unpaid), None)
    c.tables["repayments"] = pl.DataFrame(
        {
            "line_id": _ids("L", acc["line_numbers"][line], w.width),
            "due_date": _dates(due_day),
            "paid_at": paid_at,
            "amount": pl.Series(_money(drawn * rng.uniform(0.2, 1.0, n))),
            "days_past_due": pl.Series(dpd.astype(np.int64)),
        }
    )


def _defaults(c: _Chunk, roles: dict[str, Any]) -> None:
    """Independent and burst defaults, then contagion waves along guarantee, circle, ring ties."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    end_day = w.start_day + w.days
    cause = np.full(k, -1, np.int64)
    day = np.zeros(k, np.int64)
    independent = rng.random(k) < _sigmoid(r.default_logit + 1.1 * roles["risk"])
    burst = roles["burst"] & (rng.random(k) < r.burst_default_prob)
    cause[independent] = CAUSES.index("independent")
    cause[burst] = CAUSES.index("burst")
    day[cause >= 0] = end_day + rng.integers(0, 60, int((cause >= 0).sum()))

    edges = c.truth.pop("guarantee_edges")
    g, b = edges.get_column("a").to_numpy(), edges.get_column("b").to_numpy()
    src = [b, g]
    dst = [g, b]
    prob = [np.full(len(g), r.guarantee_contagion), np.full(len(g), r.guarantee_contagion_back)]
    kind = [np.full(2 * len(g), CAUSES.index("guarantee_contagion"))]
    for structures, p, name in (
        (roles["circles"], r.circle_contagion, "circle"),
        (roles["rings"], r.ring_contagion, "ring_contagion"),
    ):
        for members in structures:
            s, d = np.meshgrid(members, members, indexing="ij")
            off = s != d
            src.append(s[off])
            dst.append(d[off])
            prob.append(np.full(int(off.sum()), p))
            kind.append(np.full(int(off.sum()), CAUSES.index(name)))
    e_src, e_dst, e_prob, e_kind = (np.concatenate(x) for x in (src, dst, prob, kind))
    # Circle beats guarantee beats ring when several ties pass the default on at once.
    priority = np.array([9, 9, 1, 2, 0])[e_kind]

    wave = cause >= 0
    for _ in range(r.contagion_waves):
        hit = wave[e_src] & (cause[e_dst] < 0) & (rng.random(len(e_src)) < e_prob)
        lag = rng.integers(3, 26, len(e_src))
        rows = np.flatnonzero(hit)
        rows = rows[np.lexsort((priority[rows], e_dst[rows]))]
        first = rows[np.unique(e_dst[rows], return_index=True)[1]]
        wave = np.zeros(k, bool)
        wave[e_dst[first]] = True
        cause[e_dst[first]] = e_kind[first]
        day[e_dst[first]] = day[e_src[first]] + lag[first]

    defaulted = np.flatnonzero(cause >= 0)
    labelled = rng.random(k) < r.label_share
    c.truth["defaults"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(defaulted),
            "cause": pl.Series(np.array(CAUSES)[cause[defaulted]], dtype=pl.String),
            "default_date": _dates(day[defaulted]),
            "labelled": pl.Series(labelled[defaulted]),
        },
        schema=TRUTH_SCHEMAS["defaults"],
    )
    rows = np.flatnonzero(labelled)
    is_default = cause[rows] >= 0
    c.tables["labels"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(rows),
            "defaulted": pl.Series(is_default),
            "default_date": _dates(day[rows]).set(pl.Series(~is_default), None),
        }
    )


def _structure_truth(c: _Chunk, roles: dict[str, Any]) -> None:
    for name, key, structures in (
        ("circles", "circle_id", roles["circles"]),
        ("groups", "group_id", roles["groups"]),
        ("rings", "ring_id", roles["rings"]),
    ):
        sizes = np.array([len(s) for s in structures], np.int64)
        members = np.concatenate(structures) if structures else np.empty(0, np.int64)
        ids = np.repeat(c.number(name, len(structures)), sizes)
        frame = pl.DataFrame(
            {key: pl.Series(ids, dtype=pl.Int64), "customer_id": c.customer_ids(members)},
            schema=TRUTH_SCHEMAS[name],
        )
        c.truth[name] = frame.sort(key, "customer_id")
    bursts = (
        c.tables["drawdowns"]
        .select("line_id", pl.col("ts").dt.date().alias("day"))
        .join(
            c.tables["credit_lines"].select("line_id", "customer_id"),
            on="line_id",
            maintain_order="left",
        )
        .group_by("customer_id", "day")
        .agg(pl.len().cast(pl.Int64).alias("drawdowns"))
        .filter(pl.col("drawdowns") >= 5)
        .sort("customer_id", "day")
    )
    c.truth["bursts"] = bursts.select(list(TRUTH_SCHEMAS["bursts"]))


def _generate_chunk(
    world: _World, index: int, first: int, k: int, offsets: dict[str, int]
) -> _Chunk:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([world.seed, index + 1])))
    c = _Chunk(world=world, rng=rng, first=first, k=k, offsets=offsets)
    roles = _roles(c)
    _customers(c, roles)
    acc = _lines_and_accounts(c, roles)
    dev = _devices(c, roles)
    dd = _drawdowns(c, roles, acc, dev)
    transfers = _Transfers()
    _background_transfers(c, roles, acc, dd, transfers)
    planted = _planted_paths(c, dd, transfers)
    _write_transfers(c, dd, planted, transfers)
    _guarantees(c, roles, acc)
    _shareholdings(c, roles)
    _repayments(c, roles, acc, dd)
    _defaults(c, roles)
    _structure_truth(c, roles)
    if c.conduits:
        numbers = np.concatenate([n for n, _ in c.conduits])
        owners = np.concatenate([o for _, o in c.conduits])
        c.tables["accounts"] = pl.concat(
            [
                c.tables["accounts"],
                pl.DataFrame(
                    {
                        "account_id": _ids("A", numbers, world.width),
                        "owner_id": _ids("M", owners, world.width),
                    }
                ),
            ]
        )
    return c


# ----------------------------------------------------------------------------- assembling


def _parts(
    customers: int, seed: int, start: date, days: int, chunk_customers: int, rates: Rates
) -> Iterator[tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame], int]]:
    """Shared tables first, then one (tables, truth, customers) triple per chunk."""
    if customers < 1:
        raise ValueError("customers must be >= 1")
    if days < WINDOW_DAYS + 30:
        raise ValueError(f"days must be >= {WINDOW_DAYS + 30} so chains and noise fit")
    if chunk_customers < 1:
        raise ValueError("chunk_customers must be >= 1")
    if rates.launder_gap_days[0] <= WINDOW_DAYS:
        raise ValueError(f"launder_gap_days must start above {WINDOW_DAYS} (one chain a window)")
    world = _world(customers, seed, start, days, rates)
    yield _shared_tables(world), {}, 0
    offsets: dict[str, int] = {"account": world.n_merchants}
    for index, first in enumerate(range(0, customers, chunk_customers)):
        k = min(chunk_customers, customers - first)
        chunk = _generate_chunk(world, index, first, k, offsets)
        for kind, used in chunk.used.items():
            offsets[kind] = offsets.get(kind, 0) + used
        yield chunk.tables, chunk.truth, k


def _conform(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Schema columns in schema order and dtypes, then the generator's extra columns."""
    schema = TABLES[name].polars_schema
    extras = CUSTOMER_EXTRAS if name == "customers" else {}
    return frame.select([pl.col(col).cast(dtype) for col, dtype in {**schema, **extras}.items()])


def _params(
    customers: int, seed: int, start: date, days: int, chunk_customers: int, rates: Rates
) -> dict[str, Any]:
    return {
        "customers": customers,
        "seed": seed,
        "start": start.isoformat(),
        "days": days,
        "chunk_customers": chunk_customers,
        "window_days": WINDOW_DAYS,
        "max_chain_hops": MAX_CHAIN_HOPS,
        "performance_days": PERFORMANCE_DAYS,
        "rates": asdict(rates),
    }


class _Counts:
    """Row counts of tables and truth, and the graph's node and relationship counts."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.truth_frames: dict[str, list[pl.DataFrame]] = {name: [] for name in TRUTH_SCHEMAS}
        self.devices = 0
        self.drawn = 0.0
        self.laundered = 0.0

    def add(self, tables: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            self.rows[name] += frame.height
        if "device_links" in tables:  # devices never cross chunks; drawdowns reuse linked ones
            self.devices += tables["device_links"].get_column("device_id").n_unique()
        if "drawdowns" in tables:
            drawdowns = tables["drawdowns"]
            laundered = truth["chains"].filter(pl.col("kind") == "laundering")
            self.drawn += float(drawdowns.get_column("amount").sum())
            self.laundered += float(
                drawdowns.join(laundered, on="drawdown_id", how="semi").get_column("amount").sum()
            )
        for name, frame in truth.items():
            self.truth_frames[name].append(frame)

    def truth(self) -> dict[str, pl.DataFrame]:
        return {
            name: pl.concat([pl.DataFrame(schema=TRUTH_SCHEMAS[name]), *frames])
            for name, frames in self.truth_frames.items()
        }

    def summary(self, truth: dict[str, pl.DataFrame]) -> dict[str, Any]:
        rows = self.rows
        nodes = {
            "Customer": rows["customers"],
            "CreditLine": rows["credit_lines"],
            "Account": rows["accounts"],
            "Merchant": rows["merchants"],
            "Device": self.devices,
            "Sector": rows["sectors"],
        }
        edges = {
            "has_line": rows["credit_lines"],
            "drawdown": rows["drawdowns"],
            "owns": rows["accounts"],
            "transfer": rows["transfers"],
            "in_sector": rows["merchants"],
            "guarantees": rows["guarantees"],
            "holds_shares": rows["shareholdings"],
            "uses_device": rows["device_links"],
        }
        defaults = truth["defaults"]
        labelled = rows["labels"]
        chains = truth["chains"]
        laundering = chains.filter(pl.col("kind") == "laundering")
        drawn = max(self.drawn, 1e-9)
        banned = chains.get_column("banned_amount")
        banned_3plus = chains.filter(pl.col("hops") >= 3).get_column("banned_amount")
        return {
            "tables": dict(rows),
            "nodes": {**nodes, "total": sum(nodes.values())},
            "edges": {**edges, "total": sum(edges.values())},
            "planted": {
                "circles": truth["circles"].get_column("circle_id").n_unique(),
                "groups": truth["groups"].get_column("group_id").n_unique(),
                "rings": truth["rings"].get_column("ring_id").n_unique(),
                "hub_devices": truth["hub_devices"].height,
                "chains": truth["chains"].height,
                "chains_by_hops": {
                    str(h): n
                    for h, n in truth["chains"].group_by("hops").len().sort("hops").iter_rows()
                },
                "chains_by_kind": {
                    kind: chains.filter(pl.col("kind") == kind).height
                    for kind in ("chain", "laundering")
                },
                "diverters": laundering.get_column("customer_id").n_unique(),
                "laundered_drawdown_share": round(laundering.height / max(rows["drawdowns"], 1), 4),
                "laundered_amount_share": round(self.laundered / drawn, 4),
                # What graphkit's flow tracing finds with policy first, W=30 days, H=6.
                "banned_share": round(float(banned.sum()) / drawn, 4),
                "banned_share_3plus": round(float(banned_3plus.sum()) / drawn, 4),
                "noise_paths": truth["noise_paths"].height,
                "burst_days": truth["bursts"].height,
                "burst_customers": truth["bursts"].get_column("customer_id").n_unique(),
                "defaults": defaults.height,
                "defaults_by_cause": {
                    cause: defaults.filter(pl.col("cause") == cause).height for cause in CAUSES
                },
                "labelled": labelled,
                "default_rate": round(defaults.height / max(rows["customers"], 1), 4),
            },
        }


def generate_tables(
    customers: int,
    seed: int,
    *,
    start: date = date(2025, 1, 1),
    days: int = 180,
    chunk_customers: int = 250_000,
    rates: Rates | None = None,
) -> GeneratedData:
    """Generate the network in memory (for tests and small ``customers``).

    Returns every schema table (typed, customers with the extra features), the planted truth
    frames (see :data:`TRUTH_SCHEMAS`) and the parameters, with ``params["counts"]`` holding
    the same counts ``truth.json`` records. Same arguments, same frames.
    """
    rates = rates or Rates()
    counts = _Counts()
    pieces: dict[str, list[pl.DataFrame]] = {name: [] for name in TABLES}
    for tables, truth, _ in _parts(customers, seed, start, days, chunk_customers, rates):
        counts.add(tables, truth)
        for name, frame in tables.items():
            pieces[name].append(_conform(name, frame))
    frames = {
        name: pl.concat(parts) if parts else _conform(name, _empty(name))
        for name, parts in pieces.items()
    }
    truth = counts.truth()
    params = _params(customers, seed, start, days, chunk_customers, rates)
    params["counts"] = counts.summary(truth)
    return GeneratedData(tables=frames, truth=truth, params=params)


def _empty(name: str) -> pl.DataFrame:
    """An empty table ``name`` including the generator's extra customer columns."""
    frame = empty_table(name)
    if name == "customers":
        frame = frame.with_columns(
            [pl.lit(None, dtype=dtype).alias(col) for col, dtype in CUSTOMER_EXTRAS.items()]
        )
    return frame


class _TableWriter:
    """Appends chunks to one file per table (Parquet row groups or CSV rows)."""

    def __init__(self, directory: Path, fmt: str) -> None:
        self.directory = directory
        self.fmt = fmt
        self.parquet: dict[str, pq.ParquetWriter] = {}
        self.csv_started: set[str] = set()

    def write(self, name: str, frame: pl.DataFrame) -> None:
        path = self.directory / f"{name}.{self.fmt}"
        if self.fmt == "parquet":
            table = frame.to_arrow()
            if name not in self.parquet:
                self.parquet[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
            self.parquet[name].write_table(table)
            return
        with path.open("ab") as fh:
            frame.write_csv(
                fh, include_header=name not in self.csv_started, datetime_format=CSV_DATETIME
            )
        self.csv_started.add(name)

    def close(self) -> None:
        for name in TABLES:
            if name not in self.parquet and name not in self.csv_started:
                self.write(name, _conform(name, _empty(name)))
        for writer in self.parquet.values():
            writer.close()


def generate(
    out_dir: Path | str,
    customers: int,
    seed: int,
    fmt: str = "parquet",
    progress: Progress = SILENT,
    chunk_customers: int = 250_000,
    *,
    start: date = date(2025, 1, 1),
    days: int = 180,
    rates: Rates | None = None,
) -> dict[str, Any]:
    """Write the network to ``out_dir`` (one file per table) and the truth to ``out_dir/_truth``.

    Customers are generated ``chunk_customers`` at a time and appended, so memory is bounded by
    the chunk; ``out_dir`` appears whole or not at all. Returns what ``truth.json`` holds:
    ``{"params": ..., "counts": ...}``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    rates = rates or Rates()
    counts = _Counts()
    progress.start("generate", customers)
    with atomic_directory(Path(out_dir)) as tmp:
        writer = _TableWriter(tmp, fmt)
        try:
            for tables, truth, k in _parts(customers, seed, start, days, chunk_customers, rates):
                counts.add(tables, truth)
                for name in TABLES:
                    if name in tables:
                        writer.write(name, _conform(name, tables[name]))
                progress.advance("generate", k)
        finally:
            writer.close()
        truth = counts.truth()
        truth_dir = tmp / TRUTH_DIR
        truth_dir.mkdir()
        for name, frame in truth.items():
            frame.write_parquet(truth_dir / f"{name}.parquet")
        params = _params(customers, seed, start, days, chunk_customers, rates)
        summary = {"params": params, "counts": counts.summary(truth)}
        (truth_dir / "truth.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    progress.finish("generate")
    return summary
