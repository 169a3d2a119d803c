"""The live engine at git REF against this one on a prepared cut: start-up, memory, GC pauses.

``prepare``: cut an input at ``T``, run the batch pipeline (GNN off) on the rows before it into
``DIR/run`` and pickle the later rows as events (``DIR/events.pkl``), once, so that the runs below
start from the same run directory and apply the same events.

``ab``: both engines in one process: start-up CPU and the RSS each state adds, then every event
applied to both with the cyclic GC paused (the engines' own work: per-event CPU of each), and
whether both give the same flows, alert feed and tiers. Which engine takes an event first
alternates from one event to the next: the second to take an event finds its data warm in
the caches, which gave it 13-15% on p50, p99 and CPU in a run of one engine against itself
(``ab DIR REF`` with REF the working tree's own commit); ``--fixed-order`` keeps the old
order (ref first), to compare with figures taken that way.

``gc``: one engine alone (``REF`` or ``new``) with the GC on and the start-up heap frozen, as
the service runs it: per-event CPU (its tail includes the collector's pauses), every GC pause.

    python bench/live_ab.py prepare /work/data/net20k 2025-06-01 /tmp/livemem/p20k
    python bench/live_ab.py ab /tmp/livemem/p20k 9ab08b6            # [--fixed-order]
    python bench/live_ab.py gc /tmp/livemem/p20k 9ab08b6 new      # then ... 9ab08b6 9ab08b6

Each prints one JSON line (BENCHMARKS.md, "Memory, start-up and the GC's pauses").
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live import _load_engine
from graphkit.config import from_mapping
from graphkit.live import LiveState
from graphkit.live.replay import replay_config, split_tables, write_input
from graphkit.pipeline import run_pipeline
from loaders.sources import read_input

CONFIG = {"gnn": {"enabled": False}}


def prepare(data: Path, cut: str, out: Path) -> dict:
    at = datetime.fromisoformat(cut).replace(tzinfo=UTC)
    before, events = split_tables(read_input(data).tables, at)
    run_pipeline(write_input(before, out / "input"), out / "run", from_mapping(CONFIG))
    (out / "events.pkl").write_bytes(pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL))
    return {"events": len(events), "run": str(out / "run")}


def _stats(ns: list[int]) -> dict:
    us = np.array(ns) / 1000
    return {
        "events": len(us),
        "p50_us": round(float(np.percentile(us, 50)), 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "p999_us": round(float(np.percentile(us, 99.9)), 1),
        "max_us": round(float(us.max()), 1),
        "cpu_s": round(float(us.sum()) / 1e6, 2),
    }


def _by_type(costs: dict[str, list[int]]) -> dict:
    every = [c for v in costs.values() for c in v]
    return {"all": _stats(every), **{k: _stats(v) for k, v in sorted(costs.items())}}


def apply_both(first: tuple, second: tuple, at: int) -> tuple[int, int]:
    """Apply one event to two engines, ``(engine, event)`` each, in this order: thread CPU ns of
    each. The one applied second finds the event's data in the caches, hence ``ab`` alternates."""
    clock = time.thread_time_ns
    t0 = clock()
    first[0].apply(first[1], at=at)
    t1 = clock()
    second[0].apply(second[1], at=at)
    return t1 - t0, clock() - t1


def ab(prepared: Path, ref: str, fixed_order: bool = False) -> dict:
    events = pickle.loads((prepared / "events.pkl").read_bytes())
    config = replay_config(from_mapping(CONFIG), events)
    base = _load_engine(ref, Path(tempfile.mkdtemp()))
    process = psutil.Process()
    gc.collect()
    rss0 = process.memory_info().rss
    cpu = time.process_time()
    old = base.LiveState.from_run(prepared / "run", config)
    startup_old = time.process_time() - cpu
    gc.collect()
    rss1 = process.memory_info().rss
    cpu = time.process_time()
    new = LiveState.from_run(prepared / "run", config)
    startup_new = time.process_time() - cpu
    gc.collect()
    rss2 = process.memory_info().rss
    gc.freeze()
    gc.disable()
    cost_old: dict[str, list[int]] = {}
    cost_new: dict[str, list[int]] = {}
    for i, (at, event) in enumerate(events):
        twin = base.Event(event.type, event.table, event.values, event.ts, event.key)
        if fixed_order or i % 2 == 0:
            old_ns, new_ns = apply_both((old, twin), (new, event), at)
        else:
            new_ns, old_ns = apply_both((new, event), (old, twin), at)
        cost_old.setdefault(event.type, []).append(old_ns)
        cost_new.setdefault(event.type, []).append(new_ns)
    gc.enable()
    keys = ("banned_amount", "banned_amount_3plus", "min_hops_to_banned", "capped")
    flows = [
        {r["drawdown_id"]: [r[k] for k in keys] for r in state.flows.results()}
        for state in (old, new)
    ]
    feeds = [[(a.customer_id, a.rule, a.tier) for a in state.feed] for state in (old, new)]
    return {
        "mode": "ab",
        "ref": ref,
        "order": "ref first" if fixed_order else "alternating per event",
        "events": len(events),
        "startup_cpu_s": [round(startup_old, 2), round(startup_new, 2)],
        "state_rss_mb": [round((rss1 - rss0) / 2**20), round((rss2 - rss1) / 2**20)],
        "same_results": {
            "flows": flows[0] == flows[1],
            "alert_feed": feeds[0] == feeds[1],
            "tiers": old.tier == new.tier,
        },
        "gc_paused": {"ref": _by_type(cost_old), "new": _by_type(cost_new)},
    }


def gc_on(prepared: Path, ref: str, which: str) -> dict:
    events = pickle.loads((prepared / "events.pkl").read_bytes())
    config = replay_config(from_mapping(CONFIG), events)
    base = _load_engine(ref, Path(tempfile.mkdtemp()))
    engine = LiveState if which == "new" else base.LiveState
    process = psutil.Process()
    gc.collect()
    rss0 = process.memory_info().rss
    cpu = time.process_time()
    state = engine.from_run(prepared / "run", config)
    startup = time.process_time() - cpu
    gc.collect()
    rss1 = process.memory_info().rss
    gc.freeze()
    pauses: list[int] = []
    started = [0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter_ns()
        else:
            pauses.append(time.perf_counter_ns() - started[0])

    gc.callbacks.append(on_gc)
    costs: dict[str, list[int]] = {}
    for at, event in events:
        if engine is not LiveState:
            event = base.Event(event.type, event.table, event.values, event.ts, event.key)
        t0 = time.thread_time_ns()
        state.apply(event, at=at)
        costs.setdefault(event.type, []).append(time.thread_time_ns() - t0)
    gc.callbacks.remove(on_gc)
    return {
        "mode": "gc",
        "engine": which,
        "events": len(events),
        "startup_cpu_s": round(startup, 2),
        "state_rss_mb": round((rss1 - rss0) / 2**20),
        "end_rss_mb": round((process.memory_info().rss - rss0) / 2**20),
        "per_event_cpu": _by_type(costs),
        "gc": {
            "pauses": len(pauses),
            "total_s": round(sum(pauses) / 1e9, 2),
            "max_ms": round(max(pauses, default=0) / 1e6, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("prepare", help="cut INPUT at T: batch run before it, events after")
    p.add_argument("input", type=Path)
    p.add_argument("cut", help="the cut, an ISO date or time")
    p.add_argument("out", type=Path, help="the prepared directory to write")
    p = modes.add_parser("ab", help="the engine at REF against this one, in one process")
    p.add_argument("prepared", type=Path)
    p.add_argument("ref", help="git commit of the baseline engine")
    p.add_argument("--fixed-order", action="store_true", help="always apply to REF first")
    p = modes.add_parser("gc", help="one engine alone with the GC on, as the service runs it")
    p.add_argument("prepared", type=Path)
    p.add_argument("ref", help="git commit whose engine to load when WHICH is REF")
    p.add_argument("which", help="'new' for this tree's engine, else REF's")
    args = parser.parse_args()
    if args.mode == "prepare":
        out = prepare(args.input, args.cut, args.out)
    elif args.mode == "ab":
        out = ab(args.prepared, args.ref, args.fixed_order)
    else:
        out = gc_on(args.prepared, args.ref, args.which)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
