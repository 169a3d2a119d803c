"""Benchmark: what the service's heap freezes keep, and what a full collection costs.

``graphkit serve`` freezes the heap every ``[serve] gc_freeze_events`` events so the cyclic
collector never rescans the live state (docs/serve.md, "Garbage collection"). A freeze also
keeps forever the cyclic garbage of whatever was alive at that instant and died later; a full
collection at most every ``[serve] gc_full_collect_seconds`` reclaims it. Two measurements:

``leak``: the service on a size's prepared state (bench/serve.py's preparation, cached under
``$GRAPHKIT_BENCH_DATA``) runs under uvicorn in this process on a free loopback port; a client
in another process (so its objects are not counted) streams events on one keep-alive connection
while ``--clients`` clients each send decisions on a new connection every ``--per-connection``
requests. Then the server is stopped, the heap unfrozen and collected: the objects found are
what the freezes kept (by type). Once with freezing off (``gc_freeze_events = 0``) and once
every ``--freeze-every`` events, full collections off in both.

``full-pass``: the service's state loaded, ``--events`` of the stream applied, then the time of
a full collection over the whole heap (unfreeze, collect, freeze) against a collection of the
young objects only, three times each.

    GRAPHKIT_BENCH_DATA=/tmp/servesweep .venv/bin/python bench/serve_gc.py --size sample
    GRAPHKIT_BENCH_DATA=/tmp/servesweep .venv/bin/python bench/serve_gc.py --size net20k \
        --skip-leak

Results: bench/results/<--name>.json and a table on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA_DIR, print_table, write_result
from bench.serve import Connection, free_port, prepare


def client(port: int, work: Path, clients: int, per_connection: int, rounds: int) -> None:
    """The load, in its own process: the events in order on one connection; ``clients``
    decision senders, each on a new connection every ``per_connection`` requests."""
    data = json.loads((work / "client.json").read_text())
    events, requests = data["events"], [r.encode() for r in data["requests"]]

    async def feed() -> None:
        conn = await Connection.open(port)
        for i in range(0, len(events), 50):
            status, _ = await conn.post(
                b"/v1/events", json.dumps({"events": events[i : i + 50]}).encode()
            )
            assert status == 200, status
        conn.writer.close()

    async def decide(k: int) -> None:
        for r in range(rounds):
            conn = await Connection.open(port)
            for j in range(per_connection):
                request = requests[
                    (k * rounds * per_connection + r * per_connection + j) % len(requests)
                ]
                status, _ = await conn.post(b"/v1/decisions/drawdown", request)
                assert status == 200, status
            conn.writer.close()

    async def main() -> None:
        await asyncio.gather(feed(), *[decide(k) for k in range(clients)])

    asyncio.run(main())


def kept_by_freezes(size: str, freeze_every: int, args: argparse.Namespace) -> dict[str, Any]:
    """Serve ``size`` in this process under the load of :func:`client`; the objects a final
    unfreeze-and-collect finds, by type."""
    import uvicorn

    from graphkit.config import from_mapping
    from graphkit.serve import Service, create_app

    run_dir, events, requests = prepare(size, None)
    work = Path(tempfile.mkdtemp(prefix="serve-gc-", dir=DATA_DIR))
    (work / "client.json").write_text(
        json.dumps({"events": events[: args.events], "requests": [r.decode() for r in requests]})
    )
    settings = {"gc_freeze_events": freeze_every, "gc_full_collect_seconds": 0}
    service = Service(run_dir, work / "state", from_mapping({"serve": settings}))
    app = create_app(service)
    port = free_port()

    async def serve() -> dict[str, Any]:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not service.ready:
            await asyncio.sleep(0.1)
        load = [sys.executable, __file__, "_client", str(port), str(work)]
        load += [str(args.clients), str(args.per_connection), str(args.rounds)]
        loading = await asyncio.create_subprocess_exec(*load)
        assert await loading.wait() == 0, "the load generator failed"
        applied = service.current().events_applied
        server.should_exit = True
        await serving
        gc.collect()
        gc.unfreeze()
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        gc.set_debug(0)
        gc.garbage.clear()
        connections = args.clients * args.rounds
        return {
            "freeze_every": freeze_every,
            "events_applied": applied,
            "freezes": applied // freeze_every if freeze_every else 0,
            "connections": connections,
            "kept_objects": found,
            "kept_by_type": dict(kinds.most_common(10)),
        }

    try:
        return asyncio.run(serve())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def full_pass(size: str, events: int) -> dict[str, Any]:
    """Time a full collection over the whole heap (unfreeze, collect, freeze) against a
    collection of the young objects only, on ``size``'s state after ``events`` events."""
    from graphkit.live import parse_event
    from graphkit.serve import Service

    run_dir, stream, _ = prepare(size, None)
    work = Path(tempfile.mkdtemp(prefix="serve-gc-", dir=DATA_DIR))
    service = Service(run_dir, work / "state")

    async def measure() -> dict[str, Any]:
        await service.start()
        state = service.current()
        for event in stream[:events]:
            state.apply(parse_event(event))
        out: dict[str, Any] = {
            "events_applied": min(events, len(stream)),
            "full_ms": [],
            "young_ms": [],
        }
        for _ in range(3):
            started = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            out["full_ms"].append(round((time.perf_counter() - started) * 1e3, 1))
            started = time.perf_counter()
            gc.collect()
            gc.freeze()
            out["young_ms"].append(round((time.perf_counter() - started) * 1e3, 2))
        out["frozen_objects"] = gc.get_freeze_count()
        await service.stop()
        return out

    try:
        return asyncio.run(measure())
    finally:
        gc.unfreeze()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["_client"]:
        port, work, clients, per_connection, rounds = sys.argv[2:7]
        client(int(port), Path(work), int(clients), int(per_connection), int(rounds))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="sample", help="sample, net20k, net200k (bench/serve.py)")
    parser.add_argument("--events", type=int, default=5_000, help="events streamed / applied")
    parser.add_argument("--freeze-every", type=int, default=100, help="events between freezes")
    parser.add_argument("--clients", type=int, default=30, help="decision senders")
    parser.add_argument("--per-connection", type=int, default=10, help="requests per connection")
    parser.add_argument("--rounds", type=int, default=10, help="connections per sender")
    parser.add_argument("--skip-leak", action="store_true", help="only the full-pass timing")
    parser.add_argument("--name", default=None, help="result name (default serve_gc_<size>)")
    args = parser.parse_args()
    result: dict[str, Any] = {"size": args.size}
    if not args.skip_leak:
        result["leak"] = [
            kept_by_freezes(args.size, every, args) for every in (0, args.freeze_every)
        ]
        print_table(
            f"what freezes kept ({args.size}, {args.clients * args.rounds} connections)",
            ["freeze every", "events", "freezes", "objects kept", "by type"],
            [
                [
                    r["freeze_every"] or "never",
                    r["events_applied"],
                    r["freezes"],
                    r["kept_objects"],
                    ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in r["kept_by_type"].items()),
                ]
                for r in result["leak"]
            ],
        )
    result["full_pass"] = full_pass(args.size, args.events)
    fp = result["full_pass"]
    print_table(
        f"full collection vs young collection ({args.size}, {fp['events_applied']} events applied)",
        ["frozen objects", "full pass ms", "young pass ms"],
        [
            [
                fp["frozen_objects"],
                " / ".join(map(str, fp["full_ms"])),
                " / ".join(map(str, fp["young_ms"])),
            ]
        ],
    )
    write_result(args.name or f"serve_gc_{args.size}", result)


if __name__ == "__main__":
    main()
