"""Assembling the network: chunk by chunk, in memory (:func:`generate_tables`) or appended to one
file per table (:func:`generate`)."""

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
from loaders.synthetic.cosmetics import _cosmetics
from loaders.synthetic.customers import (
    CUSTOMER_EXTRAS,
    _customers,
    _lines_and_accounts,
    _repayments,
    _roles,
)
from loaders.synthetic.devices import _devices
from loaders.synthetic.drawdowns import (
    _background_transfers,
    _drawdowns,
    _planted_paths,
    _Transfers,
    _write_transfers,
)
from loaders.synthetic.guarantees import _guarantees
from loaders.synthetic.shareholdings import _shareholdings
from loaders.synthetic.truth import _Counts, _defaults, _structure_truth
from loaders.synthetic.world import (
    MAX_CHAIN_HOPS,
    PERFORMANCE_DAYS,
    WINDOW_DAYS,
    Rates,
    _Chunk,
    _ids,
    _shared_tables,
    _World,
    _world,
)

CSV_DATETIME = "%Y-%m-%dT%H:%M:%SZ"
TRUTH_DIR = "_truth"
FORMATS = ("parquet", "csv")


@dataclass
class GeneratedData:
    """Generated input tables, the planted truth and the parameters that produced them."""

    tables: dict[str, pl.DataFrame]
    truth: dict[str, pl.DataFrame]
    params: dict[str, Any] = field(default_factory=dict)


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
    _cosmetics(c, roles, acc, dev, dd)
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
