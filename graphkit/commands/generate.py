"""``graphkit generate``: a synthetic risk network with planted ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphkit.commands.render import EXIT_INVALID_INPUT, console, fail, key_values, progress_bars
from graphkit.progress import task
from loaders.sources import write_control
from loaders.synthetic import FORMATS, generate


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)


def generate_command(
    out: Annotated[Path, typer.Argument(help="Input directory to (re)create, with _truth/.")],
    customers: Annotated[int, typer.Option("--customers", "-n", min=1, help="Customers.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    format: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, help="Customers generated per chunk (bounds memory).")
    ] = 250_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
) -> None:
    """Generate a revolving-credit network with planted circles, groups, rings, fund chains,
    bursts and defaults; OUT appears whole or not at all, then gets its control totals
    (_control.csv)."""
    if format not in FORMATS:
        fail(f"unknown format {format!r} ({' or '.join(FORMATS)})", EXIT_INVALID_INPUT)
    with progress_bars(quiet) as progress:
        summary = generate(out, customers, seed, format, progress, chunk_customers=chunk)
        with task(progress, "write control totals"):
            control = write_control(out)
    if quiet:
        return
    counts = summary["counts"]
    planted = counts["planted"]
    hops = ", ".join(f"{h}: {n}" for h, n in planted["chains_by_hops"].items())
    causes = ", ".join(f"{c} {n}" for c, n in planted["defaults_by_cause"].items())
    rows: list[tuple[str, object]] = [
        ("input directory", str(out)),
        ("nodes", counts["nodes"]["total"]),
        ("edges", counts["edges"]["total"]),
        *((f"rows: {name}", n) for name, n in counts["tables"].items()),
        ("planted circles", planted["circles"]),
        ("planted groups", planted["groups"]),
        ("planted rings", planted["rings"]),
        ("hub devices", planted["hub_devices"]),
        ("fund chains (hops: count)", f"{planted['chains']} ({hops})"),
        ("noise paths", planted["noise_paths"]),
        ("burst days", planted["burst_days"]),
        ("credit cosmetics", f"{planted['cosmetics']} ({planted['cosmetic_defaults']} default)"),
        ("defaults", f"{planted['defaults']} ({planted['default_rate']:.1%}): {causes}"),
        ("truth", str(Path(out) / "_truth")),
        ("control totals", str(control)),
    ]
    console.print(key_values(rows, title="graphkit generate"))
