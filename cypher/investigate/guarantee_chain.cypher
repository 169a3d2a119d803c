// name: guarantee_chain
// purpose: The guarantee chain of a customer (FinBench TCR-11 style): every customer it
//   guarantees directly or through other guarantors within max_hops hops, using only
//   guarantees whose start date lies in [start_from, start_to] (either bound may be left
//   out), with the fewest hops needed and the member's total credit limit.
// params: customer_id (string, C0000182), max_hops (int, 3, default 3),
//   start_from (date?, 2023-01-01), start_to (date?, 2025-12-31)
// columns: customer_id, hops, name, defaulted, total_limit, tier
// example: graphkit cypher run guarantee_chain --param customer_id=C0000182 --param max_hops=3
//   --param start_from=2023-01-01 --param start_to=2025-12-31
MATCH (c:Customer {customer_id: $customer_id})
MATCH p = ANY SHORTEST (c)-[g:GUARANTEES
    WHERE ($start_from IS NULL OR g.start >= date($start_from))
      AND ($start_to IS NULL OR g.start <= date($start_to))]->{1,}(m:Customer)
WITH c, m, length(p) AS hops
WHERE m <> c AND hops <= $max_hops
CALL (m) {
  OPTIONAL MATCH (m)-[:HAS_LINE]->(l:CreditLine)
  RETURN sum(l.limit) AS total_limit
}
RETURN
  m.customer_id AS customer_id, hops, m.name AS name, m.defaulted AS defaulted,
  total_limit, m.tier AS tier
ORDER BY hops, customer_id
