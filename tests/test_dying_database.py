"""A dying database: ``graphkit load`` against a Neo4j server that is killed, paused, or cut off.

* The server (its Java process) is SIGKILLed mid-load: the load fails with a clear message, no
  traceback, exit code 3; the server restarts on the same data directory and the same command
  completes with exact counts per label and relationship type (nothing lost, nothing doubled).
* The connection is cut mid-load for a few seconds (a TCP proxy drops every connection and
  refuses new ones): the load retries with backoff, says so in its log, and completes exactly.
* The server is frozen with SIGSTOP for a few seconds mid-load, then SIGCONT: the load completes
  exactly.

The module starts its own server (not the session fixture), because it kills and freezes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from graphkit.pipeline import load_graph
from graphkit.schema import CUSTOMER_SUBLABELS, RELATIONSHIPS
from graphkit.store.neo4j import Neo4jTarget
from graphkit.store.neo4j_server import Neo4jServer
from tests.neo4j_fixture import wipe_database

pytestmark = pytest.mark.neo4j

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
BATCH = "2000"
SERVER_OPTIONS = {"heap": "512m", "pagecache": "64m"}


def _graphkit() -> list[str]:
    script = REPO / ".venv" / "bin" / "graphkit"
    return [str(script)] if script.exists() else [sys.executable, "-c", "import cli; cli.main()"]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    for name in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
        env.pop(name, None)
    return env


def _start_load(uri: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*_graphkit(), "load", str(SAMPLE), "--neo4j", uri, "--batch-size", BATCH],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def expected_counts() -> dict[str, dict[str, int]]:
    """Nodes per label and relationships per type that loading the sample must give."""
    graph, _ = load_graph(SAMPLE)
    nodes = {label: frame.height for label, frame in graph.nodes.items() if frame.height}
    kinds = graph.nodes["Customer"].get_column("kind").value_counts()
    for kind, count in kinds.iter_rows():
        nodes[CUSTOMER_SUBLABELS[kind]] = count
    relationships: dict[str, int] = {}
    for name, spec in RELATIONSHIPS.items():
        relationships[spec.type] = relationships.get(spec.type, 0) + graph.edges[name].height
    return {"nodes": nodes, "relationships": relationships}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's Neo4j home: its data survives a restart."""
    return tmp_path_factory.mktemp("neo4j") / "home"


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Neo4jServer]:
    """One server for this module; the test that kills it runs last and restarts it."""
    server = Neo4jServer().start(data_dir=home, **SERVER_OPTIONS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def empty(server: Neo4jServer) -> Neo4jServer:
    with neo4j.GraphDatabase.driver(server.uri) as driver:
        wipe_database(driver)
    return server


def _relationship_count(uri: str) -> int:
    try:
        with neo4j.GraphDatabase.driver(uri, connection_timeout=2) as driver:
            records, _, _ = driver.execute_query("MATCH ()-[r]->() RETURN count(r) AS n")
            return records[0]["n"]
    except neo4j.exceptions.DriverError:
        return -1


def _wait_until_loading(uri: str, load: subprocess.Popen[str], above: int = 2000) -> None:
    """Block until the load has merged more than ``above`` relationships (so it is mid-load)."""
    deadline = time.monotonic() + 300
    while _relationship_count(uri) <= above:
        assert load.poll() is None, "the load finished before the fault: " + load.stderr.read()
        assert time.monotonic() < deadline, "the load never got going"
        time.sleep(0.2)


def _assert_exact(uri: str, expected: dict[str, dict[str, int]]) -> None:
    assert Neo4jTarget(uri).read_graph_counts() == expected


def _finish(load: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = load.communicate(timeout=600)
    return load.returncode, out + err


class FlakyProxy:
    """A TCP proxy to ``port`` that can cut every connection and refuse new ones for a while."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                self.cuts += 1
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def outage(self, seconds: float) -> None:
        """Drop every open connection, refuse new ones for ``seconds``, then serve again."""
        self.down.set()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                self.cuts += 1
            self.sockets.clear()
        time.sleep(seconds)
        self.down.clear()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


def test_transient_outage_is_retried_with_backoff_and_logged(
    empty: Neo4jServer, expected_counts: dict[str, dict[str, int]]
) -> None:
    server = empty
    proxy = FlakyProxy(int(server.uri.rsplit(":", 1)[1]))
    try:
        load = _start_load(f"bolt://127.0.0.1:{proxy.port}")
        _wait_until_loading(server.uri, load)
        proxy.outage(3.0)
        code, output = _finish(load)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert code == 0, output
    assert "Traceback" not in output
    retries = re.findall(r"neo4j: .* failed \((\w+)\); retry (\d)/5 in ([\d.]+) s", output)
    assert retries, output
    # Exponential backoff, restarting for each batch: retry n waits 0.5 * 2**(n-1) s.
    assert all(float(delay) == 0.5 * 2 ** (int(n) - 1) for _, n, delay in retries), retries
    _assert_exact(server.uri, expected_counts)


def test_server_frozen_mid_load_then_resumed(
    empty: Neo4jServer, expected_counts: dict[str, dict[str, int]]
) -> None:
    server = empty
    load = _start_load(server.uri)
    _wait_until_loading(server.uri, load)
    os.kill(server.pid, signal.SIGSTOP)
    try:
        time.sleep(3.0)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    code, output = _finish(load)
    assert code == 0, output
    _assert_exact(server.uri, expected_counts)


def test_server_killed_mid_load_then_restarted(
    empty: Neo4jServer, home: Path, expected_counts: dict[str, dict[str, int]]
) -> None:
    server = empty
    load = _start_load(server.uri)
    _wait_until_loading(server.uri, load)
    os.kill(server.pid, signal.SIGKILL)
    code, output = _finish(load)
    assert code == 3, output
    assert "Traceback" not in output
    flat = " ".join(output.split())
    assert re.search(r"Neo4j at bolt://127\.0\.0\.1:\d+ unavailable", flat), output
    assert "retry" in flat  # it tried again before giving up

    server.stop()
    server.start(data_dir=home, **SERVER_OPTIONS)
    partial = Neo4jTarget(server.uri).read_graph_counts()
    assert partial != expected_counts  # the kill left a partial graph behind
    code, output = _finish(_start_load(server.uri))
    assert code == 0, output
    # Exact after a partial load: what the killed load merged was neither lost nor doubled.
    _assert_exact(server.uri, expected_counts)
