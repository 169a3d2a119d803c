// name: tier_history
// purpose: The alert tier and risk score of one customer in every run written back, oldest
//   run first (the history behind tier_worsened). With as_of, only the runs written on or
//   before that date.
// params: customer_id (string, C0000367), as_of (date?, 2026-01-31, default null)
// columns: run_id, created_at, tier, risk_score
// example: graphkit cypher run tier_history --param customer_id=C0000367
MATCH (:Customer {customer_id: $customer_id})-[s:SCORED_IN]->(r:RiskRun)
WHERE coalesce(date(r.created_at) <= date($as_of), true)
RETURN r.run_id AS run_id, r.created_at AS created_at, s.tier AS tier, s.risk_score AS risk_score
ORDER BY created_at, run_id
