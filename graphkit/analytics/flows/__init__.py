"""Fund-flow tracing (资金流向): where loan money goes after a drawdown.

ARCHITECTURE section 5 is the contract; ``docs/flows.md`` writes out every rule. In short, a
drawdown of ``X`` into account ``a0`` at ``t0`` is followed forward over transfers that respect
time (each hop no earlier than the one before, the first no earlier than ``t0``), within the
window ``t0 + W`` and at most ``H`` hops. Accounts of merchants in banned sectors are *sinks*:
money that reaches one stays there.

One module per algorithm:

* :mod:`.index` - :class:`FlowIndex`, the transfers arranged for tracing, and rebuilt balances.
* :mod:`.reachability` - :func:`reach`, the minimum hop count at which a sink is reachable (an
  earliest-arrival breadth-first search; the shortest time-respecting walk is always a simple
  path), and :func:`min_hops_to_banned`.
* :mod:`.evidence` - :func:`evidence_paths`, the best few simple time-respecting paths into a
  sink, ranked by amount (``min(X, every transfer amount on the path)``), then hops, then ids.
* :mod:`.amounts` - :func:`banned_amounts`, how much of ``X`` lands in sinks at each hop layer,
  under the policies ``first`` (loan money leaves first; the contract's replay), ``fifo``
  (Clayton's rule over rebuilt balances) and ``proportional`` (haircut over rebuilt balances).
* :mod:`.cycles` - :func:`round_trips`, time-ordered transfer cycles through customers' accounts.
* :mod:`.trace` - :func:`trace_flows`, all of the above for a run, and
  :func:`customer_banned_share`.

Every kernel works on all drawdowns of a batch at once: frontiers are numpy arrays of
``(drawdown, account, ...)`` rows expanded over a CSR of transfers sorted by ``(src, time)``;
balances within an account follow closed-form scans (segmented cumulative sums and minima), so no
Python loop runs per path, per drawdown or per transfer.
"""

from graphkit.analytics.flows.amounts import AmountResult, banned_amounts, replay_window
from graphkit.analytics.flows.cycles import round_trips
from graphkit.analytics.flows.evidence import PATH_SCHEMA, evidence_paths
from graphkit.analytics.flows.index import DrawdownArrays, FlowIndex, TransferArrays
from graphkit.analytics.flows.reachability import min_hops_to_banned, reach
from graphkit.analytics.flows.trace import (
    FlowResult,
    customer_banned_share,
    flow_totals,
    trace_flows,
)

__all__ = [
    "PATH_SCHEMA",
    "AmountResult",
    "DrawdownArrays",
    "FlowIndex",
    "FlowResult",
    "TransferArrays",
    "banned_amounts",
    "customer_banned_share",
    "evidence_paths",
    "flow_totals",
    "min_hops_to_banned",
    "reach",
    "replay_window",
    "round_trips",
    "trace_flows",
]
