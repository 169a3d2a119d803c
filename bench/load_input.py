"""How much validation costs: ``read_input`` against a bare typed polars read of the same CSV.

Writes an input directory with ``--transfers`` transfer rows (plus accounts and customers), then
times, in this process, (1) the baseline: ``pl.scan_csv`` with the schema's dtypes, no checks, and
(2) ``loaders.sources.read_input`` (text scan, casts, every check, references). Each measurement
runs in a child process so its peak RSS is its own. Prints a table and writes
``bench/results/load_input.json``.

    .venv/bin/python bench/load_input.py --transfers 20000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

RESULTS = Path(__file__).parent / "results" / "load_input.json"


def write_input(directory: Path, transfers: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    accounts = max(transfers // 10, 10)
    customers = max(accounts // 2, 5)
    pl.DataFrame(
        {
            "customer_id": pl.int_range(customers, eager=True).cast(pl.String).str.zfill(9),
            "kind": np.where(rng.random(customers) < 0.3, "enterprise", "person"),
        }
    ).with_columns(("C" + pl.col("customer_id")).alias("customer_id")).write_csv(
        directory / "customers.csv"
    )
    pl.DataFrame(
        {
            "account_id": pl.int_range(accounts, eager=True),
            "owner_id": rng.integers(0, customers, accounts),
        }
    ).select(
        ("A" + pl.col("account_id").cast(pl.String).str.zfill(9)).alias("account_id"),
        ("C" + pl.col("owner_id").cast(pl.String).str.zfill(9)).alias("owner_id"),
    ).write_csv(directory / "accounts.csv")
    start = np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64)
    chunk = 5_000_000
    with (directory / "transfers.csv").open("wb") as fh:
        for offset in range(0, transfers, chunk):
            n = min(chunk, transfers - offset)
            frame = pl.DataFrame(
                {
                    "transfer_id": pl.int_range(offset, offset + n, eager=True),
                    "src": rng.integers(0, accounts, n),
                    "dst": rng.integers(0, accounts, n),
                    "amount": np.round(rng.lognormal(8, 2, n), 2) + 0.01,
                    "ts": start + rng.integers(0, 365 * 86400, n),
                }
            ).select(
                ("T" + pl.col("transfer_id").cast(pl.String)).alias("transfer_id"),
                ("A" + pl.col("src").cast(pl.String).str.zfill(9)).alias("src_account"),
                ("A" + pl.col("dst").cast(pl.String).str.zfill(9)).alias("dst_account"),
                "amount",
                pl.from_epoch("ts", "s").dt.strftime("%Y-%m-%dT%H:%M:%S").alias("ts"),
            )
            frame.write_csv(fh, include_header=offset == 0)


def _baseline(directory: str) -> int:
    frame = pl.scan_csv(
        Path(directory) / "transfers.csv",
        schema={
            "transfer_id": pl.String,
            "src_account": pl.String,
            "dst_account": pl.String,
            "amount": pl.Float64,
            "ts": pl.String,
        },
    ).with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S", time_zone="UTC"))
    return frame.collect().height


def _read_input(directory: str) -> int:
    from loaders.sources import read_input

    return read_input(Path(directory)).tables["transfers"].height


def _measure(target: str, directory: str, queue: multiprocessing.Queue) -> None:
    function = {"baseline": _baseline, "read_input": _read_input}[target]
    started = time.perf_counter()
    rows = function(directory)
    seconds = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    queue.put({"rows": rows, "seconds": seconds, "peak_rss_gb": peak_gb})


def measure(target: str, directory: Path) -> dict[str, float]:
    """Run one reader in a fresh process; its rows, seconds and peak RSS."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(target, str(directory), queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=2_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        write_input(directory, args.transfers)
        generated = time.perf_counter() - started
        size_gb = (directory / "transfers.csv").stat().st_size / 1024**3
        baseline = measure("baseline", directory)
        validated = measure("read_input", directory)
    assert validated["rows"] == baseline["rows"] == args.transfers
    result = {
        "transfers": args.transfers,
        "transfers_csv_gb": round(size_gb, 3),
        "generate_seconds": round(generated, 1),
        "baseline": baseline,
        "read_input": validated,
        "time_ratio": validated["seconds"] / baseline["seconds"],
        "memory_ratio": validated["peak_rss_gb"] / baseline["peak_rss_gb"],
    }
    print(f"transfers: {args.transfers:,} rows, {size_gb:.2f} GB CSV")
    print(f"{'reader':<28}{'seconds':>10}{'peak RSS GB':>14}")
    for label, row in (("baseline (typed scan_csv)", baseline), ("read_input", validated)):
        print(f"{label:<28}{row['seconds']:>10.1f}{row['peak_rss_gb']:>14.2f}")
    print(f"ratio: time x{result['time_ratio']:.2f}, peak memory x{result['memory_ratio']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
