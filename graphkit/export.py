"""Exports of a run directory for schedulers and downstream systems.

:func:`export_run` copies a run's cluster risk, scores and alerts into ``TO/<run_id>/`` in the
formats asked for, then points ``TO/latest`` at it. With ``since`` (an earlier run directory) it
exports only what changed between the two runs (:func:`changes`). Publication is atomic: the
export is written to a hidden temporary directory, renamed into place, and only then is the
``latest`` symlink replaced (one ``rename``), so a reader of ``latest`` sees a complete export,
the old or the new, whatever happens to the writer. Each export holds ``_control.csv``
(:mod:`graphkit.control`): every exported file's rows and SHA-256, for its consumer to check.
docs/scheduling.md has the details.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from graphkit.atomic import atomic_directory, atomic_symlink
from graphkit.control import write_control_file
from graphkit.progress import SILENT, Progress

FORMATS: tuple[str, ...] = ("parquet", "csv", "json")

# Exported tables: name -> (run-directory file, key column). A run made with --stage may lack
# some; they are then absent from the export too.
TABLES: dict[str, tuple[str, str]] = {
    "cluster_risk": ("cluster_risk.parquet", "cluster_id"),
    "scores": ("scores.parquet", "customer_id"),
    "customer_alerts": ("customer_alerts.parquet", "customer_id"),
    "alerts": ("alerts.csv", "customer_id"),
}

# A risk score moving by no more than this is not a change (scores are floats in [0, 1]).
DEFAULT_EPSILON = 0.01

LATEST = "latest"
EXPORT_MANIFEST = "export.json"
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ExportInputError(ValueError):
    """The run directory (or ``since`` run, or a format) is missing or invalid."""


@dataclass
class Run:
    """A finished run directory: its id and the exportable tables it holds.

    ``membership`` (customer_id, cluster_id from clusters.parquet), ``lineage``
    (cluster_lineage.parquet) and ``previous_run_id`` (the run its lineage is from) are read
    when present, to tell a cluster that carried its id unchanged from one that did not; they
    are not exported.
    """

    path: Path
    run_id: str
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    membership: pl.DataFrame | None = None
    lineage: pl.DataFrame | None = None
    previous_run_id: str | None = None


@dataclass
class ExportResult:
    """What :func:`export_run` published."""

    run_id: str
    since_run_id: str | None
    directory: Path
    latest: Path
    formats: tuple[str, ...]
    rows: dict[str, int]
    changed_customers: int | None = None
    changed_clusters: int | None = None

    @property
    def changed(self) -> int | None:
        """Changed customers plus clusters (``None`` for a full export)."""
        if self.since_run_id is None:
            return None
        return (self.changed_customers or 0) + (self.changed_clusters or 0)


def read_run(run_dir: Path | str) -> Run:
    """Read ``run_dir``'s manifest and exportable tables.

    Raises :class:`ExportInputError` when the directory or its ``manifest.json`` is missing or
    unreadable, the run id is unusable as a directory name, or no exportable table exists.
    """
    path = Path(run_dir)
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise ExportInputError(f"{path}: not a run directory (does not exist)")
    if not manifest_path.is_file():
        raise ExportInputError(f"{path}: not a run directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        run_id = manifest["run_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportInputError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(run_id, str) or not _SAFE_RUN_ID.match(run_id):
        raise ExportInputError(f"{manifest_path}: run_id {run_id!r} is not a safe directory name")
    previous_run_id = manifest.get("previous_run_id")
    run = Run(
        path=path,
        run_id=run_id,
        previous_run_id=previous_run_id if isinstance(previous_run_id, str) else None,
    )
    for attribute, file, columns in (
        ("membership", "clusters.parquet", ["customer_id", "cluster_id"]),
        ("lineage", "cluster_lineage.parquet", None),
    ):
        if (path / file).is_file():
            try:
                setattr(run, attribute, pl.read_parquet(path / file, columns=columns))
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise ExportInputError(f"{path / file}: unreadable ({exc})") from None
    for name, (file, _key) in TABLES.items():
        file_path = path / file
        if not file_path.is_file():
            continue
        try:
            if file.endswith(".parquet"):
                run.tables[name] = pl.read_parquet(file_path)
            else:
                run.tables[name] = pl.read_csv(
                    file_path,
                    schema_overrides={"customer_id": pl.String, "line_id": pl.String},
                )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise ExportInputError(f"{file_path}: unreadable ({exc})") from None
    if not run.tables:
        files = ", ".join(f for f, _ in TABLES.values())
        raise ExportInputError(f"{path}: none of {files} found")
    return run


def _customer_state(run: Run) -> pl.DataFrame | None:
    """(customer_id, tier, risk_score): the final alert tier where there is one."""
    scores = run.tables.get("scores")
    tiers = run.tables.get("customer_alerts")
    if scores is None and tiers is None:
        return None
    if tiers is None:
        return scores.select("customer_id", "tier", "risk_score")
    if scores is None:
        return tiers.select("customer_id", "tier", "risk_score")
    return tiers.select("customer_id", "tier").join(
        scores.select("customer_id", "risk_score"), on="customer_id", how="full", coalesce=True
    )


def _cluster_state(run: Run) -> pl.DataFrame | None:
    frame = run.tables.get("cluster_risk")
    if frame is None:
        return None
    return frame.select(
        "cluster_id",
        pl.col("tier") if "tier" in frame.columns else pl.lit(None, dtype=pl.String).alias("tier"),
        pl.col("risk_score").cast(pl.Float64)
        if "risk_score" in frame.columns
        else pl.lit(None, dtype=pl.Float64).alias("risk_score"),
    )


def _moved_clusters(current: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """cluster_id of the clusters in both memberships whose members differ. O(n) joins."""
    ids = ["customer_id", "cluster_id"]
    now = current.select(pl.col("customer_id"), pl.col("cluster_id").cast(pl.Int64))
    before = previous.select(pl.col("customer_id"), pl.col("cluster_id").cast(pl.Int64))
    both = now.join(before, on=ids, how="inner").group_by("cluster_id").len("kept")
    sizes = (
        now.group_by("cluster_id")
        .len("now")
        .join(before.group_by("cluster_id").len("before"), on="cluster_id", how="inner")
        .join(both, on="cluster_id", how="left")
    )
    kept = pl.col("kept").fill_null(0)
    return sizes.filter((kept != pl.col("now")) | (kept != pl.col("before"))).select("cluster_id")


def _lineage_summary(lineage: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per current cluster and per previous cluster: its relation and the ids on the other side.

    A current cluster is ``same`` (kept an id), else ``merge`` (members from 2+ previous
    clusters), ``split`` (from one) or ``new``; ``lineage_cluster_ids`` lists the previous
    clusters it drew members from. A previous cluster is ``gone``, ``merge`` (some of its
    members now in a cluster drawing from several) or ``split``; ``lineage_cluster_ids`` lists
    the clusters its members are in now.
    """
    relation = pl.col("relation")

    def summary(own: str, other: str, order: list[str]) -> pl.DataFrame:
        rank = pl.lit(len(order))
        for i, name in reversed(list(enumerate(order))):
            rank = pl.when(relation == name).then(pl.lit(i)).otherwise(rank)
        return (
            lineage.filter(pl.col(own).is_not_null())
            .group_by(own)
            .agg(
                rank.min().alias("_rank"),
                pl.col(other).drop_nulls().unique().sort().alias("lineage_cluster_ids"),
            )
            .select(
                pl.col(own).cast(pl.Int64).alias("cluster_id"),
                pl.col("_rank")
                .replace_strict(list(range(len(order))), order, return_dtype=pl.String)
                .alias("lineage"),
                pl.col("lineage_cluster_ids").cast(pl.List(pl.Int64)),
            )
        )

    return (
        summary("cluster_id", "previous_cluster_id", ["same", "merge", "split", "new"]),
        summary("previous_cluster_id", "cluster_id", ["same", "gone", "merge", "split"]),
    )


def cluster_changes(
    current: Run, previous: Run, epsilon: float = DEFAULT_EPSILON
) -> pl.DataFrame | None:
    """Clusters whose state or members changed between two runs, with their lineage.

    :func:`changes` on (cluster_id, tier, risk_score) of ``cluster_risk.parquet``, plus, when
    both runs have ``clusters.parquet``, change ``members`` for a cluster id present in both
    whose member set differs (ranked after ``new``/``removed``, before ``tier``/``risk``).
    When ``current``'s ``cluster_lineage.parquet`` was made from ``previous`` (``graphkit run
    --previous``; its manifest's ``previous_run_id``), every row also carries ``lineage``
    (``same``/``split``/``merge``/``new`` for a current cluster; ``gone``/``split``/``merge``
    for a removed one) and ``lineage_cluster_ids`` (the clusters on the other side that share
    members). A cluster that kept its id, its members and its tier, and whose risk moved no
    more than ``epsilon``, is not listed.

    Returns ``None`` when either run lacks ``cluster_risk.parquet``. O(n) joins.
    """
    now, before = _cluster_state(current), _cluster_state(previous)
    if now is None or before is None:
        return None
    diff = changes(now, before, "cluster_id", epsilon)
    key = diff.schema["cluster_id"]
    if current.membership is not None and previous.membership is not None:
        moved = _moved_clusters(current.membership, previous.membership).with_columns(
            pl.col("cluster_id").cast(key), pl.lit(True).alias("_moved")
        )
        states = before.select(
            pl.col("cluster_id").cast(key),
            pl.col("tier").alias("previous_tier"),
            pl.col("risk_score").alias("previous_risk_score"),
        )
        extra = moved.join(diff, on="cluster_id", how="anti").join(states, on="cluster_id")
        diff = (
            pl.concat(
                [
                    diff,
                    extra.select(
                        "cluster_id",
                        pl.lit("members").alias("change"),
                        "previous_tier",
                        "previous_risk_score",
                    ),
                ],
                how="diagonal_relaxed",
            )
            .join(moved, on="cluster_id", how="left")
            .with_columns(
                pl.when(pl.col("_moved") & pl.col("change").is_in(["tier", "risk"]))
                .then(pl.lit("members"))
                .otherwise(pl.col("change"))
                .alias("change")
            )
            .drop("_moved")
            .sort("cluster_id")
        )
    lineage = current.lineage
    if lineage is None or current.previous_run_id != previous.run_id:
        return diff
    now_side, before_side = _lineage_summary(lineage)
    removed = pl.col("change") == "removed"
    return (
        diff.join(
            now_side.with_columns(pl.col("cluster_id").cast(key)), on="cluster_id", how="left"
        )
        .join(
            before_side.with_columns(pl.col("cluster_id").cast(key)),
            on="cluster_id",
            how="left",
            suffix="_before",
        )
        .with_columns(
            pl.when(removed).then("lineage_before").otherwise("lineage").alias("lineage"),
            pl.when(removed)
            .then("lineage_cluster_ids_before")
            .otherwise("lineage_cluster_ids")
            .alias("lineage_cluster_ids"),
        )
        .drop("lineage_before", "lineage_cluster_ids_before")
    )


def changes(
    current: pl.DataFrame, previous: pl.DataFrame, key: str, epsilon: float = DEFAULT_EPSILON
) -> pl.DataFrame:
    """Keys whose state changed between two runs.

    Parameters: ``current`` and ``previous`` (``key``, tier, risk_score). A key is changed when
    it is ``new`` (only in current), ``removed`` (only in previous), its ``tier`` differs, or its
    ``risk`` score moved by more than ``epsilon`` (a score appearing or disappearing counts).
    The first of these that applies is the ``change`` label.

    Returns (``key``, change, previous_tier, previous_risk_score), sorted by key. O(n) hash join.
    """
    if previous.schema[key] != current.schema[key]:
        previous = previous.with_columns(pl.col(key).cast(current.schema[key]))
    joined = current.select(key, "tier", "risk_score", pl.lit(True).alias("_is")).join(
        previous.select(
            key,
            pl.col("tier").alias("previous_tier"),
            pl.col("risk_score").alias("previous_risk_score"),
            pl.lit(True).alias("_was"),
        ),
        on=key,
        how="full",
        coalesce=True,
    )
    now = pl.col("_is").fill_null(False)
    was = pl.col("_was").fill_null(False)
    cur, prev = pl.col("risk_score"), pl.col("previous_risk_score")
    risk_moved = ((cur - prev).abs() > epsilon).fill_null(False) | (cur.is_null() != prev.is_null())
    change = (
        pl.when(~was)
        .then(pl.lit("new"))
        .when(~now)
        .then(pl.lit("removed"))
        .when(pl.col("tier").ne_missing(pl.col("previous_tier")))
        .then(pl.lit("tier"))
        .when(risk_moved)
        .then(pl.lit("risk"))
    )
    return (
        joined.with_columns(change.alias("change"))
        .filter(pl.col("change").is_not_null())
        .select(key, "change", "previous_tier", "previous_risk_score")
        .sort(key)
    )


def _delta(full: pl.DataFrame, changed: pl.DataFrame, key: str) -> pl.DataFrame:
    """Rows of ``full`` for changed keys (removed keys as rows of their key only), + change."""
    if changed.schema[key] != full.schema[key]:
        changed = changed.with_columns(pl.col(key).cast(full.schema[key]))
    kept = full.join(changed, on=key, how="inner", maintain_order="left")
    removed = changed.filter(pl.col("change") == "removed")
    return pl.concat([kept, removed], how="diagonal_relaxed")


def _flat_for_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns as text, since CSV holds only scalars."""
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List | pl.Array):
            exprs.append(
                pl.col(name).cast(pl.List(pl.String)).list.join(";").alias(name)
                if not isinstance(dtype.inner, pl.List | pl.Struct)
                else pl.col(name).map_elements(str, return_dtype=pl.String).alias(name)
            )
        elif isinstance(dtype, pl.Struct):
            exprs.append(pl.col(name).struct.json_encode().alias(name))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def _write_frame(frame: pl.DataFrame, directory: Path, name: str, fmt: str) -> None:
    path = directory / f"{name}.{fmt}"
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":
        _flat_for_csv(frame).write_csv(path)
    else:
        frame.write_json(path)


def parse_formats(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"parquet,csv"`` -> ``("parquet", "csv")``; unknown or no formats raise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportInputError(
            f"--format: {', '.join(unknown) or 'nothing'} not one of {', '.join(FORMATS)}"
        )
    return formats


def export_run(
    run_dir: Path | str,
    to_dir: Path | str,
    formats: str | tuple[str, ...] | list[str] = ("parquet",),
    since: Path | str | None = None,
    *,
    epsilon: float = DEFAULT_EPSILON,
    progress: Progress = SILENT,
) -> ExportResult:
    """Export ``run_dir`` to ``to_dir/<run_id>/`` and point ``to_dir/latest`` at it.

    Parameters:
        run_dir: a finished run directory.
        to_dir: the export root (created if needed).
        formats: any of ``parquet``, ``csv``, ``json`` (a comma list or a sequence).
        since: an earlier run directory, or an export root or export (the run it was made
            from: :func:`exported_run_dir`); only changed clusters (:func:`cluster_changes`)
            and customers (:func:`changes`) are exported, each row with ``change``,
            ``previous_tier``, ``previous_risk_score``; ``alerts`` keeps the rows of changed
            customers.
        epsilon: risk-score movement that counts as a change.

    Raises :class:`ExportInputError` for a bad run, ``since`` or format (nothing is written),
    ``OSError`` when the destination cannot be written (the previous export stays ``latest``).
    """
    chosen = parse_formats(formats)
    if epsilon < 0:
        raise ExportInputError(f"--epsilon: {epsilon} must be >= 0")
    run = read_run(run_dir)
    if since is not None:
        since = exported_run_dir(since) or since
    previous = read_run(since) if since is not None else None
    frames = dict(run.tables)
    changed_customers = changed_clusters = None
    if previous is not None:
        progress.start("compare runs")
        frames, changed_customers, changed_clusters = _deltas(run, previous, epsilon)
        progress.finish("compare runs")

    root = Path(to_dir)
    progress.start("export", total=len(frames) * len(chosen))
    with atomic_directory(root / run.run_id) as tmp:
        for name, frame in frames.items():
            for fmt in chosen:
                _write_frame(frame, tmp, name, fmt)
                progress.advance("export")
        # Control totals (rows, sha256) of every exported file, for the consumer to verify.
        write_control_file(
            tmp, {f"{name}.{fmt}": frame for name, frame in frames.items() for fmt in chosen}
        )
        rows = {name: frame.height for name, frame in frames.items()}
        summary = {
            "run_id": run.run_id,
            "run_dir": str(run.path.absolute()),
            "since_run_id": previous.run_id if previous else None,
            "since_run_dir": str(previous.path.absolute()) if previous else None,
            "created_at": datetime.now(UTC).isoformat(),
            "formats": list(chosen),
            "epsilon": epsilon if previous else None,
            "rows": rows,
            "changed": (
                {"customers": changed_customers, "clusters": changed_clusters} if previous else None
            ),
        }
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(summary, indent=2))
    atomic_symlink(root / LATEST, run.run_id)
    progress.finish("export")
    return ExportResult(
        run_id=run.run_id,
        since_run_id=previous.run_id if previous else None,
        directory=root / run.run_id,
        latest=root / LATEST,
        formats=chosen,
        rows=rows,
        changed_customers=changed_customers,
        changed_clusters=changed_clusters,
    )


def _deltas(
    run: Run, previous: Run, epsilon: float
) -> tuple[dict[str, pl.DataFrame], int | None, int | None]:
    frames: dict[str, pl.DataFrame] = {}
    changed_customers = changed_clusters = None
    diff = cluster_changes(run, previous, epsilon)
    if diff is not None:
        frames["cluster_risk"] = _delta(run.tables["cluster_risk"], diff, "cluster_id")
        changed_clusters = diff.height
    customers_now, customers_before = _customer_state(run), _customer_state(previous)
    if customers_now is not None and customers_before is not None:
        diff = changes(customers_now, customers_before, "customer_id", epsilon)
        changed_customers = diff.height
        for name in ("scores", "customer_alerts"):
            if name in run.tables:
                frames[name] = _delta(run.tables[name], diff, "customer_id")
        if "alerts" in run.tables:
            frames["alerts"] = run.tables["alerts"].join(
                diff.select("customer_id", "change"), on="customer_id", how="inner"
            )
    if not frames:
        raise ExportInputError(
            f"{run.path} and {previous.path} share no table to compare "
            "(cluster_risk.parquet, scores.parquet or customer_alerts.parquet)"
        )
    return frames, changed_customers, changed_clusters


def latest_export(to_dir: Path | str) -> Path | None:
    """The directory ``to_dir/latest`` points at, or ``None``."""
    link = Path(to_dir) / LATEST
    return link.resolve() if link.is_symlink() else None


def exported_run_dir(path: Path | str) -> Path | None:
    """The run directory an export root (its ``latest``) or an export directory was made from.

    ``path/latest/export.json`` or ``path/export.json`` names the run (``run_dir``): that
    directory. ``None`` when ``path`` is a run directory (has ``manifest.json``) or not an
    export at all: use it as it is (reading it as a run says what it lacks). Lets a scheduled
    job pass its export root as the previous run (``graphkit run --previous EXPORTS``,
    ``graphkit export --since EXPORTS``).

    Raises :class:`ExportInputError` when the export's ``export.json`` is unreadable.
    """
    path = Path(path)
    if (path / "manifest.json").is_file():
        return None
    summary = path / LATEST / EXPORT_MANIFEST
    if not summary.is_file():
        summary = path / EXPORT_MANIFEST
    if not summary.is_file():
        return None
    try:
        run_dir = json.loads(summary.read_text(encoding="utf-8"))["run_dir"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportInputError(f"{summary}: unreadable ({exc})") from None
    if not isinstance(run_dir, str):
        raise ExportInputError(f"{summary}: run_dir is not a path")
    return Path(run_dir)
