"""The Spark engine as one object: a session, the input tables on Spark, and each stage.

``graphkit run --engine spark`` opens a :class:`SparkEngine` on the input directory and asks it
for the stages that run on Spark; each returns the embedded engine's own result type, so the
rest of the run (and the run directory it publishes) is the same for both engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from graphkit.analytics.circles import CircleResult
from graphkit.analytics.clusters import ClusterResult
from graphkit.analytics.flows import PATH_SCHEMA
from graphkit.analytics.rings import RingResult
from graphkit.config import CirclesConfig, Config, FlowsConfig, RingsConfig
from graphkit.spark.circles import guarantee_circles_spark
from graphkit.spark.clusters import related_clusters_spark
from graphkit.spark.contagion import SparkContagion, contagion_spark
from graphkit.spark.flows import flow_frames
from graphkit.spark.rings import device_rings, to_polars
from graphkit.spark.round_trips import round_trips_spark
from graphkit.spark.session import describe, start_session
from graphkit.spark.tables import read_tables

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql import DataFrame, SparkSession

    from gnn.data import Standardiser
    from gnn.features import CustomerFeatures
    from graphkit.extras import ExtraColumn
    from graphkit.spark.training import TrainingSet

# Stages the Spark engine runs; the others run on the driver as in the embedded engine.
SPARK_STAGES = ("circles", "rings", "flows", "clusters", "contagion", "gnn")
# Drawdown buckets per core for the amount replay: several tasks per core balance uneven
# buckets without making each task's graph tiny.
BUCKETS_PER_CORE = 4


@dataclass
class SparkEngine:
    """A Spark session and the run's input tables as DataFrames."""

    session: SparkSession
    tables: dict[str, DataFrame]
    input_path: str

    @classmethod
    def open(
        cls, input_path: str, master: str, conf: Mapping[str, str] | None = None
    ) -> SparkEngine:
        """Start (or join) a session on ``master`` and point it at ``input_path``."""
        session = start_session(master, conf)
        return cls(session, read_tables(session, input_path), input_path)

    def describe(self) -> dict[str, object]:
        """The manifest's ``engine`` entry: master, Spark version, settings, stages on Spark."""
        return {**describe(self.session), "stages_on_spark": list(SPARK_STAGES)}

    def circles(self, config: CirclesConfig) -> CircleResult:
        return guarantee_circles_spark(self.tables, config)

    def rings(self, config: RingsConfig) -> RingResult:
        return device_rings(self.tables, config)

    def clusters(self, config: Config) -> ClusterResult:
        return related_clusters_spark(self.tables, config)

    def contagion(self, config: Config) -> SparkContagion:
        """DebtRank and personalised PageRank from the labelled defaults, by customer_id."""
        return contagion_spark(self.tables, config)

    def flows(self, config: FlowsConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(flows, flow paths) with the embedded frames' columns, by drawdown_id."""
        buckets = max(self.session.sparkContext.defaultParallelism * BUCKETS_PER_CORE, 1)
        flows, paths = flow_frames(self.tables, config, buckets)
        hop_columns = {f"banned_hop_{h}": pl.Float64 for h in range(config.max_hops + 1)}
        flow_schema = {
            "drawdown_id": pl.String,
            "amount": pl.Float64,
            "banned_amount": pl.Float64,
            "banned_amount_3plus": pl.Float64,
            "banned_share": pl.Float64,
            "min_hops_to_banned": pl.Int32,
            **hop_columns,
            "policy": pl.String,
            "capped": pl.Boolean,
            "line_id": pl.String,
            "customer_id": pl.String,
        }
        return (
            to_polars(flows, flow_schema).sort("drawdown_id"),
            to_polars(paths, PATH_SCHEMA).sort("drawdown_id", "path_rank"),
        )

    def features(
        self,
        customer_keys: pl.Series,
        snapshot: datetime,
        extras: list[ExtraColumn],
        **options: Any,
    ) -> tuple[CustomerFeatures, DataFrame]:
        """Every customer's features computed on Spark (:mod:`graphkit.spark.features`), as the
        embedded :class:`~gnn.features.CustomerFeatures` in ``customer_keys`` order, and the
        (cached) DataFrame they came from. ``options``: those of
        :func:`gnn.features.customer_features` (results of earlier stages, cap, cosmetics)."""
        from graphkit.spark.features import customer_extras, customer_features_spark

        extra_frame = customer_extras(self.session, self.input_path, extras)
        return customer_features_spark(
            self.tables, customer_keys, snapshot, extras=extra_frame, **options
        )

    def gnn_scores(
        self, features: DataFrame, model_file: Path, customer_keys: pl.Series
    ) -> pl.DataFrame:
        """``customer_id``, ``gnn_score`` of every customer (``customer_keys`` order), scored on
        the executors with the model saved in ``model_file`` (:mod:`graphkit.spark.scoring`)."""
        from gnn.score import load_model
        from graphkit.spark.scoring import customer_edges, score_frame, training_folds

        saved = load_model(model_file)
        edges = customer_edges(self.tables, saved["snapshot"], saved["max_device_users"])
        folds = None
        if saved["prior"] is not None:
            folds = self.session.createDataFrame(
                training_folds(saved["prior"], customer_keys).to_pandas(),
                "customer_id string, fold long",
            )
        scored = score_frame(features, saved["feature_names"], edges, saved, folds)
        got = to_polars(
            scored.select("customer_id", "gnn_score"),
            {"customer_id": pl.String, "gnn_score": pl.Float64},
        )
        return pl.DataFrame({"customer_id": customer_keys}).join(
            got, on="customer_id", how="left", maintain_order="left"
        )

    def training_set(
        self, features: DataFrame, names: list[str], snapshot: datetime, config: Config
    ) -> tuple[TrainingSet, Standardiser]:
        """The GNN's training set (:func:`graphkit.spark.training.training_set`: ``gnn.split``,
        sample of ``gnn.spark_train_customers``, their neighbourhoods over the customer graph at
        ``snapshot``) and the feature statistics over every customer, from the Spark feature
        frame ``features``."""
        from gnn.fit import train_settings
        from graphkit.spark.scoring import customer_edges
        from graphkit.spark.training import standardiser_spark, training_set

        hops = train_settings(config, 0).layers
        edges = customer_edges(self.tables, snapshot, config.rings.max_customers_per_device)
        edges = edges.localCheckpoint()
        found = training_set(
            self.tables,
            edges,
            features,
            names,
            config.gnn.spark_train_customers,
            config.gnn.seed,
            hops,
            rule=config.gnn.split,
        )
        return found, standardiser_spark(features, names)

    def round_trips(self, config: FlowsConfig) -> tuple[pl.DataFrame, bool]:
        """(transfer cycles, capped) as the embedded ``round_trips`` returns them."""
        return round_trips_spark(self.tables, config)

    def close(self) -> None:
        self.session.stop()
