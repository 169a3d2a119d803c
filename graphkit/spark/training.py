"""The GNN's training set on Spark: a time split, a capped sample, and its neighbourhoods.

The model is trained on one node (the driver) by :func:`gnn.fit.fit_subgraph`; this module
decides on Spark what that node gets, without collecting the customer graph:

1. **Split** (:func:`label_parts`, by ``gnn.split``). Every labelled customer gets a part:
   ``train``, ``validation`` or ``test``.

   ``"default_date"``: the rule of :func:`gnn.train.time_split`, which the embedded engine
   applies with the same setting; the parts are equal. Defaulted customers
   with a ``default_date`` are ordered by that date (ties by a seeded hash of the id) and cut
   at the :data:`gnn.train.SPLIT_FRACTIONS` shares (``round(0.6 n)`` earliest train, the next
   ``round(0.2 n)`` validation, the latest test): no validation customer defaulted before a
   training one, no test customer before a validation one. A non-defaulted customer has no
   date to order by, so it (and a defaulted one without a date) goes to a part by a seeded
   hash of its id, uniform on [0, 1) and cut at the same shares: every part has both classes,
   in about the same mix.

   ``"random"`` (the default): stratified at random, as :func:`gnn.train.stratified_split`:
   per class, the customers in the order of a seeded hash of their id (a uniform random
   permutation) and cut at ``round(0.6 n_class)`` train and ``round(0.2 n_class)`` validation,
   the rest test. The same shares per class as the embedded split, not the same draw: the
   embedded engine permutes with numpy's generator over its dense ids, which Spark cannot replay
   without collecting the labels.
2. **Sample** (:func:`sample_customers`). At most ``gnn.spark_train_customers`` (``cap``)
   labelled customers, all of them when there are no more. Otherwise defaulted customers are
   kept up to half the cap (all of them when fewer) and non-defaulted ones fill the rest; within
   a class the customers with the smallest seeded hash are taken (a uniform sample, the same for
   any partitioning). The sampling rates ``q`` per class are returned: the model's score
   correction adds ``log(q_pos / q_neg)`` so a score reads at the labelled population's
   default rate, not the sample's.
3. **Neighbourhoods** (:func:`neighbourhood`). From the sampled customers, ``K`` hop-layered
   joins of the frontier with the customer edges (``dst`` in the frontier gives ``src``, since
   ``dst`` hears from ``src``), each new layer anti-joined with the nodes already reached: the
   nodes within ``K`` hops and their distance. The edges kept are those into a node less than
   ``K`` hops away: the sampled customers' exact ``K``-layer receptive field.
4. **Collect** (:func:`training_set`). Only those nodes' feature rows and those edges come to
   the driver, as a :class:`gnn.data.Subgraph` in local ids, with the split of the sampled
   customers.

Cost: the time split is one global sort of the dated defaults (one partition; defaults are a few
per cent of the customers) and one pass over the labels; the random split one distributed sort of
the labels; the sample two top-k selections; each hop
one shuffle of the E edge rows joined to the frontier and one anti-join; the collect is the
subgraph's size, bounded by the cap times the two-hop fan-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from gnn.data import RELATIONS, Standardiser, Subgraph
from gnn.train import SPLIT_FRACTIONS, Split

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

PARTS = ("train", "validation", "test")
_HASH_DIGITS = 13  # as gnn.train.id_hash: 52 bits of sha256, exact in a double


def _uniform(salt: str, seed: int) -> Column:
    """:func:`gnn.train.id_hash` on Spark: the first 52 bits of
    ``sha256(f"{salt}:{seed}:{customer_id}")`` as a number on [0, 1), equal to the driver's."""
    from pyspark.sql import functions as F

    digest = F.sha2(F.concat(F.lit(f"{salt}:{seed}:"), F.col("customer_id")), 256)
    head = F.conv(F.substring(digest, 1, _HASH_DIGITS), 16, 10).cast("long")
    return head.cast("double") / F.lit(float(16**_HASH_DIGITS))


def label_parts(
    tables: Mapping[str, DataFrame],
    seed: int,
    fractions: tuple[float, float] = SPLIT_FRACTIONS,
    rule: str = "default_date",
) -> DataFrame:
    """``(customer_id, label, default_date, part)`` for every labelled customer (module
    docstring, step 1): ``label`` 1 defaulted / 0 not, ``part`` one of :data:`PARTS`; ``rule``
    is ``gnn.split`` (``"default_date"`` or ``"random"``, validated with the config)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    customers = tables["customers"].select("customer_id").distinct()
    labels = (
        tables["labels"]
        .where(F.col("defaulted").isNotNull())
        .join(customers, "customer_id", "left_semi")
        .dropDuplicates(["customer_id"])
        .select(
            "customer_id",
            F.col("defaulted").cast("int").alias("label"),
            "default_date",
            _uniform("split", seed).alias("u"),
        )
    )
    if rule == "random":
        return _random_parts(labels, fractions)
    dated = (F.col("label") == 1) & F.col("default_date").isNotNull()
    n_dated = labels.where(dated).count()
    n_train = round(n_dated * fractions[0])
    n_val = round(n_dated * fractions[1])
    order = Window.orderBy("default_date", "u", "customer_id")
    ranked = (
        labels.where(dated)
        .withColumn("rank", F.row_number().over(order))
        .withColumn(
            "part",
            F.when(F.col("rank") <= n_train, "train")
            .when(F.col("rank") <= n_train + n_val, "validation")
            .otherwise("test"),
        )
        .drop("rank")
    )
    hashed = labels.where(~dated).withColumn(
        "part",
        F.when(F.col("u") < fractions[0], "train")
        .when(F.col("u") < fractions[0] + fractions[1], "validation")
        .otherwise("test"),
    )
    return ranked.unionByName(hashed).drop("u")


def _random_parts(labels: DataFrame, fractions: tuple[float, float]) -> DataFrame:
    """``gnn.split = "random"`` (module docstring, step 1): per class, the customers ranked by
    their hash ``u`` (ties by id) in one distributed sort, the first ``round(f0 n)`` train,
    the next ``round(f1 n)`` validation, the rest test."""
    from pyspark.sql import functions as F

    from graphkit.spark.components import ordered_ids

    counts = dict(labels.groupBy("label").count().collect())
    cuts = {
        int(label): (round(n * fractions[0]), round(n * fractions[1]))
        for label, n in counts.items()
    }
    placed = ordered_ids(
        labels, [F.col("label"), F.col("u"), F.col("customer_id")], "position", offset=0
    )
    start = placed.groupBy("label").agg(F.min("position").alias("start"))
    rank = F.col("position") - F.col("start")
    n_train, n_val = F.lit(0), F.lit(0)
    for label, (train, val) in cuts.items():
        n_train = F.when(F.col("label") == label, F.lit(train)).otherwise(n_train)
        n_val = F.when(F.col("label") == label, F.lit(val)).otherwise(n_val)
    return placed.join(start, "label").select(
        "customer_id",
        "label",
        "default_date",
        F.when(rank < n_train, "train")
        .when(rank < n_train + n_val, "validation")
        .otherwise("test")
        .alias("part"),
    )


def sample_customers(parts: DataFrame, cap: int, seed: int) -> tuple[DataFrame, dict[str, Any]]:
    """At most ``cap`` rows of ``parts`` (module docstring, step 2), and the sample's facts:
    ``labelled``, ``defaulted`` (in the population), ``sampled``, ``sampled_defaulted``,
    ``q_defaulted``, ``q_not_defaulted`` (the sampling rates) and ``cap``."""
    from pyspark.sql import functions as F

    counts = dict(parts.groupBy("label").count().collect())
    positives, negatives = int(counts.get(1, 0)), int(counts.get(0, 0))
    if positives + negatives <= cap:
        sample, keep_pos, keep_neg = parts, positives, negatives
    else:
        keep_pos = min(positives, cap // 2)
        keep_neg = min(negatives, cap - keep_pos)
        keep_pos = min(positives, cap - keep_neg)
        ranked = parts.withColumn("v", _uniform("sample", seed))

        def take(label: int, k: int) -> DataFrame:
            return ranked.where(F.col("label") == label).orderBy("v", "customer_id").limit(k)

        sample = take(1, keep_pos).unionByName(take(0, keep_neg)).drop("v")
    facts = {
        "cap": cap,
        "labelled": positives + negatives,
        "defaulted": positives,
        "sampled": keep_pos + keep_neg,
        "sampled_defaulted": keep_pos,
        "q_defaulted": keep_pos / positives if positives else 1.0,
        "q_not_defaulted": keep_neg / negatives if negatives else 1.0,
    }
    return sample, facts


def neighbourhood(edges: DataFrame, seeds: DataFrame, hops: int) -> tuple[DataFrame, DataFrame]:
    """The ``hops``-hop in-neighbourhood of ``seeds`` (a ``customer_id`` column) over
    ``edges`` ``(src, dst, rel)`` (module docstring, step 3): ``(customer_id, hop)`` of every
    node reached (``hop`` its distance, 0 for a seed) and the edges into nodes with
    ``hop < hops``."""
    from pyspark.sql import functions as F

    nodes = seeds.select("customer_id").distinct().withColumn("hop", F.lit(0)).localCheckpoint()
    frontier = nodes.select("customer_id")
    for hop in range(1, hops + 1):
        reached = (
            edges.join(frontier.withColumnRenamed("customer_id", "dst"), "dst", "left_semi")
            .select(F.col("src").alias("customer_id"))
            .distinct()
            .join(nodes, "customer_id", "left_anti")
        )
        frontier = reached.localCheckpoint()
        nodes = nodes.unionByName(frontier.withColumn("hop", F.lit(hop))).localCheckpoint()
    inner = nodes.where(F.col("hop") < hops).select(F.col("customer_id").alias("dst"))
    return nodes, edges.join(inner, "dst", "left_semi")


def standardiser_spark(frame: DataFrame, names: list[str]) -> Standardiser:
    """:meth:`gnn.data.Standardiser.fit` over every row of the feature ``frame``, as one
    aggregation: mean and population standard deviation of ``sign(x) log(1 + |x|)``."""
    from pyspark.sql import functions as F

    def logged(name: str) -> Column:
        x = F.col(name).cast("double")
        return F.signum(x) * F.log1p(F.abs(x))

    aggregates = [F.avg(logged(n)).alias(f"m{i}") for i, n in enumerate(names)]
    aggregates += [F.stddev_pop(logged(n)).alias(f"s{i}") for i, n in enumerate(names)]
    row = frame.agg(*aggregates).collect()[0]
    mean = np.array([row[f"m{i}"] for i in range(len(names))], dtype=np.float64)
    std = np.array([row[f"s{i}"] for i in range(len(names))], dtype=np.float64)
    return Standardiser(mean=mean, std=np.where(std > 0, std, 1.0))


@dataclass
class TrainingSet:
    """What the driver trains on: the sampled :class:`gnn.data.Subgraph`, the split of its
    sampled customers (local ids), the held-out labelled customers beyond the sample
    (``heldout``: ``customer_id``, ``part`` of every labelled validation and test customer, for
    the stacking and calibration of ``risk_score``), and the facts for the manifest."""

    subgraph: Subgraph
    split: Split
    heldout: pl.DataFrame
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def log_weight_shift(self) -> float:
        """``log(q_pos / q_neg)``: the score correction for the classes' sampling rates."""
        return float(np.log(self.facts["q_defaulted"] / self.facts["q_not_defaulted"]))

    def run_split(self, keys: pl.Series) -> Split:
        """The split ``scores`` stacks and calibrates on, in the run's dense customer ids
        (``keys``, Customer id order): the sampled training customers (the only labels the
        model saw), and every labelled validation and test customer of the split,
        sampled or not (their scores come from the executors, and no model saw their labels).
        """
        index = pl.DataFrame({"customer_id": keys}).with_row_index("id")

        def dense(ids: pl.Series) -> np.ndarray:
            found = pl.DataFrame({"customer_id": ids}).join(index, on="customer_id")
            return np.sort(found.get_column("id").to_numpy().astype(np.int64))

        def part(name: str) -> pl.Series:
            return self.heldout.filter(pl.col("part") == name).get_column("customer_id")

        return Split(
            train=dense(self.subgraph.customer_ids.gather(self.split.train)),
            val=dense(part("validation")),
            test=dense(part("test")),
        )


def _local_pairs(frame: pl.DataFrame, index: pl.DataFrame) -> dict[str, np.ndarray]:
    src = index.rename({"customer_id": "src", "id": "s"})
    dst = index.rename({"customer_id": "dst", "id": "d"})
    local = frame.join(src, on="src").join(dst, on="dst")
    out = {}
    for i, relation in enumerate(RELATIONS):
        part = local.filter(pl.col("rel") == i)
        pairs = np.stack([part["s"].to_numpy(), part["d"].to_numpy()]).astype(np.int64)
        out[relation] = np.unique(pairs, axis=1).reshape(2, -1)
    return out


def training_set(
    tables: Mapping[str, DataFrame],
    edges: DataFrame,
    features: DataFrame,
    names: list[str],
    cap: int,
    seed: int,
    hops: int,
    rule: str = "default_date",
) -> TrainingSet:
    """Split, sample, extract and collect (module docstring): the driver's training set.

    Parameters:
        tables: the input tables (``labels``, ``customers``).
        edges: the customer graph ``(src, dst, rel)``
            (:func:`graphkit.spark.scoring.customer_edges`).
        features: the Spark feature frame (``customer_id`` and ``names``).
        names: the model's feature names, in input order.
        cap: ``gnn.spark_train_customers``.
        seed: ``gnn.seed`` (the split's and the sample's hashes).
        hops: the model's layers.
        rule: ``gnn.split`` (:func:`label_parts`).
    """
    from pyspark.sql import functions as F

    from graphkit.spark.rings import to_polars

    parts = label_parts(tables, seed, rule=rule).localCheckpoint()
    sample, facts = sample_customers(parts, cap, seed)
    sample = sample.localCheckpoint()
    nodes, sub_edges = neighbourhood(edges, sample, hops)
    node_frame = to_polars(nodes, {"customer_id": pl.String, "hop": pl.Int32}).sort("customer_id")
    index = node_frame.select("customer_id").with_row_index("id", offset=0)
    index = index.with_columns(pl.col("id").cast(pl.Int64))
    rows = to_polars(
        features.join(nodes.select("customer_id"), "customer_id", "left_semi"),
        {"customer_id": pl.String, **dict.fromkeys(names, pl.Float64)},
    )
    raw = (
        node_frame.select("customer_id")
        .join(rows, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.col(n).fill_null(0.0) for n in names)
        .select(names)
        .to_numpy()
        .astype(np.float32)
    )
    edge_frame = to_polars(sub_edges, {"src": pl.String, "dst": pl.String, "rel": pl.Int32})
    sampled = to_polars(
        sample.select("customer_id", "label", "part"),
        {"customer_id": pl.String, "label": pl.Int8, "part": pl.String},
    )
    local = sampled.join(index, on="customer_id")
    labels = np.full(node_frame.height, -1, dtype=np.int8)
    labels[local["id"].to_numpy()] = local["label"].to_numpy()

    def part_ids(name: str) -> np.ndarray:
        return np.sort(local.filter(pl.col("part") == name)["id"].to_numpy().astype(np.int64))

    split = Split(train=part_ids("train"), val=part_ids("validation"), test=part_ids("test"))
    heldout = to_polars(
        parts.where(F.col("part") != "train").select("customer_id", "part"),
        {"customer_id": pl.String, "part": pl.String},
    )
    subgraph = Subgraph(
        customer_ids=node_frame.get_column("customer_id"),
        raw=raw,
        labels=labels,
        edges=_local_pairs(edge_frame, index),
        hops=node_frame.get_column("hop").to_numpy(),
    )
    facts |= {
        "split": rule,
        "hops": hops,
        "subgraph_nodes": node_frame.height,
        "subgraph_edges": int(sum(e.shape[1] for e in subgraph.edges.values())),
        **_cut_dates(parts),
    }
    return TrainingSet(subgraph=subgraph, split=split, heldout=heldout, facts=facts)


def _cut_dates(parts: DataFrame) -> dict[str, Any]:
    """The default dates where the parts meet (ISO dates; None for an empty part)."""
    from pyspark.sql import functions as F

    rows = (
        parts.where(F.col("label") == 1)
        .groupBy("part")
        .agg(F.min("default_date").alias("first"), F.max("default_date").alias("last"))
        .collect()
    )
    spans = {r["part"]: (r["first"], r["last"]) for r in rows}

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        f"{part}_default_dates": [iso(v) for v in spans.get(part, (None, None))] for part in PARTS
    }
