// name: guarantee_chain
// purpose: The guarantee chain of a customer (FinBench TCR-11 style): every customer it
//   guarantees directly or through other guarantors within max_hops hops, using only
//   guarantees whose start date lies in [start_from, start_to] (either bound may be left
//   out), with the fewest hops needed and the member's total credit limit. With as_of, the
//   guarantees, lines and profiles the input had at the end of that date.
// params: customer_id (string, C0000182), max_hops (int, 3, default 3),
//   start_from (date?, 2023-01-01), start_to (date?, 2025-12-31),
//   as_of (date?, 2026-01-31, default null)
// columns: customer_id, hops, name, defaulted, total_limit, tier
// example: graphkit cypher run guarantee_chain --param customer_id=C0000182 --param max_hops=3
//   --param start_from=2023-01-01 --param start_to=2025-12-31
MATCH (c:Customer {customer_id: $customer_id})
WHERE (coalesce(date(c.valid_from) <= date($as_of), true) AND coalesce(date(c.valid_to) > date($as_of), c.valid_to IS NULL) OR EXISTS { (c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
MATCH p = ANY SHORTEST (c)-[g:GUARANTEES
    WHERE ($start_from IS NULL OR g.start >= date($start_from))
      AND ($start_to IS NULL OR g.start <= date($start_to))
      AND coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL)]->{1,}(m:Customer)
WITH c, m, length(p) AS hops
WHERE m <> c AND hops <= $max_hops
CALL (m) {
  OPTIONAL MATCH (m)-[h:HAS_LINE]->(l:CreditLine)
  WHERE coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL)
  RETURN sum(coalesce(head([(l)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), l).limit) AS total_limit
}
WITH m, hops, total_limit, coalesce(head([(m)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), m) AS ms
RETURN
  m.customer_id AS customer_id, hops, ms.name AS name, ms.defaulted AS defaulted,
  total_limit, m.tier AS tier
ORDER BY hops, customer_id
