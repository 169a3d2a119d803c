// name: guarantee_circle
// purpose: The guarantee circle (担保圈) of a customer: every customer that guarantees it and
//   is guaranteed by it through chains of guarantees (its strongly connected component in the
//   guarantor -> borrower graph), found by traversal, so it needs no analysis run. Empty when
//   the customer is in no circle. circle_id is the latest run's write-back (null before one).
//   With as_of, the circle of the guarantees the input had at the end of that date.
// params: customer_id (string, C0000182), as_of (date?, 2026-01-31, default null)
// columns: circle_id, customer_id, name, kind, defaulted, tier, internal_given
// example: graphkit cypher run guarantee_circle --param customer_id=C0000182
MATCH (c:Customer {customer_id: $customer_id})
WHERE (coalesce(date(c.valid_from) <= date($as_of), true) AND coalesce(date(c.valid_to) > date($as_of), c.valid_to IS NULL) OR EXISTS { (c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
OPTIONAL MATCH (c)-[gs:GUARANTEES*1..]->(down:Customer)
  WHERE all(g IN gs WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL))
WITH c, collect(DISTINCT down) AS downstream
OPTIONAL MATCH (up:Customer)-[gs:GUARANTEES*1..]->(c)
  WHERE all(g IN gs WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL))
WITH downstream, collect(DISTINCT up) AS upstream
WITH [m IN downstream WHERE m IN upstream] AS circle
UNWIND circle AS member
OPTIONAL MATCH (member)-[g:GUARANTEES]->(other:Customer)
  WHERE other IN circle AND coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL)
WITH member, coalesce(head([(member)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), member) AS ms, sum(g.amount) AS internal_given
RETURN
  member.circle_id AS circle_id, member.customer_id AS customer_id, ms.name AS name,
  ms.kind AS kind, ms.defaulted AS defaulted, member.tier AS tier, internal_given
ORDER BY customer_id
