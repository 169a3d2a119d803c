"""PNG charts of the sweeps, for analysts comparing settings.

Analytics return tables (:func:`graphkit.analytics.sweeps.sweep_clusters`,
:func:`graphkit.analytics.flow_sweep.sweep_flows`); drawing them is rendering, kept here beside
the report so no algorithm module imports matplotlib. matplotlib is imported inside each function
with the non-interactive Agg backend, so importing this module costs nothing and needs no display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from graphkit.analytics.clusters import LAYERS

__all__ = ["plot_cluster_sweep", "plot_flow_sweep"]


def plot_cluster_sweep(frame: pl.DataFrame, path: Path | str) -> None:
    """Write the sweep as a PNG: clusters and largest cluster above, quality scores below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weight_columns = [f"w_{name}" for name in LAYERS]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for _, group in frame.group_by(weight_columns, maintain_order=True):
        label = ", ".join(f"{name}={group.get_column(f'w_{name}')[0]:g}" for name in LAYERS)
        x = group.get_column("resolution").to_numpy()
        top.plot(
            x, group.get_column("clusters").to_numpy(), marker="o", label=f"clusters ({label})"
        )
        top.plot(
            x,
            group.get_column("largest").to_numpy(),
            linestyle="--",
            marker=".",
            label=f"largest ({label})",
        )
        for column, style in (
            ("modularity", "-"),
            ("stability_ari", ":"),
            ("truth_ari", "-."),
            ("truth_nmi", "--"),
        ):
            values = group.get_column(column).cast(pl.Float64).to_numpy()
            if not np.isnan(values).all():
                bottom.plot(x, values, linestyle=style, marker=".", label=f"{column} ({label})")
    top.set_yscale("log")
    top.set_ylabel("count / members")
    top.legend(fontsize="x-small")
    top.set_title("graphkit sweep clusters")
    bottom.set_xlabel("resolution (gamma)")
    bottom.set_ylabel("score")
    bottom.set_ylim(-0.05, 1.05)
    bottom.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_flow_sweep(frame: pl.DataFrame, path: Path | str) -> None:
    """PNG: banned share (left) and banned share at >= 3 hops (right) against the hop bound,
    one line per (policy, window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for (policy, window), group in frame.group_by(["policy", "window_days"], maintain_order=True):
        group = group.sort("max_hops")
        x = group.get_column("max_hops").to_numpy()
        label = f"{policy}, W={window:g}d"
        axes[0].plot(x, group.get_column("banned_share").to_numpy(), marker="o", label=label)
        axes[1].plot(x, group.get_column("banned_share_3plus").to_numpy(), marker="o", label=label)
    axes[0].set_title("banned share of drawn amount")
    axes[1].set_title("banned share arriving at >= 3 hops (seed: 38%)")
    for ax in axes:
        ax.set_xlabel("max hops H")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of drawn amount")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
