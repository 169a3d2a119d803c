// name: transfer_cycles
// purpose: Round-tripping through a customer's account (FinBench TCR-4 style): transfer
//   cycles that leave the account and come back, each transfer strictly later than the one
//   before, the last within window_days of the first, 2 to max_length transfers (<= 10),
//   every account on the way a customer's and none twice (graphkit's round_trips rules; a
//   merchant account is commerce, not a round trip). One row per cycle, oldest first. With
//   as_of, the transfers and owners the input had at the end of that date.
// params: account_id (string, A000190),
//   window_days (float, 30, default flows.cycle_window_days),
//   max_length (int, 6, default flows.cycle_max_length), as_of (date?, 2026-01-31, default null)
// columns: account_id, length, transfer_ids, accounts, first_ts, last_ts, amounts, min_amount
// example: graphkit cypher run transfer_cycles --param account_id=A000190
// Method: the open paths are extended one transfer per layer below, keeping only those still
//   time-ordered, inside the window and simple, so the work is proportional to the
//   time-respecting paths, not to every walk of up to max_length transfers.
MATCH (a:Account {account_id: $account_id})
WHERE EXISTS { (a)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) }
WITH a, [{account: a, first: null, last: null, ids: [], accounts: [a.account_id], amounts: []}]
  AS partial, [] AS cycles
// transfer 1
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 2
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 3
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 4
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 5
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 6
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 7
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 8
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 9
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
// transfer 10
CALL (partial, a) {
  UNWIND partial AS p
  WITH p, p.account AS u
  WHERE size(p.ids) < $max_length
  MATCH (u)-[t:TRANSFER]->(v:Account)
  WHERE (p.last IS NULL OR t.ts > p.last) AND coalesce(date(t.valid_from) <= date($as_of), true) AND coalesce(date(t.valid_to) > date($as_of), t.valid_to IS NULL)
    AND t.ts <= coalesce(p.first, t.ts) + duration({days: $window_days})
    AND CASE WHEN v = a THEN size(p.ids) >= 1
      ELSE NOT v.account_id IN p.accounts AND EXISTS { (v)<-[o:OWNS]-(:Customer) WHERE coalesce(date(o.valid_from) <= date($as_of), true) AND coalesce(date(o.valid_to) > date($as_of), o.valid_to IS NULL) } END
  RETURN collect({
    account: v, first: coalesce(p.first, t.ts), last: t.ts, ids: p.ids + t.transfer_id,
    accounts: p.accounts + v.account_id, amounts: p.amounts + t.amount, closed: v = a
  }) AS next
}
WITH a, cycles + [x IN next WHERE x.closed] AS cycles, [x IN next WHERE NOT x.closed] AS partial
UNWIND cycles AS c
RETURN
  a.account_id AS account_id, size(c.ids) AS length, c.ids AS transfer_ids,
  c.accounts AS accounts, c.first AS first_ts, c.last AS last_ts, c.amounts AS amounts,
  reduce(low = c.amounts[0], x IN c.amounts | CASE WHEN x < low THEN x ELSE low END)
    AS min_amount
ORDER BY first_ts, transfer_ids
