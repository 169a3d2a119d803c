// name: banned_inflows_by_hop
// purpose: How far loan money travels before it reaches banned sectors: the drawdowns of a
//   customer (or of everyone when customer_id is left out) grouped by the fewest hops at which
//   a banned sink is reachable on a time-respecting transfer path (as in fund_flow_trace),
//   with their drawn amount. Drawdowns that reach no banned sink are left out. With as_of,
//   the drawdowns, transfers, owners and sectors the input had at the end of that date.
// params: customer_id (string?, C0000102), window_days (float, 30, default flows.window_days),
//   max_hops (int, 6, default flows.max_hops), as_of (date?, 2026-01-31, default null)
// columns: hops, drawdowns, drawn_amount, customers
// example: graphkit cypher run banned_inflows_by_hop --param customer_id=C0000102
// Method: breadth-first over hop layers keeping, per account, the earliest arrival time
//   reachable in exactly k hops (an earlier arrival allows every continuation a later one
//   does, and a shortest time-respecting walk never repeats an account), so the cost is
//   O(max_hops x transfers in the window) instead of one row per path. Banned sinks absorb:
//   money is not followed out of them. At most 10 hops (the layers below).
MATCH (c:Customer)-[h:HAS_LINE]->(:CreditLine)-[dd:DRAWDOWN]->(a0:Account)
WHERE ($customer_id IS NULL OR c.customer_id = $customer_id) AND coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL) AND coalesce(date(dd.valid_from) <= date($as_of), true) AND coalesce(date(dd.valid_to) > date($as_of), dd.valid_to IS NULL)
CALL (dd, a0) {
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
  RETURN reduce(low = null, r IN reached |
    CASE WHEN low IS NULL OR r.hops < low THEN r.hops ELSE low END) AS min_hops
}
WITH c, dd, min_hops
WHERE min_hops IS NOT NULL
RETURN
  min_hops AS hops, count(dd) AS drawdowns, sum(dd.amount) AS drawn_amount,
  count(DISTINCT c) AS customers
ORDER BY hops
