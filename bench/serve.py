"""Benchmark: ``graphkit serve`` decision latency under open-loop load, events streaming alongside.

For each size (``sample`` = data/sample, ``100k`` = a generated network of about 100k nodes):

1. prepare (cached under bench/data/serve-<size>/): the input's rows before a cut become a batch
   run (the stages the live state reads; no GNN), the rows after it the live event stream;
2. start ``graphkit serve`` on that run in a subprocess on a free loopback port, with a fresh
   state directory; start-up time = process start until ``/readyz`` answers 200;
3. for each decision rate R (ascending): for ``--seconds`` seconds send ``POST
   /v1/decisions/drawdown`` open-loop, i.e. on a fixed schedule of R per second whatever the
   answers do, and at the same time ``POST /v1/events`` batches at ``--events-rate`` events per
   second (the stream in order; once it is used up it starts again, and the repeats are
   duplicates, which the service answers without applying). Latency is measured from each
   request's *scheduled* send time, so a server that falls behind is charged for the queue
   (no coordinated omission);
4. report p50 / p99 / p99.9 per rate, the highest rate whose p99 stays under ``--target-ms``,
   the service's peak RSS, and write bench/results/serve.json.

The load generator runs on the same 2 cores as the server (loopback only), so it takes CPU from
it: the numbers are a floor. Counts and time are bounded (R x seconds requests per step; a step
whose p99 exceeds 10x the target ends the sweep).

Not done here: the Neo4j-per-request baseline (the same decision answered by the Cypher library
on Neo4j) and the 1M / 5M-node states; see BENCHMARKS.md.

    python bench/serve.py --size sample --size 100k
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA_DIR, ROOT, print_table, write_result

SIZES: dict[str, dict[str, Any]] = {
    # data/sample and the generator end 2025-06-30; June is the stream.
    "sample": {"input": ROOT / "data" / "sample", "cut": datetime(2025, 6, 1, tzinfo=UTC)},
    # about 100k nodes (bench/pipeline_scale.py "small": 20,000 customers)
    "100k": {"customers": 20_000, "cut": datetime(2025, 6, 1, tzinfo=UTC)},
}
STAGES = ["circles", "rings", "flows", "clusters", "contagion", "alerts"]
DEFAULT_RATES = [100, 250, 500, 1000, 1500, 2000, 3000]
EVENT_BATCH = 100
DRAIN_SECONDS = 60.0  # after the last scheduled send, how long answers are waited for


# -- data ---------------------------------------------------------------------------------------


def prepare(size: str) -> tuple[Path, list[dict[str, Any]], list[bytes]]:
    """(run directory, event stream, encoded decision requests) for ``size``, cached."""
    from graphkit.config import load_config
    from graphkit.live.replay import prepare_replay
    from graphkit.pipeline import run_pipeline
    from loaders.synthetic import generate

    spec = SIZES[size]
    root = DATA_DIR / f"serve-{size}"
    run_dir, events_path = root / "run", root / "events.json"
    if not (run_dir / "manifest.json").is_file() or not events_path.is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        input_dir = spec.get("input")
        if input_dir is None:
            input_dir = root / "input"
            generate(input_dir, spec["customers"], seed=0)
        batch_input, later = prepare_replay(input_dir, spec["cut"], root / "prep")
        run_pipeline(batch_input, run_dir, load_config(None), stages=STAGES)
        events_path.write_text(json.dumps([e.to_dict() for _, e in later]))
    events = json.loads(events_path.read_text())
    drawdowns = pl.read_parquet(root / "prep" / "input" / "drawdowns.parquet").tail(2000)
    ts = spec["cut"].isoformat()
    requests = [
        json.dumps(
            {
                "line_id": r["line_id"],
                "account_id": r["account_id"],
                "amount": r["amount"],
                "ts": ts,
            }
        ).encode()
        for r in drawdowns.iter_rows(named=True)
    ]
    return run_dir, events, requests


# -- a minimal HTTP/1.1 keep-alive client (the generator must cost the server little CPU) -------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: bytes, body: bytes) -> int:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path, len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


class Pool:
    """Idle connections; a request that finds none opens a new one (open loop: never waits)."""

    def __init__(self, port: int) -> None:
        self.port, self.idle = port, []

    async def post(self, path: bytes, body: bytes) -> int:
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await Connection.open(self.port)
        try:
            status = await conn.post(path, body)
        except (OSError, asyncio.IncompleteReadError):
            conn.writer.close()
            if not reused:
                return 599
            # The server closes connections idle past its keep-alive timeout: reconnect once.
            conn = await Connection.open(self.port)
            try:
                status = await conn.post(path, body)
            except (OSError, asyncio.IncompleteReadError):
                conn.writer.close()
                return 599
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for conn in self.idle:
            conn.writer.close()


async def open_loop(
    rate: float, seconds: float, send: Any, latencies: list[float], statuses: list[int]
) -> None:
    """Call ``send(i)`` on a fixed schedule of ``rate`` per second for ``seconds``."""
    loop = asyncio.get_running_loop()
    count = max(1, int(rate * seconds))
    start = loop.time() + 0.05
    tasks = []

    async def one(i: int, due: float) -> None:
        status = await send(i)
        latencies.append(loop.time() - due)
        statuses.append(status)

    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    _, late = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
    for task in late:  # not answered within the drain time: counted as failures at that time
        task.cancel()
        latencies.append(loop.time() - start)
        statuses.append(0)


async def step(
    port: int,
    rate: float,
    seconds: float,
    requests: list[bytes],
    events: list[dict[str, Any]],
    events_rate: float,
    cursor: int,
    server: psutil.Process,
) -> tuple[dict[str, Any], int]:
    decisions, events_pool = Pool(port), Pool(port)
    d_lat: list[float] = []
    d_status: list[int] = []
    e_lat: list[float] = []
    e_status: list[int] = []
    batches = max(1, int(events_rate * seconds / EVENT_BATCH))
    bodies = []
    for _ in range(batches):
        part = [events[(cursor + k) % len(events)] for k in range(EVENT_BATCH)]
        cursor += EVENT_BATCH
        bodies.append(json.dumps({"events": part}).encode())

    async def decide(i: int) -> int:
        return await decisions.post(b"/v1/decisions/drawdown", requests[i % len(requests)])

    async def post_events(i: int) -> int:
        return await events_pool.post(b"/v1/events", bodies[i])

    runs = [open_loop(rate, seconds, decide, d_lat, d_status)]
    if events_rate > 0:
        runs.append(open_loop(batches / seconds, seconds, post_events, e_lat, e_status))
    cpu_before = _cpu(server)
    started = time.perf_counter()
    await asyncio.gather(*runs)
    elapsed = time.perf_counter() - started
    cpu = _cpu(server) - cpu_before
    decisions.close()
    events_pool.close()
    ms = np.array(d_lat) * 1000
    row = {
        "rate": rate,
        "sent": len(d_lat),
        "errors": sum(1 for s in d_status if s != 200),
        "error_statuses": sorted(set(d_status) - {200}),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 2),
        "max_ms": round(float(ms.max()), 2),
        "achieved_per_s": round(len(d_lat) / elapsed, 1),
        "events_offered_per_s": round(len(e_lat) * EVENT_BATCH / elapsed, 1),
        # accepted (logged and answered 200), not refused as busy
        "events_per_s": round(e_status.count(200) * EVENT_BATCH / elapsed, 1),
        "event_batches_busy": sum(1 for s in e_status if s == 503),
        "event_batches_failed": sum(1 for s in e_status if s not in (200, 503)),
        "server_cpu_s": round(cpu, 3),
        "event_batch_p99_ms": round(float(np.percentile(np.array(e_lat) * 1000, 99)), 2)
        if e_lat
        else None,
    }
    return row, cursor


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# -- where a decision's CPU goes (in this process, no network) ---------------------------------


async def in_process_call(
    app: Any, path: str, body: bytes, method: str = "POST", target: Any = None
) -> int:
    """One request through the ASGI ``app`` (or only its ``target`` part, e.g. ``app.router``)
    in this process, without sockets; returns the status code."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
        "app": app,
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    if target is None:
        await app(scope, receive, send)
    else:  # the router alone expects the exit stack FastAPI's own middleware would set
        async with contextlib.AsyncExitStack() as stack:
            scope["fastapi_middleware_astack"] = stack
            await target(scope, receive, send)
    return sent[0]["status"]


def in_process_costs(size: str, count: int = 2000) -> dict[str, float]:
    """CPU microseconds per call: the engine alone, the same call through the ASGI app (the
    decision fast path: validation, token, metrics, JSON), and, as the baseline in the same
    process, through FastAPI's own route (its router: dependency solving, request objects,
    response handling), all without sockets."""
    from graphkit.config import from_mapping
    from graphkit.serve import Service, create_app

    run_dir, events, requests = prepare(size)
    work = Path(tempfile.mkdtemp(prefix=f"serve-inproc-{size}-"))
    config = from_mapping({"live": {"max_lateness_seconds": 31536000.0}})
    service = Service(run_dir, work, config)
    app = create_app(service)

    async def call(path: str, body: bytes, method: str = "POST", target: Any = None) -> int:
        return await in_process_call(app, path, body, method, target)

    async def measure() -> dict[str, float]:
        await service.start()
        state = service.current()
        decoded = [json.loads(r) for r in requests]
        out = {}
        started = time.process_time()
        for i in range(count):
            state.decide(decoded[i % len(decoded)])
        out["engine_decide_us"] = (time.process_time() - started) / count * 1e6
        started = time.process_time()
        for i in range(count):
            assert await call("/v1/decisions/drawdown", requests[i % len(requests)]) == 200
        out["app_decide_us"] = (time.process_time() - started) / count * 1e6
        started = time.process_time()
        for i in range(count):
            route = app.router
            assert (
                await call("/v1/decisions/drawdown", requests[i % len(requests)], "POST", route)
                == 200
            )
        out["framework_route_decide_us"] = (time.process_time() - started) / count * 1e6
        started = time.process_time()
        for _ in range(count):
            await call("/healthz", b"", "GET")
        out["app_healthz_us"] = (time.process_time() - started) / count * 1e6
        half = min(len(events) // 2, 5000)
        started = time.process_time()
        for event in events[:half]:
            state.apply(event)
        out["engine_apply_us_per_event"] = (time.process_time() - started) / half * 1e6
        started = time.process_time()
        for i in range(half, 2 * half, EVENT_BATCH):
            body = json.dumps({"events": events[i : min(i + EVENT_BATCH, 2 * half)]}).encode()
            await call("/v1/events", body)
        out["app_events_us_per_event"] = (time.process_time() - started) / half * 1e6
        await service.stop()
        return {k: round(v, 1) for k, v in out.items()}

    try:
        return asyncio.run(measure())
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)


def start_server(run_dir: Path, work: Path, port: int) -> tuple[subprocess.Popen, float]:
    import httpx

    config = work / "serve.toml"
    config.write_text("[live]\nmax_lateness_seconds = 31536000.0\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GRAPHKIT_API_TOKEN", None)
    args = [sys.executable, str(ROOT / "cli.py"), "serve", str(run_dir), "--state", str(work)]
    args += ["--port", str(port), "--config", str(config)]
    started = time.perf_counter()
    with (run_dir.parent / "server.log").open("ab") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    while True:
        if process.poll() is not None:
            raise RuntimeError("graphkit serve exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def bench_size(size: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    run_dir, events, requests = prepare(size)
    work = Path(tempfile.mkdtemp(prefix=f"serve-bench-{size}-"))
    port = free_port()
    process, startup = start_server(run_dir, work, port)
    rss = PeakRss(process.pid)
    rss.start()
    server = psutil.Process(process.pid)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        # Calibration: server CPU per event (fresh events: real applies) and per decision.
        events_only, cursor = asyncio.run(
            step(port, 1, args.seconds, requests, events, args.calibrate_events, 0, server)
        )
        applied = httpx.get(f"{url}/healthz", timeout=300).json()["events_applied"]
        decisions_only, _ = asyncio.run(
            step(port, args.calibrate_decisions, args.seconds, requests, events, 0, 0, server)
        )
        # fresh events: every accepted one is applied (healthz counts them)
        cpu_per_event = events_only["server_cpu_s"] / max(applied, 1) * 1e6
        cpu_per_decision = decisions_only["server_cpu_s"] / decisions_only["sent"] * 1e6
        for rate in args.rates:
            row, cursor = asyncio.run(
                step(port, rate, args.seconds, requests, events, args.events_rate, cursor, server)
            )
            rows.append(row)
            if row["p99_ms"] > 10 * args.target_ms or row["achieved_per_s"] < rate / 2:
                break
        health = httpx.get(f"{url}/healthz", timeout=300).json()
    finally:
        rss.stop.set()
        process.terminate()
        try:
            process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)
    under = [r["rate"] for r in rows if r["p99_ms"] <= args.target_ms and r["errors"] == 0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    graph = manifest.get("counts", {}).get("graph", {})
    return {
        "size": size,
        "run_id": manifest.get("run_id"),
        "nodes": sum(graph.get("nodes", {}).values()),
        "edges": sum(graph.get("edges", {}).values()),
        "stream_events": len(events),
        "events_applied": health["events_applied"],
        "startup_seconds": round(startup, 2),
        "calibration": {
            "events_only": events_only,
            "events_applied_in_it": applied,
            "decisions_only": decisions_only,
            "server_cpu_us_per_event": round(cpu_per_event, 1),
            "server_cpu_us_per_decision": round(cpu_per_decision, 1),
        },
        "peak_rss_mb": round(rss.peak / 2**20, 1),
        "target_p99_ms": args.target_ms,
        "highest_rate_under_target": max(under) if under else None,
        "steps": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", choices=sorted(SIZES))
    parser.add_argument("--rates", type=float, nargs="+", default=DEFAULT_RATES)
    parser.add_argument("--seconds", type=float, default=8.0, help="Per rate step.")
    parser.add_argument("--events-rate", type=float, default=5000.0, help="Events per second.")
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--name", default="serve", help="bench/results/<name>.json")
    parser.add_argument(
        "--calibrate-events", type=float, default=2000.0, help="Events/s, events-only step."
    )
    parser.add_argument(
        "--calibrate-decisions", type=float, default=200.0, help="Decisions/s, decisions-only step."
    )
    args = parser.parse_args()
    results = {}
    for size in args.size or ["sample"]:
        costs = in_process_costs(size)
        print(f"{size}: CPU us per call, in process: {costs}")
        result = bench_size(size, args)
        result["in_process_cpu_us"] = costs
        results[size] = result
        print_table(
            f"graphkit serve, {size}: start-up {result['startup_seconds']} s, peak RSS "
            f"{result['peak_rss_mb']} MB, events applied {result['events_applied']}",
            [
                "decisions/s",
                "sent",
                "errors",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "achieved/s",
                "events/s",
                "event p99 ms",
            ],
            [
                [
                    r["rate"],
                    r["sent"],
                    r["errors"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["p999_ms"],
                    r["max_ms"],
                    r["achieved_per_s"],
                    r["events_per_s"],
                    r["event_batch_p99_ms"],
                ]
                for r in result["steps"]
            ],
        )
        print(
            f"{size}: highest rate with p99 <= {args.target_ms} ms: "
            f"{result['highest_rate_under_target']}"
        )
        path = write_result(  # after each size, so a later failure keeps the earlier ones
            args.name,
            {
                "events_rate": args.events_rate,
                "seconds_per_step": args.seconds,
                "baseline": "Neo4j per request: not measured yet",
                "results": results,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
