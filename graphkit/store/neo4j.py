"""Neo4j store: constraints, idempotent batched loads, write-back of run results, queries.

Everything sent to the server is parameterised: node labels, relationship types and property
keys in query text come from :mod:`graphkit.schema` (quoted), every value travels in ``$rows``.

Load model. :meth:`Neo4jTarget.load_graph` makes the database's *current* graph equal to the
input and keeps what changed as history (:mod:`graphkit.store.neo4j_history` has the model: every
loaded element carries ``valid_from``, and ``valid_to`` once closed; superseded node properties
are ``Version`` nodes). Nodes are merged on their key (:data:`graphkit.schema.NODES`), in batches
of ``batch_size`` rows; customers also get ``Person`` or ``Enterprise``. Relationships follow,
their endpoints matched on the unique node keys. A relationship is identified by

* its own key when its table has a one-column key stored on it (``DRAWDOWN.drawdown_id``,
  ``TRANSFER.transfer_id``);
* its endpoint pair when its table's key is that pair, or the table is one endpoint's own table
  (``HAS_LINE``, ``OWNS``, ``IN_SECTOR``, ``HOLDS_SHARES``, ``USES_DEVICE``);
* otherwise (``GUARANTEES``: one pair may guarantee several times) its endpoint pair plus
  ``row_key``, the row's declared properties joined with ``|`` and the occurrence number of
  identical rows (``"250000.0|2024-01-01|2025-01-01|1"``), so a re-load merges and never duplicates.

Then the current relationships and nodes the input no longer has are closed (``valid_to`` set to
the load time), never deleted.

Write-back model (:meth:`Neo4jTarget.write_back`). The *current* view is overwritten by each run:
``Customer`` carries :data:`graphkit.schema.WRITEBACK_PROPERTIES` plus ``run_id`` (absent values
removed); ``Cluster`` and ``Circle`` nodes and every ``IN_CLUSTER`` / ``IN_CIRCLE`` relationship are
replaced by the run's. The *history* accumulates: one ``(:RiskRun {run_id, created_at})`` per run
and ``(:Customer)-[:SCORED_IN {tier, risk_score}]->(:RiskRun)`` per scored customer, which is what
``cypher/investigate/tier_worsened.cypher`` compares. Re-writing a run replaces that run's history.
Customers carry their tier as a label (``TierRed``, ...: :func:`graphkit.schema.tier_label`), and
the alerts and their evidence are current-view nodes too (:mod:`graphkit.store.neo4j_evidence`).

Failures. Transient errors (server unavailable, session expired, ``TransientError``) are retried
per batch with exponential backoff, each retry reported through ``progress.log``; when retries
are exhausted :class:`Neo4jUnavailable` is raised. No message built here ever holds the password.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import neo4j
import polars as pl
from neo4j.exceptions import (
    AuthError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress
from graphkit.schema import (
    DERIVED_RELATIONSHIPS,
    RELATIONSHIPS,
    TIERS,
    WRITEBACK_PROPERTIES,
    tier_label,
)
from graphkit.store.neo4j_evidence import (
    ALERT_LABEL,
    EVIDENCE_KINDS,
    EVIDENCE_LABEL,
    EVIDENCE_SCHEMA,
    evidence_frames,
)
from graphkit.store.neo4j_frames import (
    HAS_VERSION,
    LEGACY_CONSTRAINTS,
    LOAD_LABEL,
    RUN_KEY,
    RUN_LABEL,
    SCORED_IN,
    VALID_TO,
    VERSION_LABEL,
    GraphFrames,
    _frame_like,
    _native,
    _q,
    _rows,
    _sorted,
    bolt_frame,
    keyed_frames,
    relationship_merge_key,
    schema_cypher,
    schema_statements,
)
from graphkit.store.neo4j_history import (
    latest_load_query,
    node_state_query,
    relationship_state_query,
)
from graphkit.store.neo4j_load import COUNTERS, LoadCounts, Loader, load_time
from graphkit.store.neo4j_writeback import (
    WriteBackCounts,
    WriteBackInputs,
    derived_nodes,
    writeback_frame,
)

__all__ = [
    "DATABASE_ENV",
    "PASSWORD_ENV",
    "RUN_LABEL",
    "SCORED_IN",
    "URI_ENV",
    "USER_ENV",
    "GraphFrames",
    "LoadCounts",
    "Neo4jQueryError",
    "Neo4jStoreError",
    "Neo4jTarget",
    "Neo4jUnavailable",
    "WriteBackCounts",
    "WriteBackInputs",
    "bolt_frame",
    "keyed_frames",
    "load_time",
    "relationship_merge_key",
    "schema_cypher",
    "schema_statements",
]

URI_ENV = "NEO4J_URI"
USER_ENV = "NEO4J_USER"
PASSWORD_ENV = "NEO4J_PASSWORD"
DATABASE_ENV = "NEO4J_DATABASE"

_RETRYABLE = (ServiceUnavailable, SessionExpired, TransientError)
_REDACTED = "***"


class Neo4jStoreError(RuntimeError):
    """A Neo4j operation failed for a reason retrying cannot fix (e.g. bad credentials)."""


class Neo4jUnavailable(Neo4jStoreError):
    """The Neo4j server could not be reached, or kept failing, after every retry."""


class Neo4jQueryError(Neo4jStoreError):
    """The server rejected a query (syntax, types, a constraint); the message is the server's."""


def _redact_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class Neo4jTarget(Loader):
    """A Neo4j database to load graphs into, write results back to, and query.

    Attributes:
        uri: Bolt URI (``bolt://host:7687``, ``neo4j://...``).
        user: User name; ``None`` means ``neo4j`` when a password is given.
        password: Password; ``None`` connects without auth. Never shown in repr or errors.
        database: Database name; ``None`` is the server's default database.
        batch_size: Rows per ``UNWIND`` transaction.
        max_retries: Retries of one batch on transient errors before giving up.
        retry_backoff: Seconds before the first retry; doubled each time.
    """

    uri: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    batch_size: int = 10_000
    max_retries: int = 5
    retry_backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.uri:
            raise ValueError("a Neo4j URI is required")
        # Credentials written into the URI (bolt://user:pw@host) move into the auth fields: the
        # driver refuses userinfo, and a URI is printed in logs and manifests.
        parts = urlsplit(self.uri)
        if parts.username is not None or parts.password is not None:
            self.user = self.user or (unquote(parts.username) if parts.username else None)
            if self.password is None and parts.password is not None:
                self.password = unquote(parts.password)
            self.uri = _redact_uri(self.uri)

    @classmethod
    def from_env(
        cls,
        uri: str | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        *,
        password_env: str = PASSWORD_ENV,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Neo4jTarget:
        """A target from explicit values, falling back to ``NEO4J_URI``, ``NEO4J_USER``,
        ``NEO4J_DATABASE`` and the password variable ``password_env`` (``NEO4J_PASSWORD``).

        Raises ``ValueError`` when no URI is given either way.
        """
        env = os.environ if environ is None else environ
        uri = uri or env.get(URI_ENV)
        if not uri:
            raise ValueError(f"no Neo4j URI: pass --neo4j URI or set {URI_ENV}")
        return cls(
            uri=uri,
            user=user or env.get(USER_ENV) or None,
            password=password if password is not None else (env.get(password_env) or None),
            database=database or env.get(DATABASE_ENV) or None,
            **options,
        )

    def describe(self) -> dict[str, Any]:
        """Where this target points, for manifests and logs; never holds the password."""
        return {
            "uri": _redact_uri(self.uri),
            "user": self._auth()[0] if self._auth() else None,
            "database": self.database,
            "auth": self.password is not None,
            "batch_size": self.batch_size,
        }

    def _auth(self) -> tuple[str, str] | None:
        if self.password is None:
            return None
        return (self.user or "neo4j", self.password)

    def _redact(self, text: str) -> str:
        return text.replace(self.password, _REDACTED) if self.password else text

    @contextmanager
    def _driver(self) -> Iterator[neo4j.Driver]:
        try:
            driver = neo4j.GraphDatabase.driver(
                self.uri,
                auth=self._auth(),
                connection_timeout=10,
                user_agent="graphkit",
                notifications_min_severity="OFF",
            )
        except (ValueError, neo4j.exceptions.ConfigurationError) as exc:
            raise Neo4jStoreError(
                f"invalid Neo4j URI {_redact_uri(self.uri)!r}: {self._redact(str(exc))}"
            ) from None
        try:
            yield driver
        finally:
            driver.close()

    def _attempt(
        self,
        driver: neo4j.Driver,
        work: Callable[[neo4j.Session], Any],
        what: str,
        progress: Progress,
        access_mode: str = neo4j.WRITE_ACCESS,
    ) -> Any:
        """Run ``work`` in a fresh session, retrying transient failures with backoff."""
        delay = self.retry_backoff
        for attempt in range(self.max_retries + 1):
            try:
                with driver.session(
                    database=self.database, default_access_mode=access_mode
                ) as session:
                    return work(session)
            except AuthError:
                raise Neo4jStoreError(
                    f"Neo4j at {_redact_uri(self.uri)} rejected the credentials of user "
                    f"{(self._auth() or ('(none)',))[0]!r}"
                ) from None
            except _RETRYABLE as exc:
                reason = f"{type(exc).__name__}: {self._redact(str(exc))}".strip()
                if attempt == self.max_retries:
                    raise Neo4jUnavailable(
                        f"Neo4j at {_redact_uri(self.uri)} unavailable: {what} failed after "
                        f"{attempt + 1} attempts ({reason})"
                    ) from None
                progress.log(
                    f"neo4j: {what} failed ({type(exc).__name__}); "
                    f"retry {attempt + 1}/{self.max_retries} in {delay:g} s"
                )
                time.sleep(delay)
                delay *= 2
            except Neo4jError as exc:
                raise Neo4jQueryError(
                    f"{what}: {exc.code}: {self._redact(exc.message or '')}"
                ) from None
        raise AssertionError("unreachable")

    def _write(
        self,
        driver: neo4j.Driver,
        query: str,
        params: dict[str, Any],
        what: str,
        progress: Progress,
    ) -> neo4j.SummaryCounters:
        def work(session: neo4j.Session) -> neo4j.SummaryCounters:
            with session.begin_transaction() as tx:
                counters = tx.run(query, params).consume().counters
                tx.commit()
            return counters

        return self._attempt(driver, work, what, progress)

    def _read(
        self,
        driver: neo4j.Driver,
        query: str,
        params: dict[str, Any],
        what: str,
        progress: Progress = SILENT,
    ) -> tuple[list[str], list[list[Any]]]:
        def work(session: neo4j.Session) -> tuple[list[str], list[list[Any]]]:
            with session.begin_transaction() as tx:
                result = tx.run(query, params)
                keys = list(result.keys())
                rows = [list(record.values()) for record in result]
                tx.commit()
            return keys, rows

        return self._attempt(driver, work, what, progress, neo4j.READ_ACCESS)

    def _batches(
        self,
        driver: neo4j.Driver,
        query: str,
        rows: pl.DataFrame,
        what: str,
        progress: Progress,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        """Send ``rows`` in batches; returns the summed server counters of :data:`COUNTERS`."""
        totals = dict.fromkeys(COUNTERS, 0)
        for offset in range(0, rows.height, self.batch_size):
            batch = rows.slice(offset, self.batch_size)
            params = {"rows": batch.to_dicts(), **(extra or {})}
            counters = self._write(driver, query, params, what, progress)
            for name in COUNTERS:
                totals[name] += getattr(counters, name)
            progress.advance(what, batch.height)
        return totals

    def ensure_schema(self, progress: Progress = SILENT) -> None:
        """Create the constraints and indexes of :func:`schema_statements` (idempotent)."""
        with self._driver() as driver:
            self._ensure_schema(driver, progress)

    def _ensure_schema(self, driver: neo4j.Driver, progress: Progress) -> None:
        legacy = [f"DROP CONSTRAINT {name} IF EXISTS" for name in LEGACY_CONSTRAINTS]
        for statement in legacy + schema_statements():
            self._attempt(
                driver,
                lambda s, q=statement: s.run(q).consume(),
                "create constraints",
                progress,
            )
        self._attempt(
            driver,
            lambda s: s.run("CALL db.awaitIndexes(300)").consume(),
            "await indexes",
            progress,
        )

    def _check_forward(self, driver: neo4j.Driver, as_of: datetime, progress: Progress) -> None:
        _, rows = self._read(driver, latest_load_query(), {}, "latest load", progress)
        latest = _native(rows[0][0]) if rows else None
        if latest is not None and latest > as_of:
            raise Neo4jStoreError(
                f"the load time {as_of.isoformat()} is older than the latest load in the database "
                f"({latest.isoformat()}); history only goes forward: load with a later --as-of"
            )

    def read_graph_counts(self) -> dict[str, dict[str, int]]:
        """Nodes per label and relationships per type of the current graph: elements without
        ``valid_to``, leaving out the history's ``Version`` nodes, ``HAS_VERSION``
        relationships and the ``GraphLoad`` records."""
        nodes: dict[str, int] = {}
        relationships: dict[str, int] = {}
        with self._driver() as driver:
            _, labels = self._read(driver, "CALL db.labels()", {}, "list labels")
            for (label,) in labels:
                if label in (VERSION_LABEL, LOAD_LABEL):
                    continue
                _, rows = self._read(
                    driver,
                    f"MATCH (n:{_q(label)}) WHERE n.{VALID_TO} IS NULL RETURN count(n)",
                    {},
                    "count nodes",
                )
                if rows[0][0]:
                    nodes[label] = rows[0][0]
            _, types = self._read(driver, "CALL db.relationshipTypes()", {}, "list types")
            for (rel_type,) in types:
                if rel_type == HAS_VERSION:
                    continue
                _, rows = self._read(
                    driver,
                    f"MATCH ()-[r:{_q(rel_type)}]->() WHERE r.{VALID_TO} IS NULL RETURN count(r)",
                    {},
                    "count",
                )
                if rows[0][0]:
                    relationships[rel_type] = rows[0][0]
        return {"nodes": nodes, "relationships": relationships}

    def read_graph(self, like: RiskGraph, as_of: date | None = None) -> GraphFrames:
        """Read the loaded graph back in key form, with the columns and dtypes of ``like``
        (see :func:`keyed_frames`); properties the database holds beyond those are left out.

        The current graph by default; with ``as_of``, the graph as it stood at the end of that
        date (nodes with the properties they had then; see :mod:`graphkit.store.neo4j_history`).
        """
        reference = keyed_frames(like)
        nodes: dict[str, pl.DataFrame] = {}
        edges: dict[str, pl.DataFrame] = {}
        params = {"as_of": as_of}
        with self._driver() as driver:
            for label, ref in reference.nodes.items():
                _, rows = self._read(driver, node_state_query(label), params, f"read {label}")
                nodes[label] = _sorted(_frame_like([_native(r[0]) for r in rows], ref.schema))
            for name, spec in RELATIONSHIPS.items():
                _, rows = self._read(
                    driver, relationship_state_query(spec), params, f"read {spec.type}"
                )
                records = [{"src": s, "dst": d, **_native(p)} for s, d, p in rows]
                edges[name] = _sorted(_frame_like(records, reference.edges[name].schema))
        return GraphFrames(nodes=nodes, edges=edges)

    def run_query(
        self, query: str, params: Mapping[str, Any] | None = None, progress: Progress = SILENT
    ) -> pl.DataFrame:
        """Run a read query with ``params``; the records as a frame (columns in result order,
        temporal values as Python datetimes, nodes as property maps)."""
        with self._driver() as driver:
            keys, rows = self._read(driver, query, dict(params or {}), "query", progress)
        if not rows:
            return pl.DataFrame(schema={k: pl.String for k in keys})
        records = [dict(zip(keys, (_native(v) for v in row), strict=True)) for row in rows]
        return pl.DataFrame(records, infer_schema_length=None).select(keys)

    def write_back(
        self, inputs: WriteBackInputs, progress: Progress = SILENT, run_id: str | None = None
    ) -> WriteBackCounts:
        """Write a run's results back (see the module docstring for the model); returns what
        was written. Any frame of ``inputs`` may be None. ``run_id`` defaults to a new id."""
        run_id = run_id or _new_run_id()
        customers = writeback_frame(inputs)
        clusters = derived_nodes(inputs.cluster_risk, inputs.cluster_membership, "cluster_id")
        circles = derived_nodes(inputs.circle_summary, inputs.circle_membership, "circle_id")
        what = "neo4j write-back"
        progress.start(what, customers.height + clusters.height + circles.height)
        with self._driver() as driver:
            self._ensure_schema(driver, progress)
            props = [c for c in customers.columns if c != "customer_id"]
            rows = _rows(bolt_frame(customers), "customer_id", props)
            tiers = customers.get_column("tier")
            # Each customer carries its tier as a label (TierRed, ...) for the Browser's style
            # sheet; the other tiers' labels go, and all of them when the run has no tier.
            for tier in (*TIERS, None):
                keep = tier_label(tier) if tier is not None else None
                removals = "".join(
                    f" REMOVE c:{_q(tier_label(t))}" for t in TIERS if tier_label(t) != keep
                )
                self._batches(
                    driver,
                    "UNWIND $rows AS row MATCH (c:Customer {customer_id: row.k}) "
                    "SET c += row.p, c.run_id = $run_id"
                    + (f", c:{_q(keep)}" if keep else "")
                    + removals,
                    rows.filter(tiers == tier if tier is not None else tiers.is_null()),
                    what,
                    progress,
                    {"run_id": run_id},
                )
            removals = ", ".join(f"c.{_q(p)}" for p in [*WRITEBACK_PROPERTIES, RUN_KEY])
            self._drain(
                driver,
                "MATCH (c:Customer) WHERE c.run_id <> $run_id "
                f"WITH c LIMIT $limit REMOVE {removals} RETURN count(c)",
                {"run_id": run_id},
                progress,
            )
            links = {"in_cluster": 0, "in_circle": 0}
            for label, rel, key, nodes, membership in (
                ("Cluster", "IN_CLUSTER", "cluster_id", clusters, inputs.cluster_membership),
                ("Circle", "IN_CIRCLE", "circle_id", circles, inputs.circle_membership),
            ):
                links[rel.lower()] = self._replace_derived(
                    driver, label, rel, key, nodes, membership, run_id, progress
                )
            scored = self._write_history(driver, customers, run_id, progress)
            alerts, evidence = self._write_evidence(driver, inputs, run_id, progress)
        progress.finish(what)
        counts = WriteBackCounts(
            run_id=run_id,
            customers=customers.height,
            clusters=clusters.height,
            circles=circles.height,
            in_cluster=links["in_cluster"],
            in_circle=links["in_circle"],
            scored=scored,
            alerts=alerts,
            evidence=evidence,
        )
        return counts

    def _write_evidence(
        self, driver: neo4j.Driver, inputs: WriteBackInputs, run_id: str, progress: Progress
    ) -> tuple[int, int]:
        """The alerts and their evidence (:mod:`graphkit.store.neo4j_evidence`): the other
        runs' Alert and Evidence nodes deleted, this run's merged. Returns (alerts, evidence)."""
        for statement in EVIDENCE_SCHEMA:
            self._attempt(driver, lambda s, q=statement: s.run(q).consume(), "schema", progress)
        for label in (ALERT_LABEL, EVIDENCE_LABEL):
            self._drain(
                driver,
                f"MATCH (n:{_q(label)}) WHERE n.run_id IS NULL OR n.run_id <> $run_id "
                "WITH n LIMIT $limit DETACH DELETE n RETURN count(*)",
                {"run_id": run_id},
                progress,
            )
        if inputs.alert_rows is None:
            return 0, 0
        frames = evidence_frames(
            inputs.graph,
            inputs.alert_rows,
            flow_paths=inputs.flow_paths,
            circle_membership=inputs.circle_membership,
            circle_summary=inputs.circle_summary,
            ring_membership=inputs.ring_membership,
            ring_devices=inputs.ring_devices,
        )
        what, extra = "neo4j write-back evidence", {"run_id": run_id}
        alerts = bolt_frame(frames.alerts)  # (drops all-null columns)
        props = [c for c in alerts.columns if c != "customer_id"]
        self._batches(
            driver,
            "UNWIND $rows AS row MATCH (c:Customer {customer_id: row.k}) "
            f"MERGE (a:{_q(ALERT_LABEL)} {{customer_id: row.k}}) "
            "SET a = row.p, a.customer_id = row.k, a.run_id = $run_id "
            "MERGE (c)-[:ALERTED]->(a)",
            _rows(alerts, "customer_id", props),
            what,
            SILENT,
            extra,
        )
        for kind, nodes in frames.nodes.items():
            label, target, key = EVIDENCE_KINDS[kind]
            nodes = bolt_frame(nodes)
            props = [c for c in nodes.columns if c != "evidence_id"]
            self._batches(
                driver,
                f"UNWIND $rows AS row MERGE (e:{_q(EVIDENCE_LABEL)} {{evidence_id: row.k}}) "
                "SET e = row.p, e.evidence_id = row.k, e.kind = $kind, e.run_id = $run_id, "
                f"e:{_q(label)}",
                _rows(nodes, "evidence_id", props),
                what,
                SILENT,
                {**extra, "kind": kind},
            )
            self._batches(
                driver,
                f"UNWIND $rows AS row MATCH (e:{_q(EVIDENCE_LABEL)} {{evidence_id: row.s}}) "
                f"MATCH (x:{_q(target)} {{{_q(key)}: row.d}}) "
                "MERGE (e)-[:ON_PATH {step: row.step}]->(x)",
                frames.steps[kind],
                what,
                SILENT,
            )
        self._batches(
            driver,
            f"UNWIND $rows AS row MATCH (a:{_q(ALERT_LABEL)} {{customer_id: row.s}}) "
            f"MATCH (e:{_q(EVIDENCE_LABEL)} {{evidence_id: row.d}}) MERGE (a)-[:EVIDENCE]->(e)",
            frames.links.select(pl.col("customer_id").alias("s"), pl.col("evidence_id").alias("d")),
            what,
            SILENT,
        )
        return frames.alerts.height, sum(n.height for n in frames.nodes.values())

    def _drain(
        self, driver: neo4j.Driver, query: str, params: dict[str, Any], progress: Progress
    ) -> int:
        """Repeat a ``... LIMIT $limit ... RETURN count(x)`` write until it touches nothing."""
        total = 0
        while True:

            def work(session: neo4j.Session) -> int:
                with session.begin_transaction() as tx:
                    n = tx.run(query, {**params, "limit": self.batch_size}).single(strict=True)[0]
                    tx.commit()
                return n

            n = self._attempt(driver, work, "neo4j write-back cleanup", progress)
            total += n
            if n == 0:
                return total

    def _replace_derived(
        self,
        driver: neo4j.Driver,
        label: str,
        rel: str,
        key: str,
        nodes: pl.DataFrame,
        membership: pl.DataFrame | None,
        run_id: str,
        progress: Progress,
    ) -> int:
        assert DERIVED_RELATIONSHIPS[rel] == ("Customer", label)
        what = "neo4j write-back"
        self._drain(
            driver,
            f"MATCH (:Customer)-[r:{_q(rel)}]->(:{_q(label)}) WITH r LIMIT $limit "
            "DELETE r RETURN count(*)",
            {},
            progress,
        )
        self._drain(
            driver,
            f"MATCH (n:{_q(label)}) WHERE NOT n.{_q(key)} IN $keep "
            "WITH n LIMIT $limit DETACH DELETE n RETURN count(*)",
            {"keep": nodes.get_column(key).to_list()},
            progress,
        )
        props = [c for c in nodes.columns if c != key]
        self._batches(
            driver,
            f"UNWIND $rows AS row MERGE (n:{_q(label)} {{{_q(key)}: row.k}}) "
            f"SET n = {'row.p' if props else '{}'}, n.{_q(key)} = row.k, n.run_id = $run_id",
            _rows(bolt_frame(nodes), key, props),
            what,
            progress,
            {"run_id": run_id},
        )
        if membership is None or membership.height == 0:
            return 0
        pairs = membership.select("customer_id", pl.col(key).cast(pl.Int64)).unique()
        self._batches(
            driver,
            f"UNWIND $rows AS row MATCH (c:Customer {{customer_id: row.s}}) "
            f"MATCH (n:{_q(label)} {{{_q(key)}: row.d}}) "
            f"MERGE (c)-[r:{_q(rel)}]->(n) SET r.run_id = $run_id",
            pairs.select(pl.col("customer_id").alias("s"), pl.col(key).alias("d")),
            "neo4j write-back links",
            SILENT,
            {"run_id": run_id},
        )
        return pairs.height

    def _write_history(
        self, driver: neo4j.Driver, customers: pl.DataFrame, run_id: str, progress: Progress
    ) -> int:
        self._write(
            driver,
            f"MERGE (r:{_q(RUN_LABEL)} {{run_id: $run_id}}) "
            "ON CREATE SET r.created_at = $now SET r.written_at = $now",
            {"run_id": run_id, "now": datetime.now(UTC)},
            "neo4j write-back run",
            progress,
        )
        self._drain(
            driver,
            f"MATCH (:Customer)-[s:{_q(SCORED_IN)}]->(:{_q(RUN_LABEL)} {{run_id: $run_id}}) "
            "WITH s LIMIT $limit DELETE s RETURN count(*)",
            {"run_id": run_id},
            progress,
        )
        scored = customers.filter(pl.col("tier").is_not_null()).select(
            pl.col("customer_id").alias("k"),
            pl.struct(tier="tier", risk_score="risk_score").alias("p"),
        )
        self._batches(
            driver,
            f"MATCH (run:{_q(RUN_LABEL)} {{run_id: $run_id}}) "
            "UNWIND $rows AS row MATCH (c:Customer {customer_id: row.k}) "
            f"MERGE (c)-[s:{_q(SCORED_IN)}]->(run) SET s += row.p",
            scored,
            "neo4j write-back history",
            SILENT,
            {"run_id": run_id},
        )
        return scored.height
