"""Validation rules within one table: values that failed to convert, required values, choices,
value checks, self-links and duplicate keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from graphkit.schema import Check, Table
from loaders.issues import ROW, IssueLog, report_mask
from loaders.readers import CsvSource, ParquetSource
from loaders.values import BAD, Conversion, bad_value_message

CHECK_TEXT = {Check.POSITIVE: "> 0", Check.NON_NEGATIVE: ">= 0", Check.SHARE: "in (0, 1]"}


def report_bad_values(
    file: str,
    frame: pl.DataFrame,
    conversions: dict[str, Conversion],
    source: CsvSource | ParquetSource,
    log: IssueLog,
) -> None:
    """One issue per row and column whose value failed to convert, with the value as written."""
    failed: list[tuple[str, int, list[int]]] = []
    for name, conversion in conversions.items():
        if conversion.present is None:
            continue
        flags = frame.get_column(BAD + name)
        total = int(flags.sum())
        if total:
            rows = frame.filter(flags).get_column(ROW).head(log.room(file)).to_list()
            failed.append((name, total, rows))
    if not failed:
        return
    wanted = sorted({r for _, _, rows in failed for r in rows})
    raw = source.raw_rows(wanted, [name for name, _, _ in failed])
    for name, total, rows in failed:
        col = conversions[name].column
        values = dict(
            zip(raw.get_column(ROW).to_list(), raw.get_column(name).to_list(), strict=True)
        )
        log.add_counted(
            file, total, ((r, name, bad_value_message(col, values.get(r))) for r in rows)
        )


def check_rows(
    table: Table,
    file: str,
    frame: pl.DataFrame,
    conversions: dict[str, Conversion],
    log: IssueLog,
) -> None:
    """Required values, choices, value checks, self-links and duplicate keys."""
    # (mask, column, message(*values), values): counted in one pass, listed where they hit.
    checks: list[tuple[pl.Expr, str, Callable[..., str], list[str]]] = []
    for name, conversion in conversions.items():
        col = conversion.column
        if conversion.column_error is not None:
            continue
        value = pl.col(name)
        if col.required:
            missing = value.is_null()
            if conversion.present is not None:
                missing = missing & ~pl.col(BAD + name)
            checks.append((missing, name, lambda: "empty value in required column", []))
        if col.choices:
            allowed = ", ".join(col.choices)
            checks.append(
                (
                    value.is_not_null() & ~value.is_in(list(col.choices)),
                    name,
                    lambda v, allowed=allowed: f"{v!r} is not one of: {allowed}",
                    [name],
                )
            )
        if col.check is not None:
            violates = {
                Check.POSITIVE: value <= 0,
                Check.NON_NEGATIVE: value < 0,
                Check.SHARE: (value <= 0) | (value > 1),
            }[col.check]
            rule = CHECK_TEXT[col.check]
            checks.append((violates, name, lambda v, rule=rule: f"{v!r} must be {rule}", [name]))
    for first, second in table.distinct:
        if first in conversions and second in conversions:
            checks.append(
                (
                    pl.col(first) == pl.col(second),
                    first,
                    lambda v, first=first, second=second: (
                        f"{first} equals {second} ({v!r}): a customer cannot be linked to itself"
                    ),
                    [first],
                )
            )
    if checks:
        counts = frame.select(
            mask.fill_null(False).sum().alias(str(i)) for i, (mask, *_) in enumerate(checks)
        ).row(0)
        for count, (mask, column, message, values) in zip(counts, checks, strict=True):
            if count:
                report_mask(file, frame, mask, column, message, log, values)
    keys = list(table.key)
    if keys and all(k in conversions for k in keys):
        keyed = frame.select(ROW, *keys).filter(pl.all_horizontal(pl.col(keys).is_not_null()))
        first = (pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])).is_first_distinct()
        dupes = keyed.filter(~first)
        if dupes.height:
            firsts = (
                keyed.filter(first)
                .join(dupes.select(keys).unique(), on=keys, how="semi")
                .rename({ROW: "__first"})
            )
            dupes = dupes.join(firsts, on=keys, how="left").sort(ROW)
            label = ",".join(keys)
            report_mask(
                file,
                dupes,
                pl.lit(True),
                label,
                lambda *vals: (
                    f"duplicate key {key_text(keys, vals[:-1])} (first at row {vals[-1]})"
                ),
                log,
                [*keys, "__first"],
            )


def key_text(keys: Sequence[str], values: Sequence[object]) -> str:
    if len(keys) == 1:
        return f"{keys[0]}={values[0]!r}"
    return "(" + ", ".join(keys) + ")=(" + ", ".join(repr(v) for v in values) + ")"
