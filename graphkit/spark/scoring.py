"""GNN scoring on the executors: the trained model broadcast, message passing as joins.

Training runs on the driver from a sample extracted on Spark (:mod:`graphkit.spark.training`,
:func:`gnn.fit.fit_subgraph`; docs/spark.md says why); this module scores every customer with
the saved model on Spark, without the customer graph on the driver:

1. **Inputs.** The Spark feature frame (:mod:`graphkit.spark.features`) is standardised in the
   executors with the saved statistics (the same numpy code as :class:`gnn.data.Standardiser`);
   when the model reads the tree prior, its fold models are broadcast too and each row gets the
   prior column by :meth:`gnn.prior.TreePrior.column` (a training customer the log-odds of the
   fold model that did not see it, anyone else their mean), so the column equals the driver's.
2. **Edges.** :func:`customer_edges` builds :func:`gnn.data.customer_edges`' seven relations as
   one DataFrame ``(src, dst, rel)`` of customer ids (same snapshot, hub rule, no self loops,
   distinct pairs).
3. **Layers.** For each of the model's ``K`` layers the neighbour aggregate is a join of the
   edges with the node states on ``src`` and a ``groupBy(dst, rel)`` that adds the state vectors
   (``aggregate`` + ``zip_with`` over the group, in float64), pivoted to one column per relation;
   the per-node layer math (``h + relu(sum_r W_l^r a_r + b_l^r + W_r^r h)``) runs in numpy in a
   ``mapInArrow`` with the broadcast weights. The head's first linear map is applied layer by
   layer (``W1 [h0; ...; hK] = sum_k W1_k h_k``), so a node carries one running vector instead of
   every layer's state.
4. **Head.** ``sigmoid(logit - log w)``, clipped to [0, 1], as :func:`gnn.score.score_customers`.

The executors compute in float64 from the float32 weights; torch computes in float32, so the
scores agree to about 1e-6, not bit for bit (``tests/test_spark_scoring.py`` measures it).

Cost per layer: one shuffle of the E edge rows joined to N state rows (``hidden`` doubles each),
one aggregation of E vectors into at most ``N * relations`` sums, one pivot to N rows, one join
with the N states and one numpy pass of ``O(N * relations * hidden^2)`` flops; each layer's states
are checkpointed. The broadcast is the model's weights (``~relations * layers * 2 * hidden^2``
floats) plus the tree prior's fold models.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from gnn.data import RELATIONS
from gnn.features import _NO_EVENTS
from graphkit.spark.features import _account_owners, _us, device_uses, micros

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from gnn.models import RelationalSAGE


def model_weights(model: RelationalSAGE) -> dict[str, Any]:
    """The model's parameters as float64 numpy arrays, by role: ``encoder`` (W, b), ``layers``
    (per layer, per relation in :data:`gnn.data.RELATIONS` order: lin_l W, lin_l b, lin_r W),
    ``linear`` (W, b) and ``head`` (W1, b1, W2, b2)."""
    state = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in model.state_dict().items()}
    layers = []
    for k in range(len(model.convs)):
        per_relation = []
        for relation in RELATIONS:
            prefix = next(
                key.rsplit(".lin_l.weight", 1)[0]
                for key in state
                if key.startswith(f"convs.{k}.") and f"___{relation}___" in key
                and key.endswith(".lin_l.weight")
            )  # fmt: skip
            per_relation.append(
                (
                    state[f"{prefix}.lin_l.weight"],
                    state[f"{prefix}.lin_l.bias"],
                    state[f"{prefix}.lin_r.weight"],
                )
            )
        layers.append(per_relation)
    return {
        "encoder": (state["encoder.0.weight"], state["encoder.0.bias"]),
        "layers": layers,
        "linear": (state["linear.weight"], state["linear.bias"]),
        "head": (
            state["head.1.weight"],
            state["head.1.bias"],
            state["head.3.weight"],
            state["head.3.bias"],
        ),
    }


def customer_edges(
    tables: Mapping[str, DataFrame], snapshot: datetime, max_device_users: int = 50
) -> DataFrame:
    """:func:`gnn.data.customer_edges` on Spark: distinct ``(src, dst, rel)`` rows, customer ids
    at both ends, ``rel`` the relation's index in :data:`gnn.data.RELATIONS`, no self loops."""
    from pyspark.sql import functions as F

    index = {r: i for i, r in enumerate(RELATIONS)}
    snap_us = micros(snapshot)
    customers = tables["customers"].select("customer_id")

    def both_customers(frame: DataFrame) -> DataFrame:
        ids = customers.withColumnRenamed("customer_id", "src")
        return frame.join(ids, "src", "left_semi").join(
            ids.withColumnRenamed("src", "dst"), "dst", "left_semi"
        )

    def pair(frame: DataFrame, src: str, dst: str, relation: str) -> DataFrame:
        return frame.select(
            F.col(src).alias("src"), F.col(dst).alias("dst"), F.lit(index[relation]).alias("rel")
        )

    guarantees = tables["guarantees"]
    if snapshot < _NO_EVENTS:
        guarantees = guarantees.where(
            F.col("start").isNull() | (F.col("start") <= F.lit(snapshot.date()))
        )
    shares = tables["shareholdings"]
    uses = device_uses(tables, snap_us)
    users = uses.groupBy("device_id").agg(F.count("*").alias("users"))
    uses = uses.join(users.where(F.col("users") <= max_device_users), "device_id", "left_semi")
    device = uses.join(uses.withColumnRenamed("customer_id", "other"), "device_id")
    owners = _account_owners(tables)

    def owner(account: str, role: str) -> DataFrame:
        return owners.select(F.col("account_id").alias(account), F.col("customer_id").alias(role))

    paid = (
        tables["transfers"]
        .where(_us("ts") <= snap_us)
        .join(owner("src_account", "payer"), "src_account")
        .join(owner("dst_account", "payee"), "dst_account")
    )
    parts = [
        pair(guarantees, "guarantor_id", "borrower_id", "guarantor_of"),
        pair(guarantees, "borrower_id", "guarantor_id", "borrower_of"),
        pair(shares, "holder_id", "company_id", "holds_shares"),
        pair(shares, "company_id", "holder_id", "held_by"),
        pair(device, "customer_id", "other", "shares_device"),
        pair(paid, "payer", "payee", "pays"),
        pair(paid, "payee", "payer", "paid_by"),
    ]
    edges = parts[0]
    for part in parts[1:]:
        edges = edges.unionByName(part)
    return both_customers(edges.where(F.col("src") != F.col("dst"))).distinct()


def _matrix(column: pa.Array, width: int) -> np.ndarray:
    """A list<double> Arrow column without nulls as an ``(rows, width)`` array."""
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def _optional_matrix(column: pa.Array, width: int) -> np.ndarray:
    """A nullable list<double> Arrow column as an ``(rows, width)`` array, nulls as zeros."""
    out = np.zeros((len(column), width))
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if valid.any():
        out[valid] = _matrix(column.filter(column.is_valid()), width)
    return out


def _vectors(values: np.ndarray) -> pa.Array:
    rows, width = values.shape
    offsets = pa.array(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.ravel(), type=pa.float64()))


STATE_SCHEMA = "customer_id string, h array<double>, pre array<double>, lin double"


def _encode(weights: Any, names: list[str], prior: Any) -> Any:
    """The ``mapInArrow`` function of the input layer: raw features -> x -> h0, W1_0 h0, the
    linear read-out."""

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from gnn.data import Standardiser
        from gnn.prior import TreePrior

        w = weights.value
        scaler = Standardiser(mean=w["mean"], std=w["std"])
        hidden = w["encoder"][0].shape[0]
        for batch in batches:
            raw = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False) for n in names])
            x = scaler.transform(raw.astype(np.float32))  # as CustomerFeatures.matrix() does
            if prior is not None:
                folds = batch.column("fold").to_numpy(zero_copy_only=False).astype(np.int64)
                tree = prior.value
                column = TreePrior(tree.models, folds, tree.mean, tree.std).column(x)
                x = np.column_stack([x, column])
            x = x.astype(np.float64)
            w_enc, b_enc = w["encoder"]
            h = np.maximum(x @ w_enc.T + b_enc, 0.0)
            w_lin, b_lin = w["linear"]
            lin = (x @ w_lin.T + b_lin)[:, 0]
            pre = h @ w["head"][0][:, :hidden].T
            yield pa.RecordBatch.from_arrays(
                [batch.column("customer_id"), _vectors(h), _vectors(pre), pa.array(lin)],
                names=["customer_id", "h", "pre", "lin"],
            )

    return encode


def _layer(weights: Any, k: int) -> Any:
    """The ``mapInArrow`` function of message-passing layer ``k`` (0-based): reads each node's
    state and its per-relation neighbour sums (columns ``r0``..), returns the next state."""

    def layer(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        w = weights.value
        hidden = w["encoder"][0].shape[0]
        relations = w["layers"][k]
        w_root = sum(lin_r for _, _, lin_r in relations)
        bias = sum(b for _, b, _ in relations)
        head_block = w["head"][0][:, (k + 1) * hidden : (k + 2) * hidden]
        for batch in batches:
            h = _matrix(batch.column("h"), hidden)
            total = h @ w_root.T + bias
            for r, (lin_l, _, _) in enumerate(relations):
                agg = _optional_matrix(batch.column(f"r{r}"), hidden)
                if w["aggr"] == "mean":
                    degree = batch.column(f"d{r}").to_numpy(zero_copy_only=False)
                    degree = np.nan_to_num(degree.astype(np.float64), nan=0.0)
                    agg = agg / np.maximum(degree, 1.0)[:, None]
                total += agg @ lin_l.T
            h = h + np.maximum(total, 0.0)
            pre = _matrix(batch.column("pre"), hidden) + h @ head_block.T
            yield pa.RecordBatch.from_arrays(
                [batch.column("customer_id"), _vectors(h), _vectors(pre), batch.column("lin")],
                names=["customer_id", "h", "pre", "lin"],
            )

    return layer


def _head(weights: Any, log_weight: float) -> Any:
    def head(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        w = weights.value
        hidden = w["encoder"][0].shape[0]
        _, b1, w2, b2 = w["head"]
        for batch in batches:
            pre = _matrix(batch.column("pre"), hidden)
            lin = batch.column("lin").to_numpy(zero_copy_only=False)
            logit = (np.maximum(pre + b1, 0.0) @ w2.T + b2)[:, 0] + lin
            score = np.clip(1.0 / (1.0 + np.exp(-(logit - log_weight))), 0.0, 1.0)
            yield pa.RecordBatch.from_arrays(
                [batch.column("customer_id"), pa.array(logit), pa.array(score)],
                names=["customer_id", "logit", "gnn_score"],
            )

    return head


def _neighbour_sums(edges: DataFrame, states: DataFrame, hidden: int) -> DataFrame:
    """Per destination customer, the sum (and count) of its in-neighbours' ``h`` per relation:
    columns ``dst``, ``r0``.. (array, null without such neighbours), ``d0``.. (count)."""
    from pyspark.sql import functions as F

    zeros = F.array_repeat(F.lit(0.0), hidden)
    summed = (
        edges.join(states.select(F.col("customer_id").alias("src"), "h"), "src")
        .groupBy("dst", "rel")
        .agg(
            F.aggregate(
                F.collect_list("h"), zeros, lambda acc, v: F.zip_with(acc, v, lambda a, b: a + b)
            ).alias("s"),
            F.count("*").alias("d"),
        )
    )
    pivoted = (
        summed.groupBy("dst")
        .pivot("rel", list(range(len(RELATIONS))))
        .agg(F.first("s").alias("s"), F.first("d").alias("d"))
    )
    return pivoted.select(
        "dst",
        *[F.col(f"{r}_s").alias(f"r{r}") for r in range(len(RELATIONS))],
        *[F.col(f"{r}_d").alias(f"d{r}") for r in range(len(RELATIONS))],
    )


def score_frame(
    features: DataFrame,
    names: list[str],
    edges: DataFrame,
    saved: Mapping[str, Any],
    folds: DataFrame | None = None,
) -> DataFrame:
    """``(customer_id, logit, gnn_score)`` for every row of ``features``, on the executors.

    Parameters:
        features: ``customer_id`` and the raw feature columns ``names`` (Spark features).
        names: the model's feature names, in its input order (``saved["feature_names"]``).
        edges: :func:`customer_edges` at the model's snapshot.
        saved: :func:`gnn.score.load_model`'s result (model, standardiser, log_weight, prior).
        folds: ``(customer_id, fold)`` of the tree prior's training customers (others: none);
            needed when the model reads the prior.
    """
    from pyspark.sql import functions as F

    spark = features.sparkSession
    model = saved["model"]
    weights = model_weights(model)
    weights["mean"] = saved["standardiser"].mean
    weights["std"] = saved["standardiser"].std
    aggr = saved["settings"].aggr
    if aggr not in ("sum", "mean"):
        raise ValueError(f"Spark scoring supports gnn aggr sum or mean, not {aggr!r}")
    weights["aggr"] = aggr
    hidden = weights["encoder"][0].shape[0]
    context = spark.sparkContext
    broadcast = context.broadcast(weights)
    prior = saved.get("prior")
    prior_broadcast = context.broadcast(prior) if prior is not None else None
    rows = features.select("customer_id", *[F.col(n).cast("double") for n in names])
    if prior is not None:
        if folds is None:
            raise ValueError("the model reads the tree prior: pass the training customers' folds")
        rows = rows.join(folds, "customer_id", "left").withColumn(
            "fold", F.coalesce(F.col("fold").cast("long"), F.lit(-1))
        )
    states = rows.mapInArrow(_encode(broadcast, names, prior_broadcast), STATE_SCHEMA)
    states = states.localCheckpoint()
    edges = edges.localCheckpoint()
    for k in range(len(weights["layers"])):
        sums = _neighbour_sums(edges, states, hidden)
        joined = states.join(sums, states["customer_id"] == sums["dst"], "left").drop("dst")
        states = joined.mapInArrow(_layer(broadcast, k), STATE_SCHEMA).localCheckpoint()
    return states.mapInArrow(
        _head(broadcast, float(saved["log_weight"])),
        "customer_id string, logit double, gnn_score double",
    )


def training_folds(prior: Any, customer_keys: pl.Series) -> pl.DataFrame:
    """``(customer_id, fold)`` of the customers the tree prior trained on (fold >= 0)."""
    fold = np.asarray(prior.fold_of)
    keep = fold >= 0
    return pl.DataFrame({"customer_id": customer_keys.filter(pl.Series(keep)), "fold": fold[keep]})
