// name: top_clusters
// purpose: The riskiest related-enterprise clusters of the latest run, by cluster risk score
//   (clusters without a score last), with their size, limits, drawn amount, defaults and tier.
// params: limit (int, 10, default 10)
// columns: cluster_id, members, total_limit, drawn_amount, defaulted, default_rate,
//   banned_share, risk_score, tier
// example: graphkit cypher run top_clusters --param limit=5
MATCH (k:Cluster)
CALL (k) {
  OPTIONAL MATCH (k)<-[:IN_CLUSTER]-(c:Customer)
  RETURN count(c) AS members
}
RETURN
  k.cluster_id AS cluster_id, members, k.total_limit AS total_limit,
  k.drawn_amount AS drawn_amount, k.defaulted AS defaulted, k.default_rate AS default_rate,
  k.banned_share AS banned_share, k.risk_score AS risk_score, k.tier AS tier
ORDER BY coalesce(k.risk_score, -1.0) DESC, cluster_id
LIMIT $limit
