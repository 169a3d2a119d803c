"""Spark for the tests: one local SparkSession, and a real standalone cluster on loopback.

``spark`` is a ``local[2]`` session shared by every test of the session (a JVM start costs tens
of seconds on a busy 2-core machine). ``spark_cluster`` starts a standalone master and two
workers (one core, 1 GB each) from the pyspark distribution's own ``spark-class``, so the
executors are separate JVMs and Python workers and every shuffle crosses processes; it yields
the master URL, for a ``graphkit run --engine spark`` subprocess (one process may hold only one
SparkContext, and the in-process one is the local session). Everything binds to 127.0.0.1 and
is stopped at the end of the session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pyspark = pytest.importorskip("pyspark")

START_TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def spark():
    from graphkit.spark.session import start_session

    session = start_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


def _daemon_env(tmp: Path) -> dict[str, str]:
    spark_home = str(Path(pyspark.__file__).parent)
    return {
        **os.environ,
        "SPARK_HOME": spark_home,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp / "logs"),
        "SPARK_WORKER_DIR": str(tmp / "work"),
        # The master's and workers' own heaps; executors get spark.executor.memory.
        "SPARK_DAEMON_MEMORY": "256m",
        "PYSPARK_PYTHON": sys.executable,
    }


def _wait_for_workers(ui_port: int, workers: int, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a Spark daemon exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
                state = json.load(r)
            if state.get("aliveworkers", 0) >= workers:
                return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"{workers} Spark workers did not register in {START_TIMEOUT:.0f}s")


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a standalone master with two one-core workers, all on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("spark-cluster")
    env = _daemon_env(tmp)
    spark_class = str(Path(env["SPARK_HOME"]) / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    log = (tmp / "daemons.log").open("wb")
    procs = [
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    try:
        for index in range(2):
            work = tmp / f"worker{index}"
            work.mkdir()
            procs.append(
                subprocess.Popen(
                    [spark_class, "org.apache.spark.deploy.worker.Worker",
                     f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
                     "--cores", "1", "--memory", "1g", "--port", str(free_port()),
                     "--webui-port", str(free_port()), "--work-dir", str(work)],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        _wait_for_workers(ui_port, 2, procs)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
