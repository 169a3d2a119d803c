"""The alert policy evaluated live: rule hits, tiers that only rise, the feed, decisions.

The rules, their tiers and thresholds are the batch policy's (``graphkit.alerts``: the same
policy file, :data:`~graphkit.alerts.TIER_RANK`, :data:`~graphkit.alerts.RULES`,
:func:`~graphkit.alerts.recommended_limit`). Batch hits (scores, clusters, and every rule as of
the run) are read from the run's ``alert_hits.parquet``; live hits are added as events make
them true: ``circle_default`` (a circle formed or grown with a defaulted member, or a member
labelled defaulted), ``banned_share`` (the customer's share of drawn money in banned sinks),
``burst`` (drawdowns on one UTC day), ``ring`` (joined a device ring), ``cluster_orange`` /
``cluster_red`` (a new customer's provisional cluster). A customer's tier is the highest of its
batch tier and its hits; it never drops until the next batch run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from graphkit.alerts import RESPONSES, RULES, TIER_RANK, recommended_limit
from graphkit.live.events import us_to_datetime
from graphkit.live.load import records
from graphkit.live.results import DECISIONS, Alert, Decision, Hit
from graphkit.tiers import TOLERANCE

if TYPE_CHECKING:
    from graphkit.live.flows import Trace
    from graphkit.live.structure import CircleChange

_RULE_ORDER = {rule: i for i, rule in enumerate(("score", *RULES))}


class RuleMixin:
    """Hits, tiers, the alert feed and the timeline of a :class:`LiveState`."""

    def __init__(self) -> None:
        self.hits: dict[str, dict[str, Hit]] = defaultdict(dict)
        self.tier: dict[str, str] = {}
        self.batch_tier: dict[str, str] = {}
        self.scores: dict[str, dict[str, float | None]] = {}
        self.cluster_of: dict[str, Any] = {}
        self.cluster_tier: dict[Any, tuple[str, float | None]] = {}
        self.cluster_size: dict[Any, int] = defaultdict(int)
        self.provisional: dict[str, dict[Any, float]] = {}
        self.run_customers: set[str] = set()
        self.feed: list[Alert] = []
        self.timeline: list[tuple[str, str, int | None, str]] = []
        self.first_banned: set[str] = set()
        self._alerts_now: list[Alert] = []
        self._event: Any = None

    # -- batch -----------------------------------------------------------------------------

    def _load_batch(self, outputs: dict[str, Any]) -> None:
        """Scores, clusters, cluster tiers, batch tiers and hits of the run."""
        self.run_customers = set(self.customers)
        if "scores.parquet" in outputs:
            for row in records(outputs["scores.parquet"]):
                self.scores[row["customer_id"]] = {
                    k: row.get(k) for k in ("risk_score", "contagion_score", "gnn_score")
                }
        if "clusters.parquet" in outputs:
            for row in records(outputs["clusters.parquet"]):
                self.cluster_of[row["customer_id"]] = row["cluster_id"]
                self.cluster_size[row["cluster_id"]] += 1
        if "cluster_risk.parquet" in outputs:
            frame = outputs["cluster_risk.parquet"]
            for row in records(frame):
                self.cluster_tier[row["cluster_id"]] = (
                    row.get("tier", "green"),
                    row.get("risk_score"),
                )
        if "alert_hits.parquet" in outputs:
            for row in records(outputs["alert_hits.parquet"]):
                hit = Hit(row["rule"], row["tier"], row["reason"], (), "batch")
                self.hits[row["customer_id"]][row["rule"]] = hit
        if "customer_alerts.parquet" in outputs:
            for row in records(outputs["customer_alerts.parquet"]):
                self.tier[row["customer_id"]] = self.batch_tier[row["customer_id"]] = row["tier"]
                if row["tier"] != "green":
                    self.timeline.append((row["customer_id"], row["tier"], self.cut, "batch"))

    # -- hits and tiers --------------------------------------------------------------------

    def current_tier(self, customer_id: str) -> str:
        return self.tier.get(customer_id, "green")

    def _set_hit(self, customer_id: str, hit: Hit, alert: bool = True) -> None:
        """Record a hit; a rule newly firing goes to the feed and may raise the tier."""
        previous = self.hits[customer_id].get(hit.rule)
        self.hits[customer_id][hit.rule] = hit
        before = self.current_tier(customer_id)
        after = before if TIER_RANK[before] >= TIER_RANK[hit.tier] else hit.tier
        if after != before:
            self.tier[customer_id] = after
            self.timeline.append((customer_id, after, self._event.ts, self._event.key))
        fresh = previous is None or TIER_RANK[previous.tier] < TIER_RANK[hit.tier]
        if alert and (fresh or after != before):
            self._alert(customer_id, hit.rule, after, before, hit.text, hit.evidence)

    def _alert(
        self,
        customer_id: str,
        rule: str,
        tier: str,
        previous: str,
        text: str,
        evidence: tuple[str, ...],
    ) -> None:
        event = self._event
        alert = Alert(
            len(self.feed) + 1,
            event.ts,
            event.key,
            customer_id,
            rule,
            tier,
            previous,
            text,
            evidence,
        )
        self.feed.append(alert)
        self._alerts_now.append(alert)

    def alerts_after(self, cursor: int = 0, limit: int = 100) -> list[Alert]:
        """The feed after ``cursor`` (the last ``seq`` seen), at most ``limit`` alerts. O(limit)."""
        start = max(cursor, 0)
        return self.feed[start : start + max(limit, 0)]

    # -- rules -----------------------------------------------------------------------------

    def _circle_changed(self, change: CircleChange) -> None:
        defaulted = sorted(m for m in change.members if self.defaulted.get(m))
        if not defaulted:
            return
        self._circle_default(change.members, defaulted, change.cycles)

    def _circle_default(
        self, members: set[str], defaulted: list[str], cycles: list[list[str]] | None = None
    ) -> None:
        n = len(defaulted)
        name = min(members)
        text = (
            f"member of guarantee circle {name} ({len(members)} customers) with {n} defaulted "
            f"member{'s' if n != 1 else ''}"
        )
        evidence = tuple(defaulted) + tuple("->".join(c) for c in (cycles or [])[:3])
        tier = self.policy.rule_tiers["circle_default"]
        for member in sorted(members):
            self._set_hit(member, Hit("circle_default", tier, text, evidence))

    def _label_defaulted(self, customer_id: str) -> None:
        label = self.circles.circle_of.get(customer_id)
        if label is None:
            return
        members = self.circles.members[label]
        defaulted = sorted(m for m in members if self.defaulted.get(m))
        self._circle_default(members, defaulted)

    def _device_use(self, customer_id: str, device_id: str) -> None:
        change = self.rings.add(customer_id, device_id)
        for other in self.rings.device_customers[device_id]:
            if other != customer_id:
                self._tie(customer_id, other, "device")
        if change is None:
            return
        tier = self.policy.rule_tiers["ring"]
        for customer in sorted(change.joined):
            label = change.joined[customer]
            others = len(self.rings.members[label]) - 1
            shared = tuple(
                sorted(d for d in self.rings.customer_devices[customer] if self.rings.shared(d))
            )
            text = (
                f"shares devices with {others} other customer{'s' if others != 1 else ''} in "
                f"device ring {min(self.rings.members[label])}"
            )
            self._set_hit(customer, Hit("ring", tier, text, shared))

    def _burst(self, customer_id: str, ts: int, day_count: int) -> None:
        threshold = self.policy.drawdowns_per_day
        if day_count < threshold:
            return
        day = us_to_datetime(ts).date().isoformat()
        known = self.hits[customer_id].get("burst")
        text = f"{day_count} drawdowns on {day} (threshold {threshold})"
        if known is not None and known.source == "live" and day_count > threshold:
            # the same burst growing: keep the hit current without another alert
            self.hits[customer_id]["burst"] = Hit("burst", known.tier, text, (day,))
            return
        self._set_hit(customer_id, Hit("burst", self.policy.rule_tiers["burst"], text, (day,)))

    def _trace_changed(self, trace: Trace) -> None:
        customer = trace.customer_id
        banned, banned3 = trace.banned_amount, sum(trace.banned[3:])
        old, old3 = trace.reported
        trace.reported = (banned, banned3)
        agg = self.customer_flow.setdefault(customer, [0.0, 0.0, 0.0])
        agg[1] += banned - old
        agg[2] += banned3 - old3
        if banned <= 0 or customer is None:
            return
        evidence: tuple[str, ...] = (trace.drawdown_id,)
        if trace.drawdown_id not in self.first_banned:
            self.first_banned.add(trace.drawdown_id)
            evidence += tuple(self.flows.money_path(trace.drawdown_id))
            self._alert(
                customer,
                "banned_flow",
                self.current_tier(customer),
                self.current_tier(customer),
                f"money of drawdown {trace.drawdown_id} reached a banned sector "
                f"({banned:.2f} of {trace.amount:.2f})",
                evidence,
            )
        share = agg[1] / agg[0] if agg[0] > 0 else 0.0
        if share >= self.policy.banned_share - TOLERANCE:
            text = (
                f"{round(share * 100)}% of drawn money reached banned sectors "
                f"(threshold {self.policy.banned_share * 100:g}%)"
            )
            self._set_hit(
                customer,
                Hit("banned_share", self.policy.rule_tiers["banned_share"], text, evidence),
            )

    # -- provisional clusters --------------------------------------------------------------

    def _tie(self, a: str, b: str, kind: str) -> None:
        """A tie of ``kind`` between customers; a customer created after the run joins the
        cluster of its strongest tie, provisionally (customers of the run keep the run's
        cluster, or none, until the next run). O(1)."""
        weight = self.config.clusters.weights.get(kind, 0.0)
        if weight <= 0:
            return
        for new, other in ((a, b), (b, a)):
            if new in self.run_customers:
                continue
            cluster = self.cluster_of.get(other)
            if cluster is None or other in self.provisional:
                continue
            ties = self.provisional.setdefault(new, {})
            ties[cluster] = ties.get(cluster, 0.0) + weight
            best = min(ties, key=lambda c: (-ties[c], str(c)))
            if self.cluster_of.get(new) != best:
                self.cluster_of[new] = best
                self._cluster_rule(new, best)

    def _tie_accounts(self, src: str, dst: str) -> None:
        a, b = self.accounts.get(src), self.accounts.get(dst)
        if a in self.customers and b in self.customers and a != b:
            self._tie(a, b, "transfer")

    def _cluster_rule(self, customer_id: str, cluster: Any) -> None:
        tier, risk = self.cluster_tier.get(cluster, ("green", None))
        if tier not in ("orange", "red"):
            return
        risk_text = f", cluster risk {risk:.2f}" if risk is not None else ""
        text = (
            f"member (provisional) of related-enterprise cluster {cluster} "
            f"({self.cluster_size[cluster]} customers) whose tier is {tier}{risk_text}"
        )
        rule = f"cluster_{tier}"
        self._set_hit(customer_id, Hit(rule, self.policy.rule_tiers[rule], text, (str(cluster),)))

    # -- decisions and views ---------------------------------------------------------------

    def _hypothetical_hits(
        self, customer_id: str, ts: int, device_id: str | None
    ) -> dict[str, Hit]:
        extra: dict[str, Hit] = {}
        count = self.velocity.day_count(customer_id, ts) + 1
        if count >= self.policy.drawdowns_per_day:
            day = us_to_datetime(ts).date().isoformat()
            text = f"{count} drawdowns on {day} (threshold {self.policy.drawdowns_per_day})"
            extra["burst"] = Hit("burst", self.policy.rule_tiers["burst"], text, (day,))
        if device_id is not None and customer_id not in self.rings.ring_of:
            users = {*self.rings.device_customers.get(device_id, ()), customer_id}
            if self.rings.k <= len(users) <= self.rings.m:
                text = f"would share device {device_id} with {len(users) - 1} other customers"
                extra["ring"] = Hit("ring", self.policy.rule_tiers["ring"], text, (device_id,))
        return extra

    def _reasons(self, customer_id: str, extra: dict[str, Hit]) -> list[Hit]:
        merged = {**self.hits.get(customer_id, {}), **extra}
        return sorted(
            merged.values(),
            key=lambda h: (-TIER_RANK[h.tier], _RULE_ORDER.get(h.rule, len(_RULE_ORDER))),
        )

    def _decision(
        self, customer_id: str, line_id: str, amount: float, ts: int, extra: dict[str, Hit]
    ) -> Decision:
        tier = self.current_tier(customer_id)
        for hit in extra.values():
            if TIER_RANK[hit.tier] > TIER_RANK[tier]:
                tier = hit.tier
        reasons = tuple(self._reasons(customer_id, extra))
        advised = None
        if tier != "green":
            line = self.velocity.lines[line_id]
            risk = self.scores.get(customer_id, {}).get("risk_score")
            advised = recommended_limit(
                line.limit, self.velocity.outstanding(line_id), tier, risk, self.policy
            )
        notice = RESPONSES["yellow"] if tier == "yellow" else None
        return Decision(DECISIONS[tier], tier, customer_id, line_id, reasons, advised, notice)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """Everything the live state knows about a customer, JSON-able (None if unknown).

        Cost: O(the customer's lines, drawdowns and rules) plus an evidence search per open
        trace of the customer."""
        if customer_id not in self.customers:
            return None
        now = self.clock if self.clock is not None else 0
        label = self.circles.circle_of.get(customer_id)
        circle = None
        if label is not None:
            members = sorted(self.circles.members[label])
            circle = {
                "circle_key": members[0],
                "members": members,
                "defaulted_members": [m for m in members if self.defaulted.get(m)],
            }
        ring_label = self.rings.ring_of.get(customer_id)
        ring = None
        if ring_label is not None:
            ring = {
                "members": sorted(self.rings.members[ring_label]),
                "shared_devices": sorted(
                    d for d in self.rings.customer_devices[customer_id] if self.rings.shared(d)
                ),
            }
        cluster = self.cluster_of.get(customer_id)
        tier = self.current_tier(customer_id)
        lines = []
        for line_id in self.customer_lines.get(customer_id, ()):
            line = self.velocity.lines[line_id]
            risk = self.scores.get(customer_id, {}).get("risk_score")
            lines.append(
                {
                    "line_id": line_id,
                    "limit": line.limit,
                    "outstanding": self.velocity.outstanding(line_id),
                    "recommended_limit": None
                    if tier == "green"
                    else recommended_limit(
                        line.limit, self.velocity.outstanding(line_id), tier, risk, self.policy
                    ),
                    **self.velocity.line_features(line_id, now),
                }
            )
        traces = []
        for drawdown_id in self.customer_drawdowns.get(customer_id, ()):
            trace = self.flows.traces.get(drawdown_id)
            if trace is None:
                continue
            paths, _ = self.flows.evidence_paths(drawdown_id, self.flows.evidence_k)
            traces.append({**trace.summary(), "evidence_paths": paths})
        drawn, banned, banned3 = self.customer_flow.get(customer_id, [0.0, 0.0, 0.0])
        return {
            "customer_id": customer_id,
            "tier": tier,
            "response": RESPONSES[tier],
            "batch_tier": self.batch_tier.get(customer_id),
            **{k: v for k, v in self.scores.get(customer_id, {}).items()},
            "reasons": [h.to_dict() for h in self._reasons(customer_id, {})],
            "circle": circle,
            "ring": ring,
            "cluster": None
            if cluster is None
            else {"cluster_id": cluster, "provisional": customer_id in self.provisional},
            "flows": {
                "drawn_amount": drawn,
                "banned_amount": banned,
                "banned_amount_3plus": banned3,
                "banned_share": banned / drawn if drawn else 0.0,
            },
            "velocity": self.velocity.features(customer_id, now),
            "lines": lines,
            "open_traces": traces,
        }
