// name: tier_worsened
// purpose: Customers whose alert tier got worse (green < yellow < orange < red) from run
//   run_a to run_b, from the tier history graphkit writes back (SCORED_IN to RiskRun nodes);
//   worst jumps first. Customers scored in only one of the runs are left out. Without run_b
//   the latest run written is compared; without run_a, the run written just before run_b.
//   With as_of, only the runs written on or before that date are candidates.
// params: run_a (string?, 20260101T000000Z-1a2b3c4d), run_b (string?, 20260201T000000Z-5e6f7a8b),
//   as_of (date?, 2026-01-31, default null)
// columns: customer_id, name, tier_a, tier_b, risk_score_a, risk_score_b, steps
// example: graphkit cypher run tier_worsened --param run_a=20260101T000000Z-1a2b3c4d
//   --param run_b=20260201T000000Z-5e6f7a8b
// Runs are ordered by created_at, then run_id (the order tier_history lists them in).
OPTIONAL MATCH (r:RiskRun)
WHERE coalesce(date(r.created_at) <= date($as_of), true)
WITH r ORDER BY r.created_at, r.run_id
WITH collect(r.run_id) AS runs
WITH runs, coalesce($run_b, runs[-1]) AS run_b
WITH runs, run_b, [i IN range(0, size(runs) - 1) WHERE runs[i] = run_b][0] AS at
WITH run_b, coalesce($run_a, CASE WHEN at > 0 THEN runs[at - 1] END) AS run_a
MATCH (c:Customer)-[a:SCORED_IN]->(:RiskRun {run_id: run_a})
MATCH (c)-[b:SCORED_IN]->(:RiskRun {run_id: run_b})
WITH c, a, b, {green: 0, yellow: 1, orange: 2, red: 3} AS rank
WITH c, a, b, rank[b.tier] - rank[a.tier] AS steps
WHERE steps > 0
RETURN
  c.customer_id AS customer_id, c.name AS name, a.tier AS tier_a, b.tier AS tier_b,
  a.risk_score AS risk_score_a, b.risk_score AS risk_score_b, steps
ORDER BY steps DESC, customer_id
