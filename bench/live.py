"""Live engine benchmark: speed of events, start-up, memory, and time to flag planted risk.

For each size (customers; generated with ``graphkit generate`` into ``bench/data``):

1. cut the input at ``T`` (``--cut``, else ``--days`` before its last event), run the batch
   pipeline (GNN off: its training time is not what this measures) on the rows before ``T``;
2. start a :class:`graphkit.live.LiveState` from that run directory (start-up time, RSS);
3. apply every later row as an event, timing each (events/s, p50/p99/max per event, per type);
4. time to flag, on the generator's planted truth: for each planted risk visible after ``T``
   (laundering into banned sectors, guarantee circle with a defaulted member, device ring, five
   drawdowns on a day), the delay in event time from the event that made it visible to the
   customer's first orange or red tier (and first REVIEW/BLOCK decision) live, against a daily
   batch run (00:00 UTC, taking the measured batch time), median and p90.

5. the time to write the backtest tables from the final state (``replay.write_outputs``);
6. with ``--baseline REF``: the engine as of git ``REF`` (its ``graphkit/live`` files, loaded as
   a package of their own) against this one in the same process, each event applied to one
   then the other, GC paused, per type p50/p99/p99.9/max CPU, and whether both gave the same
   flows, alert feed and tiers: ratios that the machine's load cannot skew;
7. with ``--versus-batch``: ``graphkit run`` on the whole input against ``graphkit replay
   --cut T`` (each its own process, wall time, the replay's start-up/apply/write from its
   manifest).

``--data DIR`` runs on an existing input instead of generating ``--sizes`` (the shared networks
``/work/data/net20k``, ``net200k``, ``net1000k``; the 1M and 5M-node ones need the big-memory
lock). The "Neo4j shop" baseline is ``bench/neo4j_baseline.py``; the engine at a git ref against
this one with the GC on, start-up CPU and state RSS is ``bench/live_ab.py``.

    python bench/live.py --data /work/data/net20k --cut 2025-01-15 --versus-batch --name live_net20k
    python bench/live.py --sizes 20000 --cut 2025-01-15 --baseline main --versus-batch
    python bench/live.py --sizes 2000 --cut 2025-01-15     # time to flag over most of the data
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA_DIR, RssSampler, print_table, write_result
from graphkit.config import from_mapping
from graphkit.live import LiveState
from graphkit.live.events import US_PER_DAY, US_PER_SECOND, datetime_to_us
from graphkit.live.replay import (
    decision_row,
    replay_config,
    split_tables,
    write_input,
    write_outputs,
)
from graphkit.pipeline import run_pipeline
from loaders.sources import read_input

CONFIG = {"gnn": {"enabled": False}}


def dataset(customers: int) -> Path:
    path = (
        DATA_DIR / f"gen-{customers // 1000}k"
        if customers >= 1000
        else DATA_DIR / f"gen-{customers}"
    )
    if not (path / "customers.parquet").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "generate",
                str(path),
                "-n",
                str(customers),
                "--seed",
                "1",
                "-q",
            ],
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
    return path


def nodes(tables: dict[str, pl.DataFrame]) -> int:
    """Nodes of the risk graph: customers, accounts, merchants, sectors, credit lines, devices."""
    devices = pl.concat(
        [tables["device_links"]["device_id"], tables["drawdowns"]["device_id"].drop_nulls()]
    ).n_unique()
    return devices + sum(
        tables[t].height for t in ("customers", "accounts", "merchants", "sectors", "credit_lines")
    )


def last_event(tables: dict[str, pl.DataFrame]) -> datetime:
    return max(tables["drawdowns"]["ts"].max(), tables["transfers"]["ts"].max())


def measure(
    customers: int,
    cut: datetime | None,
    days: float,
    with_drift: bool,
    baseline: str | None = None,
    versus_batch: bool = False,
    data: Path | None = None,
) -> dict:
    path = data or dataset(customers)
    tables = read_input(path).tables
    customers = tables["customers"].height
    cut = cut or last_event(tables) - timedelta(days=days)
    versus = None
    if versus_batch:
        # the two processes first, while this one is small: after the events it still holds
        # the state's memory (freed, not given back), and at 1M nodes the replay process and
        # this one did not fit in the machine together
        del tables
        gc.collect()
        versus = replay_vs_batch(path, cut)
        tables = read_input(path).tables
    before, events = split_tables(tables, cut)
    config = replay_config(from_mapping(CONFIG), events)
    with tempfile.TemporaryDirectory(dir=DATA_DIR) as work:
        work = Path(work)
        clock = time.perf_counter()
        run_pipeline(write_input(before, work / "input"), work / "run", config)
        batch_seconds = time.perf_counter() - clock
        with RssSampler() as rss:
            rss.open("start")
            clock, cpu = time.perf_counter(), time.process_time()
            state = LiveState.from_run(work / "run", config)
            startup = time.perf_counter() - clock
            startup_cpu = time.process_time() - cpu
            start_rss = rss.close("start")
            rss.open("apply")
            costs: dict[str, list[int]] = {}
            walls: list[int] = []
            decisions: list[tuple[str, int, str]] = []
            rows: list[dict] = []
            # the start-up heap never changes shape: keep the cyclic GC from rescanning it (the
            # GC stays on, as in the service; graphkit replay pauses it for its loop)
            gc.freeze()
            pauses: list[int] = []

            def on_gc(phase: str, info: dict) -> None:
                if phase == "start":
                    on_gc.started = time.perf_counter_ns()  # type: ignore[attr-defined]
                else:
                    pauses.append(time.perf_counter_ns() - on_gc.started)  # type: ignore[attr-defined]

            gc.callbacks.append(on_gc)
            clock = time.perf_counter()
            for at, event in events:
                t0, w0 = time.thread_time_ns(), time.perf_counter_ns()
                result = state.apply(event, at=at)
                costs.setdefault(event.type, []).append(time.thread_time_ns() - t0)
                walls.append(time.perf_counter_ns() - w0)
                if event.type == "drawdown":
                    rows.append(decision_row(state, event, result))
                if result.decision is not None:
                    d = result.decision
                    decisions.append((d.customer_id, event.ts, d.decision))
            apply_seconds = time.perf_counter() - clock
            gc.callbacks.remove(on_gc)
            apply_rss = rss.close("apply")
            gc.unfreeze()
            clock = time.perf_counter()
            (work / "out").mkdir()
            write_seconds = write_outputs(state, rows, work / "out")
            write_total = time.perf_counter() - clock
    every = np.concatenate([np.array(v) for v in costs.values()]) / 1000 if costs else np.zeros(1)
    speed = {
        "customers": customers,
        "cut": cut.isoformat(),
        "events": len(events),
        "batch_seconds_before_cut": round(batch_seconds, 1),
        "dataset": str(path),
        "startup_seconds": round(startup, 2),
        "startup_cpu_seconds": round(startup_cpu, 2),
        "nodes": nodes(tables),
        "startup_peak_rss_mb": round(start_rss),
        "apply_seconds": round(apply_seconds, 2),
        "events_per_second": round(len(events) / apply_seconds) if apply_seconds else None,
        "p50_us": round(float(np.percentile(every, 50)), 1),
        "p99_us": round(float(np.percentile(every, 99)), 1),
        "p999_us": round(float(np.percentile(every, 99.9)), 1),
        "max_us": round(float(every.max()), 1),
        "wall_p50_us": round(float(np.percentile(walls, 50)) / 1000, 1) if walls else None,
        "wall_p99_us": round(float(np.percentile(walls, 99)) / 1000, 1) if walls else None,
        "apply_cpu_seconds": round(float(every.sum()) / 1e6, 2),
        "events_per_cpu_second": round(len(events) / max(float(every.sum()) / 1e6, 1e-9)),
        "gc_pauses": len(pauses),
        "gc_seconds": round(sum(pauses) / 1e9, 2),
        "gc_max_ms": round(max(pauses, default=0) / 1e6, 1),
        "write_seconds": round(write_total, 2),
        "write_seconds_by_table": write_seconds,
        "peak_rss_mb": round(max(start_rss, apply_rss)),
        "max_rss_mb_getrusage": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "per_type": {
            kind: {
                "events": len(v),
                "p50_us": round(float(np.percentile(np.array(v) / 1000, 50)), 1),
                "p99_us": round(float(np.percentile(np.array(v) / 1000, 99)), 1),
            }
            for kind, v in sorted(costs.items())
        },
    }
    flags = time_to_flag(path, tables, state, decisions, datetime_to_us(cut), batch_seconds)
    result = {"speed": speed, "time_to_flag": flags}
    if with_drift:
        result["drift"] = drift(path, state, config)
    del state
    if baseline:
        result["versus_baseline"] = versus_baseline(baseline, before, events, config)
    if versus is not None:
        result["replay_vs_batch"] = versus
    return result


def _load_engine(ref: str, into: Path):
    """The live engine as of git ``ref``, importable as a package of its own (``live_base``):
    its files from ``git show``, imports of ``graphkit.live`` pointed at it, and the loaders'
    names it used before they were made public renamed."""
    import importlib

    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(
        ["git", "ls-tree", "--name-only", ref, "graphkit/live/"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout.split()
    package = into / "live_base"
    package.mkdir()
    renames = {
        "graphkit.live": "live_base",
        "from live_base import rules": "import live_base.rules as rules",
        "from live_base import outputs": "import live_base.outputs as outputs",
        "_CHECK_TEXT": "CHECK_TEXT",
        "_BOOL_WORDS": "BOOL_WORDS",
        "import CHECK_TEXT, _key_text": "import CHECK_TEXT, key_text as _key_text",
    }
    for name in files:
        text = subprocess.run(
            ["git", "show", f"{ref}:{name}"], capture_output=True, text=True, check=True, cwd=root
        ).stdout
        for old, new in renames.items():
            text = text.replace(old, new)
        (package / Path(name).name).write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("live_base")


def versus_baseline(ref: str, before: dict, events: list, config) -> dict:
    """Per-event CPU of the engine at git ``ref`` against this one, in this process: both
    start from the same run directory and each event is applied to one then the other, so the
    machine's load hits both alike. The GC is paused (as graphkit replay does), so the ratio is
    the engines' own work. Also checks that both give the same fund flows and alert feed."""
    with tempfile.TemporaryDirectory(dir=DATA_DIR) as work:
        work = Path(work)
        run_pipeline(write_input(before, work / "input"), work / "run", config)
        base = _load_engine(ref, work)
        old = base.LiveState.from_run(work / "run", config)
        new = LiveState.from_run(work / "run", config)
        cost_old: dict[str, list[int]] = {}
        cost_new: dict[str, list[int]] = {}
        gc.freeze()
        gc.disable()
        try:
            for at, event in events:
                twin = base.Event(event.type, event.table, event.values, event.ts, event.key)
                t0 = time.thread_time_ns()
                old.apply(twin, at=at)
                t1 = time.thread_time_ns()
                new.apply(event, at=at)
                t2 = time.thread_time_ns()
                cost_old.setdefault(event.type, []).append(t1 - t0)
                cost_new.setdefault(event.type, []).append(t2 - t1)
        finally:
            gc.enable()
            gc.unfreeze()
        keys = ("banned_amount", "banned_amount_3plus", "min_hops_to_banned", "capped")
        flows_old = {r["drawdown_id"]: [r[k] for k in keys] for r in old.flows.results()}
        flows_new = {r["drawdown_id"]: [r[k] for k in keys] for r in new.flows.results()}
        same = {
            "flows": flows_old == flows_new,
            "alert_feed": [(a.customer_id, a.rule, a.tier) for a in old.feed]
            == [(a.customer_id, a.rule, a.tier) for a in new.feed],
            "tiers": old.tier == new.tier,
        }
    out: dict = {"ref": ref, "same_results": same, "per_type": {}}
    for kind in [*sorted(cost_old), "all"]:
        if kind == "all":
            a = np.concatenate([np.array(v) for v in cost_old.values()]) / 1000
            b = np.concatenate([np.array(v) for v in cost_new.values()]) / 1000
        else:
            a, b = np.array(cost_old[kind]) / 1000, np.array(cost_new[kind]) / 1000
        out["per_type"][kind] = {
            "events": len(a),
            **{
                f"{name}_us": [round(float(f(a)), 1), round(float(f(b)), 1)]
                for name, f in (
                    ("p50", lambda x: np.percentile(x, 50)),
                    ("p99", lambda x: np.percentile(x, 99)),
                    ("p999", lambda x: np.percentile(x, 99.9)),
                    ("max", np.max),
                )
            },
            "cpu_seconds": [round(float(a.sum()) / 1e6, 2), round(float(b.sum()) / 1e6, 2)],
        }
    return out


def replay_vs_batch(path: Path, cut: datetime) -> dict:
    """``graphkit run`` on the whole input against ``graphkit replay --cut`` (each its own
    process, wall seconds), with the replay's own timings from its manifest."""
    import json

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(dir=DATA_DIR) as work:
        work = Path(work)
        config = work / "graphkit.toml"
        config.write_text("[gnn]\nenabled = false\n")
        walls = {}
        for name, args in (
            ("batch_whole_input", ["run", str(path), "--out", str(work / "run")]),
            ("replay", ["replay", str(path), "--cut", cut.isoformat(), "--out", str(work / "rp")]),
        ):
            clock = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "cli", *args, "--config", str(config), "-q"],
                check=True,
                cwd=root,
            )
            walls[name] = round(time.perf_counter() - clock, 1)
        manifest = json.loads((work / "rp" / "manifest.json").read_text())
    return {
        "wall_seconds": walls,
        "replay_timings_seconds": manifest["timings_seconds"],
        "events": manifest["events"],
    }


def drift(path: Path, state: LiveState, config) -> dict:
    """What is not exact: tiers and clusters of the replay against batch on the whole input."""
    from sklearn.metrics import adjusted_rand_score

    from graphkit.live.outputs import alert_frames

    with tempfile.TemporaryDirectory(dir=DATA_DIR) as work:
        run_pipeline(path, Path(work) / "full", config)
        full_tiers = pl.read_parquet(Path(work) / "full" / "customer_alerts.parquet")
        full_clusters = pl.read_parquet(Path(work) / "full" / "clusters.parquet")
    _, tiers = alert_frames(state)
    joined = full_tiers.select("customer_id", "tier").join(
        tiers.select("customer_id", pl.col("tier").alias("live")), on="customer_id"
    )
    rank = {"green": 0, "yellow": 1, "orange": 2, "red": 3}
    higher = joined.filter(
        pl.col("live").replace_strict(rank) > pl.col("tier").replace_strict(rank)
    ).height
    lower = joined.filter(
        pl.col("live").replace_strict(rank) < pl.col("tier").replace_strict(rank)
    ).height
    live_clusters = pl.DataFrame(
        {"customer_id": list(state.cluster_of), "live": [str(c) for c in state.cluster_of.values()]}
    )
    both = (
        full_clusters.select("customer_id", pl.col("cluster_id").cast(pl.String))
        .join(live_clusters, on="customer_id", how="full", coalesce=True)
        .fill_null("none")
    )
    return {
        "customers": joined.height,
        "tier_same": joined.height - higher - lower,
        "tier_live_higher": higher,
        "tier_live_lower": lower,
        "cluster_ari": round(
            float(adjusted_rand_score(both["cluster_id"].to_list(), both["live"].to_list())), 4
        ),
        "provisional_members": len(state.provisional),
    }


def visible_times(path: Path, tables: dict[str, pl.DataFrame]) -> dict[str, list[tuple[str, int]]]:
    """Per planted risk kind, (customer, time the risk became visible) pairs."""
    truth = path / "_truth"
    us = {
        "transfers": dict(
            zip(
                tables["transfers"]["transfer_id"],
                tables["transfers"]["ts"].dt.epoch("us"),
                strict=True,
            )
        )
    }
    out: dict[str, list[tuple[str, int]]] = {}
    chains = pl.read_parquet(truth / "chains.parquet").filter(pl.col("kind") == "laundering")
    out["laundering into banned sectors"] = [
        (row["customer_id"], max(us["transfers"][t] for t in row["transfer_ids"]))
        for row in chains.iter_rows(named=True)
        if row["transfer_ids"]
    ]
    defaulted = set(tables["labels"].filter(pl.col("defaulted"))["customer_id"].to_list())
    guarantees = tables["guarantees"].with_columns(
        start_us=pl.col("start").cast(pl.Datetime("us")).dt.epoch("us")
    )
    circles = pl.read_parquet(truth / "circles.parquet").group_by("circle_id").agg("customer_id")
    pairs = []
    for members in circles["customer_id"]:
        if not defaulted & set(members):
            continue
        inside = guarantees.filter(
            pl.col("guarantor_id").is_in(members.to_list())
            & pl.col("borrower_id").is_in(members.to_list())
        )
        closed = inside["start_us"].max()
        if closed is not None:
            pairs += [(m, closed) for m in members]
    out["circle with a defaulted member"] = pairs
    links = tables["device_links"].with_columns(seen=pl.col("first_seen").dt.epoch("us"))
    rings = pl.read_parquet(truth / "rings.parquet").group_by("ring_id").agg("customer_id")
    pairs = []
    for members in rings["customer_id"]:
        seen = links.filter(pl.col("customer_id").is_in(members.to_list()))["seen"]
        if seen.len():
            pairs += [(m, seen.max()) for m in members]
    out["device ring"] = pairs
    bursts = pl.read_parquet(truth / "bursts.parquet")
    draws = (
        tables["drawdowns"]
        .join(tables["credit_lines"].select("line_id", "customer_id"), on="line_id")
        .with_columns(day=pl.col("ts").dt.date(), us=pl.col("ts").dt.epoch("us"))
        .sort("us")
    )
    fifth = (
        draws.join(bursts.select("customer_id", "day"), on=["customer_id", "day"])
        .group_by("customer_id", "day")
        .agg(pl.col("us").sort().get(4).alias("visible"))
    )
    out["five drawdowns on a day"] = list(zip(fifth["customer_id"], fifth["visible"], strict=True))
    return out


def time_to_flag(
    path: Path,
    tables: dict[str, pl.DataFrame],
    state: LiveState,
    decisions: list[tuple[str, int, str]],
    cut_us: int,
    batch_seconds: float,
) -> list[dict]:
    first_decision: dict[str, list[int]] = {}
    for customer, ts, decision in decisions:
        if decision in ("REVIEW", "BLOCK"):
            first_decision.setdefault(customer, []).append(ts)
    rows = []
    hours = 3_600 * US_PER_SECOND
    rank = {"green": 0, "yellow": 1, "orange": 2, "red": 3}
    target = {
        "laundering into banned sectors": state.policy.rule_tiers["banned_share"],
        "circle with a defaulted member": state.policy.rule_tiers["circle_default"],
        "device ring": state.policy.rule_tiers["ring"],
        "five drawdowns on a day": state.policy.rule_tiers["burst"],
    }
    for kind, pairs in visible_times(path, tables).items():
        first_tier: dict[str, int] = {}
        for customer, tier, at, _ in state.timeline:
            if rank[tier] >= rank[target[kind]] and at is not None and customer not in first_tier:
                first_tier[customer] = at
        flagged_before = {c for c, t in state.batch_tier.items() if rank[t] >= rank[target[kind]]}
        live, by_decision, batch, already, missed = [], [], [], 0, 0
        for customer, visible in pairs:
            if visible is None or visible < cut_us:
                continue
            next_run = (visible // US_PER_DAY + 1) * US_PER_DAY
            batch.append((next_run - visible) / hours + batch_seconds / 3600)
            if customer in flagged_before:
                already += 1
                live.append(0.0)
                continue
            at = first_tier.get(customer)
            if at is None:
                missed += 1
                continue
            live.append(max(at - visible, 0) / hours)
            later = [t for t in first_decision.get(customer, []) if t >= visible]
            if later:
                by_decision.append((min(later) - visible) / hours)
        rows.append(
            {
                "risk": kind,
                "policy_tier": target[kind],
                "cases": len(batch),
                "already_orange_at_cut": already,
                "not_flagged_live": missed,
                "live_median_h": _q(live, 50),
                "live_p90_h": _q(live, 90),
                "live_decision_median_h": _q(by_decision, 50),
                "batch_median_h": _q(batch, 50),
                "batch_p90_h": _q(batch, 90),
            }
        )
    return rows


def _q(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000", help="customers, comma-separated")
    parser.add_argument(
        "--data",
        default=None,
        help="an input directory to use instead of generating --sizes (e.g. /work/data/net200k)",
    )
    parser.add_argument("--cut", default=None, help="ISO time; default: --days before the end")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--name", default="live")
    parser.add_argument("--drift", action="store_true", help="also run batch on everything")
    parser.add_argument(
        "--baseline",
        default=None,
        help="git ref of an earlier engine: per-event CPU of both in this process (ratios)",
    )
    parser.add_argument(
        "--versus-batch",
        action="store_true",
        help="also time graphkit run on the whole input and graphkit replay --cut (processes)",
    )
    args = parser.parse_args()
    cut = datetime.fromisoformat(args.cut).replace(tzinfo=UTC) if args.cut else None
    if args.data:
        results = [
            measure(
                0, cut, args.days, args.drift, args.baseline, args.versus_batch, Path(args.data)
            )
        ]
    else:
        results = [
            measure(int(n), cut, args.days, args.drift, args.baseline, args.versus_batch)
            for n in args.sizes.split(",")
        ]
    print_table(
        "live engine: speed",
        [
            "customers",
            "events",
            "events/s",
            "p50 us",
            "p99 us",
            "start-up s",
            "peak RSS MB",
            "batch s",
        ],
        [
            [
                r["speed"]["customers"],
                r["speed"]["events"],
                r["speed"]["events_per_second"],
                r["speed"]["p50_us"],
                r["speed"]["p99_us"],
                r["speed"]["startup_seconds"],
                r["speed"]["peak_rss_mb"],
                r["speed"]["batch_seconds_before_cut"],
            ]
            for r in results
        ],
    )
    for r in results:
        speed = r["speed"]
        print_table(
            f"per event type, {speed['customers']:,} customers (CPU us; GC on, start-up frozen)",
            ["type", "events", "p50 us", "p99 us"],
            [[k, v["events"], v["p50_us"], v["p99_us"]] for k, v in speed["per_type"].items()],
        )
        print_table(
            f"writing the backtest tables, {speed['customers']:,} customers (s)",
            [*speed["write_seconds_by_table"], "total"],
            [[*speed["write_seconds_by_table"].values(), speed["write_seconds"]]],
        )
        if "versus_baseline" in r:
            base = r["versus_baseline"]
            print_table(
                f"this engine against {base['ref']} in one process (CPU us, GC paused; "
                f"same results: {base['same_results']})",
                ["type", "events", "p50", "p99", "p99.9", "max", "CPU s", "p99 ratio"],
                [
                    [
                        kind,
                        v["events"],
                        f"{v['p50_us'][0]} -> {v['p50_us'][1]}",
                        f"{v['p99_us'][0]} -> {v['p99_us'][1]}",
                        f"{v['p999_us'][0]} -> {v['p999_us'][1]}",
                        f"{v['max_us'][0]:.0f} -> {v['max_us'][1]:.0f}",
                        f"{v['cpu_seconds'][0]} -> {v['cpu_seconds'][1]}",
                        round(v["p99_us"][0] / max(v["p99_us"][1], 0.1), 2),
                    ]
                    for kind, v in base["per_type"].items()
                ],
            )
        if "replay_vs_batch" in r:
            vs = r["replay_vs_batch"]
            print_table(
                "graphkit replay against graphkit run on the whole input (wall s)",
                ["batch, whole input", "replay (command)", "replay: start-up", "apply", "write"],
                [
                    [
                        vs["wall_seconds"]["batch_whole_input"],
                        vs["wall_seconds"]["replay"],
                        vs["replay_timings_seconds"]["startup"],
                        vs["replay_timings_seconds"]["apply"],
                        vs["replay_timings_seconds"].get("write", "-"),
                    ]
                ],
            )
    for r in results:
        print_table(
            f"time to flag, {r['speed']['customers']:,} customers (hours of event time)",
            [
                "risk",
                "tier",
                "cases",
                "already",
                "missed",
                "live med",
                "live p90",
                "REVIEW/BLOCK med",
                "batch med",
                "batch p90",
            ],
            [list(row.values()) for row in r["time_to_flag"]],
        )
    for r in results:
        if "drift" in r:
            print_table(
                "drift against batch on everything", list(r["drift"]), [list(r["drift"].values())]
            )
    write_result(args.name, {"results": results, "config": CONFIG})


if __name__ == "__main__":
    main()
