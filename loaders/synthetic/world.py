"""What every part of the generator shares: time units, sectors, rates, id helpers, the world
(dates, merchants) and the state of one chunk while it is generated."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from graphkit.schema import TABLES

DAY = 86_400
HOUR = 3_600
WINDOW_DAYS = 30  # the flow-tracing window the chains are planted for
MAX_CHAIN_HOPS = 6
PERFORMANCE_DAYS = 90  # defaults happen in this many days after the observation window

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
    # Credit cosmetics (loaders/synthetic/cosmetics.py): risky customers keeping a perfect record
    # with small drawdowns every few days, each repaid within hours.
    cosmetic_share: float = 0.05
    cosmetic_risk_tilt: float = 2.0  # P(cosmetic) grows as exp(tilt * latent risk)
    cosmetic_min_drawdowns: int = 6  # ordinary drawdowns a customer needs to be picked
    cosmetic_amount_share: tuple[float, float] = (0.01, 0.05)  # drawdown / limit


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


def _dedupe_pairs(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Row indices keeping the first occurrence of each (a, b), ordered by (a, b)."""
    _, first = np.unique(a * k + b, return_index=True)
    return first


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


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
