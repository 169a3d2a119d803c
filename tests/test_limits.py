"""Limits: an input file larger than the memory the process may use is refused with a clear
message naming the file and the sizes (exit 2), never an out-of-memory kill.

"Memory" is made small without gigabytes of data: the CLI runs in a subprocess under
``RLIMIT_DATA`` of a few hundred MB against a generated CSV of ~80 MB. A negative control shows
the limit is real (the same read with the guard overridden aborts), and a positive control that
the guard does not refuse what fits (the same big file under a generous limit, the sample under
the small one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from loaders.sources import MEMORY_BUDGET_ENV, memory_budget, parse_size, validate_directory

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SMALL_LIMIT_MB = 400
LARGE_LIMIT_MB = 2500
BIG_ROWS = 1_500_000


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid input directory whose customers.csv is ~80 MB."""
    directory = tmp_path_factory.mktemp("big") / "in"
    directory.mkdir()
    n = BIG_ROWS
    pl.DataFrame(
        {
            "customer_id": pl.int_range(n, eager=True).cast(pl.String).str.zfill(10),
            "kind": ["person"] * n,
            "name": ["a customer name long enough to be realistic"] * n,
        }
    ).write_csv(directory / "customers.csv")
    return directory


def _cli_limited(
    args: list[str], limit_mb: int, budget: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess whose data segment (heap) is capped at ``limit_mb``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "POLARS_MAX_THREADS": "2", "COLUMNS": "200"}
    env.pop(MEMORY_BUDGET_ENV, None)
    if budget is not None:
        env[MEMORY_BUDGET_ENV] = budget
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_DATA, ({limit_mb << 20}, {limit_mb << 20}))\n"
        "import cli\n"
        "sys.argv[0] = 'graphkit'\n"
        "cli.main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_file_too_large_for_memory_is_refused_with_a_clear_message(
    big_input: Path, tmp_path: Path
) -> None:
    size = (big_input / "customers.csv").stat().st_size
    assert size > 60 << 20
    done = _cli_limited(["validate", str(big_input), "--format", "json"], SMALL_LIMIT_MB)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    message = " ".join(done.stdout.split())
    assert '"file": "customers.csv"' in message
    assert "too large to read in memory" in message
    assert f"{size / (1 << 20):.1f} MB on disk" in message
    assert re.search(r"needs about \d+\.\d MB but only \d+\.\d MB is available", message)

    out = tmp_path / "run"
    done = _cli_limited(["run", str(big_input), "--out", str(out), "-q"], SMALL_LIMIT_MB)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "too large to read in memory" in " ".join(done.stdout.split())
    assert not out.exists()


def test_the_limit_is_real_without_the_guard(big_input: Path) -> None:
    """Negative control: with the guard overridden the same read dies of memory exhaustion."""
    done = _cli_limited(["validate", str(big_input)], SMALL_LIMIT_MB, budget="100G")
    assert done.returncode not in (0, 2), done.stdout
    assert "memory allocation" in done.stderr or "MemoryError" in done.stderr


def test_what_fits_is_not_refused(big_input: Path) -> None:
    done = _cli_limited(["validate", str(SAMPLE)], SMALL_LIMIT_MB)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli_limited(["validate", str(big_input), "--format", "json"], LARGE_LIMIT_MB)
    assert done.returncode == 0, done.stdout + done.stderr


def test_budget_override_names_each_file_and_judges_parquet_by_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "customers.csv").write_text("customer_id,kind\nC1,person\n")
    n = 2_000_000
    pl.DataFrame({"account_id": ["A"] * n, "owner_id": ["C1"] * n}).write_parquet(
        directory / "accounts.parquet"
    )
    # A few kB on disk, but 2M x 2 string values once read: 64 MB, needing about 192 MB.
    assert (directory / "accounts.parquet").stat().st_size < 100_000
    in_memory = n * 2 * 16
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "150M")
    issues = validate_directory(directory)
    assert [(i.file, i.row, i.column) for i in issues] == [("accounts.parquet", None, None)]
    assert (
        f"2,000,000 rows x 2 columns (about {in_memory / (1 << 20):.1f} MB in memory) needs "
        f"about {3 * in_memory / (1 << 20):.1f} MB but only 150.0 MB is available"
    ) in issues[0].message

    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1G")
    duplicates = validate_directory(directory)
    assert duplicates[0].message.startswith("duplicate key account_id='A'"), duplicates[:2]

    monkeypatch.setenv(MEMORY_BUDGET_ENV, "lots")
    issues = validate_directory(directory)
    assert [i.file for i in issues] == [MEMORY_BUDGET_ENV]
    assert "'lots' is not a size" in issues[0].message


def test_parse_size_and_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("2g") == 2 << 30
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("100000") == 100_000
    for bad in ("", "-1G", "12 parsecs", "1e9"):
        with pytest.raises(ValueError):
            parse_size(bad)
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "3G")
    assert memory_budget() == 3 << 30
    monkeypatch.delenv(MEMORY_BUDGET_ENV)
    assert memory_budget() > 0
