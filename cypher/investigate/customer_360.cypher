// name: customer_360
// purpose: Everything about one customer on one row: profile and label, credit lines with
//   their drawn amounts, accounts, devices, guarantees given and received, shareholdings, and
//   the latest run's write-back (cluster, circle, ring, banned share, scores, tier).
// params: customer_id (string, C0000367)
// columns: customer_id, kind, name, sector, region, defaulted, lines, total_limit, drawn_amount,
//   accounts, devices, guarantees_given, guarantees_received, holdings, cluster_id, circle_id,
//   ring_id, banned_share, contagion_score, gnn_score, risk_score, tier, run_id
// example: graphkit cypher run customer_360 --param customer_id=C0000367
MATCH (c:Customer {customer_id: $customer_id})
CALL (c) {
  OPTIONAL MATCH (c)-[:HAS_LINE]->(l:CreditLine)
  OPTIONAL MATCH (l)-[d:DRAWDOWN]->(:Account)
  WITH l, sum(d.amount) AS drawn
  ORDER BY l.line_id
  RETURN
    collect(l {.line_id, .limit, .status, drawn: drawn}) AS lines,
    sum(l.limit) AS total_limit,
    sum(drawn) AS drawn_amount
}
CALL (c) {
  OPTIONAL MATCH (c)-[:OWNS]->(a:Account)
  WITH a ORDER BY a.account_id
  RETURN collect(a.account_id) AS accounts
}
CALL (c) {
  OPTIONAL MATCH (c)-[:USES_DEVICE]->(d:Device)
  WITH d ORDER BY d.device_id
  RETURN collect(d.device_id) AS devices
}
CALL (c) {
  OPTIONAL MATCH (c)-[g:GUARANTEES]->(b:Customer)
  WITH g, b ORDER BY b.customer_id, g.start, g.amount
  RETURN collect(CASE WHEN g IS NOT NULL
    THEN {borrower_id: b.customer_id, amount: g.amount, start: g.start, end: g.end} END)
    AS guarantees_given
}
CALL (c) {
  OPTIONAL MATCH (c)<-[g:GUARANTEES]-(r:Customer)
  WITH g, r ORDER BY r.customer_id, g.start, g.amount
  RETURN collect(CASE WHEN g IS NOT NULL
    THEN {guarantor_id: r.customer_id, amount: g.amount, start: g.start, end: g.end} END)
    AS guarantees_received
}
CALL (c) {
  OPTIONAL MATCH (c)-[h:HOLDS_SHARES]->(e:Customer)
  WITH h, e ORDER BY e.customer_id
  RETURN collect(CASE WHEN h IS NOT NULL THEN {company_id: e.customer_id, share: h.share} END)
    AS holdings
}
RETURN
  c.customer_id AS customer_id, c.kind AS kind, c.name AS name, c.sector AS sector,
  c.region AS region, c.defaulted AS defaulted,
  lines, total_limit, drawn_amount, accounts, devices,
  guarantees_given, guarantees_received, holdings,
  c.cluster_id AS cluster_id, c.circle_id AS circle_id, c.ring_id AS ring_id,
  c.banned_share AS banned_share, c.contagion_score AS contagion_score,
  c.gnn_score AS gnn_score, c.risk_score AS risk_score, c.tier AS tier, c.run_id AS run_id
