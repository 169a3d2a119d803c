"""One drawdown's open fund-flow trace and one transfer, the records of
:class:`~graphkit.live.flows.LiveFlows` (kept apart from it to keep its module readable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Trace", "TransferRecord", "first_sink", "writable"]


@dataclass(slots=True)
class Trace:
    """One drawdown's open fund-flow trace.

    ``uid``: its number in the reach and holdings tables of :class:`LiveFlows`
    (renewed when re-traced). Where its money is, per (account, layer), lives in the account's
    :class:`~graphkit.live.holdings.Holdings` row for ``uid``; the trace keeps its totals:
    ``banned``, the amount landed in sinks per layer; ``sink_at``: layer -> the first sink the
    money reached in that layer; ``reported``: (banned amount, 3+ hop amount) as last added to
    the customer's totals.
    """

    drawdown_id: str
    account: str
    amount: float
    t0: int
    end: int
    customer_id: str | None
    line_id: str
    uid: int = 0
    banned: list[float] | tuple[float, ...] = field(default_factory=list)
    sink_at: dict[int, str] | None = None  # None until the money reaches a sink
    min_hops: int | None = None
    capped: bool = False
    # bumped whenever banned amounts or min_hops change (cheaper than comparing them)
    version: int = 0
    reported: tuple[float, float] = (0.0, 0.0)

    @property
    def banned_amount(self) -> float:
        return sum(self.banned)

    def summary(self) -> dict[str, Any]:
        total = self.banned_amount
        return {
            "drawdown_id": self.drawdown_id,
            "amount": self.amount,
            "banned_amount": total,
            "banned_amount_3plus": sum(self.banned[3:]),
            "banned_share": total / self.amount,
            "min_hops_to_banned": self.min_hops,
            "banned_hops": list(self.banned),
            "capped": self.capped,
            "line_id": self.line_id,
            "customer_id": self.customer_id,
        }


def writable(trace: Trace) -> list[float]:
    """The trace's banned amounts as a list of its own (the shared zeros until then)."""
    if type(trace.banned) is tuple:
        trace.banned = list(trace.banned)
    return trace.banned


def first_sink(trace: Trace, layer: int, account: str) -> None:
    if trace.sink_at is None:
        trace.sink_at = {layer: account}
    elif layer not in trace.sink_at:
        trace.sink_at[layer] = account


@dataclass(frozen=True)
class TransferRecord:
    ts: int
    transfer_id: str
    src: str
    dst: str
    amount: float
