"""How numbers read in alert reasons: polars expressions, so reasons are built without row
loops (one place, so every rule and driver words an amount, a share and a score alike)."""

from __future__ import annotations

import polars as pl


def num_text(expr: pl.Expr) -> pl.Expr:
    """An amount as text: whole numbers without decimals, others with two."""
    return (
        pl.when(expr == expr.round(0))
        .then(expr.round(0).cast(pl.Int64).cast(pl.String))
        .otherwise(expr.round(2).cast(pl.String))
    )


def pct_text(expr: pl.Expr) -> pl.Expr:
    return (expr * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")


def score_text(expr: pl.Expr) -> pl.Expr:
    """A score with two decimals ("0.70", not "0.7")."""
    cents = (expr * 100).round(0).cast(pl.Int64)
    return (cents // 100).cast(pl.String) + pl.lit(".") + (cents % 100).cast(pl.String).str.zfill(2)


__all__ = ["num_text", "pct_text", "score_text"]
