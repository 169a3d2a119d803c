"""The input tables as Spark DataFrames, typed by :data:`graphkit.schema.TABLES`.

:func:`read_tables` reads an input directory (or any path Spark can read: HDFS, S3, ...) with
Spark itself, so the executors read the files and nothing passes through the driver. Types follow
the schema's kinds with the input contract's rules: identifiers are text verbatim, booleans
accept true/false/1/0/yes/no, times without a zone are UTC (the session time zone is UTC, see
:mod:`graphkit.spark.session`). A missing table is an empty one.

Validation (the row/column error report of :mod:`loaders.sources`) is not repeated here:
``graphkit run --engine spark`` validates the input before Spark starts.

:func:`from_polars` hands tables already in memory (tests, benchmarks) to Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from graphkit.schema import TABLES, Kind

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

FORMATS = ("parquet", "csv")


def _spark_type(kind: Kind) -> DataType:
    from pyspark.sql import types as T

    return {
        Kind.ID: T.StringType(),
        Kind.TEXT: T.StringType(),
        Kind.FLOAT: T.DoubleType(),
        Kind.INT: T.LongType(),
        Kind.BOOL: T.BooleanType(),
        Kind.DATE: T.DateType(),
        Kind.DATETIME: T.TimestampType(),
    }[kind]


def table_schema(name: str) -> StructType:
    """The Spark schema of input table ``name`` (schema columns only, all nullable)."""
    from pyspark.sql import types as T

    return T.StructType(
        [T.StructField(c.name, _spark_type(c.kind), True) for c in TABLES[name].columns]
    )


def _typed(value: Column, kind: Kind) -> Column:
    from pyspark.sql import functions as F

    if kind == Kind.BOOL:
        word = F.lower(F.trim(value.cast("string")))
        return (
            F.when(word.isin("true", "1", "yes"), F.lit(True))
            .when(word.isin("false", "0", "no"), F.lit(False))
            .otherwise(F.lit(None).cast("boolean"))
        )
    if kind in (Kind.ID, Kind.TEXT):
        return value.cast("string")
    return value.cast(_spark_type(kind))


def conform(frame: DataFrame, name: str) -> DataFrame:
    """``frame`` with table ``name``'s columns in schema order and types (missing ones null)."""
    from pyspark.sql import functions as F

    columns = []
    for col in TABLES[name].columns:
        if col.name in frame.columns:
            columns.append(_typed(F.col(f"`{col.name}`"), col.kind).alias(col.name))
        else:
            columns.append(F.lit(None).cast(_spark_type(col.kind)).alias(col.name))
    return frame.select(*columns)


def read_tables(spark: SparkSession, directory: str) -> dict[str, DataFrame]:
    """Every schema table under ``directory`` (``NAME.parquet`` or ``NAME.csv``) as a typed
    DataFrame; a table with no file is empty. Paths are Spark paths (``hdfs://``, ``s3a://``,
    or local ones, which every executor must see)."""
    from pyspark.sql.utils import AnalysisException

    tables: dict[str, DataFrame] = {}
    base = directory.rstrip("/")
    for name in TABLES:
        frame = None
        for fmt in FORMATS:
            path = f"{base}/{name}.{fmt}"
            try:
                if fmt == "csv":
                    frame = spark.read.option("header", True).option("mode", "FAILFAST").csv(path)
                else:
                    frame = spark.read.parquet(path)
            except AnalysisException:
                continue
            break
        tables[name] = (
            conform(frame, name)
            if frame is not None
            else spark.createDataFrame([], table_schema(name))
        )
    return tables


def from_polars(spark: SparkSession, tables: dict[str, pl.DataFrame]) -> dict[str, DataFrame]:
    """Typed polars tables (as :func:`loaders.frames.make_tables` builds them) as DataFrames."""
    frames: dict[str, DataFrame] = {}
    for name in TABLES:
        frame = tables.get(name)
        if frame is None or frame.height == 0:
            frames[name] = spark.createDataFrame([], table_schema(name))
            continue
        schema_cols = list(TABLES[name].polars_schema)
        pandas = frame.select(schema_cols).to_pandas()
        frames[name] = conform(spark.createDataFrame(pandas, table_schema(name)), name)
    return frames


def customer_accounts(tables: dict[str, DataFrame]) -> DataFrame:
    """``(account_id, owner_id)`` of the accounts whose owner is a customer (not a merchant's
    or an unknown owner's), as the embedded graph's account-owner edges are."""
    from pyspark.sql import functions as F

    return (
        tables["accounts"]
        .join(tables["customers"].select(F.col("customer_id").alias("owner_id")), "owner_id")
        .select("account_id", "owner_id")
    )
