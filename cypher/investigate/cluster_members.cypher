// name: cluster_members
// purpose: Members of a related-enterprise cluster (关联企业集群) of the latest run and their
//   exposure: credit limit and drawn amount over their lines, label, circle, ring and score.
// params: cluster_id (int, 1)
// columns: cluster_id, customer_id, name, kind, total_limit, drawn_amount, defaulted,
//   circle_id, ring_id, risk_score, tier
// example: graphkit cypher run cluster_members --param cluster_id=1
MATCH (k:Cluster {cluster_id: $cluster_id})<-[:IN_CLUSTER]-(c:Customer)
CALL (c) {
  OPTIONAL MATCH (c)-[:HAS_LINE]->(l:CreditLine)
  OPTIONAL MATCH (l)-[d:DRAWDOWN]->(:Account)
  WITH l, sum(d.amount) AS drawn
  RETURN sum(l.limit) AS total_limit, sum(drawn) AS drawn_amount
}
RETURN
  k.cluster_id AS cluster_id, c.customer_id AS customer_id, c.name AS name, c.kind AS kind,
  total_limit, drawn_amount, c.defaulted AS defaulted, c.circle_id AS circle_id,
  c.ring_id AS ring_id, c.risk_score AS risk_score, c.tier AS tier
ORDER BY drawn_amount DESC, customer_id
