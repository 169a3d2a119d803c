"""Benchmark: where a fresh event's CPU goes in ``graphkit serve``, against the same stream
applied to the live state directly, in one process.

The service is loaded on a size's prepared run (bench/serve.py's prepare cache, a fresh state
directory) and its committer started; then the event stream is cut into blocks of ``--block``
consecutive events that go to each side in turn: **engine** (``LiveState.apply`` one by one,
as ``bench/live.py`` does), **app** (``POST /v1/events`` in batches of ``--batch`` through the
ASGI app, no sockets: the fast route, the intake, the log's write + fsync in a thread, the
committer's slices, the answer) and, with ``--baseline TREE``, **base** (the same through
``TREE``'s ``graphkit/serve``, e.g. a worktree of main, imported as its own package on the same
state). Every side sees the same state growing in stream order and the same mix of events;
CPU (user and system, all threads) per fresh event per side, then per duplicate (the first app
block again). ``--steps`` also times the steps of the event path with wrappers (thread CPU of
the loop's thread; the log's thread apart): the body's JSON parse, the shape check, the
engine's ``parse_event``, ``encode_event`` (the log's JSON), numbering the records, the log's
write + fsync, ``LiveState.apply``, the per-event answer, the response's JSON, the heap
freezes. Before the blocks and after them, a collection's cost and the objects the collector
tracks outside the frozen heap. Results: bench/results/<--name>.json.

    GRAPHKIT_BENCH_DATA=/tmp/servesweep python bench/serve_events.py --size net20k
    GRAPHKIT_BENCH_DATA=/tmp/servesweep flock /work/wt/_notes/bigmem.lock \
        python bench/serve_events.py --size net200k --baseline /tmp/main-tree
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_result
from bench.serve import SIZES, _scratch, in_process_call, prepare


class Steps:
    """Thread-CPU time and calls per wrapped function (nested wrapped calls are subtracted
    from their caller, so the steps add up)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.wall: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []  # child time accumulated per open frame

    def wrap(self, name: str, fn: Any) -> Any:
        clock = time.thread_time
        steps = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            steps._stack.append(0.0)
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - started
                inner = steps._stack.pop()
                steps.cpu[name] += spent - inner
                steps.calls[name] += 1
                if steps._stack:
                    steps._stack[-1] += spent

        return timed

    def wrap_thread(self, name: str, fn: Any) -> Any:
        """For a function run in another thread: its thread CPU and wall time."""
        steps = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                steps.cpu[name] += time.thread_time() - cpu
                steps.wall[name] += time.perf_counter() - wall
                steps.calls[name] += 1

        return timed

    def wrap_async(self, name: str, fn: Any) -> Any:
        """A coroutine function: the loop thread's CPU from its call to its end is not its own
        (other tasks run meanwhile), so only calls and wall time."""
        steps = self

        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            wall = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                steps.wall[name] += time.perf_counter() - wall
                steps.calls[name] += 1

        return timed


def instrument(steps: Steps) -> Any:
    """Wrap the steps of the event path (module globals and methods, so the service's code
    calls the wrappers); returns a function that puts the originals back."""
    from graphkit.live import LiveState
    from graphkit.serve import api, service
    from graphkit.serve.log import EventLog

    targets = [
        (api, "from_json", "json parse of the body", steps.wrap),
        (api, "event_list", "shape check", steps.wrap),
        (api, "to_json", "response JSON", steps.wrap),
        (service, "parse_event", "parse_event (validation)", steps.wrap),
        (service, "encode_event", "encode_event (log JSON)", steps.wrap),
        (service, "event_record", "event_record (numbering + crc)", steps.wrap),
        (service, "_freeze_heap", "gc collect + freeze", steps.wrap),
        (service.Service, "_answer", "per-event answer", steps.wrap),
        (LiveState, "apply", "LiveState.apply (engine)", steps.wrap),
        (EventLog, "write", "log write + fsync (its thread)", steps.wrap_thread),
        (service._Slices, "answer_waiting_requests", "loop turns", steps.wrap_async),
    ]
    saved = []
    for owner, attr, name, wrap in targets:
        if not hasattr(owner, attr):
            continue
        original = owner.__dict__[attr]
        saved.append((owner, attr, original))
        setattr(owner, attr, wrap(name, original))

    def restore() -> None:
        for owner, attr, original in saved:
            setattr(owner, attr, original)

    return restore


class GcClock:
    """The cyclic collector's own time (``gc.callbacks``), by side and generation."""

    def __init__(self) -> None:
        self.side = "other"
        self.seconds: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        key = f"{self.side} gen{info['generation']}"
        self.seconds[key] += time.perf_counter() - self._started
        self.count[key] += 1


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def _engine_block(state: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        state.apply(event)


async def _app_block(app: Any, bodies: list[bytes]) -> None:
    for body in bodies:
        assert await in_process_call(app, "/v1/events", body) == 200


def gc_probe() -> dict[str, Any]:
    """What a collection of the young objects costs now (the service's freeze, without the
    freeze), and how many objects the collector tracks outside the frozen heap."""
    out: dict[str, Any] = {
        "frozen": gc.get_freeze_count(),
        "tracked_not_frozen": len(gc.get_objects()),
        "counts": gc.get_count(),
    }
    times = []
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        times.append(round((time.perf_counter() - started) * 1e3, 2))
    out["collect_ms"] = times
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from graphkit.serve import Service

    run_dir, stream, _ = prepare(args.size, args.cut)
    sides = args.sides or ["engine", "app"] + (["base"] if args.baseline else [])
    per_side = args.events
    block = args.block
    work = Path(tempfile.mkdtemp(prefix=f"serve-events-{args.size}-", dir=_scratch()))
    result: dict[str, Any] = {
        "size": args.size,
        "events_per_side": per_side,
        "block": block,
        "batch": args.batch,
        "skip": args.skip,
        "sides": sides,
    }
    base_module = load_baseline(args.baseline) if args.baseline else None
    try:
        service = Service(run_dir, work)
        started = time.perf_counter()
        service._load()  # what Service.start does before its committer starts
        result["startup_seconds"] = round(time.perf_counter() - started, 1)
        result["gc_after_start"] = gc_probe()
        print(f"gc after start: {result['gc_after_start']}", flush=True)
        asyncio.run(_alternate(args, service, stream, sides, base_module, work, result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


async def _alternate(
    args: argparse.Namespace,
    service: Any,
    stream: list[dict[str, Any]],
    sides: list[str],
    base_module: Any,
    work: Path,
    result: dict[str, Any],
) -> None:
    """Blocks of ``--block`` consecutive stream events go to each side in turn (engine alone,
    this app, the baseline's app), so every side sees the same state growing in stream order
    and the same mix of events; CPU (user, system) per side."""
    from graphkit.serve import create_app

    service._committer = asyncio.create_task(service._commit_loop())
    apps = {"app": create_app(service)}
    base_service = None
    if base_module is not None:
        base_service = base_module.Service(service.run_path, work / "base")
        base_service.state = service.state  # the same state object: one stream, in order
        base_service.log.open()
        base_service._next_full_collect = service._next_full_collect  # as its _load sets it
        base_service._committer = asyncio.create_task(base_service._commit_loop())
        apps["base"] = base_module.create_app(base_service)
    cpu = {side: [0.0, 0.0] for side in sides}
    counted = dict.fromkeys(sides, 0)
    first_bodies: list[bytes] = []
    position = args.skip
    steps = Steps() if args.steps else None
    restore = instrument(steps) if steps is not None else None
    blocks: list[list[Any]] = []  # (side, first stream index, CPU us per event) in turn
    clock = GcClock()
    gc.callbacks.append(clock)
    rounds = 0
    while min(counted.values()) < args.events:
        for side in sides:
            events = stream[position : position + args.block]
            if not events:
                raise SystemExit("the stream ran out: use fewer --events or a smaller --skip")
            position += len(events)
            bodies = [
                json.dumps({"events": events[i : i + args.batch]}).encode()
                for i in range(0, len(events), args.batch)
            ]
            if side != "engine" and not first_bodies:
                first_bodies = bodies
            clock.side = side
            u0, s0 = _cpu()
            if side == "engine":
                await _engine_block(service.state, events)
            else:
                await _app_block(apps[side], bodies)
            u1, s1 = _cpu()
            cpu[side][0] += u1 - u0
            cpu[side][1] += s1 - s0
            blocks.append(
                [side, position - len(events), round((u1 - u0 + s1 - s0) / len(events) * 1e6, 1)]
            )
            counted[side] += len(events)
            clock.side = "other"
        rounds += 1
    gc.callbacks.remove(clock)
    result["gc_ms_per_1000_events"] = {
        key: round(seconds / counted[key.split()[0]] * 1e6, 1)
        for key, seconds in sorted(clock.seconds.items())
        if key.split()[0] in counted
    }
    result["gc_collections"] = dict(sorted(clock.count.items()))
    if restore is not None:
        restore()
    result["blocks"] = blocks
    result["events_consumed"] = position - args.skip
    result["events_applied"] = service.state.events_applied
    result["fresh_cpu_us_per_event"] = {
        side: {
            "user": round(cpu[side][0] / counted[side] * 1e6, 1),
            "system": round(cpu[side][1] / counted[side] * 1e6, 1),
            "total": round(sum(cpu[side]) / counted[side] * 1e6, 1),
        }
        for side in sides
    }
    if steps is not None:
        n = sum(counted.values())
        result["steps_note"] = (
            "the wrappers time this tree's app; LiveState.apply is timed on every side"
        )
        result["steps_cpu_us_per_app_event"] = {
            k: round(v / counted["app"] * 1e6, 1) for k, v in steps.cpu.items()
        }
        result["steps_cpu_us_per_app_event"]["LiveState.apply (engine)"] = round(
            steps.cpu["LiveState.apply (engine)"] / n * 1e6, 1
        )
        result["steps_calls"] = dict(steps.calls)
    # duplicates: the first app block again (the service's own path + the duplicate check)
    dup = {}
    for side in [s for s in sides if s != "engine"]:
        u0, s0 = _cpu()
        await _app_block(apps[side], first_bodies)
        u1, s1 = _cpu()
        dup[side] = round((u1 - u0 + s1 - s0) / (len(first_bodies) * args.batch) * 1e6, 1)
    result["duplicate_cpu_us_per_event"] = dup
    result["gc_after_events"] = gc_probe()
    await service.stop()
    if base_service is not None:
        await base_service.stop()


def load_baseline(tree: str) -> Any:
    """``graphkit/serve`` of another tree (e.g. ``git worktree add /tmp/x main``) imported as
    its own package, beside this one, on the same live engine: ``graphkit_serve_base``."""
    import importlib
    import re

    source = Path(tree) / "graphkit" / "serve"
    target = Path(tempfile.mkdtemp(prefix="serve-base-")) / "graphkit_serve_base"
    target.mkdir()
    for path in source.glob("*.py"):
        text = re.sub(r"\bgraphkit\.serve\b", "graphkit_serve_base", path.read_text())
        (target / path.name).write_text(text)
    sys.path.insert(0, str(target.parent))
    return importlib.import_module("graphkit_serve_base")


def report(result: dict[str, Any]) -> None:
    rows = []
    engine = result["fresh_cpu_us_per_event"].get("engine", {}).get("total")
    for side, cpu in result["fresh_cpu_us_per_event"].items():
        dup = result["duplicate_cpu_us_per_event"].get(side, "")
        rows.append(
            [
                side,
                cpu["user"],
                cpu["system"],
                cpu["total"],
                round(cpu["total"] / engine, 2) if engine else "",
                dup,
            ]
        )
    title = (
        f"{result['size']}: CPU us per fresh event, {result['events_per_side']} per side in "
        f"blocks of {result['block']}"
    )
    print_table(title, ["side", "user", "system", "total", "/ engine", "duplicate"], rows)
    gc_rows = [
        [key, result["gc_collections"][key], ms]
        for key, ms in result["gc_ms_per_1000_events"].items()
    ]
    print_table(
        "collector (wall)", ["side, generation", "collections", "ms per 1000 events"], gc_rows
    )
    by_side: dict[str, list[float]] = defaultdict(list)
    for side, _, us in result["blocks"]:
        by_side[side].append(us)
    for side, values in by_side.items():
        print(f"{side}: CPU us per event by block, in stream order: {values}")
    if "steps_cpu_us_per_app_event" in result:
        steps = sorted(result["steps_cpu_us_per_app_event"].items(), key=lambda kv: -kv[1])
        print_table("steps, CPU us per event", ["step", "us"], [[k, v] for k, v in steps])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="net20k", choices=sorted(SIZES))
    parser.add_argument(
        "--cut",
        type=lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC),
        default=None,
        help="The size's cut (YYYY-MM-DD) if not its own (bench/serve.py --cut).",
    )
    parser.add_argument("--events", type=int, default=5000, help="Fresh events per side.")
    parser.add_argument("--skip", type=int, default=0, help="Stream events to skip first.")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--block", type=int, default=500, help="Events per side in turn.")
    parser.add_argument(
        "--baseline", help="Another tree whose graphkit/serve is measured too (e.g. main)."
    )
    parser.add_argument(
        "--sides", nargs="+", choices=["engine", "app", "base"], help="Sides, in turn order."
    )
    parser.add_argument("--steps", action="store_true", help="Time the steps (wrappers).")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    result = measure(args)
    report(result)
    write_result(args.name or f"serve_events_{args.size}", {"results": result})


if __name__ == "__main__":
    main()
