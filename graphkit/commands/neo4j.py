"""Neo4j commands: run a local server, load an input directory, and the investigators' queries.

``graphkit neo4j start`` (Bolt, and Neo4j Browser on the HTTP port),
``graphkit load IN --neo4j URI``, ``graphkit cypher list | show | run | schema | browser``.
Connection options fall back to ``NEO4J_URI`` / ``NEO4J_USER`` / ``NEO4J_DATABASE``; the password
comes from the environment variable named by ``--password-env`` (default ``NEO4J_PASSWORD``), so
it never has to be typed on a command line that lands in shell history.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

import cypher
from graphkit.commands.render import (
    EXIT_FAILURE,
    EXIT_INVALID_INPUT,
    EXIT_UNAVAILABLE,
    console,
    err_console,
    fail,
    invalid_input,
    key_values,
    print_frame,
    progress_bars,
)
from graphkit.config import Neo4jConfig
from graphkit.store.neo4j import (
    PASSWORD_ENV,
    Neo4jQueryError,
    Neo4jStoreError,
    Neo4jTarget,
    Neo4jUnavailable,
    schema_cypher,
)
from graphkit.store.neo4j_server import HOME_ENV

Uri = Annotated[
    str | None,
    typer.Option("--neo4j", help="Bolt URI, e.g. bolt://127.0.0.1:7687 (default: $NEO4J_URI)."),
]
User = Annotated[str | None, typer.Option("--user", help="Neo4j user (default: $NEO4J_USER).")]
PasswordEnv = Annotated[
    str,
    typer.Option(
        "--password-env", help="Environment variable holding the password (never a flag value)."
    ),
]
Password = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="Password as a flag value (visible in shell history and ps; prefer --password-env).",
    ),
]
Database = Annotated[
    str | None, typer.Option("--database", help="Database name (default: the server's).")
]

neo4j_app = typer.Typer(help="A local Neo4j 5.26 server for exploration.", no_args_is_help=True)
cypher_app = typer.Typer(help="The investigators' Cypher library.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(neo4j_app, name="neo4j")
    app.add_typer(cypher_app, name="cypher")
    app.command("load")(load)


def connect(
    uri: str | None,
    user: str | None = None,
    password_env: str = PASSWORD_ENV,
    database: str | None = None,
    batch_size: int = 10_000,
    password: str | None = None,
) -> Neo4jTarget:
    """A :class:`Neo4jTarget` from command-line options and the environment; exits 2 when no
    URI is given or the password variable named explicitly is unset."""
    if password is None and password_env != PASSWORD_ENV and password_env not in os.environ:
        fail(f"--password-env {password_env}: that environment variable is not set", 2)
    try:
        return Neo4jTarget.from_env(
            uri, user, password, database, password_env=password_env, batch_size=batch_size
        )
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
        raise AssertionError("unreachable") from exc


def store_failure(exc: Neo4jStoreError) -> None:
    """Exit with the store error: 3 when the server is unreachable, 1 otherwise."""
    fail(str(exc), EXIT_UNAVAILABLE if isinstance(exc, Neo4jUnavailable) else EXIT_FAILURE)


@neo4j_app.command("start")
def start(
    port: Annotated[int, typer.Option(help="Bolt port on 127.0.0.1 (0: any free port).")] = 7687,
    http_port: Annotated[
        int,
        typer.Option(
            "--http-port",
            help="HTTP port on 127.0.0.1 serving Neo4j Browser and the library guide "
            "(0: any free port).",
        ),
    ] = 7474,
    data: Annotated[
        Path, typer.Option("--data", help="Neo4j home kept between runs (data, logs).")
    ] = Path("neo4j-data"),
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="Turn auth on with the password in this environment variable (user neo4j).",
        ),
    ] = None,
    heap: Annotated[str, typer.Option(help="Java heap, e.g. 2g.")] = "1g",
    pagecache: Annotated[str, typer.Option(help="Page cache, e.g. 1g.")] = "512m",
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar=HOME_ENV,
            help="Directory of the launcher `make neo4j` builds (services/neo4j/target).",
        ),
    ] = None,
) -> None:
    """Run a Neo4j server in the foreground until Ctrl-C, keeping its data in --data.

    Neo4j Browser is served on --http-port, behind the same authentication as Bolt; when it
    connects it loads graphkit's graph style and plays the Cypher library guide.
    """
    from graphkit.browser import browser_url, guide_url, write_guides
    from graphkit.config import Config
    from graphkit.store.neo4j_server import Neo4jServer, Neo4jServerError

    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            fail(f"--password-env {password_env}: that environment variable is not set", 2)
    server = Neo4jServer(home)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        # Rewritten at every start, so the guide always lists the installed library.
        guides = write_guides(data / "graphkit-guides", Config().to_dict())
        with err_console.status("starting Neo4j ..."):
            server.start(
                port=port,
                data_dir=data,
                password=password,
                heap=heap,
                pagecache=pagecache,
                http_port=http_port,
                guides_dir=guides,
            )
    except Neo4jServerError as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    try:
        auth = "user neo4j, password from $" + password_env if password_env else "auth off"
        console.print(f"{server.uri}  ({auth}; data in {data}; Ctrl-C stops)")
        assert server.http_url is not None
        # No `cmd=play` in the URL: a guide played before logging in fails, and that failed
        # frame keeps the server's post-connect `play` from showing; after login, it does.
        console.print(
            f"Neo4j Browser: {browser_url(server.http_url, server.uri)}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        console.print(
            f"(log in; the library guide opens: {guide_url(server.http_url)})",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        while not stop.wait(1.0):
            if not server.running:
                fail("the Neo4j server exited", EXIT_UNAVAILABLE)
    finally:
        server.stop()
    err_console.print("Neo4j stopped")


def load(
    input_dir: Annotated[Path, typer.Argument(help="Input directory (CSV or Parquet per table).")],
    neo4j: Uri = None,
    user: User = None,
    password_env: PasswordEnv = PASSWORD_ENV,
    password: Password = None,
    database: Database = None,
    batch_size: Annotated[int, typer.Option(help="Rows per UNWIND transaction.")] = 10_000,
    bulk: Annotated[
        bool,
        typer.Option(help="Initial load: offline bulk import into --data (no server running)."),
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="With --bulk: the Neo4j data directory to create.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="With --bulk: replace an existing database in --data.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Load time written to valid_from / valid_to: ISO date or datetime (UTC unless "
            "an offset is given); default now. Must not be older than the last load.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
) -> None:
    """Validate IN, build its graph and make Neo4j's current graph equal to it (constraints
    first; idempotent). What the input no longer has, or has changed, is kept as history:
    closed with valid_to = the load time, never deleted (see docs/neo4j.md, "History").

    With --bulk, write a fresh database under --data with Neo4j's offline importer instead (the
    fast path for an initial load); serve it with `graphkit neo4j start --data DIR`.
    """
    load_at = parse_as_of(as_of)
    if bulk:
        if data is None:
            fail("--bulk needs --data DIR (the Neo4j data directory to create)", 2)
        bulk_load(input_dir, data, overwrite, quiet, load_at)
        return
    from graphkit.pipeline import load_graph
    from loaders.sources import InputError

    target = connect(neo4j, user, password_env, database, batch_size, password)
    try:
        with progress_bars(quiet) as progress:
            graph, _ = load_graph(input_dir, progress)
            counts = target.load_graph(graph, progress, as_of=load_at)
    except InputError as exc:
        invalid_input(input_dir, exc.issues, "loaded")
    except Neo4jStoreError as exc:
        store_failure(exc)
    if not quiet:
        rows = [("neo4j", target.describe()["uri"])]
        rows += [(f"nodes: {k}", v) for k, v in counts.nodes.items()]
        rows += [(f"relationships: {k}", v) for k, v in counts.relationships.items()]
        rows += [
            ("load time", f"{counts.as_of:%Y-%m-%dT%H:%M:%S.%fZ}"),
            ("created", f"{counts.nodes_created} nodes, {counts.relationships_created} rels"),
            ("changed nodes (versioned)", counts.node_versions),
            ("closed", f"{counts.nodes_closed} nodes, {counts.relationships_closed} rels"),
            ("nodes/s", round(counts.node_rows / max(counts.node_seconds, 1e-9))),
            (
                "relationships/s",
                round(counts.relationship_rows / max(counts.relationship_seconds, 1e-9)),
            ),
        ]
        console.print(key_values(rows, title="graphkit load"))


def parse_as_of(text: str | None) -> datetime | None:
    """``--as-of``: an ISO date (midnight) or datetime, UTC unless it has an offset; exits 2
    when it is neither."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--as-of {text!r}: expected an ISO date or datetime, e.g. 2026-02-01", 2)
        raise AssertionError("unreachable") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def bulk_load(
    input_dir: Path, data: Path, overwrite: bool, quiet: bool, as_of: datetime | None = None
) -> None:
    """``load --bulk``: validate, build the graph and bulk-import it into ``data``."""
    from graphkit.pipeline import load_graph
    from graphkit.store.neo4j_bulk import BulkImportError, bulk_import
    from graphkit.store.neo4j_server import Neo4jServerError
    from loaders.sources import InputError

    try:
        with progress_bars(quiet) as progress:
            graph, _ = load_graph(input_dir, progress)
            result = bulk_import(graph, data, progress, overwrite=overwrite, as_of=as_of)
    except InputError as exc:
        invalid_input(input_dir, exc.issues, "loaded")
    except (BulkImportError, Neo4jServerError) as exc:
        fail(str(exc), EXIT_FAILURE)
    if not quiet:
        rows = [
            ("data directory", str(result.data_dir)),
            ("nodes", f"{result.imported_nodes:,}"),
            ("relationships", f"{result.imported_relationships:,}"),
            ("csv", f"{result.csv_bytes / 1e6:.1f} MB in {result.csv_seconds:.1f} s"),
            ("import", f"{result.import_seconds:.1f} s"),
            (
                "constraints + indexes",
                f"{result.schema_statements} in {result.schema_seconds:.1f} s",
            ),
            ("total", f"{result.seconds:.1f} s"),
        ]
        console.print(key_values(rows, title="graphkit load --bulk"))


def _param_summary(param: cypher.QueryParam, defaults: dict[str, str]) -> str:
    if param.optional:
        return f"{param.name}?"
    if param.name in defaults:
        return f"{param.name}={defaults[param.name]}"
    return param.name


@cypher_app.command("list")
def list_(
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """The queries of the library with their purpose and parameters (name=default)."""
    from graphkit.config import Config

    frame = pl.DataFrame(
        {
            "name": [q.name for q in cypher.list_queries()],
            "params": [
                ", ".join(_param_summary(p, defaults) for p in q.params)
                for q in cypher.list_queries()
                for defaults in [cypher.default_values(q, Config().to_dict())]
            ],
            "purpose": [q.purpose.split(". ")[0].split(": ")[0] for q in cypher.list_queries()],
        }
    )
    print_frame(frame, format)


def run_config(run: Path | None, config: Path | None) -> dict:
    """The run configuration as a mapping: a run directory's (its manifest's ``parameters``), a
    TOML file's, or graphkit's defaults; exits 2 when both or an unreadable one are given."""
    from graphkit.config import Config, ConfigError, from_mapping, load_config

    if run is not None and config is not None:
        fail("give --run or --config, not both", EXIT_INVALID_INPUT)
    try:
        if config is not None:
            return load_config(config).to_dict()
        if run is not None:
            manifest = run / "manifest.json"
            try:
                parameters = json.loads(manifest.read_text(encoding="utf-8"))["parameters"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                fail(f"{manifest}: no run configuration ({exc})", EXIT_INVALID_INPUT)
            return from_mapping(parameters).to_dict()
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    return Config().to_dict()


@cypher_app.command("browser")
def browser(
    http: Annotated[
        str,
        typer.Option(
            "--http",
            envvar="GRAPHKIT_BROWSER_URL",
            help="Where Neo4j Browser is served (`graphkit neo4j start --http-port`).",
        ),
    ] = Neo4jConfig.browser_url,
    neo4j: Uri = None,
) -> None:
    """Print the URL that opens Neo4j Browser connecting to --neo4j; once logged in, graphkit's
    server plays the library guide (`:play` the second line's URL to open it again)."""
    from graphkit.browser import browser_url, guide_url

    bolt = neo4j or os.environ.get("NEO4J_URI")
    console.print(browser_url(http, bolt), soft_wrap=True, markup=False, highlight=False)
    console.print(guide_url(http), soft_wrap=True, markup=False, highlight=False)


@cypher_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Query name (see `graphkit cypher list`).")],
) -> None:
    """Print a query's text (header included)."""
    try:
        query = cypher.load_query(name)
    except cypher.QueryError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    console.print(query.text, markup=False, highlight=False, soft_wrap=True)


@cypher_app.command("schema")
def schema() -> None:
    """Print the constraint and index script generated from graphkit's schema."""
    console.print(schema_cypher(), markup=False, highlight=False, soft_wrap=True, end="")


@cypher_app.command("run")
def run_query(
    name: Annotated[str, typer.Argument(help="Query name (see `graphkit cypher list`).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A query parameter, key=value (repeatable)."),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    run: Annotated[
        Path | None,
        typer.Option(
            "--run", help="Run directory whose configuration gives the parameters' defaults."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="graphkit.toml giving the parameters' defaults."),
    ] = None,
    neo4j: Uri = None,
    user: User = None,
    password_env: PasswordEnv = PASSWORD_ENV,
    password: Password = None,
    database: Database = None,
) -> None:
    """Run a library query with typed parameters and print its rows.

    Parameters left out take the defaults the query's header gives, read from the run
    configuration where the header names a key (`graphkit cypher list` shows them): graphkit's
    defaults, or those of --config FILE or of the run in --run DIR.
    """
    raw: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--param {item!r}: expected key=value", EXIT_INVALID_INPUT)
        raw[key.strip()] = value
    settings = run_config(run, config)
    try:
        query = cypher.load_query(name)
        values = cypher.convert_params(query, cypher.default_values(query, settings) | raw)
    except cypher.QueryError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    target = connect(neo4j, user, password_env, database, password=password)
    try:
        frame = target.run_query(query.text, values)
    except Neo4jQueryError as exc:
        fail(str(exc), EXIT_FAILURE)
    except Neo4jStoreError as exc:
        store_failure(exc)
    if format == "csv":
        # CSV cannot hold lists or maps: they go out as JSON text.
        frame = frame.with_columns(
            pl.Series(
                c, [json.dumps(v, default=str, ensure_ascii=False) for v in frame[c].to_list()]
            )
            for c, t in frame.schema.items()
            if t.is_nested()
        )
    print_frame(frame, format, title=f"{name}: {frame.height} row(s)")
