"""LiveState: the risk network of a run kept current event by event.

Built from a run directory (:meth:`LiveState.from_run`) or a graph (:meth:`from_graph`), then
updated by :meth:`apply` in event-time order. Each event is validated like an input row, then
passed to the structures it touches (each states its cost per event):

=================  =====================================================================
event              work
=================  =====================================================================
guarantee          :class:`~graphkit.live.structure.LiveCircles` (circles, new cycles)
device_link        :class:`~graphkit.live.structure.LiveRings`
drawdown           velocity, rings (its device), a new fund-flow trace, a decision
transfer           :class:`~graphkit.live.flows.LiveFlows` (the traces that reached its source)
repayment          velocity (outstanding, delinquency)
others             a dictionary insert
=================  =====================================================================

Then the policy's rules are evaluated for the customers the event changed; a rule that newly
fires is an alert in the feed and can raise the customer's tier, never lower it (a tier drops
only with the next batch run). Batch scores, clusters and cluster tiers are read from the run
and stay as they are; a customer created live joins, provisionally, the cluster of its
strongest tie.
"""

from __future__ import annotations

import pickle
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from graphkit.alerts import load_policy
from graphkit.atomic import atomic_file
from graphkit.config import Config, from_mapping
from graphkit.live import rules
from graphkit.live.events import (
    KEY_COLUMNS,
    TABLE_EVENTS,
    TIME_COLUMNS,
    US_PER_DAY,
    US_PER_SECOND,
    Event,
    EventRejected,
    key_text,
    parse_event,
    us_to_datetime,
    us_to_iso,
)
from graphkit.live.flows import LiveFlows, TransferRecord
from graphkit.live.keys import SnapshotKeys
from graphkit.live.load import (
    LiveError,
    columns,
    interned,
    read_run_outputs,
    records,
    runs,
    snapshot_tables,
)
from graphkit.live.results import ApplyResult, Decision
from graphkit.live.structure import LiveCircles, LiveRings
from graphkit.live.velocity import Velocity
from graphkit.progress import SILENT, Progress, task
from graphkit.schema import TABLES
from loaders.sources import ValidationIssue

# Re-traced open windows between two progress reports.
_RETRACE_REPORT = 10_000

# Tables in the order their snapshot rows are loaded (references first).
_LOAD_ORDER = (
    "sectors",
    "merchants",
    "customers",
    "labels",
    "accounts",
    "credit_lines",
    "shareholdings",
    "guarantees",
    "device_links",
    "repayments",
    "drawdowns",
    "transfers",
)


class LiveState(rules.RuleMixin):
    """The live risk network. Build with :meth:`from_run` or :meth:`from_graph`."""

    # The shape of a pickled state (:meth:`checkpoint`), checked when one is read back: bumped
    # whenever the structures' layout changes, so that a state written by another version is
    # refused with a message instead of misread. 1: the snapshot rows' keys as columns
    # (``keys.SnapshotKeys``), a holdings cell's first arrival as the transfer log's entry
    # (``via``), day counts read from the time arrays, small ring sets as tuples. 2: the
    # accounts' hops to a sink (``LiveFlows.distance``), reach and money pruned by them.
    LAYOUT = 2

    def __init__(self, config: Config) -> None:
        self.config = config
        self.policy = load_policy(config.alerts)
        self.run_id = ""
        flows = config.flows
        self.lateness_us = round(config.live.max_lateness_seconds * US_PER_SECOND)
        self.flows = LiveFlows(
            round(flows.window_days * US_PER_DAY),
            flows.max_hops,
            flows.max_expand_per_hop,
            self.lateness_us,
            flows.evidence_paths,
        )
        self.circles = LiveCircles(
            config.circles.max_cycle_length, config.circles.max_cycles_listed
        )
        self.rings = LiveRings(
            config.rings.min_customers_per_device, config.rings.max_customers_per_device
        )
        live = config.live
        self.velocity = Velocity(live.fast_draw_minutes, live.night_start_hour, live.night_end_hour)
        # event key -> the row's schema values, for the events applied live; the snapshot's
        # rows are in ``snapshot_rows`` as columns (``keys.SnapshotKeys``), each with a 64-bit
        # digest of its values (``polars.DataFrame.hash_rows`` in the row's dtypes,
        # ``_row_schemas``): a repeat is told from a clash without a tuple or a key string
        # object per snapshot row
        self.rows: dict[str, tuple[Any, ...]] = {}
        self.snapshot_rows = SnapshotKeys()
        self._row_schemas: dict[str, dict[str, Any]] = {}
        # customer -> its kind; customer -> its label (labelled customers only): two flat
        # dicts instead of a dict of both per customer (184 bytes each)
        self.customers: dict[str, str] = {}
        self.defaulted: dict[str, bool] = {}
        self.lines: dict[str, str] = {}
        self.accounts: dict[str, str] = {}
        self.merchants: dict[str, str] = {}
        self.sectors: dict[str, bool] = {}
        # customer -> its credit lines, and its drawdowns applied live or open at the start
        # (the customer view reads only these: their open traces)
        self.customer_lines: dict[str, list[str]] = defaultdict(list)
        self.customer_drawdowns: dict[str, list[str]] = defaultdict(list)
        # customer -> [drawn, banned, banned 3+ hops]
        self.customer_flow: dict[str, list[float]] = {}
        self.clock: int | None = None
        self.cut: int | None = None
        self.events_applied = 0
        # key sets of the tables events refer to, for the reference checks
        self._known: dict[str, dict[str, Any]] = {
            "customers": self.customers,
            "credit_lines": self.lines,
            "accounts": self.accounts,
            "merchants": self.merchants,
            "sectors": self.sectors,
        }
        rules.RuleMixin.__init__(self)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_run(
        cls, run_dir: Path | str, config: Config | None = None, progress: Progress = SILENT
    ) -> LiveState:
        """The live state of a run directory: its snapshot, outputs and parameters.

        ``config`` defaults to the run's own parameters (manifest) with ``[live]`` defaults.
        ``progress`` hears each step of the build (minutes at millions of nodes).
        Cost: O(snapshot rows) plus re-tracing the drawdowns whose window is still open.
        """
        with task(progress, "live state: read the run"):
            graph, outputs, manifest = read_run_outputs(Path(run_dir))
        if config is None:
            config = from_mapping(manifest.get("parameters", {}))
        # handed over in a box and dropped here, so that the build can free the snapshot graph
        # and the batch frames once read (their memory is most of the build's peak beside the
        # state's own)
        box: list[Any] = [graph, outputs]
        del graph, outputs
        state = cls._build(box, config, progress)
        state.run_id = manifest.get("run_id", "")
        return state

    @classmethod
    def from_graph(
        cls, graph: Any, config: Config, outputs: dict[str, Any] | None = None
    ) -> LiveState:
        """The live state of ``graph`` (a RiskGraph) with batch ``outputs`` (frames by run file
        name; missing fund flows are traced here with the batch kernel)."""
        return cls._build([graph, dict(outputs or {})], config)

    @classmethod
    def _build(cls, box: list[Any], config: Config, progress: Progress = SILENT) -> LiveState:
        """:meth:`from_graph` of ``box`` = [graph, outputs], taken out of the box: the graph
        and each table or output are dropped after their last use. The peak of a build is the
        state plus what is still held of these (at 1M nodes 0.4 GB above the state; 1.3 GB
        when all were held to the end)."""
        from graphkit.analytics.circles import circle_membership
        from graphkit.analytics.flows import trace_flows
        from graphkit.analytics.rings import device_rings

        if config.flows.policy != "first":
            raise LiveError(
                f"flows.policy {config.flows.policy!r} is not replayed live: the live engine "
                "keeps amounts under 'first' (docs/live.md)"
            )
        graph, outputs = box.pop(0), box.pop(0)
        state = cls(config)
        with task(progress, "live state: snapshot rows", len(_LOAD_ORDER)):
            tables = snapshot_tables(graph)
            state.clock = state.cut = state._load_tables(tables, progress)
        for name in list(tables):
            if name not in ("transfers", "drawdowns", "credit_lines", "guarantees"):
                del tables[name]
        progress.start("live state: circles and rings")
        circles = circle_membership(graph)
        state.circles.load(
            list(
                zip(
                    interned(tables["guarantees"]["guarantor_id"]),
                    interned(tables["guarantees"]["borrower_id"]),
                    strict=True,
                )
            ),
            list(columns(circles.select("circle_id", "customer_id"))),
        )
        del tables["guarantees"], circles
        rings = device_rings(
            graph, config.rings.min_customers_per_device, config.rings.max_customers_per_device
        ).membership
        pairs = graph.device_uses()
        state.rings.load(
            list(
                zip(
                    interned(graph.keys("Customer").gather(pairs["customer"])),
                    interned(graph.keys("Device").gather(pairs["device"])),
                    strict=True,
                )
            ),
            list(columns(rings.select("ring_id", "customer_id"))),
        )
        del rings, pairs
        progress.finish("live state: circles and rings")
        if "flows.parquet" not in outputs:
            with task(progress, "live state: trace fund flows"):
                result = trace_flows(graph, config.flows, cycles=False)
            outputs["flows.parquet"], outputs["flow_paths.parquet"] = result.flows, result.paths
            del result
        del graph
        state._load_flows(tables, outputs, progress)
        del tables
        with task(progress, "live state: batch scores, clusters and tiers"):
            state._load_batch(outputs)
        return state

    def _load_tables(self, tables: dict[str, Any], progress: Progress = SILENT) -> int | None:
        """Register and apply the snapshot's rows (no traces, rules or decisions); returns the
        latest event time. Table by table in columns: the rows' keys and values for the
        duplicate checks, the entity maps, and the velocity of drawdowns and repayments in
        polars; Python builds the dicts (O(rows) C-level inserts, no event per row)."""
        import polars as pl

        clock = None
        for name in _LOAD_ORDER:
            frame = tables[name]
            schema_columns = _COLUMNS[name]
            datetimes = [c.name for c in TABLES[name].columns if c.kind.value == "datetime"]
            values = frame.select(
                pl.col(c).dt.epoch("us") if c in datetimes else pl.col(c) for c in schema_columns
            )
            latest = values.select(_own_time(name, values).max()).item()
            if latest is not None and (clock is None or latest > clock):
                clock = latest
            self._row_schemas[name] = dict(values.schema)
            digests = values.hash_rows(*_ROW_SEEDS).to_list() if values.height else []
            self.snapshot_rows.add(
                name, _frame_keys(name, values), digests, f"{TABLE_EVENTS[name]}:"
            )
            if name == "drawdowns":
                self.velocity.load_drawdowns(values)
                drawn = values.group_by("line_id").agg(pl.col("amount").sum())
                for line_id, amount in columns(drawn):
                    customer = self.lines.get(line_id)
                    self.customer_flow.setdefault(customer, [0.0, 0.0, 0.0])[0] += amount
            elif name == "repayments":
                self.velocity.load_repayments(values)
            elif name not in ("transfers", "guarantees", "device_links"):
                for row in records(values):
                    self._apply_entity(name, row)
            progress.advance("live state: snapshot rows")
        return clock

    def _load_flows(
        self, tables: dict[str, Any], outputs: dict[str, Any], progress: Progress = SILENT
    ) -> None:
        """Closed windows from the batch flows (as columns); open ones re-traced from the
        transfer log. Columnar except the re-traces: O(transfers + drawdowns) in polars, plus
        O(accounts) Python to cut the log by account and the re-trace of each open window."""
        import polars as pl

        clock = self.clock if self.clock is not None else 0
        flows = self.flows
        progress.start("live state: transfer log and closed windows")
        # Every transfer is logged, not only the last window's: a drawdown may arrive late (a
        # row waiting for the line it refers to) and is then traced over its whole window.
        transfers = (
            tables.pop("transfers")
            .select(
                "src_account",
                pl.col("ts").dt.epoch("us").alias("ts"),
                "transfer_id",
                "dst_account",
                pl.col("amount").cast(pl.Float64),
            )
            .sort("src_account", "ts", "transfer_id")
        )
        if transfers.height:
            entries = list(  # account ids interned, transfer ids (each its own) not
                zip(
                    transfers.get_column("ts").to_list(),
                    transfers.get_column("transfer_id").to_list(),
                    interned(transfers.get_column("dst_account")),
                    transfers.get_column("amount").to_list(),
                    interned(transfers.get_column("src_account")),
                    strict=True,
                )
            )
            for account, a, b in zip(*runs(transfers.get_column("src_account")), strict=True):
                flows.out_log[account] = entries[a:b]
            flows.distance.load(transfers.select(src="src_account", dst="dst_account"), flows.sinks)
            last = transfers.sort("ts", "transfer_id").row(-1)
            flows.last_transfer = (last[1], last[2])
            del entries
        del transfers
        drawdowns = (
            tables["drawdowns"]
            .select(
                "drawdown_id",
                "line_id",
                "account_id",
                pl.col("amount").cast(pl.Float64).alias("drawn"),
                pl.col("ts").dt.epoch("us").alias("ts"),
            )
            .join(
                tables["credit_lines"].select("line_id", "customer_id"),
                on="line_id",
                how="left",
            )
        )
        # taken out of ``outputs`` (the batch's fund flows are read here only), so that the
        # frames are freed once read
        result = outputs.pop("flows.parquet").join(
            drawdowns, on="drawdown_id", how="inner", maintain_order="left"
        )
        del drawdowns
        is_open = pl.col("ts") + (flows.window_us + flows.keep_us) >= clock
        opened = result.filter(is_open).select(
            "drawdown_id", "account_id", "drawn", "ts", "line_id", "customer_id"
        )
        # the joined frame is gone before the closed rows become columns (1.3 GB at 5M nodes)
        closed = result.filter(~is_open)
        del result
        paths = outputs.pop("flow_paths.parquet", None)
        if paths is not None:
            paths = paths.join(closed.select("drawdown_id"), on="drawdown_id", how="semi")
        flows.closed.add_batch(closed, paths)
        totals = closed.group_by("customer_id").agg(
            pl.col("banned_amount").sum(), pl.col("banned_amount_3plus").sum()
        )
        for customer, banned, banned3 in columns(totals):
            agg = self.customer_flow.setdefault(customer, [0.0, 0.0, 0.0])
            agg[1] += banned
            agg[2] += banned3
        del closed, paths, totals
        progress.finish("live state: transfer log and closed windows")
        with task(progress, "live state: re-trace open windows", opened.height):
            self._retrace(opened, progress)

    def _retrace(self, opened: Any, progress: Progress) -> None:
        """Trace each drawdown of ``opened`` whose window is still open over the transfer log."""
        flows = self.flows
        for done, (did, account, amount, ts, line, customer) in enumerate(columns(opened), 1):
            trace = flows.add_drawdown(did, account, amount, ts, line, customer)
            self.customer_drawdowns[customer].append(did)
            banned, banned3 = trace.banned_amount, sum(trace.banned[3:])
            trace.reported = (banned, banned3) if banned or banned3 else _NO_FLOW
            agg = self.customer_flow.setdefault(customer, [0.0, 0.0, 0.0])
            agg[1] += banned
            agg[2] += banned3
            if not done % _RETRACE_REPORT:
                progress.advance("live state: re-trace open windows", _RETRACE_REPORT)

    # -- applying ----------------------------------------------------------------------------

    def apply(self, event: Event | dict[str, Any], *, at: int | None = None) -> ApplyResult:
        """Validate and apply one event; a rejected event changes nothing.

        ``at`` (microseconds) is the time the event is applied at, for the lateness check and
        for closing fund-flow windows; default the event's own time. Cost: the parse
        (O(columns)) plus the work of the structures the event touches (module docstring).
        """
        started = time.perf_counter_ns()
        try:
            parsed = event if isinstance(event, Event) else parse_event(event)
            status = self._check(parsed, at)
        except EventRejected as exc:
            key = event.key if isinstance(event, Event) else ""
            return ApplyResult("rejected", key, exc.issues, [], None, _us_since(started))
        if status == "duplicate":
            return ApplyResult("duplicate", parsed.key, [], [], None, _us_since(started))
        self._alerts_now = []
        self._event = parsed
        now = at if at is not None else parsed.ts
        if now is not None:
            self._expire(now)
        self._register(parsed)
        decision = self._apply(parsed)
        if now is not None and (self.clock is None or now > self.clock):
            self.clock = now
        self.events_applied += 1
        alerts = self._alerts_now
        self._alerts_now = []
        return ApplyResult("applied", parsed.key, [], alerts, decision, _us_since(started))

    def apply_many(self, events: list[Event | dict[str, Any]]) -> list[ApplyResult]:
        """:meth:`apply` each event in order (each accepted or rejected on its own)."""
        return [self.apply(e) for e in events]

    def _register(self, event: Event) -> None:
        self.rows[event.key] = _row(event)

    def _row_value(self, event: Event, like: tuple[Any, ...] | int) -> tuple[Any, ...] | int:
        """The event's row as ``like`` is kept: a tuple, or the digest of a snapshot row
        (a one-row frame hashed like the snapshot's rows: only for a repeated key)."""
        row = _row(event)
        if isinstance(like, tuple):
            return row
        import polars as pl

        try:
            frame = pl.DataFrame([row], schema=self._row_schemas[event.table], orient="row")
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            return row
        return frame.hash_rows(*_ROW_SEEDS).item()

    def _check(self, event: Event, at: int | None) -> str:
        """References, duplicates and time; returns "new" or "duplicate", else raises."""
        file = f"{event.type} event"
        previous = self.rows.get(event.key)
        if previous is None:
            previous = self.snapshot_rows.get(event.table, event.key)
        if previous is not None:
            if previous == self._row_value(event, previous):
                return "duplicate"
            raise EventRejected(
                [
                    ValidationIssue(
                        file,
                        None,
                        ",".join(TABLES[event.table].key) or None,
                        f"duplicate key {key_text(event.table, event.values)} with other values "
                        "than the row already applied",
                    )
                ]
            )
        issues = self._reference_issues(event, file)
        now = at if at is not None else event.ts
        if now is not None and self.clock is not None and now < self.clock - self.lateness_us:
            column = "ts" if "ts" in event.values else None
            issues.append(
                ValidationIssue(
                    file,
                    None,
                    column,
                    f"event time {us_to_iso(now)} is earlier than the latest event "
                    f"{us_to_iso(self.clock)} by more than the tolerance of "
                    f"{self.config.live.max_lateness_seconds:g} s ([live] max_lateness_seconds)",
                )
            )
        if issues:
            raise EventRejected(issues)
        return "new"

    def _reference_issues(self, event: Event, file: str) -> list[ValidationIssue]:
        known = self._known
        issues = []
        for name, refs, where in _REFERENCES[event.table]:
            value = event.values.get(name)
            if value is None:
                continue
            if len(refs) == 1:
                if value in known[refs[0]]:
                    continue
                hits = []
            else:
                hits = [t for t in refs if value in known[t]]
                if len(hits) == 1:
                    continue
            if not hits:
                issues.append(
                    ValidationIssue(
                        file, None, name, f"dangling reference {value!r}: not found in {where}"
                    )
                )
            elif len(hits) > 1:
                issues.append(
                    ValidationIssue(
                        file,
                        None,
                        name,
                        f"ambiguous reference {value!r}: the id exists in both "
                        + " and ".join(refs),
                    )
                )
        if event.table == "shareholdings":
            company = self.customers.get(event.values["company_id"])
            if company is not None and company != "enterprise":
                issues.append(
                    ValidationIssue(
                        file,
                        None,
                        "company_id",
                        f"company_id {event.values['company_id']!r} is a {company}, "
                        "not an enterprise",
                    )
                )
        return issues

    def _apply_entity(self, table: str, v: dict[str, Any]) -> None:
        if table == "sectors":
            self.sectors[v["sector"]] = bool(v["banned"])
        elif table == "merchants":
            self.merchants[v["merchant_id"]] = v["sector"]
        elif table == "accounts":
            self.accounts[v["account_id"]] = v["owner_id"]
            sector = self.merchants.get(v["owner_id"])
            if sector is not None and self.sectors.get(sector):
                for trace in self.flows.add_sink(v["account_id"]):
                    self._trace_changed(trace)
        elif table == "customers":
            self.customers[v["customer_id"]] = v["kind"]
        elif table == "labels":
            self.defaulted[v["customer_id"]] = bool(v["defaulted"])
        elif table == "credit_lines":
            self.lines[v["line_id"]] = v["customer_id"]
            self.customer_lines[v["customer_id"]].append(v["line_id"])
            self.velocity.add_line(v["line_id"], v["customer_id"], v["limit"], v["opened_at"])
        elif table == "repayments":
            self.velocity.add_repayment(
                v["line_id"], v["due_date"], v["paid_at"], v["amount"], v["days_past_due"]
            )

    def _apply(self, event: Event) -> Decision | None:
        v = event.values
        table = event.table
        if table == "guarantees":
            self._tie(v["guarantor_id"], v["borrower_id"], "guarantee")
            change = self.circles.add(v["guarantor_id"], v["borrower_id"])
            if change is not None:
                self._circle_changed(change)
        elif table == "device_links":
            self._device_use(v["customer_id"], v["device_id"])
        elif table == "shareholdings":
            if v["share"] >= self.config.clusters.shareholding_threshold:
                self._tie(v["holder_id"], v["company_id"], "shareholding")
        elif table == "drawdowns":
            return self._drawdown(event)
        elif table == "transfers":
            record = TransferRecord(
                v["ts"], v["transfer_id"], v["src_account"], v["dst_account"], v["amount"]
            )
            self._tie_accounts(record.src, record.dst)
            for trace in self.flows.add_transfer(record):
                self._trace_changed(trace)
        else:
            self._apply_entity(table, v)
            if table == "labels" and v["defaulted"]:
                self._label_defaulted(v["customer_id"])
        return None

    def _drawdown(self, event: Event) -> Decision:
        v = event.values
        line, account, amount, ts = v["line_id"], v["account_id"], v["amount"], v["ts"]
        customer = self.lines[line]
        self.customer_drawdowns[customer].append(v["drawdown_id"])
        day_count = self.velocity.add_drawdown(line, amount, ts)
        self.customer_flow.setdefault(customer, [0.0, 0.0, 0.0])[0] += amount
        if v.get("device_id") is not None:
            self._device_use(customer, v["device_id"])
        self._burst(customer, ts, day_count)
        trace = self.flows.add_drawdown(v["drawdown_id"], account, amount, ts, line, customer)
        self._trace_changed(trace)
        return self._decision(customer, line, amount, ts, {})

    def _expire(self, now: int) -> None:
        self.flows.expire(now)

    # -- reading -----------------------------------------------------------------------------

    def decide(self, proposed: dict[str, Any]) -> Decision:
        """The decision for a proposed drawdown, without changing anything.

        ``proposed``: ``line_id``, ``amount``, ``ts``, ``account_id``, optional ``device_id``,
        ``channel``, ``drawdown_id``. Validated like a drawdown event (raises
        :class:`EventRejected`). Counts the drawdown in its day (the burst rule) and its device
        (rings) as if applied. Cost: O(rules of one customer).
        """
        data = {"type": "drawdown", "drawdown_id": "proposed", **proposed}
        event = parse_event(data)
        issues = self._reference_issues(event, "drawdown event")
        if issues:
            raise EventRejected(issues)
        v = event.values
        customer = self.lines[v["line_id"]]
        extra = self._hypothetical_hits(customer, v["ts"], v.get("device_id"))
        return self._decision(customer, v["line_id"], v["amount"], v["ts"], extra)

    @property
    def last_event_ts(self) -> Any:
        return us_to_datetime(self.clock) if self.clock is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        # the layout goes first in the pickle and is checked before any part of the state is
        # unpickled (a part of another layout would fail in its own way before)
        return (_unpickled, (self.LAYOUT,), self.__dict__)

    def checkpoint(self, path: Path | str) -> None:
        """Write the whole state to ``path`` atomically (pickle)."""
        with atomic_file(path) as fh:  # streamed: no second, in-memory copy of a large state
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, path: Path | str) -> LiveState:
        """Read a state written by :meth:`checkpoint` (only from a trusted state directory)."""
        with Path(path).open("rb") as fh:
            try:
                state = pickle.load(fh)
            except LiveError as exc:
                raise LiveError(f"{path}: {exc}") from None
            except Exception as exc:  # a state of an older layout, before the layout was kept
                raise LiveError(
                    f"{path}: not a live state this graphkit can read ({type(exc).__name__}: "
                    f"{exc}); start from the run directory again"
                ) from exc
        if not isinstance(state, cls):
            raise LiveError(f"{path}: not a live state checkpoint")
        return state


def _unpickled(layout: int) -> LiveState:
    """An empty :class:`LiveState` to unpickle into, if ``layout`` is the one this graphkit
    reads (:attr:`LiveState.LAYOUT`), else :class:`LiveError`."""
    if layout != LiveState.LAYOUT:
        raise LiveError(
            f"a live state of layout {layout} (written by another graphkit version); this one "
            f"reads layout {LiveState.LAYOUT}: start from the run directory again"
        )
    return LiveState.__new__(LiveState)


# Per table: its schema column names, and (column, tables referred to, their keys in words)
# for the columns holding references; built once, read per event.
_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in table.columns) for name, table in TABLES.items()
}
_REFERENCES: dict[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    name: tuple(
        (c.name, tuple(c.refs), " or ".join(f"{t}.{TABLES[t].key[0]}" for t in c.refs))
        for c in table.columns
        if c.refs
    )
    for name, table in TABLES.items()
}


_NO_FLOW = (0.0, 0.0)  # the open traces' reported amounts while none reached a sink: one tuple
_ROW_SEEDS = (14, 15, 16, 17)  # hash_rows seeds (fixed: digests survive a checkpoint)


def _row(event: Event) -> tuple[Any, ...]:
    return tuple(map(event.values.get, _COLUMNS[event.table]))


def _own_time(table: str, frame: Any) -> Any:
    """A row's event time (``events.event_time``) as a polars expression in microseconds."""
    import polars as pl

    parts = [
        pl.col(c).cast(pl.Datetime("us")).dt.epoch("us")
        if frame.schema[c] == pl.Date
        else pl.col(c).cast(pl.Int64)
        for c in TIME_COLUMNS.get(table, ())
    ]
    return pl.coalesce(parts) if parts else pl.lit(None, dtype=pl.Int64)


def _frame_keys(table: str, values: Any) -> list[str]:
    """``events.event_key`` of every row of ``values`` (schema columns in event kinds)."""
    import polars as pl

    kind = TABLE_EVENTS[table]
    columns = KEY_COLUMNS[table]
    if len(columns) == 1:
        return (
            values.select(
                pl.format("{}:{}", pl.lit(kind), pl.col(columns[0]).cast(pl.String)).fill_null(
                    f"{kind}:"
                )
            )
            .to_series()
            .to_list()
        )
    return [
        f"{kind}:" + "|".join("" if v is None else str(v) for v in row)
        for row in values.select(columns).rows()
    ]


def _us_since(started: int) -> int:
    return (time.perf_counter_ns() - started) // 1000
