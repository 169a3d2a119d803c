"""What the live engine answers: applied events, alerts and drawdown decisions (JSON-able)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loaders.sources import ValidationIssue

# Tier -> decision on a drawdown (ARCHITECTURE section 10).
DECISIONS: dict[str, str] = {
    "green": "ACCEPT",
    "yellow": "ACCEPT",
    "orange": "REVIEW",
    "red": "BLOCK",
}


@dataclass(frozen=True)
class Hit:
    """One rule firing for a customer: its tier, its reason in words, and evidence ids."""

    rule: str
    tier: str
    text: str
    evidence: tuple[str, ...] = ()
    source: str = "live"  # "batch" when read from the run's alert hits

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "tier": self.tier,
            "text": self.text,
            "evidence": list(self.evidence),
            "source": self.source,
        }


@dataclass(frozen=True)
class Alert:
    """An entry of the alert feed; ``seq`` (1, 2, ...) is the feed's cursor."""

    seq: int
    ts: int | None
    event_key: str
    customer_id: str
    rule: str
    tier: str
    previous_tier: str
    text: str
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from graphkit.live.events import us_to_iso

        return {
            "seq": self.seq,
            "ts": us_to_iso(self.ts) if self.ts is not None else None,
            "event_key": self.event_key,
            "customer_id": self.customer_id,
            "rule": self.rule,
            "tier": self.tier,
            "previous_tier": self.previous_tier,
            "text": self.text,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Decision:
    """The answer to a drawdown: ACCEPT | REVIEW | BLOCK, the tier, why, and the advised limit."""

    decision: str
    tier: str
    customer_id: str
    line_id: str
    reasons: tuple[Hit, ...]
    recommended_limit: float | None
    notice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "tier": self.tier,
            "customer_id": self.customer_id,
            "line_id": self.line_id,
            "reasons": [h.to_dict() for h in self.reasons],
            "recommended_limit": self.recommended_limit,
            "notice": self.notice,
        }

    def reasons_text(self) -> str:
        return "; ".join(
            h.text + (f" [{', '.join(h.evidence)}]" if h.evidence else "") for h in self.reasons
        )


@dataclass
class ApplyResult:
    """The outcome of applying one event.

    ``status``: applied | duplicate (same key and values as a row already applied: no-op) |
    rejected (``issues`` say why; nothing changed).
    """

    status: str
    key: str
    issues: list[ValidationIssue] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    decision: Decision | None = None
    apply_us: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "key": self.key,
            "issues": [
                {"column": i.column, "message": i.message, "text": str(i)} for i in self.issues
            ],
            "alerts": [a.to_dict() for a in self.alerts],
            "decision": self.decision.to_dict() if self.decision else None,
            "apply_us": self.apply_us,
        }
