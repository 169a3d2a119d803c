"""Customer features on Spark: :mod:`gnn.features` as aggregations over the input DataFrames.

Same definitions, same snapshot, same columns and order as :func:`gnn.features.customer_features`
(read its docstring for what each feature means); this module only says how each group becomes
Spark joins and aggregations, keyed by ``customer_id`` rather than by dense id:

- per-customer sums, counts, maxima and means: ``groupBy(customer_id)``;
- the as-of joins (a drawdown's first outflow from the receiving account, its first repayment on
  the same line): the drawdowns and the candidate events of one account (line) are unioned and
  ordered by time *descending*, and a running ``min`` over that window is the earliest event at
  or after each drawdown (drawdowns sort after events of the same instant, so a tie matches, as
  polars' forward ``join_asof`` does). One sort per account instead of a range join;
- the gaps between a customer's consecutive drawdowns: ``lag`` over the customer's drawdowns;
- ``device_peers``: the device-use pairs self-joined on the device, distinct peers counted.

Time arithmetic is done on epoch microseconds with integer division, so "whole hours", "whole
seconds" and "whole days" truncate exactly as polars' ``total_hours`` / ``total_seconds`` /
``total_days`` do; a division by a constant is a multiplication by its reciprocal, as polars'
column-by-scalar kernel computes it (``x / 24.0`` is ``x * (1 / 24.0)`` there, which can differ
from a true division in the last bit). Counts are exact; float sums, means, standard
deviations and medians may differ from polars in the last bits (Spark adds in partition order;
its median interpolates as ``a + (b - a) / 2``), so tests compare them to 1e-9 relative.

The network facts (``banned_share``, ``in_circle``/``circle_size``, ...) come from the earlier
stages' results, which the Spark engine has already brought to the driver (they are the run's
output tables); they are handed back to Spark as small DataFrames and joined like any other part.

Complexity: a few shuffles over the drawdowns, transfers, repayments and device-use pairs; the
device self-join is O(sum over devices of users^2), as embedded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from gnn.cosmetics import (
    COSMETIC_NAMES,
    MAX_AMOUNT_CV,
    MAX_GAP_CV,
    MAX_SHARE,
    MIN_DRAWDOWNS,
    MIN_QUICK_SHARE,
    REPAY_HOURS,
)
from gnn.features import (
    _NO_EVENTS,
    BURST_NAMES,
    CREDIT_NAMES,
    DEGREE_NAMES,
    DPD_NAMES,
    SPEED_NAMES,
    CustomerFeatures,
)
from graphkit.extras import ExtraColumn
from graphkit.schema import Kind

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
HOUR_US = 3_600_000_000
SECOND_US = 1_000_000


def micros(moment: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly (no float on the way)."""
    return (moment - _EPOCH) // _US


def _whole(delta: Column, unit: int) -> Column:
    """``floor(delta / unit)`` as an exact Double for a Long ``delta`` (no float rounding on
    the way: the remainder is taken off first, so the division is of an exact multiple)."""
    from pyspark.sql import functions as F

    return (delta - F.pmod(delta, F.lit(unit))) / F.lit(unit)


def _us(column: str) -> Column:
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(column))


def latest_event_time(tables: Mapping[str, DataFrame]) -> datetime | None:
    """:func:`gnn.features.latest_event_time` on the input DataFrames (one aggregation each)."""
    from pyspark.sql import functions as F

    latest = [
        tables["drawdowns"].agg(F.max(_us("ts"))).first()[0],
        tables["transfers"].agg(F.max(_us("ts"))).first()[0],
        tables["repayments"].agg(F.max(_us("paid_at"))).first()[0],
        tables["device_links"].agg(F.max(_us("first_seen"))).first()[0],
    ]
    times = [t for t in latest if t is not None]
    return _EPOCH + max(times) * _US if times else None


def customer_extras(
    spark: SparkSession, input_path: str, extras: list[ExtraColumn]
) -> DataFrame | None:
    """``customer_id`` and one Double column per extra ``extras`` names (as ``feature_name``),
    read by Spark from the customers table under ``input_path`` (the schema tables of
    :func:`graphkit.spark.tables.read_tables` carry no extra column). None without extras.

    Which extras are features is decided on the driver by :func:`graphkit.extras.extra_features`
    (the rule ``graphkit validate`` reports); Spark reads their values.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.utils import AnalysisException

    from graphkit.spark.tables import _typed

    if not extras:
        return None
    base = input_path.rstrip("/")
    raw = None
    for fmt in ("parquet", "csv"):
        try:
            if fmt == "csv":
                raw = spark.read.option("header", True).csv(f"{base}/customers.csv")
            else:
                raw = spark.read.parquet(f"{base}/customers.parquet")
        except AnalysisException:
            continue
        break
    if raw is None:
        return None
    columns = [F.col("customer_id").cast("string").alias("customer_id")]
    for extra in extras:
        value = F.col(f"`{extra.column}`")
        if extra.kind == "boolean":
            value = _typed(value, Kind.BOOL)
        columns.append(value.cast("double").alias(extra.feature_name))
    return raw.select(*columns)


def _drawdowns(tables: Mapping[str, DataFrame], snap_us: int) -> DataFrame:
    """Drawdowns made by the snapshot with their customer (via the credit line)."""
    from pyspark.sql import functions as F

    lines = tables["credit_lines"].select("line_id", "customer_id")
    return (
        tables["drawdowns"]
        .where(_us("ts") <= snap_us)
        .join(lines, "line_id")
        .select(
            "customer_id",
            "line_id",
            F.col("account_id").alias("account"),
            "amount",
            "ts",
            _us("ts").alias("ts_us"),
            "device_id",
        )
    )


def _credit(tables: Mapping[str, DataFrame], draws: DataFrame, snap_us: int) -> list[DataFrame]:
    from pyspark.sql import functions as F

    lines = tables["credit_lines"]
    limits = lines.groupBy("customer_id").agg(F.sum("limit").alias("limit_total"))
    drawn = draws.groupBy("customer_id").agg(F.sum("amount").alias("drawn_total"))
    repaid = (
        tables["repayments"]
        .where(_us("paid_at") <= snap_us)
        .join(lines.select("line_id", "customer_id"), "line_id")
        .groupBy("customer_id")
        .agg(F.sum("amount").alias("repaid_total"))
    )
    return [limits, drawn, repaid]


def _bursts(draws: DataFrame, snapshot: datetime) -> DataFrame:
    from pyspark.sql import functions as F

    snap_us = micros(snapshot)

    def within(days: int) -> Column:
        start = snap_us - days * 24 * HOUR_US
        return F.sum((F.col("ts_us") > start).cast("long")).alias(f"drawdowns_{days}d")

    counts = draws.groupBy("customer_id").agg(within(1), within(7), within(30))
    day30 = (snapshot - timedelta(days=30)).date()
    per_day = (
        draws.groupBy("customer_id", F.to_date("ts").alias("day"))
        .agg(F.count("*").alias("n"))
        .groupBy("customer_id")
        .agg(
            F.max("n").alias("busiest_day_drawdowns"),
            F.max(F.when(F.col("day") > F.lit(day30), F.col("n"))).alias("busiest_day_30d"),
        )
    )
    return counts.join(per_day, "customer_id", "left")


def _first_at_or_after(draws: DataFrame, events: DataFrame, key: str) -> DataFrame:
    """``draws`` with ``next_us``: the earliest ``events.event_us`` of the same ``key`` at or
    after the drawdown's ``ts_us`` (null if none): polars' forward ``join_asof`` by ``key``.

    Drawdowns and events of one key are unioned and sorted by time descending (drawdowns after
    events of the same instant, so a tie matches); a running minimum over that order is, at a
    drawdown, the earliest event at or after it.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = draws.select(
        F.col(key).alias("key"),
        "ts_us",
        F.lit(0).alias("tie"),
        F.lit(None).cast("long").alias("event_us"),
        F.lit(1).alias("is_draw"),
        *[F.col(c) for c in draws.columns if c not in ("ts_us",)],
    )
    event_rows = events.select(
        F.col(key).alias("key"),
        F.col("event_us").alias("ts_us"),
        F.lit(1).alias("tie"),
        "event_us",
        F.lit(0).alias("is_draw"),
        *[F.lit(None).cast(t).alias(c) for c, t in draws.dtypes if c != "ts_us"],
    )
    window = (
        Window.partitionBy("key")
        .orderBy(F.col("ts_us").desc(), F.col("tie").desc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        rows.unionByName(event_rows)
        .withColumn("next_us", F.min("event_us").over(window))
        .where(F.col("is_draw") == 1)
        .drop("key", "tie", "event_us", "is_draw")
    )


def _outflow_speed(
    tables: Mapping[str, DataFrame], draws: DataFrame, snap_us: int, cap_hours: float
) -> DataFrame:
    from pyspark.sql import functions as F

    outflows = (
        tables["transfers"]
        .where(_us("ts") <= snap_us)
        .select(F.col("src_account").alias("account"), _us("ts").alias("event_us"))
    )
    matched = _first_at_or_after(
        draws.select("customer_id", "account", "ts_us"), outflows, "account"
    )
    # total_seconds() truncates to whole seconds, then hours as a float
    seconds = _whole(F.col("next_us") - F.col("ts_us"), SECOND_US)
    hours = F.coalesce(seconds * (1.0 / 3600.0), F.lit(cap_hours))
    clipped = F.least(F.greatest(hours, F.lit(0.0)), F.lit(cap_hours))
    return (
        matched.withColumn("hours", clipped)
        .groupBy("customer_id")
        .agg(
            F.median("hours").alias("hours_to_outflow"),
            F.avg((F.col("hours") <= 24.0).cast("double")).alias("fast_outflow_share"),
        )
    )


def _delinquency(tables: Mapping[str, DataFrame], snapshot: datetime) -> DataFrame:
    from pyspark.sql import functions as F

    snap_us = micros(snapshot)
    snap_date = snapshot.date() if snapshot < _NO_EVENTS else None
    due = tables["repayments"]
    if snap_date is not None:
        due = due.where(F.col("due_date") <= F.lit(snap_date))
        days_open = F.datediff(F.lit(snap_date), F.col("due_date")).cast("long")
    else:
        days_open = F.col("days_past_due")
    paid_late = F.datediff(F.to_date("paid_at"), F.col("due_date")).cast("long")
    dpd = F.when(
        _us("paid_at") <= snap_us, F.coalesce(F.col("days_past_due"), paid_late)
    ).otherwise(F.least(F.col("days_past_due"), days_open))
    dpd = F.greatest(F.coalesce(dpd, F.lit(0)), F.lit(0)).cast("double")
    return (
        due.join(tables["credit_lines"].select("line_id", "customer_id"), "line_id")
        .withColumn("dpd", dpd)
        .groupBy("customer_id")
        .agg(
            F.max("dpd").alias("dpd_max"),
            F.avg("dpd").alias("dpd_mean"),
            F.sum((F.col("dpd") > 0).cast("long")).alias("late_count"),
        )
    )


def device_uses(tables: Mapping[str, DataFrame], snap_us: int) -> DataFrame:
    """Distinct (customer_id, device_id) pairs used by the snapshot (linked with ``first_seen``
    null or by then, or drawn from by then): :meth:`RiskGraph.device_uses` on Spark."""
    from pyspark.sql import functions as F

    links = (
        tables["device_links"]
        .where(F.col("first_seen").isNull() | (_us("first_seen") <= snap_us))
        .select("customer_id", "device_id")
    )
    draws = (
        tables["drawdowns"]
        .where(F.col("device_id").isNotNull() & (_us("ts") <= snap_us))
        .join(tables["credit_lines"].select("line_id", "customer_id"), "line_id")
        .select("customer_id", "device_id")
    )
    customers = tables["customers"].select("customer_id")
    return links.unionByName(draws).join(customers, "customer_id", "left_semi").distinct()


def _account_owners(tables: Mapping[str, DataFrame]) -> DataFrame:
    """(account_id, customer_id) for the accounts a customer owns."""
    from pyspark.sql import functions as F

    customers = tables["customers"].select(F.col("customer_id").alias("owner_id"))
    return (
        tables["accounts"]
        .join(customers, "owner_id", "left_semi")
        .select("account_id", F.col("owner_id").alias("customer_id"))
    )


def _degrees(tables: Mapping[str, DataFrame], snapshot: datetime) -> list[DataFrame]:
    from pyspark.sql import functions as F

    snap_us = micros(snapshot)
    snap_date = snapshot.date() if snapshot < _NO_EVENTS else None
    guarantees = tables["guarantees"]
    if snap_date is not None:
        guarantees = guarantees.where(
            (F.col("start").isNull() | (F.col("start") <= F.lit(snap_date)))
            & (F.col("end").isNull() | (F.col("end") >= F.lit(snap_date)))
        )
    g_out = guarantees.groupBy(F.col("guarantor_id").alias("customer_id")).agg(
        F.count("*").alias("guarantees_out"), F.sum("amount").alias("guarantee_amount_out")
    )
    g_in = guarantees.groupBy(F.col("borrower_id").alias("customer_id")).agg(
        F.count("*").alias("guarantees_in"), F.sum("amount").alias("guarantee_amount_in")
    )
    shares = tables["shareholdings"]
    s_out = shares.groupBy(F.col("holder_id").alias("customer_id")).agg(
        F.count("*").alias("shares_out")
    )
    s_in = shares.groupBy(F.col("company_id").alias("customer_id")).agg(
        F.count("*").alias("shares_in")
    )
    uses = device_uses(tables, snap_us)
    devices = uses.groupBy("customer_id").agg(F.count("*").alias("devices"))
    peers = (
        uses.join(uses.withColumnRenamed("customer_id", "peer"), "device_id")
        .where(F.col("peer") != F.col("customer_id"))
        .groupBy("customer_id")
        .agg(F.countDistinct("peer").alias("device_peers"))
    )
    owners = _account_owners(tables)
    moves = tables["transfers"].where(_us("ts") <= snap_us)
    t_out = (
        moves.join(owners.withColumnRenamed("account_id", "src_account"), "src_account")
        .groupBy("customer_id")
        .agg(F.count("*").alias("transfers_out"), F.sum("amount").alias("transfer_amount_out"))
    )
    t_in = (
        moves.join(owners.withColumnRenamed("account_id", "dst_account"), "dst_account")
        .groupBy("customer_id")
        .agg(F.count("*").alias("transfers_in"), F.sum("amount").alias("transfer_amount_in"))
    )
    return [g_out, g_in, s_out, s_in, devices, peers, t_out, t_in]


def _cv(std: str, mean: str) -> Column:
    """``std / mean`` with polars' float semantics where Spark would raise or return null:
    0 / 0 is NaN, x / 0 is infinity (std is never negative)."""
    from pyspark.sql import functions as F

    return (
        F.when(F.col(std).isNull() | F.col(mean).isNull(), F.lit(None).cast("double"))
        .when(F.col(mean) != 0, F.col(std) / F.col(mean))
        .when(F.col(std) == 0, F.lit(float("nan")))
        .otherwise(F.lit(float("inf")))
    )


def _cosmetics(tables: Mapping[str, DataFrame], draws: DataFrame, snap_us: int) -> DataFrame:
    """:func:`gnn.cosmetics.cosmetic_features` with its defaults (the thresholds of
    gnn/cosmetics.py, read here as they are) on Spark."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    repaid = (
        tables["repayments"]
        .where(F.col("paid_at").isNotNull() & (_us("paid_at") <= snap_us))
        .join(tables["credit_lines"].select("line_id"), "line_id", "left_semi")
        .select("line_id", _us("paid_at").alias("event_us"))
    )
    matched = _first_at_or_after(
        draws.select("customer_id", "line_id", "amount", "ts_us"), repaid, "line_id"
    )
    wait_h = _whole(F.col("next_us") - F.col("ts_us"), SECOND_US) * (1.0 / 3600.0)
    gap_window = Window.partitionBy("customer_id").orderBy("ts_us")
    gap = _whole(F.col("ts_us") - F.lag("ts_us").over(gap_window), SECOND_US)
    per_customer = (
        matched.withColumn("quick", F.coalesce(wait_h <= REPAY_HOURS, F.lit(False)))
        .withColumn("gap", gap * (1.0 / 86_400.0))
        .groupBy("customer_id")
        .agg(
            F.count("*").alias("n"),
            F.stddev_samp("amount").alias("amount_std"),
            F.avg("amount").alias("amount_mean"),
            F.stddev_samp("gap").alias("gap_std"),
            F.avg("gap").alias("gap_mean"),
            F.avg(F.col("quick").cast("double")).alias("quick_repaid_share"),
            F.median("amount").alias("median_amount"),
        )
        .withColumn("amount_cv", _cv("amount_std", "amount_mean"))
        .withColumn("gap_cv", _cv("gap_std", "gap_mean"))
    )
    limits = tables["credit_lines"].groupBy("customer_id").agg(F.sum("limit").alias("limit_total"))
    enough = F.col("n") >= MIN_DRAWDOWNS

    def regularity(cv: str) -> Column:
        clipped = F.least(F.greatest(1.0 - F.col(cv), F.lit(0.0)), F.lit(1.0))
        # NaN survives polars' clip; Spark's greatest/least treat NaN as the largest value
        clipped = F.when(F.isnan(F.col(cv)), F.lit(float("nan"))).otherwise(clipped)
        return F.coalesce(F.when(enough, clipped).otherwise(0.0), F.lit(0.0))

    share = F.coalesce(
        F.when(F.col("limit_total") > 0, F.col("median_amount") / F.col("limit_total")).otherwise(
            1.0
        ),
        F.lit(1.0),
    )
    smallness = F.least(
        F.greatest((2.0 * MAX_SHARE - F.col("draw_share_of_limit")) / MAX_SHARE, F.lit(0.0)),
        F.lit(1.0),
    )
    pattern = (
        enough
        & (F.col("amount_cv") <= MAX_AMOUNT_CV)
        & (F.col("gap_cv") <= MAX_GAP_CV)
        & (F.col("quick_repaid_share") >= MIN_QUICK_SHARE)
        & (F.col("draw_share_of_limit") <= MAX_SHARE)
    )
    return (
        per_customer.join(limits, "customer_id", "left")
        .withColumn("draw_amount_regularity", regularity("amount_cv"))
        .withColumn("draw_interval_regularity", regularity("gap_cv"))
        .withColumn("draw_share_of_limit", share)
        .withColumn(
            "cosmetic_score",
            F.col("draw_amount_regularity")
            * F.col("draw_interval_regularity")
            * F.col("quick_repaid_share")
            * smallness,
        )
        .withColumn("cosmetic_pattern", F.coalesce(pattern, F.lit(False)).cast("double"))
        .select("customer_id", *COSMETIC_NAMES)
    )


def _membership(
    spark: SparkSession,
    flows: pl.DataFrame | None,
    groups: Mapping[str, pl.DataFrame | None],
) -> tuple[list[DataFrame], list[str]]:
    """The network facts of the earlier stages' results, as DataFrames keyed by customer_id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def to_spark(frame: pl.DataFrame) -> DataFrame:
        # through Arrow, not pandas: a null stays null and a NaN stays NaN, as in polars
        import pyarrow as pa

        schema = pa.schema(
            [
                (c, pa.float64() if t.is_float() else pa.string() if t == pl.String else pa.int64())
                for c, t in frame.schema.items()
            ]
        )
        return spark.createDataFrame(frame.to_arrow().cast(schema))

    parts: list[DataFrame] = []
    names: list[str] = []
    if flows is not None:
        parts.append(to_spark(flows.select("customer_id", "banned_share")))
        names.append("banned_share")
    for prefix, frame in groups.items():
        if frame is None:
            continue
        group = f"{prefix}_id"
        pairs = to_spark(frame.select("customer_id", pl.col(group).cast(pl.String))).distinct()
        sizes = (
            pairs.withColumn("size", F.count("*").over(Window.partitionBy(group)))
            .groupBy("customer_id")
            .agg(F.max("size").alias(f"{prefix}_size"))
            .withColumn(f"in_{prefix}", F.lit(1.0))
            .select("customer_id", f"in_{prefix}", f"{prefix}_size")
        )
        parts.append(sizes)
        names += [f"in_{prefix}", f"{prefix}_size"]
    return parts, names


def feature_frame(
    tables: Mapping[str, DataFrame],
    snapshot: datetime,
    *,
    extras: DataFrame | None = None,
    customer_flows: pl.DataFrame | None = None,
    circle_membership: pl.DataFrame | None = None,
    cluster_membership: pl.DataFrame | None = None,
    ring_membership: pl.DataFrame | None = None,
    outflow_cap_hours: float = 30 * 24.0,
    cosmetics: bool = True,
) -> tuple[DataFrame, list[str], dict[str, str]]:
    """Every customer's features as of ``snapshot``, as a DataFrame that stays on Spark.

    Parameters are those of :func:`gnn.features.customer_features`, plus ``tables`` (the input
    DataFrames, :func:`graphkit.spark.tables.read_tables`) and ``extras`` (customer_id and the
    extra feature columns, :func:`customer_extras`; their names come first, in its column order).

    Returns ``(frame, names, dropped)``: ``frame`` has ``customer_id`` then one non-null Double
    column per name; ``dropped`` says which feature groups were left out and why.
    """
    from pyspark.sql import functions as F

    snap_us = micros(snapshot)
    customers = tables["customers"]
    extra_names = [c for c in extras.columns if c != "customer_id"] if extras is not None else []
    age_hours = _whole(F.lit(snap_us) - _us("created_at"), HOUR_US)
    base = customers.select(
        "customer_id",
        F.col("registered_capital").cast("double").alias("registered_capital"),
        (F.col("kind") == "enterprise").cast("double").alias("is_enterprise"),
        F.when(_us("created_at") <= snap_us, age_hours * (1.0 / 24.0))
        .otherwise(0.0)
        .alias("age_days"),
    )
    draws = _drawdowns(tables, snap_us)
    parts: list[DataFrame] = [
        *([extras] if extras is not None else []),
        *_credit(tables, draws, snap_us),
        _bursts(draws, snapshot),
        _outflow_speed(tables, draws, snap_us, outflow_cap_hours),
        _delinquency(tables, snapshot),
        *_degrees(tables, snapshot),
    ]
    names = [
        *extra_names,
        "registered_capital",
        "is_enterprise",
        "age_days",
        *CREDIT_NAMES,
        *BURST_NAMES,
        *SPEED_NAMES,
        *DPD_NAMES,
        *DEGREE_NAMES,
    ]
    if cosmetics:
        parts.append(_cosmetics(tables, draws, snap_us))
        names += COSMETIC_NAMES
    dropped: dict[str, str] = {}
    groups = {"circle": circle_membership, "cluster": cluster_membership, "ring": ring_membership}
    latest = latest_event_time(tables)
    if latest is None or snapshot >= latest:
        member_parts, member_names = _membership(customers.sparkSession, customer_flows, groups)
        parts += member_parts
        names += member_names
    elif any(f is not None for f in (customer_flows, circle_membership, ring_membership)):
        dropped["network facts"] = (
            f"snapshot {snapshot.isoformat()} is before the latest event {latest.isoformat()}; "
            "circle, cluster, ring and flow results cover the whole input"
        )
    frame = base
    for part in parts:
        frame = frame.join(part, "customer_id", "left")
    frame = frame.select(
        "customer_id", *[F.coalesce(F.col(n).cast("double"), F.lit(0.0)).alias(n) for n in names]
    )
    utilisation = F.greatest(
        F.when(
            F.col("limit_total") > 0,
            (F.col("drawn_total") - F.col("repaid_total")) / F.col("limit_total"),
        ).otherwise(0.0),
        F.lit(0.0),
    )
    names.insert(names.index("repaid_total") + 1, "utilisation")
    frame = frame.withColumn("utilisation", utilisation).withColumn(
        "hours_to_outflow",
        F.when(F.col("drawn_total") > 0, F.col("hours_to_outflow")).otherwise(outflow_cap_hours),
    )
    return frame.select("customer_id", *names), names, dropped


def customer_features_spark(
    tables: Mapping[str, DataFrame],
    customer_keys: pl.Series,
    snapshot: datetime,
    **options: object,
) -> tuple[CustomerFeatures, DataFrame]:
    """:func:`feature_frame` brought to the driver as the embedded engine's
    :class:`~gnn.features.CustomerFeatures` (rows in ``customer_keys`` order, the Customer id
    order), with the DataFrame it came from (cached, for scoring on Spark).

    The feature frame is a run output (``features.parquet``), so its rows are collected; the
    graph is not.
    """
    from graphkit.spark.rings import to_polars

    frame, names, dropped = feature_frame(tables, snapshot, **options)  # type: ignore[arg-type]
    frame = frame.cache()
    schema = {"customer_id": pl.String, **dict.fromkeys(names, pl.Float64)}
    collected = to_polars(frame, schema)
    ordered = (
        pl.DataFrame({"customer_id": customer_keys})
        .join(collected, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.col(n).fill_null(0.0) for n in names)
    )
    return CustomerFeatures(frame=ordered, names=names, snapshot=snapshot, dropped=dropped), frame
