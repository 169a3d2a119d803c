"""Velocity: how fast customers draw, kept per customer and per credit line.

Kept per event (O(log n) inserts into sorted time lists, O(1) counters):

* drawdowns per customer and per line in the trailing hour and day, and 7 and 30 days
  (``ts > now - window``, as :mod:`gnn.features` counts them), and per UTC day (the seed's
  five-a-day rule: the policy's ``burst`` rule);
* fast draws: the amount drawn on a line within ``[live] fast_draw_minutes`` of the line
  opening or of its last repayment, as a share of the limit;
* night drawdowns (UTC hours ``[night_start_hour, night_end_hour)``) in the trailing day;
* repayments as of ``now``: overdue instalments (due and unpaid) and the days-past-due figures
  computed exactly as :mod:`gnn.features` does at a snapshot.

:meth:`Velocity.features` answers any ``now`` at or after the events it has seen; at the batch
snapshot it equals the batch features of the same names (the exactness test).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from graphkit.live.events import US_PER_DAY, date_to_us
from graphkit.live.load import columns, interned

US_PER_HOUR = 3_600_000_000
_NONE = -(1 << 62)  # no anchor (before any time)
_WINDOWS = {"1h": US_PER_HOUR, "1d": US_PER_DAY, "7d": 7 * US_PER_DAY, "30d": 30 * US_PER_DAY}


# An instalment: (due_date, paid_at, days_past_due), what the delinquency features read (its
# line and amount are read by nothing: 40 bytes less each). A plain tuple of atomic values: the
# cyclic GC stops tracking it after one look, where an object per instalment stayed on its
# lists for the life of the state.
_Repayment = tuple[date, int | None, int | None]


def _times() -> array:
    """A sorted list of times (int microseconds) as an ``array('q')``: 8 bytes a time instead
    of a list slot and an int object (40 bytes); ``bisect`` and ``insort`` work on it alike."""
    return array("q")


def _pack(lists: list[array]) -> tuple[array, array]:
    """Time lists as (lengths, all of them end to end): two arrays whatever their number."""
    lengths = array("q", map(len, lists))
    joined = array("q")
    for times in lists:
        joined.extend(times)
    return lengths, joined


def _unpack(lengths: array, joined: array) -> list[array]:
    """:func:`_pack`'s time lists again: each a slice (an array of its own)."""
    out, at = [], 0
    for n in lengths:
        out.append(joined[at : at + n])
        at += n
    return out


@dataclass(slots=True)  # no __dict__ per line: about 300 bytes less each
class _Line:
    customer_id: str
    limit: float
    opened_at: int | None
    times: array = field(default_factory=_times)
    drawn: float = 0.0
    repaid: float = 0.0
    repaid_times: array = field(default_factory=_times)
    fast_drawn: float = 0.0


class Velocity:
    """Per-customer and per-line drawdown times (day counts read from them) and repayments."""

    def __init__(self, fast_minutes: float, night_start: int, night_end: int) -> None:
        self.fast_us = round(fast_minutes * 60_000_000)
        self.night_start = night_start
        self.night_end = night_end
        self.lines: dict[str, _Line] = {}
        # a customer's drawdowns per UTC day are counted from ``times`` (two binary searches)
        # instead of kept in a dict per customer: 770 bytes a customer at 1M nodes
        self.times: dict[str, array] = defaultdict(_times)
        self.night: dict[str, array] = defaultdict(_times)
        self.repayments: dict[str, list[_Repayment]] = defaultdict(list)

    def __getstate__(self) -> dict[str, Any]:
        """The time lists packed into a few long arrays (:func:`_pack`). Pickled one by one,
        each of the millions of small arrays left its reconstructor's arguments (a bytes and a
        tuple) alive until the whole checkpoint was read, then freed in the middle of the
        state: at 1M nodes 220 MB of holes the allocator could not give back."""
        state = self.__dict__.copy()
        lines = self.lines
        state["lines"] = (
            list(lines),
            [line.customer_id for line in lines.values()],
            [line.limit for line in lines.values()],
            [line.opened_at for line in lines.values()],
            [line.drawn for line in lines.values()],
            [line.repaid for line in lines.values()],
            [line.fast_drawn for line in lines.values()],
            _pack([line.times for line in lines.values()]),
            _pack([line.repaid_times for line in lines.values()]),
        )
        state["times"] = (list(self.times), _pack(list(self.times.values())))
        state["night"] = (list(self.night), _pack(list(self.night.values())))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        ids, customers, limits, opened, drawn, repaid, fast, times, repaid_times = state["lines"]
        state["lines"] = {
            line_id: _Line(customer, limit, at, times_, draw, paid, paid_times, fast_drawn)
            for line_id, customer, limit, at, times_, draw, paid, paid_times, fast_drawn in zip(
                ids,
                customers,
                limits,
                opened,
                _unpack(*times),
                drawn,
                repaid,
                _unpack(*repaid_times),
                fast,
                strict=True,
            )
        }
        for name in ("times", "night"):
            keys, packed = state[name]
            state[name] = defaultdict(_times, zip(keys, _unpack(*packed), strict=True))
        self.__dict__.update(state)

    def add_line(self, line_id: str, customer_id: str, limit: float, opened_at: int | None) -> None:
        self.lines[line_id] = _Line(customer_id, limit, opened_at)

    def add_drawdown(self, line_id: str, amount: float, ts: int) -> int:
        """Count a drawdown; returns the customer's drawdowns on that UTC day. O(log n)."""
        line = self.lines[line_id]
        customer = line.customer_id
        insort(line.times, ts)
        times = self.times[customer]
        insort(times, ts)
        line.drawn += amount
        at = bisect_right(line.repaid_times, ts)
        last_repaid = line.repaid_times[at - 1] if at else None
        anchor = max(
            (t for t in (line.opened_at, last_repaid) if t is not None and t <= ts), default=None
        )
        if anchor is not None and ts - anchor <= self.fast_us:
            line.fast_drawn += amount
        if self._is_night(ts):
            insort(self.night[customer], ts)
        return _on_day(times, ts // US_PER_DAY)

    def add_repayment(
        self,
        line_id: str,
        due_date: date,
        paid_at: int | None,
        amount: float,
        days_past_due: int | None,
    ) -> None:
        """Record an instalment. O(1)."""
        line = self.lines[line_id]
        self.repayments[line.customer_id].append((due_date, paid_at, days_past_due))
        if paid_at is not None:
            line.repaid += amount
            insort(line.repaid_times, paid_at)

    def load_repayments(self, frame: Any) -> None:
        """:meth:`add_repayment` for every row of a repayments frame (``paid_at`` in int
        microseconds), grouped in polars: O(rows) with O(lines + rows) Python appends."""
        import polars as pl

        frame = frame.join(
            pl.DataFrame(
                {
                    "line_id": list(self.lines),
                    "_customer": [line.customer_id for line in self.lines.values()],
                },
                schema={"line_id": pl.String, "_customer": pl.String},
            ),
            on="line_id",
            how="left",
            maintain_order="left",
        )
        names = ("due_date", "paid_at", "days_past_due")
        for customer, rows in zip(
            interned(frame.get_column("_customer")), columns(frame.select(names)), strict=True
        ):
            self.repayments[customer].append(rows)
        paid = (
            frame.filter(pl.col("paid_at").is_not_null())
            .group_by("line_id")
            .agg(pl.col("amount").sum(), pl.col("paid_at").sort())
        )
        for line_id, amount, times in columns(paid):
            line = self.lines[line_id]
            line.repaid += amount
            line.repaid_times = array("q", sorted([*line.repaid_times, *times]))

    def load_drawdowns(self, frame: Any) -> None:
        """:meth:`add_drawdown` for every row of a drawdowns frame (``line_id``, ``amount``,
        ``ts`` in int microseconds), after the repayments: sorted time lists and fast draws
        (the last repayment at or before each drawdown by an as-of join) in polars, then
        O(lines + customers) Python assignments."""
        import polars as pl

        if frame.is_empty():
            return
        lines = pl.DataFrame(
            {
                "line_id": list(self.lines),
                "_customer": [line.customer_id for line in self.lines.values()],
                "_opened": [line.opened_at for line in self.lines.values()],
            },
            schema={"line_id": pl.String, "_customer": pl.String, "_opened": pl.Int64},
        )
        repaid = pl.DataFrame(
            [(lid, t) for lid, line in self.lines.items() for t in line.repaid_times],
            schema={"line_id": pl.String, "_repaid": pl.Int64},
            orient="row",
        ).sort("_repaid")
        hour = (pl.col("ts") % US_PER_DAY) // US_PER_HOUR
        night = (
            (hour >= self.night_start) & (hour < self.night_end)
            if self.night_start <= self.night_end
            else (hour >= self.night_start) | (hour < self.night_end)
        )
        draws = (
            frame.select("line_id", pl.col("amount").cast(pl.Float64), pl.col("ts").cast(pl.Int64))
            .join(lines, on="line_id", how="left")
            .sort("ts")
            .join_asof(
                repaid, left_on="ts", right_on="_repaid", by="line_id", check_sortedness=False
            )
            .with_columns(
                _opened=pl.when(pl.col("_opened") <= pl.col("ts"))
                .then(pl.col("_opened"))
                .otherwise(_NONE),
                _repaid=pl.col("_repaid").fill_null(_NONE),
            )
            .with_columns(
                _anchor=pl.when(pl.col("_opened") > pl.col("_repaid"))
                .then(pl.col("_opened"))
                .otherwise(pl.col("_repaid")),
                _day=pl.col("ts") // US_PER_DAY,
                _night=night,
            )
            .with_columns(
                _fast=(pl.col("_anchor") > _NONE)
                & (pl.col("ts") - pl.col("_anchor") <= self.fast_us)
            )
        )
        per_line = draws.group_by("line_id").agg(
            pl.col("ts"),
            pl.col("amount").sum().alias("drawn"),
            pl.col("amount").filter(pl.col("_fast")).sum().alias("fast"),
        )
        for line_id, times, drawn, fast in columns(per_line):
            line = self.lines[line_id]
            line.times = array("q", sorted([*line.times, *times]))
            line.drawn += drawn
            line.fast_drawn += fast
        per_customer = draws.group_by("_customer").agg(
            pl.col("ts"), pl.col("ts").filter(pl.col("_night")).alias("night")
        )
        for customer, times, nights in columns(per_customer):
            self.times[customer] = array("q", sorted([*self.times.get(customer, ()), *times]))
            if nights:
                self.night[customer] = array("q", sorted([*self.night.get(customer, ()), *nights]))

    def _is_night(self, ts: int) -> bool:
        hour = (ts % US_PER_DAY) // US_PER_HOUR
        if self.night_start <= self.night_end:
            return self.night_start <= hour < self.night_end
        return hour >= self.night_start or hour < self.night_end

    def day_count(self, customer_id: str, ts: int) -> int:
        """The customer's drawdowns on the UTC day of ``ts``. O(log n)."""
        return _on_day(self.times.get(customer_id, ()), ts // US_PER_DAY)

    def busiest_days(self, customer_id: str) -> dict[int, int]:
        """UTC day -> the customer's drawdowns that day. O(drawdowns of the customer)."""
        return _per_day(self.times.get(customer_id, ()))

    def daily(self) -> Any:
        """(customer, UTC day, drawdowns) for every day a customer drew. O(drawdowns)."""
        for customer, times in self.times.items():
            for day, n in _per_day(times).items():
                yield customer, day, n

    def outstanding(self, line_id: str) -> float:
        line = self.lines[line_id]
        return max(0.0, line.drawn - line.repaid)

    def line_features(self, line_id: str, now: int) -> dict[str, Any]:
        """Trailing counts on one line and its fast-draw share. O(log n)."""
        line = self.lines[line_id]
        counts = {
            f"line_drawdowns_{name}": _count_after(line.times, now, span)
            for name, span in _WINDOWS.items()
            if name in ("1h", "1d")
        }
        return {
            **counts,
            "fast_draw_share": line.fast_drawn / line.limit if line.limit else 0.0,
            "outstanding": max(0.0, line.drawn - line.repaid),
        }

    def features(self, customer_id: str, now: int) -> dict[str, float]:
        """The customer's velocity features as of ``now`` (events at or before it).

        ``drawdowns_{1h,1d,7d,30d}``, ``busiest_day_drawdowns``, ``busiest_day_30d``,
        ``night_drawdowns_1d``, ``overdue_repayments``, ``dpd_max``, ``dpd_mean``,
        ``late_count``. O(drawdowns and instalments of the customer).
        """
        times = self.times.get(customer_id, [])
        upto = bisect_right(times, now)
        out: dict[str, float] = {
            f"drawdowns_{name}": float(upto - bisect_right(times, now - span, 0, upto))
            for name, span in _WINDOWS.items()
        }
        days = _per_day(times[:upto])
        out["busiest_day_drawdowns"] = float(max(days.values(), default=0))
        first_day = (now - 30 * US_PER_DAY) // US_PER_DAY
        out["busiest_day_30d"] = float(
            max((n for d, n in days.items() if d > first_day), default=0)
        )
        night = self.night.get(customer_id, [])
        out["night_drawdowns_1d"] = float(
            bisect_right(night, now) - bisect_right(night, now - US_PER_DAY)
        )
        out.update(self._delinquency(customer_id, now))
        return out

    def _delinquency(self, customer_id: str, now: int) -> dict[str, float]:
        """Days past due as of ``now``, exactly as the batch features compute them."""
        snap_day = now // US_PER_DAY
        dpds: list[float] = []
        overdue = 0
        for due_date, paid_at, days_past_due in self.repayments.get(customer_id, ()):
            due_day = date_to_us(due_date) // US_PER_DAY
            if due_day > snap_day:
                continue
            if paid_at is not None and paid_at <= now:
                late = days_past_due
                if late is None:
                    late = paid_at // US_PER_DAY - due_day
            else:
                open_days = snap_day - due_day
                late = open_days if days_past_due is None else min(days_past_due, open_days)
                if due_day < snap_day:
                    overdue += 1
            dpds.append(float(max(late, 0)))
        return {
            "overdue_repayments": float(overdue),
            "dpd_max": max(dpds, default=0.0),
            "dpd_mean": sum(dpds) / len(dpds) if dpds else 0.0,
            "late_count": float(sum(1 for d in dpds if d > 0)),
        }


def _on_day(times: Any, day: int) -> int:
    """How many of ``times`` (sorted) fall on UTC ``day``: ``t // US_PER_DAY == day`` exactly
    when ``day * US_PER_DAY <= t < (day + 1) * US_PER_DAY``. O(log n)."""
    return bisect_left(times, (day + 1) * US_PER_DAY) - bisect_left(times, day * US_PER_DAY)


def _per_day(times: Any) -> dict[int, int]:
    """UTC day -> how many of ``times`` fall on it, in time order. O(n)."""
    days: dict[int, int] = {}
    for t in times:
        day = t // US_PER_DAY
        days[day] = days.get(day, 0) + 1
    return days


def _count_after(times: list[int], now: int, span: int) -> int:
    upto = bisect_right(times, now)
    return upto - bisect_right(times, now - span, 0, upto)
