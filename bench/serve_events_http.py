"""Benchmark: ``graphkit serve``'s CPU per fresh event over HTTP, events only, step by step.

One fresh server (bench/serve.py's ``launch``: its own process, the service's defaults, a fresh
state directory) on a size's prepared run; then events-only steps of ``--seconds`` at the given
rates, in stream order (bench/serve.py's ``step``: one feeder, batches of 100), each followed by
waiting until the server has applied what it was sent. Per step: the server's user and system
CPU per applied event (from before the step until its backlog is applied), its loop stalls
past 20 ms, the event requests' p99. Successive steps show how the cost moves as the stream
goes on (the calibration of bench/serve.py is the first step only).

    GRAPHKIT_BENCH_DATA=/tmp/servesweep flock /work/wt/_notes/bigmem.lock \\
        python bench/serve_events_http.py --size net200k --rates 1000 5000 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_result
from bench.serve import SIZES, _scratch, free_port, launch, prepare, settle, step, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="net20k", choices=sorted(SIZES))
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 5000.0, 5000.0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    run_dir, events, requests = prepare(args.size)
    work = Path(tempfile.mkdtemp(prefix=f"serve-http-{args.size}-", dir=_scratch()))
    port = free_port()
    process, rss, startup = launch(run_dir, work, port)
    server = psutil.Process(process.pid)
    result: dict[str, Any] = {"size": args.size, "startup_seconds": round(startup, 1), "steps": []}
    cursor = 0
    try:
        for rate in args.rates:
            before = server.cpu_times()
            row, cursor = asyncio.run(
                step(port, 0, args.seconds, requests, events, rate, cursor, server)
            )
            row["after"] = settle(f"http://127.0.0.1:{port}")
            after = server.cpu_times()
            applied = max(row["events_applied"], 1)
            out = {
                "rate": rate,
                "events_applied": row["events_applied"],
                "user_us_per_event": round((after.user - before.user) / applied * 1e6, 1),
                "system_us_per_event": round((after.system - before.system) / applied * 1e6, 1),
                "server_loop_stalls_over_20ms": row["server_loop_stalls_over_20ms"],
                "event_batch_p99_ms": row["event_batch_p99_ms"],
                "load_average": os.getloadavg()[0],
            }
            result["steps"].append(out)
            print(json.dumps(out), flush=True)
    finally:
        stop(process, rss)
        result["peak_rss_mb"] = round(rss.peak / 2**20, 1)
        shutil.rmtree(work, ignore_errors=True)
    write_result(args.name or f"serve_events_http_{args.size}", {"results": result})


if __name__ == "__main__":
    main()
