"""Benchmark fund-flow tracing against the plain per-drawdown references, in the same run.

1. A generated graph with >= 100k transfers. The vectorised kernels trace *every* drawdown; the
   references (the same ones the property tests use: a depth-first search over time-respecting
   simple paths, and a one-transfer-at-a-time replay of the ``first`` rule, with adjacency
   lists and binary search so they are not needlessly slow) trace a random sample. Both are
   compared per drawdown (seconds / drawdown), and the sample's answers must agree.
   The product prunes taint that cannot reach a sink in the hops left (exact, see
   ``docs/flows.md``); the full replay without pruning is timed too, because on data where most
   accounts can reach a sink the pruning helps less.
2. Time and peak memory (RSS high-water mark of a fresh process) of ``trace_flows`` on the
   largest generated graphs we can run.

Usage: ``.venv/bin/python bench/flows.py [--customers 20000] [--sample 300]
[--large 100000,300000]``. Prints a table, writes ``bench/results/flows.json``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphkit.analytics.flows import (  # noqa: E402
    FlowIndex,
    banned_amounts,
    evidence_paths,
    reach,
    round_trips,
)
from graphkit.config import FlowsConfig  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from loaders.synthetic import generate_tables  # noqa: E402

US_PER_DAY = 86_400_000_000


class Reference:
    """The plain per-drawdown algorithms, over Python lists."""

    def __init__(self, graph: RiskGraph, window_days: float, max_hops: int) -> None:
        t = graph.edges["transfer"].with_columns(us=pl.col("ts").dt.epoch("us"))
        self.rows = sorted(
            zip(
                t.get_column("us").to_list(),
                t.get_column("transfer_id").to_list(),
                t.get_column("src").to_list(),
                t.get_column("dst").to_list(),
                t.get_column("amount").to_list(),
                strict=True,
            )
        )
        self.times = [r[0] for r in self.rows]
        self.out: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
        for us, _, src, dst, amount in self.rows:
            self.out[src].append((us, dst, amount))
        self.out_times = {a: [r[0] for r in rows] for a, rows in self.out.items()}
        self.sinks = set(np.flatnonzero(graph.banned_sink_accounts()).tolist())
        self.window = round(window_days * US_PER_DAY)
        self.max_hops = max_hops

    def min_hops(self, a0: int, t0: int) -> int | None:
        """Exhaustive DFS over simple time-respecting paths."""
        if a0 in self.sinks:
            return 0
        end, best = t0 + self.window, [None]

        def dfs(account: int, last: int, visited: set[int], depth: int) -> None:
            if depth == self.max_hops:
                return
            rows = self.out.get(account, [])
            for i in range(bisect.bisect_left(self.out_times.get(account, []), last), len(rows)):
                us, dst, _ = rows[i]
                if us > end:
                    break
                if dst in visited:
                    continue
                if dst in self.sinks:
                    if best[0] is None or depth + 1 < best[0]:
                        best[0] = depth + 1
                else:
                    visited.add(dst)
                    dfs(dst, us, visited, depth + 1)
                    visited.discard(dst)

        dfs(a0, t0, {a0}, 0)
        return best[0]

    def first(self, a0: int, x: float, t0: int) -> list[float]:
        """The ``first`` rule, one transfer at a time over the window."""
        taint: dict[tuple[int, int], float] = defaultdict(float)
        taint[(a0, 0)] = x
        lo = bisect.bisect_left(self.times, t0)
        hi = bisect.bisect_right(self.times, t0 + self.window)
        for _, _, src, dst, amount in self.rows[lo:hi]:
            if src in self.sinks:
                continue
            need, moves = amount, []
            for layer in range(self.max_hops):
                have = taint.get((src, layer), 0.0)
                if have > 0 and need > 0:
                    take = min(need, have)
                    moves.append((layer, take))
                    need -= take
            for layer, take in moves:
                taint[(src, layer)] -= take
                taint[(dst, layer + 1)] += take
        banned = [0.0] * (self.max_hops + 1)
        for (account, layer), amount in taint.items():
            if account in self.sinks:
                banned[layer] += amount
        return banned


def timed(fn, *args, repeat: int = 3, **kwargs):
    """Result and the best of ``repeat`` wall times (the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def compare(customers: int, sample: int, seed: int) -> dict:
    data = generate_tables(customers, seed)
    graph = RiskGraph.from_tables(data.tables)
    cfg = FlowsConfig()
    w, h, big = cfg.window_days, cfg.max_hops, 10**9
    index, t_index = timed(FlowIndex.build, graph, repeat=1)
    n_dd = index.n_drawdowns
    hops, t_reach = timed(reach, index, window_days=w, max_hops=h, max_expand_per_hop=big)
    reached = hops.filter(pl.col("min_hops_to_banned").is_not_null()).get_column("drawdown_id")
    _, t_paths = timed(
        evidence_paths,
        index,
        reached,
        window_days=w,
        max_hops=h,
        paths_per_drawdown=cfg.evidence_paths,
        max_expand_per_hop=cfg.max_expand_per_hop,
        max_paths_per_drawdown=cfg.max_paths_per_drawdown,
    )
    vec = {"index": t_index, "reach": t_reach, "evidence_paths": t_paths}
    amounts = {}
    for policy in ("first", "fifo", "proportional"):
        amounts[policy], vec[f"amount_{policy}"] = timed(
            banned_amounts,
            index,
            policy=policy,
            window_days=w,
            max_hops=h,
            max_expand_per_hop=big,
        )
    full, vec["amount_first_no_prune"] = timed(
        banned_amounts,
        index,
        policy="first",
        window_days=w,
        max_hops=h,
        max_expand_per_hop=big,
        prune=False,
        repeat=1,
    )
    _, vec["round_trips"] = timed(
        round_trips,
        index,
        window_days=cfg.cycle_window_days,
        max_length=cfg.cycle_max_length,
        max_cycles=cfg.max_cycles,
        max_expand_per_hop=cfg.max_expand_per_hop,
    )

    ref = Reference(graph, w, h)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n_dd, size=min(sample, n_dd), replace=False))
    chain_ids = data.truth["chains"].get_column("drawdown_id")
    chosen = np.union1d(chosen, index.positions(chain_ids)[: max(sample // 10, 1)])
    # the DFS is cheap per drawdown: a sample ten times larger, best of three like the kernels
    reach_sample = np.union1d(
        np.sort(rng.choice(n_dd, size=min(10 * sample, n_dd), replace=False)), chosen
    )

    def reference_reach() -> list[int | None]:
        return [
            ref.min_hops(int(a), int(t))
            for a, t in zip(index.dd_account[reach_sample], index.dd_ts[reach_sample], strict=True)
        ]

    ref_hops, t_ref_reach = timed(reference_reach)
    a0, x0, t0 = index.dd_account[chosen], index.dd_amount[chosen], index.dd_ts[chosen]
    start = time.perf_counter()
    ref_first = [ref.first(int(a), float(x), int(t)) for a, x, t in zip(a0, x0, t0, strict=True)]
    t_ref_first = time.perf_counter() - start
    mine_hops = hops.get_column("min_hops_to_banned").gather(reach_sample).to_list()
    agree_reach = mine_hops == ref_hops
    agree_first = bool(
        np.allclose(amounts["first"].banned[chosen], np.array(ref_first), atol=1e-6)
        and np.allclose(full.banned[chosen], np.array(ref_first), atol=1e-6)
    )
    per = {
        "reach_vectorised": t_reach / n_dd,
        "reach_reference": t_ref_reach / len(reach_sample),
        "first_vectorised": vec["amount_first"] / n_dd,
        "first_vectorised_no_prune": vec["amount_first_no_prune"] / n_dd,
        "first_reference": t_ref_first / len(chosen),
    }
    return {
        "customers": customers,
        "seed": seed,
        "transfers": len(index.amount),
        "drawdowns": n_dd,
        "accounts": index.n_accounts,
        "reference_sample": len(chosen),
        "reference_sample_reach": len(reach_sample),
        "seconds_all_drawdowns": vec,
        "reference_seconds_sample": {"reach": t_ref_reach, "first": t_ref_first},
        "seconds_per_drawdown": per,
        "speedup": {
            "reach": per["reach_reference"] / per["reach_vectorised"],
            "first": per["first_reference"] / per["first_vectorised"],
            "first_no_prune": per["first_reference"] / per["first_vectorised_no_prune"],
        },
        "agree": {"reach": agree_reach, "first": agree_first},
    }


LARGE_SCRIPT = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from loaders.synthetic import generate_tables
from graphkit.graph import RiskGraph
from graphkit.analytics.flows import trace_flows
from graphkit.config import FlowsConfig
data = generate_tables({customers}, {seed})
graph = RiskGraph.from_tables(data.tables)
del data
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
result = trace_flows(graph, FlowsConfig(policy={policy!r}))
seconds = time.perf_counter() - start
print(json.dumps({{
    "customers": {customers}, "policy": {policy!r},
    "transfers": graph.edges["transfer"].height, "drawdowns": graph.edges["drawdown"].height,
    "accounts": graph.n("Account"), "seconds": seconds,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_after_generate_mb": rss_loaded / 1024,
    "banned_share_3plus": result.totals["banned_share_3plus"],
    "hub_cap_hit": result.totals["hub_cap_hit"],
}}))
"""


def large(customers: int, seed: int, policy: str) -> dict:
    script = LARGE_SCRIPT.format(root=str(ROOT), customers=customers, seed=seed, policy=policy)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return {"customers": customers, "policy": policy, "error": lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--large", default="100000,300000")
    args = parser.parse_args()

    result = compare(args.customers, args.sample, args.seed)
    print(
        f"graph: {result['customers']:,} customers, {result['transfers']:,} transfers, "
        f"{result['drawdowns']:,} drawdowns; reference on {result['reference_sample_reach']} "
        f"(reach) and {result['reference_sample']} (amounts) drawdowns"
    )
    print(f"{'kernel':<28}{'vectorised s/dd':>16}{'reference s/dd':>16}{'speedup':>10}{'agree':>7}")
    per, speed, agree = result["seconds_per_drawdown"], result["speedup"], result["agree"]
    for name, vec, ref, ratio, ok in (
        (
            "reach (min hops)",
            per["reach_vectorised"],
            per["reach_reference"],
            speed["reach"],
            agree["reach"],
        ),
        (
            "amount, first",
            per["first_vectorised"],
            per["first_reference"],
            speed["first"],
            agree["first"],
        ),
        (
            "amount, first, no pruning",
            per["first_vectorised_no_prune"],
            per["first_reference"],
            speed["first_no_prune"],
            agree["first"],
        ),
    ):
        print(f"{name:<28}{vec:>16.2e}{ref:>16.2e}{ratio:>9.0f}x{ok!s:>7}")
    print(
        "all-drawdown seconds:",
        {k: round(v, 2) for k, v in result["seconds_all_drawdowns"].items()},
    )

    larges = []
    for customers in [int(c) for c in args.large.split(",") if c]:
        for policy in ("first",):
            row = large(customers, args.seed, policy)
            larges.append(row)
            if "error" in row:
                print(f"large: {customers:,} customers: failed: {row['error']}")
                continue
            print(
                f"large: {row['customers']:,} customers, {row['transfers']:,} transfers, "
                f"{row['drawdowns']:,} drawdowns, policy {policy}: trace_flows "
                f"{row['seconds']:.1f}s, peak RSS {row['peak_rss_mb']:,.0f} MB "
                f"(after generating {row['rss_after_generate_mb']:,.0f} MB)"
            )
    out = {
        "machine": {
            "python": platform.python_version(),
            "cpus": 2,
            "load_note": "shared 2-core machine; timings are noisy",
        },
        "comparison": result,
        "large": larges,
        "max_rss_mb_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    path = ROOT / "bench" / "results" / "flows.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
