"""The HTTP API's schema (Pydantic): requests are validated here, answers documented at /docs.

Events are open objects (the input contract's columns of their table plus ``type``) because the
engine validates them with the loaders' rules and answers per event; everything else is typed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["green", "yellow", "orange", "red"]


class DrawdownRequest(BaseModel):
    """A proposed drawdown: may this customer draw now?"""

    model_config = ConfigDict(extra="forbid")

    line_id: str = Field(min_length=1, examples=["L000001"])
    amount: float = Field(gt=0, examples=[5000.0])
    ts: str = Field(
        min_length=1,
        description="When the drawdown would happen (ISO-8601; UTC if no zone).",
        json_schema_extra={"format": "date-time"},
        examples=["2025-06-30T09:00:00Z"],
    )
    account_id: str = Field(min_length=1, description="The account the money would go to.")
    device_id: str | None = None
    channel: str | None = Field(default=None, examples=["app"])
    drawdown_id: str | None = Field(default=None, description="The caller's id, echoed back.")


class Reason(BaseModel):
    rule: str
    tier: Tier
    text: str
    evidence: list[str] = Field(description="Ids of the rows that show it (transfers, ...).")
    source: str = Field(description="live (this service) or batch (the run).")


class DecisionResponse(BaseModel):
    decision: Literal["ACCEPT", "REVIEW", "BLOCK"]
    tier: Tier
    customer_id: str
    line_id: str
    reasons: list[Reason]
    recommended_limit: float | None
    notice: str | None
    decision_id: str
    drawdown_id: str | None
    run_id: str


class Event(BaseModel):
    """One input row with its ``type`` (customer, credit_line, drawdown, transfer, repayment,
    guarantee, device_link, account, merchant, sector, label, shareholding) and the columns of
    its table, e.g. ``{"type": "transfer", "transfer_id": "T1", "src_account": "A1",
    "dst_account": "A2", "amount": 120.5, "ts": "2025-03-01T10:00:00Z"}``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)


class EventBatch(BaseModel):
    """A batch of events, applied in order, each accepted or rejected on its own."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1)


class Issue(BaseModel):
    field: str | None = Field(description="The event's field at fault (None: the whole event).")
    message: str


class Alert(BaseModel):
    seq: int = Field(description="Position in the feed: pass the last one seen as ?after=.")
    ts: str | None
    event_key: str
    customer_id: str
    rule: str
    tier: Tier
    previous_tier: str
    text: str
    evidence: list[str]


class EventResult(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    status: Literal["applied", "duplicate", "rejected", "error"]
    key: str = Field(description="The idempotency key (a repeated key is a no-op).")
    issues: list[Issue]
    alerts: list[Alert]
    decision: dict[str, Any] | None = Field(description="For an applied drawdown.")


class EventsResponse(BaseModel):
    applied: int
    duplicate: int
    rejected: int
    results: list[EventResult]
    alerts: list[Alert] = Field(description="All alerts the events raised, in feed order.")


class AlertsResponse(BaseModel):
    alerts: list[Alert]
    next_cursor: int = Field(description="Pass as ?after= to continue.")


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    run_id: str | None
    events_applied: int
    last_event_ts: datetime | None
    events_accepted: bool
    message: str | None = None


class Ready(BaseModel):
    ready: bool


class ReloadResponse(BaseModel):
    run_id: str
    previous_run_id: str
    events_reapplied: int
    seconds: float


class Problem(BaseModel):
    """Every error: a message, and for validation errors the fields at fault."""

    error: str
    fields: list[Issue] = []
