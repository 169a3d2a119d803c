"""What drove an alert besides its rules: the features a customer stands out in and its default
label, added to its reasons so that no alert's only reason restates the score."""

from __future__ import annotations

import polars as pl

from graphkit.alerts.wording import num_text, pct_text
from graphkit.extras import FEATURE_PREFIX

# Features a high value of which says nothing against a customer (size, age, what was repaid);
# they are not named as drivers. Indicator features (two values or fewer) are not either, nor
# the bank's own columns (``extra_*``): whether high is bad is not known (a high bureau score or
# income is good).
NOT_DRIVERS: frozenset[str] = frozenset(
    {"registered_capital", "age_days", "limit_total", "repaid_total", "hours_to_outflow"}
)


def feature_drivers(
    features: pl.DataFrame,
    customers: pl.Series,
    top: int = 2,
    not_drivers: frozenset[str] = NOT_DRIVERS,
) -> pl.DataFrame:
    """The features in which each of ``customers`` stands out most, with their values.

    Definition: for feature f and customer c, the top share of c is the share of all customers
    whose f is at least c's; the drivers of c are its ``top`` features of smallest top share
    among those where c's value is positive (indicator features, :data:`NOT_DRIVERS` and the
    bank's own ``extra_*`` columns left out). Parameters: ``features`` (customer_id, one numeric
    column per feature, every customer); ``customers`` the ids to explain. Returns (customer_id,
    reason), the reason ``unusually high: dpd_max 92 (top 1% of customers), late_count 7 (top
    3%)``; customers with no positive feature are left out. O(features x n log n) for the ranks.
    """
    n = features.height
    names = [
        c
        for c in features.columns
        if c != "customer_id"
        and c not in not_drivers
        and not c.startswith(FEATURE_PREFIX)
        and features.schema[c].is_numeric()
        and features.get_column(c).n_unique() > 2
    ]
    if not names or n == 0:
        return pl.DataFrame(schema={"customer_id": pl.String, "reason": pl.String})
    shares = features.select(
        pl.col("customer_id").cast(pl.String),
        *[
            pl.struct(
                pl.col(c).cast(pl.Float64).alias("value"),
                (pl.col(c).rank("min", descending=True) / n).alias("top"),
            ).alias(c)
            for c in names
        ],
    ).filter(pl.col("customer_id").is_in(customers.cast(pl.String).implode()))
    long = (
        shares.unpivot(index="customer_id", variable_name="feature")
        .unnest("value")
        .filter(pl.col("value") > 0)
        .sort(["customer_id", "top", "feature"])
        .group_by("customer_id", maintain_order=True)
        .head(top)
    )
    pct = pl.when(pl.col("top") < 0.01).then(pl.lit("<1%")).otherwise(pct_text(pl.col("top")))
    text = pl.format("{} {} (top {})", pl.col("feature"), num_text(pl.col("value")), pct)
    return (
        long.with_columns(text.alias("driver"))
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("driver").str.join(", "))
        .select("customer_id", pl.format("unusually high: {}", pl.col("driver")).alias("reason"))
    )


def add_drivers(
    tiers: pl.DataFrame,
    defaulted: pl.DataFrame,
    features: pl.DataFrame | None,
) -> pl.DataFrame:
    """Append to every non-green customer's reasons what drove it besides the rules: a default
    label (``labelled as defaulted``) and its :func:`feature_drivers`, so that no alert's only
    reason restates the score. O(n log n)."""
    alerted = tiers.filter(pl.col("tier") != "green").get_column("customer_id")
    # The ``defaulted`` rule's reason already says so where it fired.
    named = tiers.filter(pl.col("rules").str.split(",").list.contains("defaulted"))
    parts = [
        defaulted.filter(
            pl.col("defaulted").fill_null(False)
            & pl.col("customer_id").is_in(alerted.implode())
            & ~pl.col("customer_id").is_in(named.get_column("customer_id").implode())
        ).select("customer_id", pl.lit("labelled as defaulted").alias("reason"))
    ]
    if features is not None:
        parts.append(feature_drivers(features, alerted))
    drivers = (
        pl.concat(parts)
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("reason").str.join("; ").alias("drivers"))
    )
    return (
        tiers.join(drivers, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("drivers").is_null())
            .then(pl.col("reasons"))
            .when(pl.col("reasons") == "")
            .then(pl.col("drivers"))
            .otherwise(pl.concat_str([pl.col("reasons"), pl.col("drivers")], separator="; "))
            .alias("reasons")
        )
        .drop("drivers")
    )


__all__ = ["NOT_DRIVERS", "add_drivers", "feature_drivers"]
