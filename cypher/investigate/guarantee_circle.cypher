// name: guarantee_circle
// purpose: The guarantee circle (担保圈) of a customer: every customer that guarantees it and
//   is guaranteed by it through chains of guarantees (its strongly connected component in the
//   guarantor -> borrower graph), found by traversal, so it needs no analysis run. Empty when
//   the customer is in no circle. circle_id is the latest run's write-back (null before one).
// params: customer_id (string, C0000182)
// columns: circle_id, customer_id, name, kind, defaulted, tier, internal_given
// example: graphkit cypher run guarantee_circle --param customer_id=C0000182
MATCH (c:Customer {customer_id: $customer_id})
OPTIONAL MATCH (c)-[:GUARANTEES*1..]->(down:Customer)
WITH c, collect(DISTINCT down) AS downstream
OPTIONAL MATCH (up:Customer)-[:GUARANTEES*1..]->(c)
WITH downstream, collect(DISTINCT up) AS upstream
WITH [m IN downstream WHERE m IN upstream] AS circle
UNWIND circle AS member
OPTIONAL MATCH (member)-[g:GUARANTEES]->(other:Customer)
  WHERE other IN circle
WITH member, sum(g.amount) AS internal_given
RETURN
  member.circle_id AS circle_id, member.customer_id AS customer_id, member.name AS name,
  member.kind AS kind, member.defaulted AS defaulted, member.tier AS tier, internal_given
ORDER BY customer_id
