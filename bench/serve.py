"""Benchmark: ``graphkit serve`` decision latency under open-loop load, events streaming alongside.

Sizes: ``sample`` (data/sample, ~11k nodes) and the team's generated networks ``net20k`` (~111k
nodes), ``net200k`` (~1M) and ``net1000k`` (~5M) under /work/data (``graphkit generate DIR
--customers N --seed 5``). For each:

1. prepare (cached under ``$GRAPHKIT_BENCH_DATA``, default bench/data, as ``serve-<size>/``): the
   input's rows before the size's cut become a batch run (the stages the live state reads; no
   GNN), the rows after it the live event stream, in replay order;
2. start ``graphkit serve`` on that run in a subprocess on a free loopback port with a fresh
   state directory; start-up time = process start until ``/readyz`` answers 200 (the first
   start also writes the first checkpoint); peak RSS is sampled every 0.1 s for the whole run;
3. calibration: the server's CPU per event (an events-only step on fresh events: every accepted
   one is applied) and per decision (a decisions-only step);
4. the sweep: for each decision rate R (ascending), for ``--seconds`` seconds, ``POST
   /v1/decisions/drawdown`` open-loop (send times fixed in advance at R per second, whatever the
   answers do) and, concurrently, the event stream at ``--events-rate`` events per second as a
   feeder posts it: in order, one ``POST /v1/events`` at a time on one connection, event k due
   at k / rate, sent once ``--batch`` events are due together with every other due event (up
   to 1,000 per request: a feeder that falls behind sends bigger batches), a busy answer (503)
   retried. In order because the order is the state: concurrent batches on several connections
   reach the service's log in the order their bodies are read, not sent, and a batch overtaken
   by later ones is refused as late. Once the stream is used up it starts again and the repeats
   are duplicates, which the service answers without applying: each step reports how many of
   its events were fresh (offered for the first time) and how many the service applied,
   answered as duplicates and refused, with the refusals' reasons (``--cut``: an earlier cut
   for a longer stream). The service runs with its own defaults (the run's parameters;
   ``[live] max_lateness_seconds`` 300 s: the stream is in time order). Decision latency is
   measured from each request's *scheduled* send time, an event request's from when a feeder
   keeping up would have sent it, so a server that falls behind is charged for the queue (no
   coordinated omission);
5. per step p50 / p99 / p99.9 / max; the highest rate whose p99 <= ``--target-ms`` with no
   errors, and the highest that also took at least 95% of the offered events;
6. baseline in the same run (``--neo4j``, for sizes up to net20k by default): a Neo4j server
   started here holds the same batch state (``graphkit neo4j load`` + write-back, as
   bench/neo4j_baseline.py does), and the same decision requests are answered one at a time,
   alternately, by the Cypher library on Neo4j over Bolt (the line's 24-hour drawdowns, then
   ``customer_360``) and by the running service over HTTP; the ratio is Neo4j's time over the
   service's, per request (p50) and in total.

``--startup-only`` does steps 1-2 and a short low-rate decision step, then a restart from the
checkpoint (the 5M-node state's start-up and peak RSS). The load generator (one asyncio process,
uvloop) runs on the same 2 cores as the server, so it takes CPU from it: the numbers are a
floor. Results: bench/results/<--name>.json.

    GRAPHKIT_BENCH_DATA=/tmp/servesweep .venv/bin/python bench/serve.py --size net20k \
        --cut 2025-05-01 --decisions-alone --rates 500 1000 1500 2000 3000 --seconds 5
    flock /work/wt/_notes/bigmem.lock .venv/bin/python bench/serve.py --size net200k
    flock /work/wt/_notes/bigmem.lock .venv/bin/python bench/serve.py --size net1000k \
        --startup-only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA_DIR, ROOT, print_table, write_result

SIZES: dict[str, dict[str, Any]] = {
    # data/sample and the generator end 2025-06-30; the rows after the cut are the stream.
    "sample": {"input": ROOT / "data" / "sample", "cut": datetime(2025, 6, 1, tzinfo=UTC)},
    # the team's shared generated networks (`graphkit generate DIR --customers N --seed 5`)
    "net20k": {"input": Path("/work/data/net20k"), "cut": datetime(2025, 6, 1, tzinfo=UTC)},
    "net200k": {"input": Path("/work/data/net200k"), "cut": datetime(2025, 6, 20, tzinfo=UTC)},
    "net1000k": {"input": Path("/work/data/net1000k"), "cut": datetime(2025, 6, 27, tzinfo=UTC)},
}
STAGES = ["circles", "rings", "flows", "clusters", "contagion", "alerts"]
DEFAULT_RATES = [100, 250, 500, 1000, 1500, 2000, 3000]
EVENT_BATCH = 100  # events per POST /v1/events in the sweep (docs/serve.md)
DRAIN_SECONDS = 60.0  # after the last scheduled send, how long answers are waited for
# the counts that lead a POST /v1/events answer
_COUNTS = re.compile(rb'^\{"applied":(\d+),"duplicate":(\d+),"rejected":(\d+),')


# -- data ---------------------------------------------------------------------------------------


def prepare(
    size: str, cut: datetime | None = None
) -> tuple[Path, list[dict[str, Any]], list[bytes]]:
    """(run directory, event stream, encoded decision requests) for ``size`` cut at ``cut``
    (default: the size's own cut), cached (``serve-<size>``, or ``serve-<size>-<YYYYMMDD>``
    for another cut)."""
    from graphkit.config import load_config
    from graphkit.live.replay import prepare_replay
    from graphkit.pipeline import run_pipeline
    from loaders.synthetic import generate

    spec = SIZES[size]
    if cut is not None and cut != spec["cut"]:
        spec = {**spec, "cut": cut}
        root = _scratch() / f"serve-{size}-{cut:%Y%m%d}"
    else:
        root = _scratch() / f"serve-{size}"
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

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
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
        return status, await self.reader.readexactly(length)


class Pool:
    """Keep-alive connections, at most ``size`` (a client's connection pool). A request waits
    for a free connection when all are busy; since latency counts from the request's scheduled
    time, that wait is charged to the server (open loop, no coordinated omission) without a new
    TCP connection per request, whose set-up and tear-down dominated the server's CPU once
    answers fell behind. The most recently used idle connection is taken first (the server
    closes those idle past its keep-alive timeout), and one the server has closed is dropped
    before a request is written to it rather than after: a request written to a dead
    connection and sent again on a new one would arrive after requests written later."""

    def __init__(self, port: int, size: int = 64) -> None:
        self.port, self.size, self.opened = port, size, 0
        self.idle: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        self.all: list[Connection] = []

    async def _take(self) -> Connection:
        while True:
            if self.idle.empty() and self.opened < self.size:
                self.opened += 1
                conn = await Connection.open(self.port)
                self.all.append(conn)
                return conn
            conn = await self.idle.get()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn
            conn.writer.close()
            self.opened -= 1

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        conn = await self._take()
        try:
            answer = await conn.post(path, body)
        except (OSError, asyncio.IncompleteReadError):
            conn.writer.close()
            # The server closes connections idle past its keep-alive timeout: reconnect once.
            try:
                conn = await Connection.open(self.port)
                self.all.append(conn)
                answer = await conn.post(path, body)
            except (OSError, asyncio.IncompleteReadError):
                conn.writer.close()
                self.opened -= 1
                return 599, b""
        self.idle.put_nowait(conn)
        return answer

    def close(self) -> None:
        for conn in self.all:
            conn.writer.close()


async def open_loop(
    rate: float, seconds: float, send: Any, latencies: list[float], statuses: list[int]
) -> None:
    """Call ``send(i)`` on a fixed schedule of ``rate`` per second for ``seconds``; each call's
    latency counts from its scheduled time (a late send is charged to the server)."""
    # time.perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds
    clock = time.perf_counter
    count = max(1, int(rate * seconds))
    start = clock() + 0.05
    tasks = []

    async def one(i: int, due: float) -> None:
        status = await send(i)
        latencies.append(clock() - due)
        statuses.append(status)

    for i in range(count):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    _, late = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
    for task in late:  # not answered within the drain time: counted as failures at that time
        task.cancel()
        latencies.append(clock() - start)
        statuses.append(0)


def _ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 2) if values else None


async def step(
    port: int,
    rate: float,
    seconds: float,
    requests: list[bytes],
    events: list[dict[str, Any]],
    events_rate: float,
    cursor: int,
    server: psutil.Process,
    batch: int = EVENT_BATCH,
    max_batch: int = 1000,
) -> tuple[dict[str, Any], int]:
    """One step: decisions at ``rate``/s open-loop and the event stream at ``events_rate``
    events/s (in order, by one feeder: :func:`feed` inside), for ``seconds``; returns the
    step's row and the stream cursor after it."""
    decisions = Pool(port)
    d_lat: list[float] = []
    d_status: list[int] = []
    e_lat: list[float] = []
    outcome = {"applied": 0, "duplicate": 0, "rejected": 0, "busy": 0, "failed": 0}
    reasons: set[str] = set()
    total = int(events_rate * seconds)
    fresh = max(0, min(total, len(events) - cursor))  # sent for the first time (not repeats)
    # the stream's events serialised before the step (the feeder only joins them)
    encoded = [json.dumps(events[(cursor + k) % len(events)]).encode() for k in range(total)]
    cursor += total

    async def decide(i: int) -> int:
        return (await decisions.post(b"/v1/decisions/drawdown", requests[i % len(requests)]))[0]

    async def feed() -> None:
        """The event stream as a feeder posts it: in order, one request at a time on one
        connection. Event k is due at start + k / events_rate; once ``batch`` events are due
        they go out together with every other due event (at most ``max_batch`` per request: a
        feeder that falls behind sends bigger batches, as a broker consumer does); a busy
        answer (503) is retried after 50 ms. A request's latency counts from the time a feeder
        keeping up would have sent it (when its ``batch``-th event was due)."""
        clock = time.perf_counter
        start = clock() + 0.05
        conn = await Connection.open(port)
        sent = 0
        deadline = start + seconds + DRAIN_SECONDS
        while sent < total and clock() < deadline:
            due = min(total, int((clock() - start) * events_rate))
            if due - sent < min(batch, total - sent):
                wait = start + (sent + min(batch, total - sent)) / events_rate - clock()
                await asyncio.sleep(max(wait, 0))
                continue
            count = min(due - sent, max_batch)
            body = b'{"events":[%s]}' % b",".join(encoded[sent : sent + count])
            try:
                status, answer_body = await conn.post(b"/v1/events", body)
            except (OSError, asyncio.IncompleteReadError):
                conn.writer.close()
                conn = await Connection.open(port)
                outcome["failed"] += 1
                continue
            if status == 503:
                outcome["busy"] += 1
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                outcome["failed"] += 1
                break
            # from when a feeder keeping up would have sent it (its batch-th event due)
            e_lat.append(clock() - (start + (sent + min(batch, count)) / events_rate))
            sent += count
            # the counts lead the answer: read them without parsing the per-event results (a
            # feeder that parses a 1,000-event answer stalls this loop, charged as latency)
            counts = _COUNTS.match(answer_body)
            answer = json.loads(answer_body) if counts is None else None
            for k, key in enumerate(("applied", "duplicate", "rejected")):
                outcome[key] += answer[key] if counts is None else int(counts[k + 1])
            if outcome["rejected"] and len(reasons) < 5:  # why, in the service's words
                answer = answer or json.loads(answer_body)
                reasons.update(
                    issue["message"][:160]
                    for result in answer["results"]
                    if result["status"] not in ("applied", "duplicate")
                    for issue in result["issues"]
                )
        taken.append(sent)
        conn.writer.close()

    g_lag: list[float] = []

    async def probe() -> None:
        """The generator's own loop lag (a 10 ms timer's lateness), as the server measures its
        own: a stall here is charged to the server as latency."""
        clock = time.perf_counter
        end = clock() + seconds
        while clock() < end:
            due = clock() + 0.01
            await asyncio.sleep(0.01)
            g_lag.append(clock() - due)

    taken: list[int] = []
    runs = [probe()]
    if rate > 0:
        runs.append(open_loop(rate, seconds, decide, d_lat, d_status))
    if events_rate > 0:
        runs.append(feed())
    # The generator's own collector paused during the step (its heap holds the whole stream):
    # a pause here would be charged to the server as latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    lag_before = server_loop_lag(port)
    cpu_before = _cpu(server)
    started = time.perf_counter()
    try:
        await asyncio.gather(*runs)
    finally:
        gc.enable()
    elapsed = time.perf_counter() - started
    cpu = _cpu(server) - cpu_before
    lag_after = server_loop_lag(port)
    lag = {le: n - lag_before.get(le, 0.0) for le, n in lag_after.items()}
    decisions.close()
    accepted = sum(taken)
    row = {
        "rate": rate,
        "sent": len(d_lat),
        "errors": sum(1 for s in d_status if s != 200),
        "error_statuses": sorted(set(d_status) - {200}),
        "p50_ms": _ms(d_lat, 50),
        "p99_ms": _ms(d_lat, 99),
        "p999_ms": _ms(d_lat, 99.9),
        "max_ms": _ms(d_lat, 100),
        "achieved_per_s": round(len(d_lat) / elapsed, 1),
        "seconds": round(elapsed, 2),
        "events_offered_per_s": round(total / seconds, 1),
        # of the events offered, how many the stream had not sent before (the rest are
        # repeats, which the service answers as duplicates without applying them)
        "events_offered": total,
        "events_fresh_offered": fresh,
        "event_requests": len(e_lat),
        # accepted = logged (fsynced) and answered 200; of those, applied or duplicates
        "events_per_s": round(accepted / elapsed, 1),
        "events_applied_per_s": round(outcome["applied"] / elapsed, 1),
        "events_applied": outcome["applied"],
        "events_duplicate": outcome["duplicate"],
        "events_rejected": outcome["rejected"],
        "events_rejected_reasons": sorted(reasons)[:5],
        "event_batches_busy": outcome["busy"],
        "event_batches_failed": outcome["failed"],
        "event_batch_p50_ms": _ms(e_lat, 50),
        "event_batch_p99_ms": _ms(e_lat, 99),
        # time the server's loop (its own 10 ms timer, graphkit_event_loop_lag_seconds) and the
        # generator's loop could answer nothing: stalls past 20 and 100 ms during the step
        "server_loop_stalls_over_20ms": _over(lag, "0.02"),
        "server_loop_stalls_over_100ms": _over(lag, "0.1"),
        "generator_loop_stalls_over_20ms": sum(1 for x in g_lag if x > 0.02),
        "generator_loop_stall_max_ms": _ms(g_lag, 100),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_share": round(cpu / elapsed, 2),
        # the service's own timing of its last checkpoint's fork, when one forked in the step
        "checkpoint_fork_ms": (
            round(lag_after["fork"] * 1000, 1)
            if lag_after.get("fork") != lag_before.get("fork")
            else None
        ),
    }
    return row, cursor


def server_loop_lag(port: int) -> dict[str, float]:
    """The server's loop-lag histogram (cumulative counts by upper bound, ``+Inf`` = all),
    and ``fork``: its last checkpoint's fork in seconds."""
    import httpx

    prefix = 'graphkit_event_loop_lag_seconds_bucket{le="'
    fork = "graphkit_checkpoint_fork_seconds "
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    except httpx.HTTPError:
        return {}
    lag = {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }
    for line in text.splitlines():
        if line.startswith(fork):
            lag["fork"] = float(line[len(fork) :])
    return lag


def _over(lag: dict[str, float], le: str) -> int | None:
    """Samples above ``le`` seconds in a loop-lag histogram difference."""
    if "+Inf" not in lag or le not in lag:
        return None
    return int(lag["+Inf"] - lag[le])


def _fell_behind(row: dict[str, Any], rate: float) -> bool:
    """The server clearly cannot take ``rate``: higher rates are not tried. A single stall of
    a loaded machine (a p99 of a few hundred ms) does not stop the sweep."""
    return row["achieved_per_s"] < 0.8 * rate or row["p99_ms"] > 1000


def stream_lateness(events: list[dict[str, Any]]) -> float:
    """Seconds by which the stream's latest-arriving event is older than one before it."""
    from graphkit.live import parse_event

    clock = None
    worst = 0
    for raw in events:
        ts = parse_event(raw).ts
        if ts is None:
            continue
        if clock is not None and ts < clock:
            worst = max(worst, clock - ts)
        clock = ts if clock is None else max(clock, ts)
    return worst / 1e6


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


def in_process_costs(
    size: str, count: int = 2000, cut: datetime | None = None, lateness: float | None = None
) -> dict[str, float]:
    """CPU microseconds per call (all threads of this process, so the log's fsync thread
    too): the engine alone, the same call through the ASGI app (the fast routes: validation,
    token, metrics, JSON, the log), and, as the baseline in the same process, through FastAPI's
    own route (its router: dependency solving, request objects, response-model validation),
    all without sockets. ``lateness``: the service's ``[live] max_lateness_seconds`` (default:
    the run's own, as ``graphkit serve`` without ``--config``)."""
    from graphkit.config import from_mapping
    from graphkit.serve import Service, create_app

    run_dir, events, requests = prepare(size, cut)
    work = Path(tempfile.mkdtemp(prefix=f"serve-inproc-{size}-", dir=_scratch()))
    config = None
    if lateness is not None:
        config = from_mapping({"live": {"max_lateness_seconds": lateness}})
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
        # Events, in batches of EVENT_BATCH: the first half of the stream fresh through the app
        # (log + fsync + engine), then the same batches again (all duplicates: the service's
        # own cost plus the engine's duplicate check), then again through FastAPI's route; the
        # engine alone on fresh events (the second half) and on duplicates; parse_event alone.
        from graphkit.live import parse_event

        half = min(len(events) // 2, 5000)
        bodies = [
            json.dumps({"events": events[i : min(i + EVENT_BATCH, half)]}).encode()
            for i in range(0, half, EVENT_BATCH)
        ]

        async def post_all(target: Any = None) -> float:
            started = time.process_time()
            for body in bodies:
                assert await call("/v1/events", body, "POST", target) == 200
            return (time.process_time() - started) / half * 1e6

        out["app_events_fresh_us_per_event"] = await post_all()
        out["app_events_duplicate_us_per_event"] = await post_all()
        out["framework_route_events_duplicate_us_per_event"] = await post_all(app.router)
        started = time.process_time()
        for event in events[:half]:
            state.apply(parse_event(event))
        out["engine_duplicate_us_per_event"] = (time.process_time() - started) / half * 1e6
        started = time.process_time()
        for event in events[:half]:
            parse_event(event)
        out["engine_parse_event_us"] = (time.process_time() - started) / half * 1e6
        # (applied directly, not logged: this throwaway service is stopped right after)
        started = time.process_time()
        for event in events[half : 2 * half]:
            state.apply(event)
        out["engine_apply_fresh_us_per_event"] = (time.process_time() - started) / half * 1e6
        await service.stop()
        return {k: round(v, 1) for k, v in out.items()}

    try:
        return asyncio.run(measure())
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the server -----------------------------------------------------------------------------------


def _scratch() -> Path:
    """Where prepared data and state directories go (``$GRAPHKIT_BENCH_DATA``)."""
    path = Path(os.environ.get("GRAPHKIT_BENCH_DATA", DATA_DIR))
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def launch(
    run_dir: Path,
    work: Path,
    port: int,
    lateness: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, PeakRss, float]:
    """``graphkit serve`` on ``run_dir`` with state in ``work``: the process, its RSS sampler
    (from the moment it is spawned) and the seconds until ``/readyz`` answered 200.

    ``lateness``: the service's ``[live] max_lateness_seconds``; None (the default) runs the
    service as a bank would, without ``--config`` (the run's own parameters: 300 s). Earlier
    sweeps ran with a year, which keeps every fund-flow trace open (a start-up 10x as long on
    net20k, 1.6x the CPU per event, and at 1M nodes a start-up past 13 GB); the stream itself
    is in time order and needs no allowance (:func:`stream_lateness`). ``extra_env``: set in
    the server's environment only (``--server-env``: an allocator setting, say), not the
    generator's."""
    import httpx

    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    env.pop("GRAPHKIT_API_TOKEN", None)
    args = [sys.executable, str(ROOT / "cli.py"), "serve", str(run_dir), "--state", str(work)]
    args += ["--port", str(port)]
    if lateness is not None:
        config = work / "serve.toml"
        config.write_text(f"[live]\nmax_lateness_seconds = {lateness}\n")
        args += ["--config", str(config)]
    started = time.perf_counter()
    with (run_dir.parent / "server.log").open("ab") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    rss = PeakRss(process.pid)
    rss.start()
    while True:
        if process.poll() is not None:
            raise RuntimeError("graphkit serve exited during start-up (see server.log)")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process, rss, time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def stop(process: subprocess.Popen, rss: PeakRss) -> None:
    rss.stop.set()
    process.terminate()  # uvicorn shuts down gracefully (a last checkpoint)
    try:
        process.wait(timeout=900)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _applied(url: str) -> int | None:
    """Events applied so far, or None when /healthz does not answer within 60 s."""
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=60).json()["events_applied"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def settle(url: str, limit: float = 300.0) -> dict[str, Any]:
    """Wait until the server has worked off what a step left queued (events applied stops
    moving), so the next step does not run behind the previous one's backlog."""
    started = time.perf_counter()
    last = _applied(url)
    while time.perf_counter() - started < limit:
        time.sleep(2.0)
        now = _applied(url)
        if now is not None and now == last:
            break
        last = now
    return {"events_applied": last, "settle_seconds": round(time.perf_counter() - started, 1)}


def bench_size(size: str, args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """Fills ``result`` as it goes (so what was measured survives a later failure)."""
    run_dir, events, requests = prepare(size, args.cut)
    work = Path(tempfile.mkdtemp(prefix=f"serve-bench-{size}-", dir=_scratch()))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    graph = manifest.get("counts", {}).get("graph", {})
    result |= {
        "size": size,
        "run_id": manifest.get("run_id"),
        "nodes": sum(graph.get("nodes", {}).values()),
        "edges": sum(graph.get("edges", {}).values()),
        "cut": (args.cut or SIZES[size]["cut"]).isoformat(),
        "stream_events": len(events),
        # how far an event's own time falls behind the latest before it (0: in time order, so
        # the service's default lateness allowance refuses none of the stream)
        "stream_max_lateness_seconds": stream_lateness(events),
        "target_p99_ms": args.target_ms,
        "events_rate": args.events_rate,
        "event_batch": args.batch,
        "seconds_per_step": args.seconds,
    }
    lateness = args.lateness_seconds
    result["max_lateness_seconds"] = lateness if lateness is not None else "the run's own (300)"
    server_env = dict(item.split("=", 1) for item in args.server_env)
    result["server_env"] = server_env
    process, rss, startup = launch(run_dir, work, port, lateness, server_env)
    result["startup_seconds"] = round(startup, 2)
    result["startup_peak_rss_mb"] = round(rss.peak / 2**20, 1)
    server = psutil.Process(process.pid)
    peaks = []
    try:
        if args.startup_only:
            low, _ = asyncio.run(
                step(port, args.calibrate_decisions, args.seconds, requests, events, 0, 0, server)
            )
            result["decisions_only"] = low
            stop(process, rss)
            peaks.append(rss.peak)
            # from the checkpoint
            process, rss, restart = launch(run_dir, work, port, lateness, server_env)
            result["restart_seconds"] = round(restart, 2)
            return result
        if args.neo4j:
            from bench.neo4j_baseline import decisions_neo4j_vs_service

            result["baseline"] = decisions_neo4j_vs_service(
                port, run_dir, requests, args.baseline_decisions
            )
            print(f"baseline: {result['baseline']['summary']}", flush=True)
        # Calibration: server CPU per event (fresh events: every accepted one is applied, as
        # /healthz counts; CPU until the backlog is worked off) and per decision, each alone.
        cpu_before = _cpu(server)
        events_only, cursor = asyncio.run(
            step(
                port,
                0,
                args.seconds,
                requests,
                events,
                args.calibrate_events,
                0,
                server,
                args.batch,
            )
        )
        events_only["after"] = settle(url)
        events_cpu = _cpu(server) - cpu_before
        applied = events_only["after"]["events_applied"] or 0
        decisions_only, _ = asyncio.run(
            step(port, args.calibrate_decisions, args.seconds, requests, events, 0, 0, server)
        )
        result["calibration"] = {
            "events_only": events_only,
            "events_applied_in_it": applied,
            "events_server_cpu_s_with_backlog": round(events_cpu, 2),
            "decisions_only": decisions_only,
            "server_cpu_us_per_event": round(events_cpu / max(applied, 1) * 1e6, 1),
            "server_cpu_us_per_decision": round(
                decisions_only["server_cpu_s"] / max(decisions_only["sent"], 1) * 1e6, 1
            ),
        }
        print(f"calibration: {json.dumps(result['calibration'])}", flush=True)
        if args.decisions_alone:  # the same rates without events: the decision path's own limit
            alone = result["steps_without_events"] = []
            for rate in args.rates:
                row, _ = asyncio.run(step(port, rate, args.seconds, requests, events, 0, 0, server))
                row["after"] = settle(url)
                alone.append(row)
                print(f"without events: {json.dumps(row)}", flush=True)
                if _fell_behind(row, rate):
                    break
        rows = result["steps"] = []
        for rate in args.rates:
            row, cursor = asyncio.run(
                step(
                    port,
                    rate,
                    args.seconds,
                    requests,
                    events,
                    args.events_rate,
                    cursor,
                    server,
                    args.batch,
                )
            )
            row["after"] = settle(url)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if _fell_behind(row, rate):
                break
        result["events_applied"] = _applied(url)
        ok = [r for r in rows if r["p99_ms"] <= args.target_ms and r["errors"] == 0]
        result["highest_rate_p99_under_target"] = max((r["rate"] for r in ok), default=None)
        took = [r for r in ok if r["events_per_s"] >= 0.95 * args.events_rate]
        result["highest_rate_under_target_with_all_events"] = max(
            (r["rate"] for r in took), default=None
        )
        return result
    finally:
        stop(process, rss)
        peaks.append(rss.peak)
        result["peak_rss_mb"] = round(max(peaks) / 2**20, 1)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", choices=sorted(SIZES))
    parser.add_argument("--rates", type=float, nargs="+", default=DEFAULT_RATES)
    parser.add_argument("--seconds", type=float, default=8.0, help="Per rate step.")
    parser.add_argument("--events-rate", type=float, default=5000.0, help="Events per second.")
    parser.add_argument("--batch", type=int, default=EVENT_BATCH, help="Events per request.")
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--name", default="serve_sweep", help="bench/results/<name>.json")
    parser.add_argument(
        "--calibrate-events", type=float, default=2000.0, help="Events/s, events-only step."
    )
    parser.add_argument(
        "--calibrate-decisions", type=float, default=200.0, help="Decisions/s, decisions-only step."
    )
    parser.add_argument("--startup-only", action="store_true", help="Start-up and RSS only.")
    parser.add_argument(
        "--lateness-seconds",
        type=float,
        default=None,
        help="the service's [live] max_lateness_seconds (default: the service's own, 300)",
    )
    parser.add_argument(
        "--cut",
        type=lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC),
        default=None,
        help="Cut the size's input here (YYYY-MM-DD) instead of at its own cut: an earlier cut "
        "gives a longer stream of fresh events (prepared separately).",
    )
    parser.add_argument("--no-in-process", action="store_true", help="Skip the in-process costs.")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Set in the server's environment only (repeatable), e.g. PYTHONMALLOC=malloc.",
    )
    parser.add_argument(
        "--neo4j", action="store_true", help="The Neo4j per-request baseline, same requests."
    )
    parser.add_argument("--baseline-decisions", type=int, default=1000)
    parser.add_argument(
        "--decisions-alone", action="store_true", help="Also sweep the rates without events."
    )
    args = parser.parse_args()
    try:
        import uvloop  # the generator's own CPU per request: uvloop's is lower

        uvloop.install()
    except ImportError:
        pass
    results = {}
    for size in args.size or ["sample"]:
        costs = None
        if not (args.startup_only or args.no_in_process):
            # in a child process: the in-process service's heap must not stay in the load
            # generator's (its collector's pauses would be charged to the server)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                costs = pool.submit(
                    in_process_costs, size, cut=args.cut, lateness=args.lateness_seconds
                ).result()
            print(f"{size}: CPU us per call, in process: {costs}", flush=True)
        result: dict[str, Any] = {"in_process_cpu_us": costs}
        results[size] = result
        try:
            bench_size(size, args, result)
            report(size, result, args)
        finally:  # after each size, and whatever was measured if it failed
            path = write_result(args.name, {"method": __doc__, "results": results})
            print(f"wrote {path}")


def report(size: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"graphkit serve, {size} ({result['nodes']} nodes): start-up {result['startup_seconds']}"
        f" s, restart {result.get('restart_seconds')} s, peak RSS {result['peak_rss_mb']} MB"
    )
    if "baseline" in result:
        print(f"Neo4j per request vs the service over HTTP: {result['baseline']['summary']}")
    if "calibration" in result:
        c = result["calibration"]
        print(
            f"server CPU: {c['server_cpu_us_per_event']} us/event (fresh), "
            f"{c['server_cpu_us_per_decision']} us/decision"
        )
    steps = result.get("steps", [])
    if steps:
        print_table(
            f"{size}: decisions open-loop with {args.events_rate:.0f} events/s offered",
            [
                "decisions/s",
                "sent",
                "errors",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "events/s taken",
                "applied/s",
                "busy batches",
                "event p99 ms",
                "server CPU",
                "stalls >20ms server/generator",
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
                    r["events_per_s"],
                    r["events_applied_per_s"],
                    r["event_batches_busy"],
                    r["event_batch_p99_ms"],
                    r["server_cpu_share"],
                    f"{r['server_loop_stalls_over_20ms']}/{r['generator_loop_stalls_over_20ms']}",
                ]
                for r in steps
            ],
        )
        print(
            f"{size}: highest decision rate with p99 <= {args.target_ms} ms: "
            f"{result['highest_rate_p99_under_target']} (and all offered events taken: "
            f"{result['highest_rate_under_target_with_all_events']})"
        )


if __name__ == "__main__":
    main()
