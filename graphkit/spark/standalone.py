"""A Spark standalone cluster on this machine's loopback: a master and N workers.

Started from the pyspark distribution's own ``bin/spark-class`` (no Spark download), each daemon
a separate JVM, so executors are separate processes and every shuffle crosses process
boundaries. Used by the tests (the two-worker cluster of ``tests/spark_fixture.py``) and by
``bench/spark.py``; for trying the engine by hand::

    with standalone_cluster(Path("/tmp/spark"), workers=2) as url:
        ...  # graphkit run IN --out OUT --engine spark --spark-master url
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
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT = 240.0


class ClusterStartError(RuntimeError):
    """A daemon exited, or the workers did not register in time; the log path is named."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_for_workers(ui_port: int, workers: int, procs: list[subprocess.Popen], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise ClusterStartError(f"a Spark daemon exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
                if json.load(r).get("aliveworkers", 0) >= workers:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise ClusterStartError(
        f"{workers} workers did not register in {START_TIMEOUT:.0f}s; see {log}"
    )


@contextmanager
def standalone_cluster(
    directory: Path, workers: int = 2, cores: int = 1, memory: str = "1g"
) -> Iterator[str]:
    """Start a master and ``workers`` workers on 127.0.0.1; yield the master URL; stop them.

    ``directory`` holds the daemons' log (``daemons.log``) and the workers' scratch space.
    Executors run this interpreter (``PYSPARK_PYTHON``), so they import the same graphkit.
    """
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(_spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(directory / "logs"),
        # The master's and workers' own heaps; executors get spark.executor.memory.
        "SPARK_DAEMON_MEMORY": "256m",
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    spark_class = str(_spark_home() / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    log_path = directory / "daemons.log"
    procs: list[subprocess.Popen] = []
    with log_path.open("ab") as log:
        try:
            procs.append(
                subprocess.Popen(
                    [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(port), "--webui-port", str(ui_port)],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
            for index in range(workers):
                work = directory / f"worker{index}"
                work.mkdir(exist_ok=True)
                procs.append(
                    subprocess.Popen(
                        [spark_class, "org.apache.spark.deploy.worker.Worker",
                         f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
                         "--cores", str(cores), "--memory", memory, "--port", str(free_port()),
                         "--webui-port", str(free_port()), "--work-dir", str(work)],
                        env=env, stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
            _wait_for_workers(ui_port, workers, procs, log_path)
            yield f"spark://127.0.0.1:{port}"
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
