"""A real Neo4j 5.26 LTS server for development and tests.

:class:`Neo4jServer` runs the Java launcher built by ``services/neo4j/build.sh`` (``make neo4j``):
the Neo4j community kernel with a Bolt connector on 127.0.0.1 and, when asked for an HTTP port,
Neo4j Browser at ``http://127.0.0.1:PORT/browser/``, in its own process.

    with Neo4jServer().start(password="pw") as server:
        driver = neo4j.GraphDatabase.driver(server.uri, auth=server.auth)

The launcher and its jars are found in the directory named by ``$GRAPHKIT_NEO4J_HOME`` (in a
checkout, ``services/neo4j/target`` after ``make neo4j``; the Makefile and the tests set it), or in
the ``home`` given to :class:`Neo4jServer`. Nothing is guessed from where this file lies: an
installed graphkit has no ``services/`` folder. The password goes to the launcher through its
environment, never its command line, and never appears in an exception raised here.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import neo4j
from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable

__all__ = ["HOME_ENV", "Neo4jServer", "Neo4jServerError", "default_home"]

HOME_ENV = "GRAPHKIT_NEO4J_HOME"
"""Environment variable naming a directory with ``launcher.jar`` and ``lib/``."""

_MAIN_CLASS = "graphkit.neo4j.Launcher"
_PASSWORD_ENV = "GRAPHKIT_NEO4J_LAUNCHER_PASSWORD"
_BOLT_LINE = re.compile(r"^BOLT (bolt://\S+)$")
_HTTP_LINE = re.compile(r"^HTTP (http://\S+)$")
_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_STDERR_TAIL = 40
_REDACTED = "***"

# The flags neo4j.conf ships for Java 17: without the opens the page cache and the transaction
# log fall back to slower code paths (and say so in debug.log).
_JVM_FLAGS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dlog4j2.disable.jmx=true",
    "-XX:-OmitStackTraceInFastThrow",
    # A JVM that ran out of heap keeps a half-working DBMS around; dying makes the failure
    # visible in the caller's error instead.
    "-XX:+ExitOnOutOfMemoryError",
)


class Neo4jServerError(RuntimeError):
    """The Neo4j server could not be found, started or reached."""


def default_home() -> Path:
    """Return the directory holding ``launcher.jar`` and ``lib/``: ``$GRAPHKIT_NEO4J_HOME``.

    Raises:
        Neo4jServerError: The variable is not set; the message says what to set and run.
    """
    value = os.environ.get(HOME_ENV)
    if not value:
        raise Neo4jServerError(
            f"${HOME_ENV} is not set: it names the directory holding the Neo4j launcher "
            "(launcher.jar and lib/). In a graphkit checkout run `make neo4j`, then "
            f"`export {HOME_ENV}=$PWD/services/neo4j/target`"
        )
    return Path(value).expanduser().resolve()


class Neo4jServer:
    """One Neo4j server process, started with :meth:`start` and stopped with :meth:`stop`.

    Used as a context manager it starts with default settings on entry (unless already started)
    and always stops on exit.
    """

    def __init__(self, home: Path | str | None = None) -> None:
        """Prepare a server whose launcher lives in ``home`` (default: :func:`default_home`,
        looked up when the server starts)."""
        self._home = Path(home).expanduser().resolve() if home is not None else None
        self._process: subprocess.Popen[str] | None = None
        self._uri: str | None = None
        self._http_url: str | None = None
        self._auth: tuple[str, str] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._bolt_ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._finalizer: weakref.finalize | None = None

    @property
    def uri(self) -> str:
        """The Bolt URI, ``bolt://127.0.0.1:PORT``."""
        if self._uri is None:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._uri

    @property
    def http_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` when started with an HTTP port (Neo4j Browser at
        ``/browser/``), else ``None``."""
        return self._http_url

    @property
    def auth(self) -> tuple[str, str] | None:
        """``("neo4j", password)`` when started with a password, else ``None`` (auth off)."""
        return self._auth

    @property
    def pid(self) -> int:
        """The server's (Java) process id, e.g. for fault-injection tests that signal it."""
        if self._process is None:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        state = self._uri if self.running else "stopped"
        return f"Neo4jServer({state}, auth={'on' if self._auth else 'off'})"

    def start(
        self,
        port: int = 0,
        data_dir: Path | str | None = None,
        password: str | None = None,
        heap: str = "1g",
        pagecache: str = "256m",
        timeout: float = 120,
        http_port: int | None = None,
        guides_dir: Path | str | None = None,
    ) -> Self:
        """Start the server and wait until it answers ``RETURN 1`` over Bolt.

        Args:
            port: Bolt port on 127.0.0.1; 0 picks a free one (see :attr:`uri`).
            data_dir: Persistent Neo4j home (data and logs); ``None`` uses a temporary directory
                that the server removes when it stops.
            password: Turns auth on, with this password for user ``neo4j``; ``None`` = auth off.
            heap: Java heap size (``-Xmx``), e.g. ``"1g"``.
            pagecache: Neo4j page cache size, e.g. ``"256m"``.
            timeout: Seconds to wait for the server to be ready.
            http_port: Also serve HTTP (and Neo4j Browser) on this port of 127.0.0.1, behind the
                same authentication as Bolt; 0 picks a free one (see :attr:`http_url`);
                ``None``: Bolt only.
            guides_dir: With ``http_port``: a directory served at ``/graphkit/`` whose
                ``graphkit.grass`` and ``library.html`` the Browser loads when it connects
                (see :func:`graphkit.browser.write_guides`).

        Returns:
            This server, so that ``with Neo4jServer().start(...) as server:`` works.

        Raises:
            Neo4jServerError: The launcher is not built, Java is missing, the arguments are
                invalid, or the server died or did not answer in time.
        """
        if self._process is not None:
            raise Neo4jServerError("the Neo4j server is already started")
        for name, value in (("port", port), ("HTTP port", http_port)):
            if value is not None and not 0 <= value <= 65535:
                raise Neo4jServerError(f"invalid {name} {value}")
        if guides_dir is not None and http_port is None:
            raise Neo4jServerError("a guides directory needs an HTTP port")
        for name, value in (("heap", heap), ("pagecache", pagecache)):
            if not _SIZE.match(value):
                raise Neo4jServerError(f"invalid {name} size {value!r} (expected e.g. '512m')")
        if password is not None and not password:
            raise Neo4jServerError("the password must not be empty")

        command = self._command(port, heap, pagecache)
        if http_port is not None:
            command += ["--http-port", str(http_port)]
        if guides_dir is not None:
            command += ["--guides", str(Path(guides_dir).expanduser().resolve())]
        env = dict(os.environ)
        env.pop(_PASSWORD_ENV, None)
        if password is not None:
            env[_PASSWORD_ENV] = password
            command += ["--password-env", _PASSWORD_ENV]
        # Without a data dir the launcher makes and deletes its own temporary home, which also
        # covers a parent killed outright (the launcher exits when its stdin closes).
        if data_dir is not None:
            home_dir = Path(data_dir).expanduser().resolve()
            home_dir.mkdir(parents=True, exist_ok=True)
            command += ["--data", str(home_dir)]

        self._auth = ("neo4j", password) if password is not None else None
        self._stderr_tail.clear()
        self._bolt_ready.clear()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
                # Own session: a Ctrl-C meant for the caller must not kill the server before
                # the caller's cleanup stops it.
                start_new_session=True,
            )
        except OSError as exc:
            self._auth = None
            raise Neo4jServerError(f"could not run Java: {exc}") from None
        self._finalizer = weakref.finalize(self, _terminate, self._process)
        assert self._process.stdout is not None and self._process.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._read_stdout,
                args=(self._process.stdout,),
                name="neo4j-stdout",
                daemon=True,
            ),
            threading.Thread(
                target=self._read_stderr,
                args=(self._process.stderr,),
                name="neo4j-stderr",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

        deadline = time.monotonic() + timeout
        try:
            self._wait_for_bolt_line(deadline, timeout)
            self._wait_for_query(deadline, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds); idempotent."""
        process = self._process
        if process is not None:
            _terminate(process, timeout)
            for thread in self._threads:
                thread.join(timeout=5)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._process = None
        self._threads = []
        self._uri = None
        self._http_url = None
        self._auth = None

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self, port: int, heap: str, pagecache: str) -> list[str]:
        home = self._home if self._home is not None else default_home()
        jar = home / "launcher.jar"
        lib = home / "lib"
        if not jar.is_file() or not lib.is_dir():
            raise Neo4jServerError(
                f"the Neo4j launcher is not built ({jar} or {lib}/ is missing): run `make neo4j` "
                f"(`bash services/neo4j/build.sh`) in a graphkit checkout and point ${HOME_ENV} "
                "at its services/neo4j/target"
            )
        java = _find_java()
        classpath = os.pathsep.join([str(jar), str(lib / "*")])
        return [
            java,
            f"-Xmx{heap}",
            *_JVM_FLAGS,
            "-cp",
            classpath,
            _MAIN_CLASS,
            "--port",
            str(port),
            "--pagecache",
            pagecache,
            "--exit-on-stdin-eof",
        ]

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            http = _HTTP_LINE.match(line.strip())
            if http and not self._bolt_ready.is_set():
                # Printed before the BOLT line, so it is set when start() sees Bolt ready.
                self._http_url = http.group(1)
                continue
            match = _BOLT_LINE.match(line.strip())
            if match and not self._bolt_ready.is_set():
                self._uri = match.group(1)
                self._bolt_ready.set()

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr_tail.append(line.rstrip("\n"))

    def _wait_for_bolt_line(self, deadline: float, timeout: float) -> None:
        assert self._process is not None
        while not self._bolt_ready.wait(timeout=0.1):
            if self._process.poll() is not None:
                # Let the reader threads drain what the process wrote before it died.
                for thread in self._threads:
                    thread.join(timeout=2)
                raise Neo4jServerError(
                    f"the Neo4j server exited with status {self._process.returncode} before "
                    f"it was ready{self._stderr_excerpt()}"
                )
            if time.monotonic() > deadline:
                raise Neo4jServerError(
                    f"the Neo4j server did not open Bolt within {timeout:g} s"
                    f"{self._stderr_excerpt()}"
                )

    def _wait_for_query(self, deadline: float, timeout: float) -> None:
        assert self._process is not None and self._uri is not None
        last_error = "no attempt made"
        while True:
            try:
                with neo4j.GraphDatabase.driver(
                    self._uri, auth=self._auth, connection_timeout=5
                ) as driver:
                    records, _, _ = driver.execute_query("RETURN 1 AS one")
                if records and records[0]["one"] == 1:
                    return
                last_error = "RETURN 1 gave an unexpected answer"
            except AuthError:
                raise Neo4jServerError(
                    "the Neo4j server rejected the configured credentials"
                ) from None
            except (ServiceUnavailable, Neo4jError, OSError) as exc:
                last_error = type(exc).__name__
            if self._process.poll() is not None:
                raise Neo4jServerError(
                    f"the Neo4j server exited with status {self._process.returncode} after "
                    f"opening Bolt{self._stderr_excerpt()}"
                )
            if time.monotonic() > deadline:
                raise Neo4jServerError(
                    f"the Neo4j server at {self._uri} did not answer RETURN 1 within "
                    f"{timeout:g} s (last error: {last_error}){self._stderr_excerpt()}"
                )
            time.sleep(0.2)

    def _stderr_excerpt(self) -> str:
        lines = list(self._stderr_tail)
        if not lines:
            return ""
        text = "\n".join(lines)
        if self._auth is not None:
            text = text.replace(self._auth[1], _REDACTED)
        return f"; last stderr lines:\n{text}"


def _find_java() -> str:
    """Return the ``java`` executable: ``$JAVA_HOME/bin/java`` if present, else from ``PATH``."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise Neo4jServerError("java (JDK 17+) was not found on PATH or in $JAVA_HOME")
    return found


def _terminate(process: subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM ``process`` and wait; SIGKILL it if it has not exited after ``timeout`` s.

    Module-level so that :func:`weakref.finalize` can call it for a server never stopped.
    """
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except ProcessLookupError:
            pass
