// name: top_clusters
// purpose: The riskiest related-enterprise clusters of the latest run, by cluster risk score
//   (clusters without a score last), with their size, limits, drawn amount, defaults and tier.
//   With as_of, members counts only the members that were in the input at the end of that
//   date (the clusters and their figures are the latest run's).
// params: limit (int, 10, default 10), as_of (date?, 2026-01-31, default null)
// columns: cluster_id, members, total_limit, drawn_amount, defaulted, default_rate,
//   banned_share, risk_score, tier
// example: graphkit cypher run top_clusters --param limit=5
MATCH (k:Cluster)
CALL (k) {
  OPTIONAL MATCH (k)<-[:IN_CLUSTER]-(c:Customer)
  WHERE (coalesce(date(c.valid_from) <= date($as_of), true) AND coalesce(date(c.valid_to) > date($as_of), c.valid_to IS NULL) OR EXISTS { (c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
  RETURN count(c) AS members
}
RETURN
  k.cluster_id AS cluster_id, members, k.total_limit AS total_limit,
  k.drawn_amount AS drawn_amount, k.defaulted AS defaulted, k.default_rate AS default_rate,
  k.banned_share AS banned_share, k.risk_score AS risk_score, k.tier AS tier
ORDER BY coalesce(k.risk_score, -1.0) DESC, cluster_id
LIMIT $limit
