"""Reference checks across tables: dangling references, ambiguous account owners, and
shareholdings in companies that are not enterprises."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from graphkit.schema import TABLES
from loaders.issues import ROW, IssueLog, report_mask
from loaders.readers import ReadTable


def check_references(read: dict[str, ReadTable], found: dict[str, Path], log: IssueLog) -> None:
    """Dangling references, ambiguous account owners, and shareholdings in non-enterprises.

    A reference into a table that exists but could not be read, or into the mandatory customers
    table when it is missing, is not checked (that file's issue already says it); a reference
    into an absent optional table dangles.
    """
    keysets: dict[str, pl.Series | None] = {}
    for name, table in TABLES.items():
        if not table.key or len(table.key) != 1:
            continue
        if name in read:
            keysets[name] = read[name].frame.get_column(table.key[0]) if read[name].usable else None
        elif name in found or table.mandatory:
            # Unreadable, or missing although mandatory: that file's issue says it all.
            keysets[name] = None
        else:
            keysets[name] = pl.Series(table.key[0], [], dtype=pl.String)

    for name, source in read.items():
        for col in TABLES[name].columns:
            if not col.refs or col.name not in source.columns:
                continue
            targets = [keysets[t] for t in col.refs]
            if any(t is None for t in targets):
                continue
            known = pl.concat([t for t in targets if t is not None]).drop_nulls().alias(col.name)
            value = pl.col(col.name)
            where = " or ".join(f"{t}.{TABLES[t].key[0]}" for t in col.refs)
            dangling = (
                source.frame.select(ROW, col.name)
                .filter(value.is_not_null())
                .join(known.unique().to_frame(), on=col.name, how="anti")
                .sort(ROW)
            )
            report_mask(
                source.file,
                dangling,
                pl.lit(True),
                col.name,
                lambda v, where=where: f"dangling reference {v!r}: not found in {where}",
                log,
                [col.name],
            )
            if len(col.refs) > 1:
                both = targets[0]
                for other in targets[1:]:
                    assert both is not None and other is not None
                    both = both.filter(both.is_in(other.implode()))
                assert both is not None
                if both.len():
                    owners = " and ".join(col.refs)
                    report_mask(
                        source.file,
                        source.frame,
                        value.is_in(both.implode()),
                        col.name,
                        lambda v, owners=owners: (
                            f"ambiguous reference {v!r}: the id exists in both {owners}"
                        ),
                        log,
                        [col.name],
                    )

    holdings, customers = read.get("shareholdings"), read.get("customers")
    if (
        holdings is not None
        and customers is not None
        and "kind" in customers.columns
        and "customer_id" in customers.columns
        and "company_id" in holdings.columns
    ):
        non_enterprise = customers.frame.filter(pl.col("kind") != "enterprise").select(
            pl.col("customer_id").alias("company_id"), "kind"
        )
        joined = holdings.frame.select(ROW, "company_id").join(
            non_enterprise, on="company_id", how="inner"
        )
        report_mask(
            holdings.file,
            joined,
            pl.lit(True),
            "company_id",
            lambda v, k: f"company_id {v!r} is a {k}, not an enterprise",
            log,
            ["company_id", "kind"],
        )
