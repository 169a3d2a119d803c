"""Shared helpers for the bench scripts: peak memory, timing, machine facts, tables, results.

* :class:`RssSampler` samples this process's resident set size on a background thread (every
  ``interval`` seconds) and keeps the high-water mark of every open window, so nested stages
  each get their own peak. ``resource.getrusage`` only knows the process-wide maximum.
* :class:`StageRecorder` is a :class:`graphkit.progress.Progress` that turns the pipeline's
  task start/finish events into per-stage rows (seconds, peak RSS) without touching the stages.
* :func:`machine_info`, :func:`write_result`, :func:`print_table`, :func:`growth_exponent`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
DATA_DIR = ROOT / "bench" / "data"
# git-ignored scratch space for generated inputs and work directories: made here so every
# benchmark can put temporary directories in it on a fresh checkout
DATA_DIR.mkdir(parents=True, exist_ok=True)
MB = 1 << 20


def rss_mb() -> float:
    """Current resident set size of this process, MiB."""
    return psutil.Process().memory_info().rss / MB


def max_rss_mb() -> float:
    """Process-wide resident high-water mark so far (``getrusage``), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Background RSS sampling with per-window peaks (a window per open stage)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self._process = psutil.Process()
        self._lock = threading.Lock()
        self._windows: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        rss = self._process.memory_info().rss / MB
        with self._lock:
            for name, peak in self._windows.items():
                if rss > peak:
                    self._windows[name] = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def open(self, name: str) -> None:
        """Start a window named ``name`` at the current RSS."""
        with self._lock:
            self._windows[name] = self._process.memory_info().rss / MB

    def close(self, name: str) -> float:
        """End window ``name``; its peak RSS in MiB."""
        self._sample()
        with self._lock:
            return self._windows.pop(name)


@dataclass
class StageRow:
    """One measured step: name, wall and CPU seconds, peak RSS during it, RSS when it ended.

    CPU seconds (all threads of this process) say what the step costs when the machine is
    shared: on an oversubscribed machine wall time mostly measures the neighbours.
    """

    name: str
    started: float
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    end_rss_mb: float
    depth: int


@dataclass
class StageRecorder:
    """A Progress that records start/finish of every task with its peak RSS.

    ``depth`` is the nesting level at which a task started (0 for the pipeline's own stages
    when they are opened with :meth:`stage`), so sub-steps such as ``flows: reach`` can be
    shown under their stage.
    """

    sampler: RssSampler
    log_path: Path | None = None
    rows: list[StageRow] = field(default_factory=list)
    _open: dict[str, tuple[float, float, int]] = field(default_factory=dict)

    def start(self, task: str, total: int | None = None) -> None:
        self._open[task] = (time.perf_counter(), time.process_time(), len(self._open))
        self.sampler.open(task)
        self._note(f"start  {task}")

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        if task not in self._open:
            return
        started, cpu_started, depth = self._open.pop(task)
        peak = self.sampler.close(task)
        row = StageRow(
            task,
            started,
            time.perf_counter() - started,
            time.process_time() - cpu_started,
            peak,
            rss_mb(),
            depth,
        )
        self.rows.append(row)
        self._note(f"finish {task}: {row.seconds:.1f} s, {row.peak_rss_mb:,.0f} MB peak")

    def _note(self, line: str) -> None:
        """Append a timestamped line to ``log_path`` (to follow a long run from outside)."""
        if self.log_path is not None:
            with self.log_path.open("a") as log:
                log.write(f"{datetime.now():%H:%M:%S} {line}\n")

    def ordered(self) -> list[StageRow]:
        """Finished tasks in the order they started."""
        return sorted(self.rows, key=lambda row: row.started)

    def log(self, message: str) -> None:
        pass

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Measure the block as task ``name``."""
        self.start(name)
        try:
            yield
        finally:
            self.finish(name)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, value) of ``fn()``."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def weighted_graph(pairs: np.ndarray, weights: np.ndarray, n: int) -> nx.Graph:
    """A networkx graph on vertices ``0..n-1`` with the undirected ``pairs`` weighted by
    ``weights`` (edge attribute ``weight``): the clusters baselines' input."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(
        zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), weights.tolist(), strict=True)
    )
    return graph


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, value) of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - start, time.process_time() - cpu, value


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, including how busy the machine was."""
    memory = psutil.virtual_memory()
    load1, load5, load15 = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(memory.total / 1e9, 1),
        "memory_available_gb": round(memory.available / 1e9, 1),
        "load_average": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the payload, a timestamp and the machine."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "created_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        **payload,
    }
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    console: Console | None = None,
) -> None:
    """Print a rich table; numbers right-aligned."""
    table = Table(title=title)
    numeric = [
        all(isinstance(r[i], int | float) or r[i] in ("", "-") for r in rows) and bool(rows)
        for i in range(len(columns))
    ]
    for column, is_number in zip(columns, numeric, strict=True):
        table.add_column(column, justify="right" if is_number else "left")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    console.print(table)


def fmt(value: Any) -> str:
    """Short human form of a table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def growth_exponent(sizes: Sequence[float], costs: Sequence[float | None]) -> float | None:
    """Least-squares slope of log(cost) on log(size): 1 is linear, 2 quadratic.

    ``None`` with fewer than two usable points (a cost of zero has no logarithm).
    """
    points = [
        (s, c) for s, c in zip(sizes, costs, strict=True) if s > 0 and c is not None and c > 0
    ]
    if len(points) < 2 or len({s for s, _ in points}) < 2:
        return None
    x = np.log([s for s, _ in points])
    y = np.log([c for _, c in points])
    slope = float(np.polyfit(x, y, 1)[0])
    return slope if math.isfinite(slope) else None


def run_in_child(
    target: Callable[..., dict[str, Any]], args: tuple, timeout: float
) -> dict[str, Any] | None:
    """``target(*args)`` in a forked child (its memory stays out of this process's peak).

    ``target`` returns a small picklable dict (it times itself); ``None`` when it did not
    finish within ``timeout`` seconds (the child is killed).
    """
    import multiprocessing
    from queue import Empty

    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child() -> None:
        queue.put(target(*args))

    process = context.Process(target=child)
    process.start()
    # Read before joining: a child cannot exit while its queued result is unread.
    try:
        result = queue.get(timeout=timeout)
    except Empty:
        result = None
    process.kill()
    process.join()
    return result
