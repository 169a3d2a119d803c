// name: fund_flow_trace
// purpose: Where a drawdown's money can go (资金流向, FinBench TCR-8 style): time-respecting
//   transfer paths from the disbursement account (each transfer no earlier than the one
//   before, all within window_days of the drawdown, at most max_hops transfers, no account
//   twice) that end in an account of a merchant in a banned sector. One row per banned sink
//   reached: the fewest hops, the earliest arrival at that many hops and one such path (its
//   transfer ids). A drawdown paid straight into a banned sink is reached at 0 hops.
// params: drawdown_id (string, D000003), window_days (float, 30, default flows.window_days),
//   max_hops (int, 6, default flows.max_hops), as_of (date?, 2026-01-31, default null)
// columns: drawdown_id, account_id, merchant_id, sector, category, min_hops, arrived_at,
//   shortest_path, path, evidence
// example: graphkit cypher run fund_flow_trace --param drawdown_id=D000003
// Method: breadth-first over hop layers keeping, per account, the earliest arrival time
//   reachable in exactly k hops (an earlier arrival allows every continuation a later one
//   does, and a shortest time-respecting walk never repeats an account), so the cost is
//   O(max_hops x transfers in the window) instead of one row per path. Banned sinks absorb:
//   money is not followed out of them. At most 10 hops (the layers below).
MATCH (:CreditLine)-[dd:DRAWDOWN {drawdown_id: $drawdown_id}]->(a0:Account)
WHERE coalesce(date(dd.valid_from) <= date($as_of), true) AND coalesce(date(dd.valid_to) > date($as_of), dd.valid_to IS NULL)
WITH dd, dd.ts + duration({days: $window_days}) AS t_end,
  [{account: a0, at: dd.ts, path: [], hops: 0,
    sink: EXISTS { (a0)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }}] AS start
WITH dd, t_end, [x IN start WHERE NOT x.sink] AS frontier, [x IN start WHERE x.sink] AS reached
// hop 1
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 1,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 2
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 2,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 3
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 3,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 4
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 4,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 5
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 5,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 6
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 6,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 7
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 7,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 8
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 8,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 9
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 9,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
// hop 10
CALL (frontier, t_end) {
  UNWIND frontier AS f
  WITH f, f.account AS u
  WHERE f.hops < $max_hops
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE f.at <= t.ts <= t_end AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
  WITH v, t, f ORDER BY t.ts, f.path
  WITH v, head(collect({at: t.ts, path: f.path + t.transfer_id})) AS best
  RETURN collect({
    account: v, at: best.at, path: best.path, hops: 10,
    sink: EXISTS { (v)<-[o:OWNS]-(:Merchant)-[i:IN_SECTOR]->(s:Sector)
      WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL) AND coalesce(head([(s)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), s).banned }
  }) AS next
}
WITH dd, t_end, [x IN next WHERE NOT x.sink] AS frontier,
  reached + [x IN next WHERE x.sink AND NOT x.account IN [r IN reached | r.account]] AS reached
UNWIND reached AS r
WITH dd, r, r.account AS sink
MATCH (sink)<-[o:OWNS]-(m:Merchant)-[i:IN_SECTOR]->(s:Sector)
WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) AND coalesce(date(i.valid_from) <= date($as_of), true) AND coalesce(date(i.valid_to) > date($as_of), i.valid_to IS NULL)
// Paths for Neo4j Browser to draw, from the drawdown's credit line through the transfers to
// the sink's merchant and sector: `path` follows shortest_path; `evidence` holds the run's
// evidence paths into this sink (flow_paths.parquet's, written back for a banned-share alert),
// best rank first, and is empty without them. Transfers are the ones valid at `as_of` (now by
// default), as in the hops above.
CALL (dd, r, sink, m, s, o, i) {
  OPTIONAL MATCH path = (:CreditLine)-[dd]->(:Account)-[ts:TRANSFER*0..10]->(sink)
    <-[o]-(m)-[i]->(s)
  WHERE size(ts) = r.hops AND all(t IN ts WHERE t.transfer_id IN r.path)
    AND [t IN ts | t.transfer_id] = r.path
    AND all(t IN ts WHERE coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL))
  RETURN path LIMIT 1
}
CALL (dd, sink, m, s, o, i) {
  MATCH (e:Evidence:FlowPath {drawdown_id: dd.drawdown_id})
  WHERE e.sink_account = sink.account_id
  CALL (e, dd, sink, m, s, o, i) {
    MATCH drawn = (:CreditLine)-[dd]->(:Account)-[ts:TRANSFER*0..10]->(sink)
      <-[o]-(m)-[i]->(s)
    WHERE size(ts) = e.hops AND all(t IN ts WHERE t.transfer_id IN e.transfer_ids)
      AND [t IN ts | t.transfer_id] = e.transfer_ids
      AND all(t IN ts WHERE coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL))
    RETURN drawn LIMIT 1
  }
  WITH e, drawn ORDER BY e.path_rank
  RETURN collect(drawn) AS evidence
}
RETURN
  dd.drawdown_id AS drawdown_id, sink.account_id AS account_id, m.merchant_id AS merchant_id,
  s.sector AS sector, s.category AS category, r.hops AS min_hops, r.at AS arrived_at,
  r.path AS shortest_path, path, evidence
ORDER BY min_hops, account_id
