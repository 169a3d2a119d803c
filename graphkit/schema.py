"""The single source of truth for graphkit's data model.

Input tables (ARCHITECTURE section 3), graph node labels and relationship types (section 4), and
the properties written back after a run. The loaders validate against :data:`TABLES`, the
:class:`~graphkit.graph.RiskGraph` is built from :data:`NODES` and :data:`RELATIONSHIPS`, the Neo4j
store derives its constraints and load statements from them, and the synthetic generator writes
exactly these columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl


class Kind(StrEnum):
    """Logical column kinds; each maps to one polars dtype and one parsing rule."""

    ID = "id"  # opaque identifier, kept as text verbatim
    TEXT = "text"
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"  # ISO-8601, UTC when no zone is given


DTYPES: dict[Kind, pl.DataType] = {
    Kind.ID: pl.String(),
    Kind.TEXT: pl.String(),
    Kind.FLOAT: pl.Float64(),
    Kind.INT: pl.Int64(),
    Kind.BOOL: pl.Boolean(),
    Kind.DATE: pl.Date(),
    Kind.DATETIME: pl.Datetime("us", "UTC"),
}


class Check(StrEnum):
    """Value constraints a column may carry."""

    POSITIVE = "positive"  # > 0
    NON_NEGATIVE = "non_negative"  # >= 0
    SHARE = "share"  # in (0, 1]


@dataclass(frozen=True)
class Column:
    """One column of an input table.

    ``refs`` names the tables whose key this column must match (a polymorphic reference such as
    an account's owner lists several). ``choices`` restricts text values.
    """

    name: str
    kind: Kind
    required: bool = False
    check: Check | None = None
    refs: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()

    @property
    def dtype(self) -> pl.DataType:
        return DTYPES[self.kind]


@dataclass(frozen=True)
class Table:
    """One input table; ``key`` columns are unique when given."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    mandatory: bool = False
    # Pairs of columns that must differ on a row (a customer cannot guarantee itself).
    distinct: tuple[tuple[str, str], ...] = ()

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}


def _c(name: str, kind: Kind, required: bool = False, **kw: object) -> Column:
    return Column(name, kind, required, **kw)  # type: ignore[arg-type]


CUSTOMER_KINDS = ("person", "enterprise")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            (
                _c("customer_id", Kind.ID, True),
                _c("kind", Kind.TEXT, True, choices=CUSTOMER_KINDS),
                _c("name", Kind.TEXT),
                _c("sector", Kind.TEXT),
                _c("region", Kind.TEXT),
                _c("registered_capital", Kind.FLOAT, check=Check.NON_NEGATIVE),
                _c("created_at", Kind.DATETIME),
            ),
            key=("customer_id",),
            mandatory=True,
        ),
        Table(
            "sectors",
            (
                _c("sector", Kind.ID, True),
                _c("name", Kind.TEXT),
                _c("banned", Kind.BOOL, True),
                _c("category", Kind.TEXT),
            ),
            key=("sector",),
        ),
        Table(
            "merchants",
            (
                _c("merchant_id", Kind.ID, True),
                _c("sector", Kind.ID, True, refs=("sectors",)),
            ),
            key=("merchant_id",),
        ),
        Table(
            "accounts",
            (
                _c("account_id", Kind.ID, True),
                _c("owner_id", Kind.ID, True, refs=("customers", "merchants")),
            ),
            key=("account_id",),
        ),
        Table(
            "credit_lines",
            (
                _c("line_id", Kind.ID, True),
                _c("customer_id", Kind.ID, True, refs=("customers",)),
                _c("limit", Kind.FLOAT, True, check=Check.POSITIVE),
                _c("opened_at", Kind.DATETIME),
                _c("status", Kind.TEXT),
            ),
            key=("line_id",),
        ),
        Table(
            "drawdowns",
            (
                _c("drawdown_id", Kind.ID, True),
                _c("line_id", Kind.ID, True, refs=("credit_lines",)),
                _c("account_id", Kind.ID, True, refs=("accounts",)),
                _c("amount", Kind.FLOAT, True, check=Check.POSITIVE),
                _c("ts", Kind.DATETIME, True),
                _c("channel", Kind.TEXT),
                _c("device_id", Kind.ID),
            ),
            key=("drawdown_id",),
        ),
        Table(
            "repayments",
            (
                _c("line_id", Kind.ID, True, refs=("credit_lines",)),
                _c("due_date", Kind.DATE, True),
                _c("paid_at", Kind.DATETIME),
                _c("amount", Kind.FLOAT, True, check=Check.NON_NEGATIVE),
                _c("days_past_due", Kind.INT, check=Check.NON_NEGATIVE),
            ),
        ),
        Table(
            "transfers",
            (
                _c("transfer_id", Kind.ID, True),
                _c("src_account", Kind.ID, True, refs=("accounts",)),
                _c("dst_account", Kind.ID, True, refs=("accounts",)),
                _c("amount", Kind.FLOAT, True, check=Check.POSITIVE),
                _c("ts", Kind.DATETIME, True),
            ),
            key=("transfer_id",),
        ),
        Table(
            "guarantees",
            (
                _c("guarantor_id", Kind.ID, True, refs=("customers",)),
                _c("borrower_id", Kind.ID, True, refs=("customers",)),
                _c("amount", Kind.FLOAT, True, check=Check.POSITIVE),
                _c("start", Kind.DATE),
                _c("end", Kind.DATE),
            ),
            distinct=(("guarantor_id", "borrower_id"),),
        ),
        Table(
            "shareholdings",
            (
                _c("holder_id", Kind.ID, True, refs=("customers",)),
                _c("company_id", Kind.ID, True, refs=("customers",)),
                _c("share", Kind.FLOAT, True, check=Check.SHARE),
            ),
            key=("holder_id", "company_id"),
            distinct=(("holder_id", "company_id"),),
        ),
        Table(
            "device_links",
            (
                _c("customer_id", Kind.ID, True, refs=("customers",)),
                _c("device_id", Kind.ID, True),
                _c("first_seen", Kind.DATETIME),
                _c("last_seen", Kind.DATETIME),
            ),
            key=("customer_id", "device_id"),
        ),
        Table(
            "labels",
            (
                _c("customer_id", Kind.ID, True, refs=("customers",)),
                _c("defaulted", Kind.BOOL, True),
                _c("default_date", Kind.DATE),
            ),
            key=("customer_id",),
        ),
    )
}


@dataclass(frozen=True)
class NodeSpec:
    """A node label, the table its nodes come from, and the column that keys it.

    ``extra_sources`` lists (table, column) pairs whose values also create nodes of this label
    (devices are only ever mentioned, never declared).
    """

    label: str
    key: str
    table: str | None
    extra_sources: tuple[tuple[str, str], ...] = ()
    derived: bool = False


NODES: dict[str, NodeSpec] = {
    n.label: n
    for n in (
        NodeSpec("Customer", "customer_id", "customers"),
        NodeSpec("CreditLine", "line_id", "credit_lines"),
        NodeSpec("Account", "account_id", "accounts"),
        NodeSpec("Merchant", "merchant_id", "merchants"),
        NodeSpec("Sector", "sector", "sectors"),
        NodeSpec(
            "Device",
            "device_id",
            None,
            extra_sources=(("device_links", "device_id"), ("drawdowns", "device_id")),
        ),
        NodeSpec("Cluster", "cluster_id", None, derived=True),
        NodeSpec("Circle", "circle_id", None, derived=True),
    )
}

# Customers also carry Person or Enterprise, from customers.kind.
CUSTOMER_SUBLABELS: dict[str, str] = {"person": "Person", "enterprise": "Enterprise"}


@dataclass(frozen=True)
class RelSpec:
    """A relationship built from one input table.

    ``name`` is unique inside graphkit; ``type`` is the Neo4j relationship type (``OWNS`` has two
    specs because an account's owner is a customer or a merchant). ``src_col``/``dst_col`` hold
    the endpoint keys; ``props`` are the table columns stored on the relationship. A row belongs
    to a spec when its ``src_col`` is a key of ``src`` (each account row is one ``OWNS``).
    """

    name: str
    type: str
    src: str
    dst: str
    table: str
    src_col: str
    dst_col: str
    props: tuple[str, ...] = ()


RELATIONSHIPS: dict[str, RelSpec] = {
    r.name: r
    for r in (
        RelSpec(
            "has_line",
            "HAS_LINE",
            "Customer",
            "CreditLine",
            "credit_lines",
            "customer_id",
            "line_id",
        ),
        RelSpec(
            "drawdown",
            "DRAWDOWN",
            "CreditLine",
            "Account",
            "drawdowns",
            "line_id",
            "account_id",
            ("drawdown_id", "amount", "ts", "channel", "device_id"),
        ),
        RelSpec(
            "owns_customer", "OWNS", "Customer", "Account", "accounts", "owner_id", "account_id"
        ),
        RelSpec(
            "owns_merchant", "OWNS", "Merchant", "Account", "accounts", "owner_id", "account_id"
        ),
        RelSpec(
            "transfer",
            "TRANSFER",
            "Account",
            "Account",
            "transfers",
            "src_account",
            "dst_account",
            ("transfer_id", "amount", "ts"),
        ),
        RelSpec(
            "in_sector", "IN_SECTOR", "Merchant", "Sector", "merchants", "merchant_id", "sector"
        ),
        RelSpec(
            "guarantees",
            "GUARANTEES",
            "Customer",
            "Customer",
            "guarantees",
            "guarantor_id",
            "borrower_id",
            ("amount", "start", "end"),
        ),
        RelSpec(
            "holds_shares",
            "HOLDS_SHARES",
            "Customer",
            "Customer",
            "shareholdings",
            "holder_id",
            "company_id",
            ("share",),
        ),
        RelSpec(
            "uses_device",
            "USES_DEVICE",
            "Customer",
            "Device",
            "device_links",
            "customer_id",
            "device_id",
            ("first_seen", "last_seen"),
        ),
    )
}

# Relationships written back from a run (not loaded from input tables).
DERIVED_RELATIONSHIPS: dict[str, tuple[str, str]] = {
    "IN_CLUSTER": ("Customer", "Cluster"),
    "IN_CIRCLE": ("Customer", "Circle"),
}

# Customer properties written back after a run, with their dtypes.
WRITEBACK_PROPERTIES: dict[str, pl.DataType] = {
    "cluster_id": pl.Int64(),
    "circle_id": pl.Int64(),
    "ring_id": pl.Int64(),
    "banned_share": pl.Float64(),
    "contagion_score": pl.Float64(),
    "gnn_score": pl.Float64(),
    "risk_score": pl.Float64(),
    "tier": pl.String(),
}

TIERS: tuple[str, ...] = ("green", "yellow", "orange", "red")


def tier_label(tier: str) -> str:
    """The node label a customer of ``tier`` carries, e.g. ``TierRed``.

    A graph style sheet (Neo4j Browser's GRASS) selects by label only, so colouring customers by
    tier needs the tier as a label; the write-back sets it (one such label per customer, the
    others removed).
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r} (tiers: {', '.join(TIERS)})")
    return "Tier" + tier.capitalize()


@dataclass(frozen=True)
class OutputSpec:
    """A file of the run directory and the columns it must carry first (ARCHITECTURE section 6)."""

    file: str
    columns: tuple[str, ...] = field(default_factory=tuple)


OUTPUTS: dict[str, OutputSpec] = {
    o.file: o
    for o in (
        OutputSpec("circles.parquet", ("circle_id", "customer_id")),
        OutputSpec("circle_summary.parquet", ("circle_id",)),
        OutputSpec("clusters.parquet", ("customer_id", "cluster_id")),
        OutputSpec("cluster_risk.parquet", ("cluster_id",)),
        OutputSpec("rings.parquet", ("ring_id", "customer_id")),
        OutputSpec(
            "flows.parquet",
            (
                "drawdown_id",
                "amount",
                "banned_amount",
                "banned_amount_3plus",
                "banned_share",
                "min_hops_to_banned",
            ),
        ),
        OutputSpec("flow_paths.parquet", ("drawdown_id",)),
        OutputSpec("transfer_cycles.parquet", ()),
        OutputSpec(
            "scores.parquet", ("customer_id", "contagion_score", "gnn_score", "risk_score", "tier")
        ),
        OutputSpec(
            "alerts.csv",
            ("customer_id", "line_id", "tier", "response", "reasons", "recommended_limit"),
        ),
    )
}
