"""What the live state's memory is made of: RSS of ``LiveState.from_run`` and a size per part.

Builds the live state of a run directory as the service does (``LiveState.from_run`` with the
run's own parameters), then measures:

* RSS before and after the build (``gc.collect()`` both times) and ``--settle`` seconds later
  (polars' allocator hands pages freed by the build's frames back after a delay), the
  process's peak RSS at the end of the build (``ru_maxrss``: the build's temporaries
  included), wall and CPU time;
* per part of the state (each attribute of the state, and of its ``flows``, ``flows.closed``,
  ``velocity``, ``circles`` and ``rings``), the bytes of the objects reachable from it: a walk
  over containers, instances (``__dict__`` and ``__slots__``), numpy arrays (their buffers,
  object arrays' elements) and polars frames (``estimated_size`` plus 16 bytes per string
  value, the view ``estimated_size`` leaves out), each object counted once,
  charged to the first part (in the order of the table) that reaches it. An object referenced
  from one place only (its reference count says so) is not remembered, so the walk's own
  memory stays small beside the state's.

The table is on screen and in ``bench/results/live_memory_<name>.json``. RSS after the build
minus RSS before minus the parts' sum is what the walk does not see: allocator slack and
fragmentation, and buffers held outside Python objects (at 111k nodes tracemalloc counted 248 MB
allocated by Python against 200 MB walked). The parts are those of this version of the engine:
``--run`` the same directory with an older checkout on ``PYTHONPATH`` (``git archive REF``)
gives its "before".

    python bench/live_memory.py --run /tmp/servesweep/serve-net20k/run --name net20k
    flock /work/wt/_notes/bigmem.lock nice -n 19 python bench/live_memory.py \
        --run /tmp/servesweep/serve-net200k/run --name net200k
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphkit.live import LiveState

RESULTS = Path(__file__).resolve().parent / "results"
# parts broken down one level further, in this order (a shared object is charged to the first)
NESTED = ("flows.closed", "flows", "velocity", "circles", "rings")
_VIEW = 16  # bytes of a polars string view
_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


class Walker:
    """Deep sizes with every object counted once across all the walks of one walker."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self._unshared = self._calibrate()

    def _calibrate(self) -> int:
        """The reference count, seen in :meth:`size`'s loop, of an object held by one
        container only."""
        probe: list[Any] = [object()]
        counts: list[int] = []
        self._walk(probe, counts)
        self.seen.clear()
        return counts[1]

    def size(self, root: Any) -> tuple[int, int]:
        """(bytes, objects) reachable from ``root`` not counted before."""
        return self._walk(root, None)

    def _walk(self, root: Any, probe: list[int] | None) -> tuple[int, int]:
        import polars as pl

        seen, getsize, refs = self.seen, sys.getsizeof, sys.getrefcount
        unshared = getattr(self, "_unshared", 0)
        stack = [root]
        total = count = 0
        while stack:
            o = stack.pop()
            rc = refs(o)
            if probe is not None:
                probe.append(rc)
            if rc > unshared or probe is not None:
                key = id(o)
                if key in seen:
                    continue
                seen.add(key)
            if isinstance(o, _SKIP):
                continue
            count += 1
            if isinstance(o, (str, int, float, bool, bytes, type(None))):
                total += getsize(o)
            elif isinstance(o, dict):
                total += getsize(o)
                stack.extend(o.keys())
                stack.extend(o.values())
            elif isinstance(o, (list, tuple, set, frozenset)):
                total += getsize(o)
                stack.extend(o)
            elif isinstance(o, np.ndarray):
                if o.base is not None:
                    total += getsize(o)  # the header; the buffer is its base's
                    stack.append(o.base)
                else:
                    total += o.nbytes + 112
                if o.dtype == object:
                    stack.extend(o.ravel().tolist())
            elif isinstance(o, (pl.DataFrame, pl.Series)):
                # estimated_size counts a string's bytes, not its 16-byte view (measured by RSS:
                # 3M keys of 17 bytes take 33 bytes a row, of 8 bytes 16)
                frame = o.to_frame() if isinstance(o, pl.Series) else o
                views = sum(1 for t in frame.dtypes if t in (pl.String, pl.Binary))
                total += int(o.estimated_size()) + _VIEW * views * frame.height
            elif isinstance(o, (bytearray, memoryview)) or type(o).__module__ == "array":
                total += getsize(o)
                if isinstance(o, memoryview) and o.obj is not None:
                    stack.append(o.obj)
            else:
                total += getsize(o)
                d = getattr(o, "__dict__", None)
                if d is not None:
                    stack.append(d)
                for cls in type(o).__mro__:
                    for slot in getattr(cls, "__slots__", ()):
                        if slot != "__dict__" and hasattr(o, slot):
                            stack.append(getattr(o, slot))
        return total, count


def parts(state: LiveState) -> list[tuple[str, Any]]:
    """(name, object) per part of the state, the nested ones broken down by attribute."""
    out = []
    for prefix in NESTED:
        obj = state
        for name in prefix.split("."):
            obj = getattr(obj, name)
        for name, value in vars(obj).items() if hasattr(obj, "__dict__") else ():
            if f"{prefix}.{name}" not in NESTED:
                out.append((f"{prefix}.{name}", value))
    nested_top = {p.split(".")[0] for p in NESTED}
    out += [(name, value) for name, value in vars(state).items() if name not in nested_top]
    return out


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def measure(run: Path, settle: float = 15.0) -> dict[str, Any]:
    process = psutil.Process()
    gc.collect()
    rss0 = process.memory_info().rss
    wall, cpu = time.perf_counter(), time.process_time()
    state = LiveState.from_run(run)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.collect()
    rss1 = process.memory_info().rss
    time.sleep(settle)  # polars' allocator hands freed pages back after a delay
    rss_settled = process.memory_info().rss
    walker = Walker()
    rows = []
    started = time.perf_counter()
    for name, value in parts(state):
        size, objects = walker.size(value)
        rows.append({"part": name, "bytes": size, "objects": objects, "len": _length(value)})
    walk_s = time.perf_counter() - started
    rows.sort(key=lambda r: -r["bytes"])
    walked = sum(r["bytes"] for r in rows)
    return {
        "run": str(run),
        "run_id": state.run_id,
        "customers": len(state.customers),
        "open_traces": len(state.flows.traces),
        "closed_flows": len(state.flows.closed),
        "build_wall_s": round(wall, 1),
        "build_cpu_s": round(cpu, 1),
        "rss_before_mb": round(rss0 / 2**20),
        "rss_after_mb": round(rss1 / 2**20),
        "state_rss_mb": round((rss1 - rss0) / 2**20),
        "settle_s": settle,
        "rss_settled_mb": round(rss_settled / 2**20),
        "state_rss_settled_mb": round((rss_settled - rss0) / 2**20),
        "peak_rss_mb": round(peak / 2**20),
        "walked_mb": round(walked / 2**20, 1),
        "not_walked_mb": round((rss_settled - rss0 - walked) / 2**20, 1),
        "walk_s": round(walk_s, 1),
        "parts": rows,
    }


def report(result: dict[str, Any], top: int) -> None:
    print(
        f"{result['run']}: {result['customers']:,} customers, {result['open_traces']:,} open "
        f"traces, {result['closed_flows']:,} closed flows; build {result['build_wall_s']} s "
        f"wall, {result['build_cpu_s']} s CPU"
    )
    print(
        f"RSS before {result['rss_before_mb']:,} MB, after {result['rss_after_mb']:,} MB "
        f"(state {result['state_rss_mb']:,} MB; {result['state_rss_settled_mb']:,} MB "
        f"{result['settle_s']:g} s later), peak {result['peak_rss_mb']:,} MB; walked "
        f"{result['walked_mb']:,} MB, not walked {result['not_walked_mb']:,} MB"
    )
    print(f"{'part':<34} {'MB':>9} {'share':>6} {'objects':>12} {'len':>11}")
    state = max(result["state_rss_settled_mb"], 1)
    for row in result["parts"][:top]:
        mb = row["bytes"] / 2**20
        length = "" if row["len"] is None else f"{row['len']:,}"
        print(f"{row['part']:<34} {mb:>9.1f} {mb / state:>6.1%} {row['objects']:>12,} {length:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("/tmp/servesweep/serve-net20k/run"))
    parser.add_argument("--name", default="net20k", help="results: live_memory_<name>.json")
    parser.add_argument("--top", type=int, default=25, help="rows of the table on screen")
    parser.add_argument(
        "--settle", type=float, default=15.0, help="seconds to wait before the second RSS"
    )
    args = parser.parse_args()
    result = measure(args.run, args.settle)
    report(result, args.top)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"live_memory_{args.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
