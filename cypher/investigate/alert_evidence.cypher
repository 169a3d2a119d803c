// name: alert_evidence
// purpose: The evidence of a customer's alert, from the latest run's write-back, as paths
//   Neo4j Browser draws: for a banned-share alert the transfer paths of its drawdown into
//   banned sectors (flow_paths.parquet's, by rank), for a circle-default alert the guarantee
//   cycles through the customer, for a ring alert each shared device with the ring members
//   that use it. Nothing when the customer has no alert or its rules have no such evidence.
//   The paths run over the loaded graph as of `as_of` (the current graph by default).
// params: customer_id (string, C0000367), as_of (date?, 2026-01-31, default null)
// columns: customer_id, tier, kind, evidence_id, rank, path
// example: graphkit cypher run alert_evidence --param customer_id=C0000367
MATCH (c:Customer {customer_id: $customer_id})-[:ALERTED]->(a:Alert)-[:EVIDENCE]->(e:Evidence)
CALL (e) {
  WITH e WHERE e.kind = 'flow_path'
  MATCH path = (:Customer)-[h:HAS_LINE]->(:CreditLine)-[dd:DRAWDOWN {drawdown_id: e.drawdown_id}]
    ->(:Account)-[ts:TRANSFER*0..10]->(:Account {account_id: e.sink_account})
  WHERE size(ts) = e.hops AND all(t IN ts WHERE t.transfer_id IN e.transfer_ids)
    AND [t IN ts | t.transfer_id] = e.transfer_ids
    AND coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL) AND coalesce(date(dd.valid_from) <= date($as_of), true) AND coalesce(date(dd.valid_to) > date($as_of), dd.valid_to IS NULL)
    AND all(t IN ts WHERE coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL))
  RETURN path, e.path_rank AS rank LIMIT 1
  UNION
  WITH e WHERE e.kind = 'guarantee_cycle'
  MATCH path = (first:Customer {customer_id: e.customer_ids[0]})-[gs:GUARANTEES*1..]->(first)
  WHERE size(gs) = e.length AND all(n IN nodes(path) WHERE n.customer_id IN e.customer_ids)
    AND [g IN gs | startNode(g).customer_id] = e.customer_ids
    AND all(g IN gs WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL))
  RETURN path, e.cycle_rank AS rank LIMIT 1
  UNION
  WITH e WHERE e.kind = 'shared_devices'
  MATCH path = (d:Device)<-[u:USES_DEVICE]-(m:Customer)
  WHERE d.device_id IN e.device_ids AND m.ring_id = e.ring_id AND coalesce(date(u.valid_from) <= date($as_of), true) AND coalesce(date(u.valid_to) > date($as_of), u.valid_to IS NULL)
  RETURN path, [i IN range(0, size(e.device_ids) - 1) WHERE e.device_ids[i] = d.device_id][0] + 1
    AS rank
}
RETURN
  c.customer_id AS customer_id, a.tier AS tier, e.kind AS kind, e.evidence_id AS evidence_id,
  rank, path
ORDER BY kind, evidence_id, rank
