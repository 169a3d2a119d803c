"""The live state's start-up re-trace: how fast open windows are traced, and how far each reaches.

Builds the live state of a run directory as the service does (``LiveState.from_run``) up to the
re-trace of the drawdowns whose window is still open, then re-traces a random sample of
``--sample`` of them (seeded) instead of all, and reports: open windows, re-traces per second
(wall and CPU), reach-table entries per trace (the accounts its search reached before its
first sink, window or hop limit), holdings rows per trace (the accounts its money reached), how
many reached a sink, and the build's time up to the re-trace. The whole re-trace's time and
the state's reach memory follow by proportion (the sample is random, so this is its mean; the
first windows in a run's order are the oldest and cost more).

Why a sample: at the 5M-node network the whole re-trace did not finish in the time a bench
run has (BENCHMARKS.md, "5M nodes: the start-up step by step").

    python bench/live_retrace.py --run /tmp/servesweep/serve-net20k/run --name net20k
    flock /work/wt/_notes/bigmem.lock python bench/live_retrace.py \
        --run /tmp/servesweep/serve-net1000k/run --name net1000k --sample 5000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import max_rss_mb, write_result
from graphkit.live import LiveState


class _Sampled(Exception):
    """Raised once the sample is re-traced: the rest of the build is not measured."""


def measure(run: Path, sample: int, seed: int) -> dict[str, Any]:
    result: dict[str, Any] = {"run": str(run), "sample": sample, "seed": seed}
    retrace = LiveState._retrace
    started, cpu = time.perf_counter(), time.process_time()

    def sampled(state: LiveState, opened: Any, progress: Any) -> None:
        result["build_before_retrace_s"] = round(time.perf_counter() - started, 1)
        picked = opened.sample(sample, seed=seed) if opened.height > sample else opened
        flows = state.flows
        wall, used = time.perf_counter(), time.process_time()
        retrace(state, picked, progress)
        wall, used = time.perf_counter() - wall, time.process_time() - used
        n = max(picked.height, 1)
        entries = sum(len(table) for table in flows.reach.values())
        rows = sum(table.n for table in flows.holdings.values())
        result.update(
            open_windows=opened.height,
            retraced=picked.height,
            retrace_wall_s=round(wall, 2),
            retrace_cpu_s=round(used, 2),
            retraces_per_s=round(picked.height / wall, 1),
            retraces_per_cpu_s=round(picked.height / max(used, 1e-9), 1),
            reach_entries_per_trace=round(entries / n, 1),
            holdings_rows_per_trace=round(rows / n, 1),
            reached_a_sink=sum(1 for t in flows.traces.values() if t.min_hops is not None),
            whole_retrace_estimate_s=round(opened.height * wall / n),
            whole_reach_entries_estimate=round(opened.height * entries / n),
        )
        raise _Sampled

    LiveState._retrace = sampled  # type: ignore[method-assign]
    try:
        LiveState.from_run(run)
    except _Sampled:
        pass
    finally:
        LiveState._retrace = retrace  # type: ignore[method-assign]
    result["cpu_s"] = round(time.process_time() - cpu, 1)
    result["peak_rss_mb"] = round(max_rss_mb())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("/tmp/servesweep/serve-net20k/run"))
    parser.add_argument("--name", default="net20k", help="results: live_retrace_<name>.json")
    parser.add_argument("--sample", type=int, default=5000, help="open windows re-traced")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = measure(args.run, args.sample, args.seed)
    print(
        f"{args.name}: {result['open_windows']:,} open windows; {result['retraced']:,} "
        f"re-traced at {result['retraces_per_s']:,}/s ({result['retraces_per_cpu_s']:,} per CPU "
        f"s): whole re-trace ~{result['whole_retrace_estimate_s']:,} s; reach entries per trace "
        f"{result['reach_entries_per_trace']} (whole ~{result['whole_reach_entries_estimate']:,}),"
        f" holdings rows per trace {result['holdings_rows_per_trace']}, "
        f"{result['reached_a_sink']:,} reached a sink; build before it "
        f"{result['build_before_retrace_s']} s, peak RSS {result['peak_rss_mb']:,} MB"
    )
    print(f"-> {write_result(f'live_retrace_{args.name}', {'results': result})}")


if __name__ == "__main__":
    main()
