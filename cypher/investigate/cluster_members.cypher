// name: cluster_members
// purpose: Members of a related-enterprise cluster (关联企业集群) of the latest run and their
//   exposure: credit limit and drawn amount over their lines, label, circle, ring and score.
//   With as_of, the members that were in the input at the end of that date, with their
//   profile and exposure then (the cluster itself is the latest run's).
// params: cluster_id (int, 1), as_of (date?, 2026-01-31, default null)
// columns: cluster_id, customer_id, name, kind, total_limit, drawn_amount, defaulted,
//   circle_id, ring_id, risk_score, tier
// example: graphkit cypher run cluster_members --param cluster_id=1
MATCH (k:Cluster {cluster_id: $cluster_id})<-[:IN_CLUSTER]-(c:Customer)
WHERE (coalesce(date(c.valid_from) <= date($as_of), true) AND coalesce(date(c.valid_to) > date($as_of), c.valid_to IS NULL) OR EXISTS { (c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
WITH k, c, coalesce(head([(c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), c) AS cs
CALL (c) {
  OPTIONAL MATCH (c)-[h:HAS_LINE]->(l:CreditLine)
  WHERE coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL)
  OPTIONAL MATCH (l)-[d:DRAWDOWN]->(:Account)
  WHERE coalesce(date(d.valid_from) <= date($as_of), true) AND coalesce(date(d.valid_to) > date($as_of), d.valid_to IS NULL)
  WITH l, coalesce(head([(l)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), l) AS ls, toFloat(sum(d.amount)) AS drawn
  RETURN sum(ls.limit) AS total_limit, sum(drawn) AS drawn_amount
}
RETURN
  k.cluster_id AS cluster_id, c.customer_id AS customer_id, cs.name AS name, cs.kind AS kind,
  total_limit, drawn_amount, cs.defaulted AS defaulted, c.circle_id AS circle_id,
  c.ring_id AS ring_id, c.risk_score AS risk_score, c.tier AS tier
ORDER BY drawn_amount DESC, customer_id
