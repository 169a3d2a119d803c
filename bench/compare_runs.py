"""Compare two run directories table by table: same rows and values, or a clear diff.

    python bench/compare_runs.py RUN_A RUN_B [--atol 1e-9] [--rtol 1e-9]

Every table of the run (``*.parquet`` and ``*.csv``: circles, rings, flows, flow_paths,
clusters, contagion, scores, cluster_risk, alerts, ...) must hold the same columns and the same
rows in both, in any order; floating-point values compare within ``--atol``/``--rtol`` (exact
by default). ``model_eval.json`` and ``manifest.json`` are compared without what differs from
run to run by design: run ids, timestamps, timings (``*_seconds``), paths, the report's size
(the manifest's
``model.sha256`` still pins ``model.pt``). ``report.html`` and ``snapshot/`` are not compared
(the report carries the run id and time; the snapshot is the input, whose sha256s the manifest
pins).

Exit status 0 when the runs agree, 1 with a diff per table on stdout when they do not, 2 when
a directory is not a run directory. Used to show that a refactoring leaves ``make run`` on
``data/sample/`` unchanged (issue 13).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

# Manifest keys whose values differ between two runs of the same code on the same input.
# (``report_bytes``: the report shows the run id, its time and where the input was read from.)
VOLATILE_KEYS = frozenset(
    {"run_id", "created_at", "timings_seconds", "directory", "path", "report_bytes"}
)
SHOWN_ROWS = 5


def _read(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema_length=None)


def _sortable(frame: pl.DataFrame) -> list[str]:
    return [c for c, t in frame.schema.items() if not t.is_nested() and t != pl.Object]


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in one order (by every sortable column) so that row order does not matter."""
    columns = _sortable(frame)
    return frame.sort(columns, nulls_last=True) if columns else frame


def _column_diff(a: pl.Series, b: pl.Series, atol: float, rtol: float) -> np.ndarray:
    """Positions where two aligned columns differ (nulls equal nulls; floats within tolerance)."""
    null_a, null_b = a.is_null().to_numpy(), b.is_null().to_numpy()
    differ = null_a != null_b
    both = ~null_a & ~null_b
    if a.dtype.is_float() and b.dtype.is_float():
        x, y = a.fill_null(0).to_numpy(), b.fill_null(0).to_numpy()
        close = np.isclose(x, y, atol=atol, rtol=rtol, equal_nan=True)
        return np.flatnonzero(differ | (both & ~close))
    same = (a == b).fill_null(True).to_numpy()
    return np.flatnonzero(differ | (both & ~same))


def compare_tables(a: pl.DataFrame, b: pl.DataFrame, atol: float, rtol: float) -> list[str]:
    """What differs between two tables (empty: the same rows and values)."""
    problems: list[str] = []
    if a.columns != b.columns:
        only_a = [c for c in a.columns if c not in b.columns]
        only_b = [c for c in b.columns if c not in a.columns]
        problems.append(f"columns differ: only in A {only_a}, only in B {only_b}")
        if only_a or only_b:
            return problems
        b = b.select(a.columns)
    dtypes = [(c, a.schema[c], b.schema[c]) for c in a.columns if a.schema[c] != b.schema[c]]
    for column, ta, tb in dtypes:
        problems.append(f"column {column}: dtype {ta} in A, {tb} in B")
    if a.height != b.height:
        problems.append(f"rows: {a.height} in A, {b.height} in B")
        return problems
    ca, cb = _canonical(a), _canonical(b)
    for column in a.columns:
        if (column, a.schema[column], b.schema[column]) in dtypes:
            continue
        sa, sb = ca.get_column(column), cb.get_column(column)
        if sa.dtype.is_nested():
            bad = np.flatnonzero(~(sa == sb).fill_null(False).to_numpy())
        else:
            bad = _column_diff(sa, sb, atol, rtol)
        if len(bad):
            shown = ", ".join(
                f"row {i}: {sa[int(i)]!r} vs {sb[int(i)]!r}" for i in bad[:SHOWN_ROWS]
            )
            problems.append(f"column {column}: {len(bad)} of {a.height} values differ ({shown})")
    return problems


def _strip(value: Any) -> Any:
    """``value`` without the volatile manifest entries (see the module docstring)."""
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in VOLATILE_KEYS and not k.endswith("_seconds")
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _json_diff(a: Any, b: Any, where: str, atol: float, rtol: float) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [
            f"{where}.{k}: only in {'A' if k in a else 'B'}" for k in sorted(a.keys() ^ b.keys())
        ]
        for key in sorted(a.keys() & b.keys()):
            out += _json_diff(a[key], b[key], f"{where}.{key}", atol, rtol)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items in A, {len(b)} in B"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _json_diff(x, y, f"{where}[{i}]", atol, rtol)
        ]
    both_numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if both_numbers and math.isclose(a, b, rel_tol=rtol, abs_tol=atol):
        return []
    if both_numbers and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{where}: {a!r} in A, {b!r} in B"]


def compare_runs(
    run_a: Path, run_b: Path, atol: float = 0.0, rtol: float = 0.0
) -> dict[str, list[str]]:
    """Differences per file between two run directories (files that agree are left out)."""
    tables = {
        p.name for d in (run_a, run_b) for p in d.iterdir() if p.suffix in (".parquet", ".csv")
    }
    diffs: dict[str, list[str]] = {}
    for name in sorted(tables):
        a, b = run_a / name, run_b / name
        if not a.is_file() or not b.is_file():
            diffs[name] = [f"only in {'A' if a.is_file() else 'B'}"]
            continue
        problems = compare_tables(_read(a), _read(b), atol, rtol)
        if problems:
            diffs[name] = problems
    for name in ("manifest.json", "model_eval.json"):
        a, b = run_a / name, run_b / name
        if a.is_file() != b.is_file():
            diffs[name] = [f"only in {'A' if a.is_file() else 'B'}"]
        elif a.is_file():
            left = _strip(json.loads(a.read_text()))
            right = _strip(json.loads(b.read_text()))
            problems = _json_diff(left, right, name.removesuffix(".json"), atol, rtol)
            if problems:
                diffs[name] = problems
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance for floats")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for floats")
    args = parser.parse_args(argv)
    for run in (args.run_a, args.run_b):
        if not (run / "manifest.json").is_file():
            print(f"{run}: not a run directory (no manifest.json)", file=sys.stderr)
            return 2
    diffs = compare_runs(args.run_a, args.run_b, args.atol, args.rtol)
    compared = sorted(
        {p.name for p in args.run_a.iterdir() if p.suffix in (".parquet", ".csv", ".json")}
    )
    for name in compared:
        print(f"{'DIFFERS' if name in diffs else 'same':8} {name}")
        for problem in diffs.get(name, []):
            print(f"         - {problem}")
    for name in sorted(set(diffs) - set(compared)):
        print(f"DIFFERS  {name}")
        for problem in diffs[name]:
            print(f"         - {problem}")
    print(f"\n{len(diffs)} of {len(compared)} files differ" if diffs else "\nthe runs agree")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
