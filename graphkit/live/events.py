"""Events: one row of an input table with its type, parsed and checked like the loaders.

An event is a row of a contract table (ARCHITECTURE section 3) plus ``type``. Timed types carry
their event time in one column: ``customer`` (created_at), ``credit_line`` (opened_at),
``drawdown`` (ts), ``transfer`` (ts), ``repayment`` (paid_at, else due_date), ``guarantee``
(start), ``device_link`` (first_seen). ``account``, ``merchant``, ``sector``, ``label`` and
``shareholding`` rows carry no time and apply at once.

:func:`parse_event` applies the loaders' per-value rules (types, required values, choices,
``> 0`` / ``>= 0`` / share checks, self-links) with the loaders' own messages; references and
duplicates need the state and are checked by :class:`graphkit.live.state.LiveState`. Problems
are :class:`loaders.sources.ValidationIssue` with ``file = "<type> event"`` and the column, so
they read exactly like input errors.

Times are held as integer microseconds since the epoch (UTC); dates as ``datetime.date``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from graphkit.schema import TABLES, Check, Kind

# The loaders' own wording of value problems: reused so an event and a file say the same thing.
from loaders.rules import CHECK_TEXT
from loaders.rules import key_text as loaders_key_text
from loaders.sources import ValidationIssue
from loaders.values import BOOL_WORDS, ISO_DATE, ISO_DATETIME, bad_value_message

# event type -> input table
EVENT_TABLES: dict[str, str] = {
    "customer": "customers",
    "credit_line": "credit_lines",
    "drawdown": "drawdowns",
    "transfer": "transfers",
    "repayment": "repayments",
    "guarantee": "guarantees",
    "device_link": "device_links",
    "account": "accounts",
    "merchant": "merchants",
    "sector": "sectors",
    "label": "labels",
    "shareholding": "shareholdings",
}
TABLE_EVENTS: dict[str, str] = {table: kind for kind, table in EVENT_TABLES.items()}

# The time column of each timed table (repayments fall back to due_date).
TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("created_at",),
    "credit_lines": ("opened_at",),
    "drawdowns": ("ts",),
    "transfers": ("ts",),
    "repayments": ("paid_at", "due_date"),
    "guarantees": ("start",),
    "device_links": ("first_seen",),
}

# Order of tables at one instant: a row after the rows it may refer to, and drawdowns before
# transfers (the flows' event order: a transfer stamped t0 can carry a drawdown made at t0).
TABLE_RANK: dict[str, int] = {
    table: rank
    for rank, table in enumerate(
        (
            "sectors",
            "merchants",
            "customers",
            "labels",
            "shareholdings",
            "accounts",
            "credit_lines",
            "guarantees",
            "device_links",
            "drawdowns",
            "transfers",
            "repayments",
        )
    )
}

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


@dataclass(frozen=True)
class Event:
    """A parsed event: its type, its table, its values by column, and its event time.

    ``values`` holds every schema column of the table (None when absent) in the schema's kinds:
    str for ids and text, float, int, bool, ``date`` for dates and int microseconds (UTC) for
    datetimes; extra columns are kept as given. ``ts`` is the event time in microseconds (None
    for untimed rows or a timed row without its time). ``key`` identifies the row for
    idempotency: ``<type>:<key columns>``; tables without a key (repayments, guarantees) use
    every schema column.
    """

    type: str
    table: str
    values: dict[str, Any]
    ts: int | None
    key: str

    def get(self, column: str) -> Any:
        return self.values.get(column)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``type`` + columns; datetimes and dates as ISO-8601 text)."""
        out: dict[str, Any] = {"type": self.type}
        kinds = {c.name: c.kind for c in TABLES[self.table].columns}
        for name, value in self.values.items():
            kind = kinds.get(name)
            if value is None:
                out[name] = None
            elif kind is Kind.DATETIME:
                out[name] = us_to_iso(value)
            elif kind is Kind.DATE:
                out[name] = value.isoformat()
            else:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Parse ``data``; raises :class:`EventRejected` listing every problem."""
        return parse_event(data)

    def order_key(self) -> tuple[int, int, str]:
        """(time, table rank, key): the replay order; untimed rows sort first."""
        return (self.ts if self.ts is not None else -(1 << 62), TABLE_RANK[self.table], self.key)


class EventRejected(ValueError):
    """An event breaks the input contract; ``issues`` lists every problem."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


def us_to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / US_PER_SECOND, tz=UTC).replace(
        microsecond=us % US_PER_SECOND
    )


def us_to_iso(us: int) -> str:
    return us_to_datetime(us).isoformat().replace("+00:00", "Z")


def datetime_to_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def date_to_us(value: date) -> int:
    return (value - date(1970, 1, 1)).days * US_PER_DAY


class _Bad(Exception):
    """A value that does not convert; the loaders' message is built from the raw value."""


def _convert(kind: Kind, value: Any) -> Any:
    """One value in the loaders' kinds (None for absent/empty); raises :class:`_Bad`."""
    if value is None:
        return None
    if isinstance(value, str) and kind not in (Kind.ID, Kind.TEXT):
        value = value.strip()
        if value == "":
            return None
    if kind in (Kind.ID, Kind.TEXT):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Bad
        text = str(value)
        return text if text != "" else None
    if kind is Kind.FLOAT:
        if isinstance(value, bool):
            raise _Bad
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _Bad from None
        if not math.isfinite(number):
            raise _Bad
        return number
    if kind is Kind.INT:
        if isinstance(value, bool):
            raise _Bad
        if isinstance(value, float) and value == int(value):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _Bad from None
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        word = BOOL_WORDS.get(str(value).lower())
        if word is None:
            raise _Bad
        return word
    if kind is Kind.DATE:
        if isinstance(value, datetime):
            return value.astimezone(UTC).date() if value.tzinfo else value.date()
        if isinstance(value, date):
            return value
        try:
            if not _STRICT_DATE.match(str(value).strip()):
                raise ValueError
            return date.fromisoformat(str(value).strip())
        except ValueError:
            parsed = _parse_datetime_text(str(value))
            return us_to_datetime(parsed).date()
    if isinstance(value, datetime):
        return datetime_to_us(value)
    if isinstance(value, date):
        return date_to_us(value)
    return _parse_datetime_text(str(value))


_STRICT_DATE = re.compile(ISO_DATE)
_STRICT_DATETIME = re.compile(ISO_DATETIME)
_SEPARATOR = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[ tT]")


def _parse_datetime_text(text: str) -> int:
    """ISO-8601 date or datetime (``T`` or space, optional fraction and zone, ``Z``) as UTC us."""
    # The loaders' strict spelling (two-digit month and day, offsets in use), so an event and
    # a file accept the same timestamps.
    text = _SEPARATOR.sub(r"\1T", text.strip())
    text = text[:-1] + "+00:00" if text[-1:] in ("z", "Z") else text
    if not _STRICT_DATETIME.match(text):
        raise _Bad
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return datetime_to_us(parsed)


def parse_event(data: dict[str, Any]) -> Event:
    """Validate one event's values with the loaders' rules; returns the :class:`Event`.

    Checks here need only the row: the type, every value's kind, required values, choices,
    value checks and self-links. Raises :class:`EventRejected` listing every problem.
    Cost: O(columns).
    """
    if not isinstance(data, dict):
        raise EventRejected([ValidationIssue("event", None, None, "an event must be an object")])
    kind = data.get("type")
    if kind not in EVENT_TABLES:
        known = ", ".join(EVENT_TABLES)
        where = "event"
        raise EventRejected(
            [ValidationIssue(where, None, "type", f"unknown event type {kind!r} (known: {known})")]
        )
    table = TABLES[EVENT_TABLES[kind]]
    file = f"{kind} event"
    issues: list[ValidationIssue] = []
    values: dict[str, Any] = {}
    for col in table.columns:
        raw = data.get(col.name)
        try:
            value = _convert(col.kind, raw)
        except _Bad:
            issues.append(ValidationIssue(file, None, col.name, bad_value_message(col, raw)))
            continue
        values[col.name] = value
        if value is None:
            if col.required:
                issues.append(
                    ValidationIssue(file, None, col.name, "empty value in required column")
                )
            continue
        if col.choices and value not in col.choices:
            allowed = ", ".join(col.choices)
            issues.append(
                ValidationIssue(file, None, col.name, f"{value!r} is not one of: {allowed}")
            )
        if col.check is not None:
            bad = {
                Check.POSITIVE: value <= 0,
                Check.NON_NEGATIVE: value < 0,
                Check.SHARE: value <= 0 or value > 1,
            }[col.check]
            if bad:
                issues.append(
                    ValidationIssue(
                        file, None, col.name, f"{value!r} must be {CHECK_TEXT[col.check]}"
                    )
                )
    for first, second in table.distinct:
        if values.get(first) is not None and values.get(first) == values.get(second):
            issues.append(
                ValidationIssue(
                    file,
                    None,
                    first,
                    f"{first} equals {second} ({values[first]!r}): a customer cannot be linked "
                    "to itself",
                )
            )
    if issues:
        raise EventRejected(issues)
    for name, value in data.items():
        if name != "type" and name not in values:
            values[name] = value
    return Event(
        kind,
        table.name,
        values,
        event_time(table.name, values),
        event_key(kind, table.name, values),
    )


def event_time(table: str, values: dict[str, Any]) -> int | None:
    for column in TIME_COLUMNS.get(table, ()):
        value = values.get(column)
        if value is None:
            continue
        return date_to_us(value) if isinstance(value, date) else value
    return None


# The columns a row's key is made of: the table's key, else every schema column.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    name: spec.key or tuple(c.name for c in spec.columns) for name, spec in TABLES.items()
}


def event_key(kind: str, table: str, values: dict[str, Any]) -> str:
    columns = KEY_COLUMNS[table]
    if len(columns) == 1:
        value = values.get(columns[0])
        return f"{kind}:" if value is None else f"{kind}:{value}"
    return f"{kind}:" + "|".join("" if values.get(c) is None else str(values[c]) for c in columns)


def key_text(table: str, values: dict[str, Any]) -> str:
    """The loaders' rendering of a row's key, e.g. ``transfer_id='T1'``."""
    spec = TABLES[table]
    columns = spec.key or tuple(c.name for c in spec.columns)
    return loaders_key_text(columns, [values.get(c) for c in columns])


def same_row(a: Event, b: Event) -> bool:
    """Whether two events of one key carry the same schema values (a repeat, not a clash)."""
    names = [c.name for c in TABLES[a.table].columns]
    return all(a.values.get(n) == b.values.get(n) for n in names)
