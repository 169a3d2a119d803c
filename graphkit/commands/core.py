"""Core commands: run the pipeline, validate an input directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from graphkit.commands.render import (
    EXIT_INVALID_INPUT,
    InputDir,
    console,
    err_console,
    fail,
    invalid_input,
    key_values,
    print_frame,
    progress_bars,
)
from graphkit.config import ConfigError, apply_overrides, load_config, parse_assignments
from graphkit.pipeline import RunSummary
from graphkit.spark.session import DEFAULT_MASTER
from loaders.sources import InputError, inspect_directory, issues_frame


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)


def run(
    input_dir: InputDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to (re)create.")],
    config: Annotated[Path | None, typer.Option(help="graphkit.toml with run parameters.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set flows.max_hops=4."),
    ] = None,
    stage: Annotated[
        list[str] | None, typer.Option(help="Run only these stages (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
    neo4j: Annotated[
        str | None,
        typer.Option("--neo4j", help="Also load into this Neo4j (Bolt URI) and write back."),
    ] = None,
    neo4j_user: Annotated[str | None, typer.Option(help="Neo4j user ($NEO4J_USER).")] = None,
    neo4j_password_env: Annotated[
        str, typer.Option(help="Environment variable holding the Neo4j password.")
    ] = "NEO4J_PASSWORD",
    neo4j_password: Annotated[
        str | None, typer.Option(help="Neo4j password (prefer --neo4j-password-env).")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            help="Previous run directory, or an export root (the run its latest export is "
            "from): warm-start clusters and keep their ids (writes cluster_lineage.parquet).",
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="embedded (one machine) or spark (docs/spark.md).")
    ] = "embedded",
    spark_master: Annotated[
        str, typer.Option(help="Spark master URL for --engine spark, e.g. spark://host:7077.")
    ] = DEFAULT_MASTER,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(help="A Spark setting for --engine spark, key=value (repeatable)."),
    ] = None,
) -> None:
    """Validate, build the graph, analyse, score and alert; publish OUT atomically."""
    from graphkit.alerts import load_policy
    from graphkit.analytics.cluster_lineage import PreviousRunError
    from graphkit.pipeline import run_pipeline

    try:
        cfg = apply_overrides(load_config(config), parse_assignments(set_ or []))
        load_policy(cfg.alerts)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    from graphkit.commands.neo4j import connect, store_failure
    from graphkit.store.neo4j import Neo4jStoreError

    if engine not in ("embedded", "spark"):
        fail(f"--engine must be embedded or spark, got {engine!r}", EXIT_INVALID_INPUT)
    spark_settings: dict[str, str] = {}
    if engine == "spark":
        from graphkit.spark.flows import SPARK_POLICIES
        from graphkit.spark.session import parse_conf

        if cfg.flows.policy not in SPARK_POLICIES:
            fail(f"flows.policy={cfg.flows.policy!r} needs --engine embedded", EXIT_INVALID_INPUT)
        if previous is not None:
            fail("--previous (stable cluster ids) needs --engine embedded", EXIT_INVALID_INPUT)
        try:
            spark_settings = parse_conf(spark_conf or [])
        except ValueError as exc:
            fail(str(exc), EXIT_INVALID_INPUT)
    if previous is not None:
        # A scheduled job passes its export root: the previous run is the one `latest` shows.
        from graphkit.export import ExportInputError, exported_run_dir

        try:
            previous = exported_run_dir(previous) or previous
        except ExportInputError as exc:
            fail(str(exc), EXIT_INVALID_INPUT)
    target = None
    if neo4j is not None:
        target = connect(neo4j, neo4j_user, neo4j_password_env, password=neo4j_password)
    spark = None
    try:
        engine_args: dict[str, Any] = {}
        if engine == "spark":
            from graphkit.pipeline.spark_stages import spark_stages
            from graphkit.spark.engine import SparkEngine

            spark = SparkEngine.open(str(Path(input_dir).absolute()), spark_master, spark_settings)
            engine_args = {"engine_stages": spark_stages(spark), "engine": spark.describe()}
        with progress_bars(quiet) as progress:
            summary = run_pipeline(
                input_dir,
                out,
                cfg,
                progress=progress,
                stages=stage,
                neo4j=target,
                previous_run=previous,
                **engine_args,
            )
    except PreviousRunError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    except Neo4jStoreError as exc:
        store_failure(exc)
    except InputError as exc:
        invalid_input(input_dir, exc.issues)
    finally:
        if spark is not None:
            spark.close()
    if not quiet:
        console.print(key_values(run_summary_rows(summary), title="graphkit run"))
        report = summary.run_dir / "report.html"
        if report.is_file():
            console.print(f"report: {report}")


def run_summary_rows(summary: RunSummary) -> list[tuple[str, object]]:
    """The short table ``graphkit run`` ends with: size, findings, model quality, tiers."""
    from graphkit.alerts import tier_summary

    manifest = summary.manifest
    graph = manifest["counts"]["graph"]
    outputs = manifest["counts"]["outputs"]
    rows: list[tuple[str, object]] = [
        ("run", f"{summary.run_dir} ({manifest['run_id']})"),
        (
            "graph",
            f"{sum(graph['nodes'].values()):,} nodes, {sum(graph['edges'].values()):,} edges",
        ),
    ]
    if "circle_summary.parquet" in outputs:
        rows.append(("guarantee circles", outputs["circle_summary.parquet"]))
    if "cluster_risk.parquet" in outputs:
        rows.append(("related-enterprise clusters", outputs["cluster_risk.parquet"]))
    flows = manifest.get("flows")
    if flows:
        rows.append(
            (
                "money into banned sectors",
                f"{flows['banned_share']:.1%} of drawn ({flows['banned_share_3plus']:.1%} "
                f"after >= 3 hops), {flows['drawdowns_reaching_banned']:,} drawdowns",
            )
        )
    models = manifest.get("model_eval", {}).get("models", {})
    if models:
        rows.append(
            (
                "test ROC-AUC",
                ", ".join(f"{name} {m['roc_auc']:.3f}" for name, m in models.items()),
            )
        )
    calibration = manifest.get("calibration")
    risk = manifest.get("model_eval", {}).get("scores", {}).get("columns", {}).get("risk_score")
    if risk:
        rows.append(
            (
                "risk_score (test)",
                f"ROC-AUC {risk['roc_auc']:.3f}, Brier {risk['brier']:.4f}, ECE {risk['ece']:.4f} "
                f"({calibration['method']} calibrated)",
            )
        )
    elif calibration:
        rows.append(("risk_score", f"uncalibrated: {calibration.get('reason', '')}"))
    if (summary.run_dir / "alerts.csv").is_file():
        rows.append(("tiers", tier_summary(summary.run_dir)))
    rows.append(("time", f"{sum(manifest['timings_seconds'].values()):.1f} s"))
    return rows


def validate(
    input_dir: InputDir,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    require_control: Annotated[
        bool,
        typer.Option(
            "--require-control",
            help="Refuse a directory without _control.csv or _control.json (scheduled jobs).",
        ),
    ] = False,
) -> None:
    """Check an input directory against the input contract, and against its control totals
    when it has them; exit 2 on any error.

    Also lists the tables' extra columns (beyond the contract): their inferred kind, and whether
    the model will read them as features and why not. With ``--format table`` the list follows
    on stdout; with ``json`` or ``csv`` stdout holds only the issues and the list goes to stderr.
    """
    inspection = inspect_directory(input_dir, require_control=require_control)
    issues = inspection.issues
    if issues:
        print_frame(issues_frame(issues), format, title=f"{len(issues)} input error(s)")
        _print_extras(inspection.extras, format)
        raise typer.Exit(EXIT_INVALID_INPUT)
    if format == "json":
        print_frame(issues_frame([]), "json")
    else:
        err_console.print(f"[green]{input_dir}: valid[/]")
    _print_extras(inspection.extras, format)


def _print_extras(extras: list[Any], format: str) -> None:
    if not extras:
        return
    used = sum(e.feature for e in extras)
    title = f"extra columns: {used} of {len(extras)} will be model features"
    # Every column is listed, one a line (the reasons are long and read best unbroken): the list
    # is what a bank checks its own features against.
    out = console if format == "table" else err_console
    out.print(title, style="bold", markup=False, highlight=False)
    width = max(len(f"{e.table}.{e.column}") for e in extras)
    for e in extras:
        verdict = f"feature {e.feature_name}" if e.feature else f"not a feature: {e.reason}"
        out.print(
            f"  {e.table}.{e.column:<{width - len(e.table) - 1}}  {e.kind:<8}  {verdict}",
            markup=False,
            highlight=False,
        )
