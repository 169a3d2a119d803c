"""A real ``graphkit serve`` process for the service tests, and the data it serves.

The network is a generated one with planted risk (300 customers, so a run takes seconds); its
rows after a cut are the live event stream, in replay order (ARCHITECTURE section 10). Two runs
are built once per session: batch before cut 1 (served) and batch before cut 2 (reloaded).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from graphkit.config import load_config
from graphkit.live.replay import prepare_replay
from graphkit.pipeline import run_pipeline
from loaders.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
CUT_1 = datetime(2025, 6, 10, tzinfo=UTC)
CUT_2 = datetime(2025, 6, 20, tzinfo=UTC)
# Stages the live state reads; the GNN and the report are not needed to serve.
STAGES = ["circles", "rings", "flows", "clusters", "contagion", "alerts"]
# Late rows (a transfer waiting for its account's owner) arrive within a year of their time.
SERVE_CONFIG = """
[live]
max_lateness_seconds = 31536000.0
[serve]
checkpoint_events = {checkpoint_events}
max_batch_events = {max_batch_events}
max_body_bytes = {max_body_bytes}
"""


@dataclass
class ServeData:
    input_dir: Path
    run_1: Path
    run_2: Path
    events: list[dict[str, Any]]  # every row after CUT_1, in replay order


def build_serve_data(root: Path) -> ServeData:
    generate(root / "input", 300, seed=7)
    runs = []
    events: list[dict[str, Any]] = []
    for name, cut in (("run_1", CUT_1), ("run_2", CUT_2)):
        batch_input, later = prepare_replay(root / "input", cut, root / f"prep_{name}")
        run_pipeline(batch_input, root / name, load_config(None), stages=STAGES)
        runs.append(root / name)
        if name == "run_1":
            events = [json.loads(json.dumps(e.to_dict())) for _, e in later]
    return ServeData(root / "input", runs[0], runs[1], events)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    path: Path,
    checkpoint_events: int = 100_000,
    max_batch_events: int = 1000,
    max_body_bytes: int = 4 * 1024 * 1024,
) -> Path:
    path.write_text(
        SERVE_CONFIG.format(
            checkpoint_events=checkpoint_events,
            max_batch_events=max_batch_events,
            max_body_bytes=max_body_bytes,
        )
    )
    return path


@dataclass
class Server:
    """``graphkit serve`` in a subprocess on a free loopback port; stderr kept in a file."""

    run_dir: Path
    state_dir: Path
    config: Path | None = None
    token: str | None = None
    tls: tuple[Path, Path] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    log_dir: Path | None = None  # default: beside the state directory

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client(self, timeout: float = 60.0, token: str | None = None) -> httpx.Client:
        token = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: Any = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify)

    def start(self, wait: bool = True, preexec_fn: Any = None) -> Server:
        args = [sys.executable, str(REPO / "cli.py"), "serve", str(self.run_dir)]
        args += ["--state", str(self.state_dir), "--port", str(self.port)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        if self.tls is not None:
            args += ["--certfile", str(self.tls[0]), "--keyfile", str(self.tls[1])]
        env = {k: v for k, v in os.environ.items() if k != "GRAPHKIT_API_TOKEN"}
        env["PYTHONPATH"] = str(REPO)
        if self.token is not None:
            env["GRAPHKIT_API_TOKEN"] = self.token
        log_dir = self.log_dir or self.state_dir.parent
        self.log_path = log_dir / f"{self.state_dir.name}-{self.port}.stderr"
        with self.log_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                args,
                env=env,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=preexec_fn,
                cwd=str(REPO),
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        with self.client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.stderr()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait (graceful shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def batches(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def snapshot(client: httpx.Client, customers: list[str]) -> dict[str, Any]:
    """What a caller can observe: health counts, the whole alert feed, customer views."""
    health = client.get("/healthz").json()
    feed: list[dict[str, Any]] = []
    while True:
        page = client.get("/v1/alerts", params={"after": len(feed), "limit": 500}).json()
        if not page["alerts"]:
            break
        feed += page["alerts"]
    views = {c: client.get(f"/v1/customers/{c}").json() for c in customers}
    return {
        "events_applied": health["events_applied"],
        "last_event_ts": health["last_event_ts"],
        "run_id": health["run_id"],
        "alerts": feed,
        "customers": views,
    }
