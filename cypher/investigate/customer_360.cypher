// name: customer_360
// purpose: Everything about one customer on one row: profile and label, credit lines with
//   their drawn amounts, accounts, devices, guarantees given and received, shareholdings, and
//   the latest run's write-back (cluster, circle, ring, banned share, scores, tier). With
//   as_of, the loaded facts as they stood at the end of that date (the write-back columns stay
//   the latest run's); no row when the customer was not in the input then.
// params: customer_id (string, C0000367), as_of (date?, 2026-01-31, default null)
// columns: customer_id, kind, name, sector, region, defaulted, lines, total_limit, drawn_amount,
//   accounts, devices, guarantees_given, guarantees_received, holdings, cluster_id, circle_id,
//   ring_id, banned_share, contagion_score, gnn_score, risk_score, tier, run_id
// example: graphkit cypher run customer_360 --param customer_id=C0000367
// History: an element is valid at as_of when it took its form on or before that date and was
//   not closed by its end (valid_from / valid_to); a node's properties then are those of its
//   Version valid then, else its own. A null as_of is the current graph (no valid_to).
MATCH (c:Customer {customer_id: $customer_id})
WHERE (coalesce(date(c.valid_from) <= date($as_of), true) AND coalesce(date(c.valid_to) > date($as_of), c.valid_to IS NULL) OR EXISTS { (c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
WITH c, coalesce(head([(c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), c) AS cs
CALL (c) {
  OPTIONAL MATCH (c)-[h:HAS_LINE]->(l:CreditLine)
  WHERE coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL)
  OPTIONAL MATCH (l)-[d:DRAWDOWN]->(:Account)
  WHERE coalesce(date(d.valid_from) <= date($as_of), true) AND coalesce(date(d.valid_to) > date($as_of), d.valid_to IS NULL)
  WITH l, coalesce(head([(l)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), l) AS ls, toFloat(sum(d.amount)) AS drawn
  ORDER BY l.line_id
  RETURN
    collect(CASE WHEN l IS NOT NULL
      THEN {line_id: l.line_id, limit: ls.limit, status: ls.status, drawn: drawn} END) AS lines,
    sum(ls.limit) AS total_limit,
    sum(drawn) AS drawn_amount
}
CALL (c) {
  OPTIONAL MATCH (c)-[o:OWNS]->(a:Account)
  WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL)
  WITH a ORDER BY a.account_id
  RETURN collect(a.account_id) AS accounts
}
CALL (c) {
  OPTIONAL MATCH (c)-[u:USES_DEVICE]->(d:Device)
  WHERE coalesce(date(u.valid_from) <= date($as_of), true) AND coalesce(date(u.valid_to) > date($as_of), u.valid_to IS NULL)
  WITH d ORDER BY d.device_id
  RETURN collect(d.device_id) AS devices
}
CALL (c) {
  OPTIONAL MATCH (c)-[g:GUARANTEES]->(b:Customer)
  WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL)
  WITH g, b ORDER BY b.customer_id, g.start, g.amount
  RETURN collect(CASE WHEN g IS NOT NULL
    THEN {borrower_id: b.customer_id, amount: g.amount, start: g.start, end: g.end} END)
    AS guarantees_given
}
CALL (c) {
  OPTIONAL MATCH (c)<-[g:GUARANTEES]-(r:Customer)
  WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL)
  WITH g, r ORDER BY r.customer_id, g.start, g.amount
  RETURN collect(CASE WHEN g IS NOT NULL
    THEN {guarantor_id: r.customer_id, amount: g.amount, start: g.start, end: g.end} END)
    AS guarantees_received
}
CALL (c) {
  OPTIONAL MATCH (c)-[h:HOLDS_SHARES]->(e:Customer)
  WHERE coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL)
  WITH h, e ORDER BY e.customer_id
  RETURN collect(CASE WHEN h IS NOT NULL THEN {company_id: e.customer_id, share: h.share} END)
    AS holdings
}
RETURN
  c.customer_id AS customer_id, cs.kind AS kind, cs.name AS name, cs.sector AS sector,
  cs.region AS region, cs.defaulted AS defaulted,
  lines, total_limit, drawn_amount, accounts, devices,
  guarantees_given, guarantees_received, holdings,
  c.cluster_id AS cluster_id, c.circle_id AS circle_id, c.ring_id AS ring_id,
  c.banned_share AS banned_share, c.contagion_score AS contagion_score,
  c.gnn_score AS gnn_score, c.risk_score AS risk_score, c.tier AS tier, c.run_id AS run_id
