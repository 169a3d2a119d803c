"""The live path: the risk network kept current event by event (ARCHITECTURE section 10).

Public API (docs/live.md; the service builds on these names):

* :class:`LiveState` - ``from_run(run_dir)``, ``apply(event)``, ``apply_many``, ``decide``,
  ``customer``, ``alerts_after``, ``checkpoint`` / ``restore``;
* :class:`Event`, :func:`parse_event`, :class:`EventRejected` - events as JSON-able dicts;
* :class:`ApplyResult`, :class:`Decision`, :class:`Alert`, :class:`Hit` - the answers;
* :func:`replay` - the backtest behind ``graphkit replay``.
"""

from graphkit.live.events import EVENT_TABLES, Event, EventRejected, parse_event
from graphkit.live.load import LiveError
from graphkit.live.results import Alert, ApplyResult, Decision, Hit
from graphkit.live.state import LiveState

__all__ = [
    "EVENT_TABLES",
    "Alert",
    "ApplyResult",
    "Decision",
    "Event",
    "EventRejected",
    "Hit",
    "LiveError",
    "LiveState",
    "parse_event",
]
