"""The memory guard: a table file that would not fit in memory is refused before it is read.

Each file's peak memory is estimated from its size (CSV) or its values (Parquet) and compared with
what the process may still allocate (docs/reliability.md, "The memory guard").
"""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

import psutil

from loaders.issues import IssueLog

MEMORY_BUDGET_ENV = "GRAPHKIT_MEMORY_BUDGET"
# Peak memory to read and validate one file, as a multiple of its CSV size or of its Parquet
# data uncompressed (measured: 3.1x for a text-heavy CSV, 4.4x for a number-heavy one).
_CSV_EXPANSION = 5
_PARQUET_EXPANSION = 3
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from a size such as ``512M``, ``2G``, ``1.5GiB`` or ``100000``; ValueError if not."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 4G)")
    scale = 1024 ** ("kmgt".find(match.group(2).lower()) + 1) if match.group(2) else 1
    return int(float(match.group(1)) * scale)


def memory_budget() -> int:
    """Bytes this process can still allocate: ``$GRAPHKIT_MEMORY_BUDGET`` when set, else the
    least of the machine's available memory, the headroom under this process's address-space
    and data limits (``ulimit -v`` / ``-d``), and the headroom of its cgroup."""
    override = os.environ.get(MEMORY_BUDGET_ENV)
    if override:
        return parse_size(override)
    usage = psutil.Process().memory_info()
    limits = [psutil.virtual_memory().available]
    for kind, used in ((resource.RLIMIT_AS, usage.vms), (resource.RLIMIT_DATA, usage.data)):
        soft = resource.getrlimit(kind)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(max(soft - used, 0))
    cgroup = Path("/sys/fs/cgroup")
    try:
        ceiling = (cgroup / "memory.max").read_text().strip()
        if ceiling != "max":
            current = int((cgroup / "memory.current").read_text())
            limits.append(max(int(ceiling) - current, 0))
    except (OSError, ValueError):
        pass
    return min(limits)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _memory_needed(path: Path) -> tuple[int, str]:
    """Estimated peak bytes to read ``path``, and how its size was measured.

    A Parquet file's size says little (a repeated value compresses to nothing): its data is
    judged by the larger of its uncompressed pages and 16 bytes per value (a polars string
    view; numbers take 8).
    """
    size = path.stat().st_size
    if path.suffix != ".parquet":
        return size * _CSV_EXPANSION, f"{_bytes(size)} on disk"
    try:
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        pages = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        rows, columns = meta.num_rows, meta.num_columns
    except Exception:  # unreadable: the read reports it; judge by the file size meanwhile
        return size * _PARQUET_EXPANSION, f"{_bytes(size)} on disk"
    data = max(pages, rows * columns * 16, size)
    measured = f"{rows:,} rows x {columns} columns (about {_bytes(data)} in memory)"
    return data * _PARQUET_EXPANSION, measured


def refuse_oversized(found: dict[str, Path], log: IssueLog) -> set[str]:
    """Tables whose file would not fit in memory, each reported; they are not read."""
    try:
        budget = memory_budget()
    except ValueError as exc:
        log.add(MEMORY_BUDGET_ENV, None, None, str(exc))
        return set(found)
    refused = set()
    for name, path in found.items():
        needed, measured = _memory_needed(path)
        if needed > budget:
            log.add(
                path.name,
                None,
                None,
                f"too large to read in memory: {measured} needs about {_bytes(needed)} but "
                f"only {_bytes(budget)} is available; refused rather than risk running out of "
                f"memory (free memory, split the table, or set {MEMORY_BUDGET_ENV} to override)",
            )
            refused.add(name)
    return refused
