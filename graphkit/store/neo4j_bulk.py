"""Initial load of a RiskGraph into a fresh Neo4j database with the offline bulk importer.

``neo4j-admin database import full`` writes the store files directly, without transactions, so it
is an order of magnitude faster than any Bolt load; the price is that it only builds a *new*
database, with the server stopped. :func:`bulk_import` does the whole initial load:

1. **CSV** (polars, vectorised): one node file per label of :data:`graphkit.schema.NODES` and one
   relationship file per entry of :data:`graphkit.schema.RELATIONSHIPS`, in the importer's header
   format. Each label is its own id space (``customer_id:ID(Customer)``), so the node key is both
   the import id and a string property. Customers get ``Person``/``Enterprise`` from ``kind``
   (``:LABEL``). Relationships name their endpoints by key (``:START_ID(Customer)``,
   ``:END_ID(CreditLine)``). Properties are typed (``amount:double``, ``ts:datetime``,
   ``start:date``, ``defaulted:boolean``) with exactly the values the Bolt loader
   (:mod:`graphkit.store.neo4j`) would store: same conversions (:func:`bolt_frame`), nulls left
   unset, and ``GUARANTEES.row_key`` so that a later incremental Bolt load merges onto the bulk
   loaded relationships instead of duplicating them. The history model of the Bolt loader
   (:mod:`graphkit.store.neo4j_history`) starts here too: every node and relationship gets
   ``valid_from`` = the load time ``as_of`` (default now), and one ``GraphLoad {as_of}`` node
   records the load, so a later ``graphkit load`` over Bolt closes and versions exactly as it
   would after a first Bolt load. Only files whose text holds a line break are parsed in the
   importer's (slower) multi-line mode.
2. **Import**: the ``graphkit.neo4j.BulkImport`` main of the launcher jar (``make neo4j``) runs
   the importer into ``DATA_DIR/data/databases/neo4j``, the layout ``Neo4jServer(data_dir=...)``
   and ``Launcher --data DATA_DIR`` serve.
3. **Schema**: the record-format importer of Neo4j community cannot create indexes, so the same
   Java process then opens the new database embedded (no connector) just long enough to run
   :func:`graphkit.store.neo4j.schema_cypher` (the Bolt loader's unique constraints and indexes)
   and wait for every index to come online.

An existing non-empty database is refused unless ``overwrite=True``, which replaces it. A failed
import removes the half-written store (the importer leaves it unusable).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress
from graphkit.schema import CUSTOMER_SUBLABELS, NODES, RELATIONSHIPS
from graphkit.store.neo4j_frames import (
    LOAD_KEY,
    LOAD_LABEL,
    VALID_FROM,
    RowTotals,
    _row_key,
    bolt_frame,
    relationship_merge_key,
    schema_cypher,
    schema_statements,
)
from graphkit.store.neo4j_load import load_time
from graphkit.store.neo4j_server import _JVM_FLAGS, Neo4jServerError, _find_java, default_home

__all__ = [
    "DATABASE",
    "BulkImportError",
    "BulkImportResult",
    "ImportFile",
    "bulk_import",
    "database_dir",
    "write_import_csv",
]

DATABASE = "neo4j"
"""The database the Launcher serves by default, and the one the bulk import fills."""

_MAIN_CLASS = "graphkit.neo4j.BulkImport"
_EXIT_NOT_EMPTY = 3
# Written unquoted by polars and read back by the importer exactly (microseconds, always UTC).
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
_DATE_FORMAT = "%Y-%m-%d"
_TIME_FORMAT = "%H:%M:%S%.6f"
# Unit separator: never inside an id or a name, unlike the importer's default ';'.
_ARRAY_DELIMITER = "\x1f"
_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$|^[1-9][0-9]?%$")
_STAGE_LINE = re.compile(r"^\((\d)/(\d)\) (.+?) \d{4}-\d\d-\d\d")
_PERCENT_LINE = re.compile(r"\s(\d{1,3})% ∆")
_SUMMARY = re.compile(r"(\d+) nodes\s+(\d+) relationships\s+(\d+) properties", re.MULTILINE)
_IMPORT_STAGES = 4
_OUTPUT_TAIL = 60
_SCHEMA_MARKER = "bulk-import: creating schema"


class BulkImportError(RuntimeError):
    """The bulk import could not run or failed; the message says why and what to do."""


class _DatabaseNotEmpty(BulkImportError):
    """The importer found the database directory filled after this process checked it."""


@dataclass(frozen=True)
class ImportFile:
    """One CSV file handed to the importer.

    ``group`` is the node label or the relationship type; ``name`` is the label or the
    relationship name of :data:`graphkit.schema.RELATIONSHIPS`; ``multiline`` is whether a text
    value in it holds a line break.
    """

    kind: str  # "nodes" | "relationships" | "load" (the GraphLoad record, a node file)
    name: str
    group: str
    path: Path
    rows: int
    multiline: bool


@dataclass(frozen=True)
class BulkImportResult(RowTotals):
    """What :func:`bulk_import` wrote, and how long each step took.

    ``nodes`` (per label) and ``relationships`` (per relationship name) count the rows written;
    ``imported_*`` are the importer's own totals (nodes: with the one ``GraphLoad`` record),
    ``as_of`` the load time written as ``valid_from``, ``schema_statements`` the constraints and
    indexes created afterwards (0 when skipped).
    """

    data_dir: Path
    database: str
    nodes: dict[str, int]
    relationships: dict[str, int]
    csv_bytes: int
    csv_seconds: float
    import_seconds: float
    schema_seconds: float
    imported_nodes: int
    imported_relationships: int
    imported_properties: int
    schema_statements: int
    as_of: datetime | None = None

    @property
    def seconds(self) -> float:
        return self.csv_seconds + self.import_seconds + self.schema_seconds


def database_dir(data_dir: Path | str, database: str = DATABASE) -> Path:
    """Where the store files of ``database`` live under the Neo4j home ``data_dir``."""
    return Path(data_dir) / "data" / "databases" / database


def _transactions_dir(data_dir: Path, database: str) -> Path:
    return data_dir / "data" / "transactions" / database


def _csv_type(dtype: pl.DataType) -> str | None:
    """The importer's type name for a column of ``dtype`` after :func:`bolt_frame`; None for a
    type it cannot hold, which is then written as text."""
    if isinstance(dtype, pl.List):
        inner = _csv_type(dtype.inner)
        return f"{inner}[]" if inner in ("string", "long", "double", "boolean") else None
    if dtype == pl.String:
        return "string"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "long"
    if dtype.is_float():
        return "double"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Time:
        return "localtime"
    return None


def _property_columns(frame: pl.DataFrame, skip: tuple[str, ...]) -> list[pl.Expr]:
    """Typed, header-named columns for every property of ``frame`` except ``skip``."""
    columns = []
    for name, dtype in frame.schema.items():
        if name in skip:
            continue
        if ":" in name:
            raise BulkImportError(
                f"property {name!r} has a ':' in its name, which the importer's header "
                "format cannot express; rename the column"
            )
        kind = _csv_type(dtype)
        expr = pl.col(name)
        if kind is None:
            expr, kind = expr.cast(pl.String), "string"
        elif kind.endswith("[]"):
            expr = expr.list.eval(pl.element().cast(pl.String)).list.join(_ARRAY_DELIMITER)
        elif kind == "double" and frame.get_column(name).is_infinite().any():
            # polars writes "inf", which the importer rejects; Java's spelling it reads.
            sign = pl.when(expr > 0).then(pl.lit("Infinity")).otherwise(pl.lit("-Infinity"))
            expr = pl.when(expr.is_infinite()).then(sign).otherwise(expr.cast(pl.String))
        columns.append(expr.alias(f"{name}:{kind}"))
    return columns


def _node_csv(label: str, frame: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    key = NODES[label].key
    frame = bolt_frame(frame).with_columns(pl.lit(as_of).alias(VALID_FROM))
    columns = [pl.col(key).alias(f"{key}:ID({label})")]
    if label == "Customer" and "kind" in frame.columns:
        sublabel = pl.col("kind").replace_strict(
            CUSTOMER_SUBLABELS, default=None, return_dtype=pl.String
        )
        columns.append(sublabel.alias(":LABEL"))
    return frame.select(columns + _property_columns(frame, skip=(key,)))


def _relationship_csv(graph: RiskGraph, name: str, as_of: datetime) -> pl.DataFrame:
    spec = RELATIONSHIPS[name]
    frame = graph.edges[name]
    keyed = frame.with_columns(
        graph.keys(spec.src).gather(frame.get_column("src")).alias("src"),
        graph.keys(spec.dst).gather(frame.get_column("dst")).alias("dst"),
    )
    if relationship_merge_key(spec)[0] == "row":
        keyed = keyed.with_columns(_row_key(spec.props))
    keyed = bolt_frame(keyed).with_columns(pl.lit(as_of).alias(VALID_FROM))
    columns = [
        pl.col("src").alias(f":START_ID({spec.src})"),
        pl.col("dst").alias(f":END_ID({spec.dst})"),
    ]
    return keyed.select(columns + _property_columns(keyed, skip=("src", "dst")))


def _has_line_break(frame: pl.DataFrame) -> bool:
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text or frame.height == 0:
        return False
    found = frame.select(pl.any_horizontal(pl.col(text).str.contains(r"[\r\n]").any()))
    return bool(found.item())


def _write(frame: pl.DataFrame, path: Path) -> None:
    frame.write_csv(
        path,
        datetime_format=_DATETIME_FORMAT,
        date_format=_DATE_FORMAT,
        time_format=_TIME_FORMAT,
    )


def write_import_csv(
    graph: RiskGraph,
    csv_dir: Path | str,
    progress: Progress = SILENT,
    as_of: datetime | None = None,
) -> list[ImportFile]:
    """Write ``graph`` as importer CSV files into ``csv_dir`` (see the module docstring).

    Labels and relationships without rows get no file; ``as_of`` (default now) is the load
    time written as every element's ``valid_from``. Complexity: O(V + E) vectorised work and
    one sequential write per file.

    Returns:
        The files written, nodes first, in :data:`NODES` then :data:`RELATIONSHIPS` order,
        then the ``GraphLoad`` record.
    """
    as_of = load_time(as_of)
    csv_dir = Path(csv_dir)
    (csv_dir / "nodes").mkdir(parents=True, exist_ok=True)
    (csv_dir / "relationships").mkdir(parents=True, exist_ok=True)
    total = sum(f.height for f in graph.nodes.values()) + sum(
        f.height for f in graph.edges.values()
    )
    files: list[ImportFile] = []
    progress.start("neo4j bulk csv", total)
    for label, frame in graph.nodes.items():
        if frame.height == 0:
            continue
        table = _node_csv(label, frame, as_of)
        path = csv_dir / "nodes" / f"{label}.csv"
        _write(table, path)
        files.append(ImportFile("nodes", label, label, path, table.height, _has_line_break(table)))
        progress.advance("neo4j bulk csv", table.height)
    for name, spec in RELATIONSHIPS.items():
        if graph.edges[name].height == 0:
            continue
        table = _relationship_csv(graph, name, as_of)
        path = csv_dir / "relationships" / f"{name}.csv"
        _write(table, path)
        files.append(
            ImportFile("relationships", name, spec.type, path, table.height, _has_line_break(table))
        )
        progress.advance("neo4j bulk csv", table.height)
    record = pl.DataFrame(
        {
            f":ID({LOAD_LABEL})": ["bulk"],
            f"{LOAD_KEY}:datetime": [as_of],
            "nodes_created:long": [sum(f.rows for f in files if f.kind == "nodes")],
            "relationships_created:long": [sum(f.rows for f in files if f.kind != "nodes")],
        }
    )
    path = csv_dir / "nodes" / f"{LOAD_LABEL}.csv"
    _write(record, path)
    files.append(ImportFile("load", LOAD_LABEL, LOAD_LABEL, path, 1, False))
    progress.finish("neo4j bulk csv")
    return files


def _is_non_empty_dir(path: Path) -> bool:
    """Whether ``path`` is a directory with entries, or something other than a directory."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def _java_command(home: Path, heap: str) -> list[str]:
    """``java -Xmx... -cp launcher.jar:lib/* graphkit.neo4j.BulkImport``; raises when the
    launcher is not built or Java is missing, before any work is done."""
    jar = home / "launcher.jar"
    lib = home / "lib"
    if not jar.is_file() or not lib.is_dir():
        raise BulkImportError(
            f"the Neo4j bulk importer is not built ({jar} or {lib}/ is missing): run "
            "`make neo4j` (or `bash services/neo4j/build.sh`)"
        )
    try:
        java = _find_java()
    except Neo4jServerError as exc:
        raise BulkImportError(str(exc)) from None
    classpath = os.pathsep.join([str(jar), str(lib / "*")])
    return [java, f"-Xmx{heap}", *_JVM_FLAGS, "-cp", classpath, _MAIN_CLASS]


def _importer_command(
    java: list[str],
    data_dir: Path,
    files: list[ImportFile],
    report: Path,
    schema: Path | None,
    *,
    database: str,
    overwrite: bool,
    max_memory: str,
    pagecache: str,
    threads: int,
) -> list[str]:
    command = [
        *java,
        "--data",
        str(data_dir),
        "--database",
        database,
    ]
    if overwrite:
        command.append("--overwrite")
    if schema is not None:
        command += ["--create-schema", str(schema), "--pagecache", pagecache]
    # The importer separates several files of one group with ','.
    for file in files:
        if "," in str(file.path):
            raise BulkImportError(
                f"the CSV path {file.path} holds a ',', which the importer reads as a file "
                "separator; use a data directory (or csv_dir) without ','"
            )
        kind = "nodes" if file.kind == "load" else file.kind
        command.append(f"--{kind}={file.group}={file.path}")
    multiline = [str(f.path) for f in files if f.multiline]
    if multiline:
        command += ["--multiline-fields-format=v2", f"--multiline-fields={','.join(multiline)}"]
    command += [
        f"--array-delimiter=U+{ord(_ARRAY_DELIMITER):04X}",
        f"--max-off-heap-memory={max_memory}",
        f"--threads={threads}",
        f"--report-file={report}",
        "--verbose",
    ]
    return command


@dataclass(frozen=True)
class _Run:
    output: str
    import_seconds: float
    schema_seconds: float


class _SchemaFailed(BulkImportError):
    """The data was imported, but creating the constraints and indexes failed."""


def _run_importer(command: list[str], progress: Progress) -> _Run:
    """Run the importer (and the schema step), reporting its stages. Raises on failure."""
    tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL)
    clock = time.perf_counter()
    schema_clock: float | None = None
    output: list[str] = []
    stage = 0
    progress.start("neo4j bulk import", _IMPORT_STAGES * 100)
    done = 0
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as exc:
        raise BulkImportError(f"could not run Java: {exc}") from None
    assert process.stdout is not None
    with process:
        for raw in process.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            output.append(line)
            if line.startswith(_SCHEMA_MARKER):
                schema_clock = time.perf_counter()
                progress.finish("neo4j bulk import")
                progress.start("neo4j bulk schema")
            elif match := _STAGE_LINE.match(line):
                stage = int(match.group(1))
                progress.log(f"neo4j import: {match.group(3)} ({stage}/{match.group(2)})")
            elif (match := _PERCENT_LINE.search(line)) and stage:
                reached = (stage - 1) * 100 + int(match.group(1))
                if reached > done:
                    progress.advance("neo4j bulk import", reached - done)
                    done = reached
    end = time.perf_counter()
    progress.finish("neo4j bulk schema" if schema_clock is not None else "neo4j bulk import")
    if process.returncode == _EXIT_NOT_EMPTY:
        raise _DatabaseNotEmpty(tail[-1].removeprefix("bulk-import: ") if tail else "not empty")
    if process.returncode != 0 and schema_clock is not None:
        raise _SchemaFailed(
            "the data was imported, but creating the constraints and indexes failed (the first "
            f"Bolt load creates them): {_reason(list(tail))}"
        )
    if process.returncode != 0:
        raise BulkImportError(
            f"the Neo4j bulk import failed (status {process.returncode}): {_reason(list(tail))}"
        )
    split = schema_clock if schema_clock is not None else end
    return _Run("\n".join(output), split - clock, end - split)


def _reason(lines: list[str]) -> str:
    """The most telling lines of the importer's output: its root causes, then its last words."""
    causes = [line.strip() for line in lines if line.strip().startswith("Caused by:")]
    last = [line for line in lines if line.strip() and not line.lstrip().startswith("at ")]
    picked = list(dict.fromkeys(causes[-2:] + last[-4:]))
    return "\n".join(picked) if picked else "no output"


def bulk_import(
    graph: RiskGraph,
    data_dir: Path | str,
    progress: Progress = SILENT,
    *,
    overwrite: bool = False,
    create_schema: bool = True,
    csv_dir: Path | str | None = None,
    heap: str = "1g",
    max_memory: str = "2g",
    pagecache: str = "512m",
    threads: int | None = None,
    home: Path | str | None = None,
    as_of: datetime | None = None,
) -> BulkImportResult:
    """Load ``graph`` into a new Neo4j database under the Neo4j home ``data_dir``.

    Args:
        graph: The graph to load.
        data_dir: Neo4j home, the directory ``Neo4jServer().start(data_dir=...)`` (or
            ``Launcher --data``) serves; the store lands in ``data_dir/data/databases/neo4j``.
            No server may be running on it.
        progress: Receives the CSV, import and schema steps.
        overwrite: Replace an existing non-empty database instead of refusing it.
        create_schema: Create the Bolt loader's constraints and indexes right after the
            import; when False the first ``Neo4jTarget.load_graph`` or ``ensure_schema`` does.
        csv_dir: Where to write the CSV files, kept afterwards; default a temporary directory
            inside ``data_dir``, removed afterwards.
        heap: Java heap of the importer (``-Xmx``).
        max_memory: The importer's off-heap budget (``--max-off-heap-memory``), e.g. ``"2g"`` or
            ``"50%"`` of the free memory.
        pagecache: Page cache of the database while the schema is created.
        threads: Importer worker threads; default the number of CPUs.
        home: Directory with ``launcher.jar`` and ``lib/`` (default: ``make neo4j``'s).
        as_of: The load time, every element's ``valid_from`` (default now; naive means UTC).

    Returns:
        Rows written per label and relationship, the importer's totals and the time of each step.

    Raises:
        BulkImportError: The database exists and ``overwrite`` is False, the importer is not
            built, or the import failed (the half-written store is removed) or the schema step
            did (the imported data is kept).

    Complexity: O(V + E) for the CSV files and the import (the importer sorts relationships by
    node, O(E log E) in the worst case), then one index build per constraint.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    home_dir = Path(home).resolve() if home is not None else default_home()
    for name, value in (("heap", heap), ("max_memory", max_memory), ("pagecache", pagecache)):
        if not _SIZE.match(value):
            raise BulkImportError(f"invalid {name} size {value!r} (expected e.g. '2g')")
    store = database_dir(data_dir)
    if not overwrite and _is_non_empty_dir(store):
        raise BulkImportError(
            f"{store} already holds a Neo4j database; the bulk import only builds a new one. "
            "Pass overwrite=True (--overwrite) to replace it, or load incrementally over Bolt"
        )
    existed = _is_non_empty_dir(store)
    java = _java_command(home_dir, heap)
    data_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".bulk-csv-", dir=data_dir) as scratch:
        target = Path(csv_dir).expanduser().resolve() if csv_dir is not None else Path(scratch)
        clock = time.perf_counter()
        as_of = load_time(as_of)
        files = write_import_csv(graph, target, progress, as_of)
        csv_seconds = time.perf_counter() - clock
        csv_bytes = sum(f.path.stat().st_size for f in files)

        schema = Path(scratch) / "schema.cypher" if create_schema else None
        if schema is not None:
            schema.write_text(schema_cypher(), encoding="utf-8")
        command = _importer_command(
            java,
            data_dir,
            files,
            Path(scratch) / "import.report",
            schema,
            database=DATABASE,
            overwrite=overwrite,
            max_memory=max_memory,
            pagecache=pagecache,
            threads=threads or os.cpu_count() or 1,
        )
        try:
            run = _run_importer(command, progress)
        except (_DatabaseNotEmpty, _SchemaFailed):
            raise
        except BulkImportError as exc:
            # A store this import created is unusable now; one it was asked to overwrite may
            # still be in use by a server that kept the importer out, so it is left alone.
            if existed:
                raise BulkImportError(
                    f"{exc}\n{store} may be unusable now; re-run with overwrite"
                ) from None
            _remove_store(data_dir)
            raise

    summary = _SUMMARY.search(run.output)
    imported = tuple(int(g) for g in summary.groups()) if summary else (-1, -1, -1)
    nodes = {f.name: f.rows for f in files if f.kind == "nodes"}
    relationships = {f.name: f.rows for f in files if f.kind == "relationships"}
    node_rows = sum(nodes.values()) + 1  # the GraphLoad record
    if summary and (imported[0], imported[1]) != (node_rows, sum(relationships.values())):
        raise BulkImportError(
            f"the importer reports {imported[0]} nodes and {imported[1]} relationships, but "
            f"{node_rows} and {sum(relationships.values())} rows were written"
        )
    import_seconds, schema_seconds = run.import_seconds, run.schema_seconds
    progress.log(
        f"neo4j bulk import: {sum(nodes.values())} nodes, {sum(relationships.values())} "
        f"relationships into {store} (csv {csv_seconds:.1f} s, import {import_seconds:.1f} s, "
        f"schema {schema_seconds:.1f} s)"
    )
    return BulkImportResult(
        data_dir=data_dir,
        database=DATABASE,
        nodes=nodes,
        relationships=relationships,
        csv_bytes=csv_bytes,
        csv_seconds=csv_seconds,
        import_seconds=import_seconds,
        schema_seconds=schema_seconds,
        imported_nodes=imported[0],
        imported_relationships=imported[1],
        imported_properties=imported[2],
        schema_statements=len(schema_statements()) if create_schema else 0,
        as_of=as_of,
    )


def _remove_store(data_dir: Path) -> None:
    """Remove the store and transaction logs a failed import left unusable."""
    shutil.rmtree(database_dir(data_dir), ignore_errors=True)
    shutil.rmtree(_transactions_dir(data_dir, DATABASE), ignore_errors=True)
